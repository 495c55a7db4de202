"""kerasapps: the deep-learning canon as Keras 3 recipes.

The Python API mirrors the CLI one to one and imports TensorFlow only when used::

    import kerasapps
    kerasapps.list_recipes()
    run = kerasapps.train("mnist_transfer", data_dir="../shared/data")
    kerasapps.evaluate(run.run_dir)
    kerasapps.export(run.run_dir)              # saved_models/mnist_transfer/1
    kerasapps.predict("saved_models/mnist_transfer", ["digit.png"])
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "list_recipes", "get_recipe", "register_recipe", "info",
           "train", "evaluate", "export", "predict", "serve", "diagnose_init", "diagnose_overfit",
           "diagnose_lr", "tune"]


def list_recipes() -> list[dict]:
    """Name, summary and providing package of every registered recipe."""
    from kerasapps.registry import REGISTRY

    return [{"name": n, "summary": REGISTRY.get(n).summary, "source": REGISTRY.source(n)} for n in REGISTRY.names()]


def get_recipe(name: str):
    from kerasapps.registry import get_recipe as _get

    return _get(name)


def register_recipe(recipe, source: str = "python"):
    from kerasapps.registry import register_recipe as _register

    return _register(recipe, source)


def info(name: str, *, build: bool = True) -> dict:
    from kerasapps.inspect import recipe_info

    return recipe_info(name, build=build)


def train(recipe, **options):
    from kerasapps.training import train as _train

    return _train(recipe, **options)


def evaluate(run_dir, **options):
    from kerasapps.training import evaluate as _evaluate

    return _evaluate(run_dir, **options)


def export(run_dir, **options):
    from kerasapps.savedmodel import export as _export

    return _export(run_dir, **options)


def predict(model, inputs, **options):
    from kerasapps.savedmodel import predict as _predict

    return _predict(model, inputs, **options)


def serve(model_base="saved_models", **options):
    from kerasapps.serving import serve as _serve

    return _serve(model_base, **options)


def diagnose_init(activation="tanh", init="small", **options) -> dict:
    """Per-layer activation statistics of a deep MLP on random input (``kerasapps diagnose init``)."""
    from kerasapps.diagnose import init_statistics

    return init_statistics(activation, init, **options)


def diagnose_overfit(recipe, **options) -> dict:
    """Can ``recipe`` overfit a small slice of its training data (``kerasapps diagnose overfit``)."""
    from kerasapps.diagnose import overfit_check

    return overfit_check(recipe, **options)


def diagnose_lr(recipe, **options) -> dict:
    """Learning-rate range test (``kerasapps diagnose lr``)."""
    from kerasapps.diagnose import lr_range_test

    return lr_range_test(recipe, **options)


def tune(recipe, **options) -> dict:
    """Random search on a validation split; writes OUT/best_config.yaml (``kerasapps tune``)."""
    from kerasapps.tuning import tune as _tune

    return _tune(recipe, **options)
