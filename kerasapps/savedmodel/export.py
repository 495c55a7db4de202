"""Exporting a finished run: ``export(run_dir, format=...)`` writes ``ROOT/NAME/VERSION/`` through the format
registry (:mod:`kerasapps.savedmodel.formats`: versioning and the atomic write), and the first format, the
TensorFlow SavedModel that TF Serving and ``kerasapps serve`` serve, is registered here: the run's model with its
preprocessing inside, ``serving_default`` plus the recipe's extra signatures.
"""

from __future__ import annotations

from pathlib import Path

from kerasapps.core.errors import UsageError
from kerasapps.core.progress import progress
from kerasapps.core.recipe import Recipe
from kerasapps.core.schema import EXPORT_ROOT
from kerasapps.savedmodel.formats import (SAVED_MODEL_MARKER, ExportFormat, export_format, register_export_format,
                                          version_folder, write_version)


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


def export(run_dir, *, out=None, version: int | None = None, force: bool = False,
           format: str = "saved_model") -> Path:
    """Export a finished run's final model to ``ROOT/NAME/VERSION`` (default: the next version) in ``format``
    (:data:`kerasapps.savedmodel.formats.FORMATS`); ``ROOT`` is ``out``, else the format's own root
    (``saved_models`` for a SavedModel)."""
    from kerasapps.training import rundir

    fmt = export_format(format)
    recipe, hp, _ = rundir.open_run(run_dir)
    model_path = rundir.final_model_path(run_dir)
    model_dir = fmt.root(out) / recipe.name
    version, target = version_folder(model_dir, fmt.marker, version, force)
    info = {"recipe": recipe.name, "version": version, "run_dir": str(Path(run_dir).resolve()), "format": fmt.name}
    with progress(f"exporting {recipe.name}: loading the model", total=3) as bar:  # a bar on a terminal only
        return write_version(target, lambda folder: fmt.write(recipe, hp, run_dir, model_path, folder, bar), info)


def write_saved_model(recipe: Recipe, hp, run_dir, model_path, folder: Path, bar) -> dict:
    """The SavedModel of the run's model into ``folder``: ``serving_default`` and the recipe's extra endpoints."""
    import keras

    from kerasapps.training.checkpoints import load_model

    model = serving_model(load_model(model_path, compile=False), hp.tta)
    bar.advance(description=f"exporting {recipe.name}: tracing the serving signatures")
    archive = keras.export.ExportArchive()
    archive.track(model)
    serving = run_serving(recipe, run_dir)
    archive.add_endpoint("serving_default", serving_function(recipe, model, serving))
    for name, function in serving.extra_endpoints(model, recipe.preprocess).items():
        archive.add_endpoint(name, function)
    bar.advance(description=f"exporting {recipe.name}: writing the SavedModel")
    archive.write_out(str(folder), verbose=False)
    bar.advance()
    return {"signature": serving.describe(), **({"knows": serving.knows} if serving.knows else {})}


SAVED_MODEL = register_export_format(ExportFormat(
    "saved_model", SAVED_MODEL_MARKER, write_saved_model, EXPORT_ROOT,
    summary="TensorFlow SavedModel (TF Serving's layout; served by TF Serving and kerasapps serve)"))
