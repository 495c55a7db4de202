"""SavedModel export in TF Serving's layout, written atomically.

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

from kerasapps.core.errors import RunError, UsageError
from kerasapps.core.progress import progress
from kerasapps.core.recipe import Recipe
from kerasapps.core.schema import EXPORT_ROOT

EXPORT_INFO = "assets.extra/kerasapps.json"


def serving_model(model, tta: str = "none"):
    """The model an export serves: ``model`` itself, or, for a model with auxiliary training heads, its
    first output alone (the heads and their weights are left out); with the run's test-time augmentation
    (``tta=flip``: the mean over the image and its mirror, as ``evaluate`` scored it)."""
    from kerasapps.training.tta import with_tta

    return with_tta(model, tta)


def run_serving(recipe: Recipe, run_dir=None):
    """The recipe's serving signature for the run's hyper-parameters and the data it recorded (``data.json``: its
    class names, columns); without a run, for the recipe's defaults."""
    from kerasapps.training import rundir

    if recipe.serving is None:
        raise UsageError(f"recipe {recipe.name!r} declares no serving signature; it cannot be exported")
    if run_dir is None:
        return recipe.serving.configure(recipe.default_hparams())
    path = Path(run_dir) / rundir.DATA
    serving = recipe.serving.configure(recipe.resolve(config_file=Path(run_dir) / rundir.CONFIG, legacy=True))
    return serving.for_data(rundir.read_json(path) if path.is_file() else {})


def serving_function(recipe: Recipe, model, serving=None):
    """The ``tf.function`` that an export serves: raw inputs -> outputs, preprocessing inside; ``serving``
    (default: the recipe's) is the signature, e.g. with the run's class names (:func:`run_serving`)."""
    import tensorflow as tf

    model = serving_model(model)
    serving = serving or run_serving(recipe)

    def serve(inputs):
        return serving.outputs(model, recipe.preprocess, inputs)

    return tf.function(serve, input_signature=serving.input_signature())


def is_export(path: Path) -> bool:
    return (Path(path) / "saved_model.pb").is_file()


def versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir()
                  if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file())


def remove_abandoned(model_dir: Path) -> None:
    """Remove the temporary folders of exports whose process has died (a killed ``export``)."""
    for folder in model_dir.glob(".*-*-*"):
        parts = folder.name.split("-")
        if folder.is_dir() and parts[0] in (".tmp", ".old") and len(parts) > 3 and parts[2].isdigit() \
                and not _alive(int(parts[2])):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def export(run_dir, *, out=EXPORT_ROOT, version: int | None = None, force: bool = False) -> Path:
    """Export a finished run's final model to ``out/NAME/VERSION`` (default: the next version)."""
    import keras

    from kerasapps.training import rundir
    from kerasapps.training.checkpoints import load_model

    recipe, hp, _ = rundir.open_run(run_dir)
    model_path = rundir.final_model_path(run_dir)
    if version is not None and version < 1:
        raise UsageError(f"--version must be a positive integer; got {version}")
    model_dir = Path(out) / recipe.name
    existing = versions(model_dir)
    version = version if version is not None else (existing[-1] + 1 if existing else 1)
    target = model_dir / str(version)
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to replace it, or choose another --version")

    with progress(f"exporting {recipe.name}: loading the model", total=3) as bar:  # a bar on a terminal only
        model = serving_model(load_model(model_path, compile=False), hp.tta)
        bar.advance(description=f"exporting {recipe.name}: tracing the serving signatures")
        archive = keras.export.ExportArchive()
        archive.track(model)
        serving = run_serving(recipe, run_dir)
        archive.add_endpoint("serving_default", serving_function(recipe, model, serving))
        for name, function in serving.extra_endpoints(model, recipe.preprocess).items():
            archive.add_endpoint(name, function)
        bar.advance(description=f"exporting {recipe.name}: writing version {version}")
        model_dir.mkdir(parents=True, exist_ok=True)
        remove_abandoned(model_dir)
        tmp = rundir.shareable(Path(tempfile.mkdtemp(prefix=f".tmp-{version}-{os.getpid()}-", dir=model_dir)))
        try:
            archive.write_out(str(tmp), verbose=False)
            bar.advance()
            info = {"recipe": recipe.name, "version": version, "run_dir": str(Path(run_dir).resolve()),
                    "signature": serving.describe(),
                    **({"knows": serving.known_classes} if serving.known_classes else {})}
            (tmp / "assets.extra").mkdir(exist_ok=True)
            (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
            if target.exists():  # --force: swap, never leaving the version missing or half-written
                old = Path(tempfile.mkdtemp(prefix=f".old-{version}-{os.getpid()}-", dir=model_dir))
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
