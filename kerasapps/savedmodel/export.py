"""Exporting a finished run: ``export(run_dir, format=...)`` writes ``ROOT/NAME/VERSION/`` in one of the
registered formats (:mod:`kerasapps.savedmodel.formats`: versioning and the atomic write shared): the SavedModel
(:mod:`kerasapps.savedmodel.saved_model`), ONNX and LiteRT (:mod:`kerasapps.savedmodel.portable`).
"""

from __future__ import annotations

import functools
from pathlib import Path

from kerasapps.core.errors import UsageError
from kerasapps.core.progress import progress
from kerasapps.savedmodel import portable, saved_model  # noqa: F401  (each registers its formats)
from kerasapps.savedmodel.formats import (
    check_model_name,
    check_same_signature,
    export_format,
    version_folder,
    write_version,
)
from kerasapps.savedmodel.functions import run_serving, serving_function, serving_model

__all__ = ["export", "run_serving", "serving_function", "serving_model"]


def export(run_dir, *, out=None, version: int | None = None, force: bool = False, name: str | None = None,
           format: str = "saved_model", quantize: str = "none") -> Path:
    """Export a finished run's final model to ``ROOT/NAME/VERSION`` (default: the next version) in ``format``
    (:data:`kerasapps.savedmodel.formats.FORMATS`); ``ROOT`` is ``out``, else the format's own root
    (``saved_models`` for a SavedModel); ``NAME`` is ``name``, else the recipe's. A run whose signature differs
    from the newest version's under that name (another table's columns, other classes) is refused: a server
    would answer the old model's clients with the new one (``force`` exports it anyway). ``quantize`` (none,
    float16, int8) is LiteRT's."""
    from kerasapps.training import rundir

    fmt = export_format(format)
    write = fmt.write
    if quantize != "none":
        if "quantize" not in fmt.options:
            raise UsageError(f"--quantize is for --format litert; the {fmt.name} export is not quantised")
        write = functools.partial(fmt.write, quantize=quantize)
    recipe, hp, _ = rundir.open_run(run_dir)
    model_path = rundir.final_model_path(run_dir)
    model_dir = fmt.root(out) / check_model_name(name or recipe.name)
    serving = run_serving(recipe, run_dir)
    labels = serving.class_labels()
    if not force:
        check_same_signature(model_dir, fmt.marker, serving.describe(), name is None)
    version, target = version_folder(model_dir, fmt.marker, version, force)
    info = {"recipe": recipe.name, "version": version, "run_dir": str(Path(run_dir).resolve()), "format": fmt.name,
            "signature": serving.describe(),
            **({"knows": serving.known_classes} if serving.known_classes else {}),
            **({"class_names": list(labels)} if labels is not None else {})}
    with progress(f"exporting {recipe.name}: loading the model", total=3) as bar:  # a bar on a terminal only
        return write_version(target, lambda folder: write(recipe, hp, run_dir, model_path, folder, bar), info)
