"""The functions an export serves, in every format: the run's model (:func:`serving_model`), its serving
signature for the run's data (:func:`run_serving`) and the ``tf.function`` from raw inputs to outputs with the
preprocessing inside (:func:`serving_function`)."""

from __future__ import annotations

from pathlib import Path

from kerasapps.core.errors import UsageError
from kerasapps.core.recipe import Recipe


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
