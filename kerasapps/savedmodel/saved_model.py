"""The first export format: the TensorFlow SavedModel that TF Serving and ``kerasapps serve`` serve, in TF
Serving's layout under ``saved_models/``: the run's model with its preprocessing inside, ``serving_default``
plus the recipe's extra signatures."""

from __future__ import annotations

from pathlib import Path

from kerasapps.core.recipe import Recipe
from kerasapps.core.schema import EXPORT_ROOT
from kerasapps.savedmodel.formats import SAVED_MODEL_MARKER, ExportFormat, register_export_format
from kerasapps.savedmodel.functions import run_serving, serving_function, serving_model


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
    return {}


SAVED_MODEL = register_export_format(ExportFormat(
    "saved_model", SAVED_MODEL_MARKER, write_saved_model, EXPORT_ROOT,
    summary="TensorFlow SavedModel (TF Serving's layout; served by TF Serving and kerasapps serve)"))
