"""SavedModel export in TF Serving's layout, written atomically, and prediction.

``export(run_dir)`` writes ``OUT/NAME/VERSION/``: the SavedModel is built in a
temporary folder beside it and renamed into place, so a half-written export never
carries a version number (TF Serving and ``kerasapps serve`` ignore it).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kerasapps.errors import RunError, UsageError
from kerasapps.recipe import Recipe

EXPORT_INFO = "assets.extra/kerasapps.json"


def serving_function(recipe: Recipe, model):
    """The ``tf.function`` that an export serves: raw inputs -> outputs, preprocessing inside."""
    import tensorflow as tf

    if recipe.serving is None:
        raise UsageError(f"recipe {recipe.name!r} declares no serving signature; it cannot be exported")
    serving = recipe.serving

    def serve(inputs):
        return serving.outputs(model, recipe.preprocess, inputs)

    return tf.function(serve, input_signature=serving.input_signature())


def versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir()
                  if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file())


def export(run_dir, *, out="saved_models", version: int | None = None, force: bool = False) -> Path:
    """Export a finished run's final model to ``out/NAME/VERSION`` (default: the next version)."""
    import keras

    from kerasapps import rundir as R
    from kerasapps.training import final_model_path, open_run

    recipe, hp, _ = open_run(run_dir)
    model_path = final_model_path(run_dir)
    if version is not None and version < 1:
        raise UsageError(f"--version must be a positive integer; got {version}")
    model_dir = Path(out) / recipe.name
    existing = versions(model_dir)
    version = version if version is not None else (existing[-1] + 1 if existing else 1)
    target = model_dir / str(version)
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to replace it, or choose another --version")

    model = R.load_model(model_path, compile=False)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serving_function(recipe, model))
    for name, function in recipe.serving.extra_endpoints(model, recipe.preprocess).items():
        archive.add_endpoint(name, function)
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir))
    try:
        archive.write_out(str(tmp), verbose=False)
        info = {"recipe": recipe.name, "version": version, "run_dir": str(Path(run_dir).resolve()),
                "signature": recipe.serving.describe()}
        (tmp / "assets.extra").mkdir(exist_ok=True)
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
        if target.exists():  # --force: swap, never leaving the version missing or half-written
            old = Path(tempfile.mkdtemp(prefix=f".old-{version}-", dir=model_dir))
            os.replace(target, old / "v")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        raise RunError(f"could not write the export to {target}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def is_export(path: Path) -> bool:
    return (Path(path) / "saved_model.pb").is_file()


def load_signature(model: str | os.PathLike, signature: str = "serving_default"):
    """A callable ``fn(**inputs) -> dict`` and its input specs, for an export or a run directory."""
    import tensorflow as tf

    path = Path(model)
    if path.is_dir() and not is_export(path) and versions(path):
        path = path / str(versions(path)[-1])  # saved_models/NAME -> newest version
    if is_export(path):
        loaded = tf.saved_model.load(str(path))
        if signature not in loaded.signatures:
            raise UsageError(f"{path} has no signature '{signature}' (it has {', '.join(loaded.signatures)})")
        fn = loaded.signatures[signature]
        specs = fn.structured_input_signature[1]
        return (lambda **inputs: fn(**inputs)), specs, loaded
    from kerasapps import rundir as R
    from kerasapps.training import final_model_path, open_run

    if not path.is_dir():
        raise UsageError(f"{path} is neither a SavedModel export nor a run directory")
    recipe, _, _ = open_run(path)
    keras_model = R.load_model(final_model_path(path), compile=False)
    fn = serving_function(recipe, keras_model)
    spec = recipe.serving.input_signature()[0]
    return (lambda **inputs: fn(next(iter(inputs.values())))), {spec.name: spec}, keras_model


def load_inputs(paths: list[str], spec) -> tuple[Any, list[str]]:
    """Read PNG/JPEG files or .npy arrays into one batch matching ``spec``; returns (batch, source names)."""
    import numpy as np

    shape = tuple(spec.shape)  # (None, H, W) or (None, H, W, C)
    dtype = spec.dtype.as_numpy_dtype
    if len(shape) not in (3, 4):
        raise UsageError(f"this model takes {spec.dtype.name} input of shape {list(shape)}; "
                         "predict reads images and .npy arrays only")
    expected = shape[1:]
    want = "[" + ", ".join(["N"] + ["?" if d is None else str(d) for d in expected]) + "]"
    batches, sources = [], []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"input file not found: {path}")
        if path.suffix.lower() == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read {path}: {exc}") from None
            single = array.ndim == len(expected)
            if single:
                array = array[None]
        else:
            array, single = _read_image(path, expected)[None], True
        if array.ndim != len(shape) or any(d is not None and d != a for d, a in zip(expected, array.shape[1:])):
            raise UsageError(f"{path} has shape {list(array.shape[1:] if single else array.shape)}; "
                             f"the model takes {spec.dtype.name} arrays of shape {want}")
        if np.issubdtype(dtype, np.integer) and array.size:
            info = np.iinfo(dtype)
            if array.min() < info.min or array.max() > info.max:
                raise UsageError(f"{path} has values outside the {spec.dtype.name} range [{info.min}, {info.max}]")
        batches.append(array.astype(dtype))
        sources += [str(path)] if single else [f"{path}[{i}]" for i in range(len(array))]
    if len({b.shape[1:] for b in batches}) > 1:
        raise UsageError("inputs have different shapes; predict them separately")
    return np.concatenate(batches), sources


def _read_image(path: Path, expected: tuple):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    channels = expected[2] if len(expected) == 3 else None
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels in (None, 1) else "RGB")
            if expected[0] is not None and image.size != (expected[1], expected[0]):
                raise UsageError(f"{path} is {image.size[0]}x{image.size[1]} pixels; the model takes "
                                 f"{expected[1]}x{expected[0]} images")
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"cannot read image {path}: {exc}") from None
    if channels == 1:
        array = array[..., None]
    return array


def predict(model, inputs: list[str], *, signature: str = "serving_default") -> list[dict]:
    """Run an export or a run directory's model on image/.npy files; one dict per example."""
    import numpy as np

    fn, specs, _keep = load_signature(model, signature)
    if len(specs) != 1:
        raise UsageError(f"predict handles single-input signatures; this one takes {', '.join(specs)}")
    name, spec = next(iter(specs.items()))
    batch, sources = load_inputs(inputs, spec)
    outputs = {k: np.asarray(v) for k, v in fn(**{name: batch}).items()}
    results = []
    for i, source in enumerate(sources):
        row = {"input": source}
        for key, value in outputs.items():
            item = value[i].tolist() if hasattr(value[i], "tolist") else value[i]
            row[key] = item.decode("utf-8", "replace") if isinstance(item, bytes) else item  # string outputs
        results.append(row)
    return results
