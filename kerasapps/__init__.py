"""kerasapps: the deep-learning canon as Keras 3 recipes.

The Python API (:mod:`kerasapps.api`) mirrors the CLI one to one and imports TensorFlow only when used::

    import kerasapps
    kerasapps.list_recipes()
    run = kerasapps.train("mnist_transfer", epochs=5, data_dir="../shared/data")
    kerasapps.evaluate(run.run_dir)
    kerasapps.export(run.run_dir)              # saved_models/mnist_transfer/1
    kerasapps.predict("saved_models/mnist_transfer", ["digit.png"])

The library's layers, from the top: ``tools`` and ``serving`` (and the recipes, installed as
``kerasapps.recipes``), ``savedmodel``, ``training``, ``models`` and ``data``, ``core``.
"""

from kerasapps.api import (
                           diagnose_features,
                           diagnose_filters,
                           diagnose_init,
                           diagnose_lr,
                           diagnose_overfit,
                           evaluate,
                           export,
                           generate,
                           get_recipe,
                           info,
                           list_recipes,
                           load_model,
                           predict,
                           register_recipe,
                           report,
                           serve,
                           train,
                           tune,
)
from kerasapps.core.version import __version__

__all__ = ["__version__", "list_recipes", "get_recipe", "register_recipe", "info", "train", "evaluate", "report",
           "export", "load_model",
           "predict", "serve", "generate", "tune", "diagnose_init", "diagnose_overfit", "diagnose_lr",
           "diagnose_filters", "diagnose_features"]
