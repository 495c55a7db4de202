"""Importing this module registers every custom object of kerasapps with Keras (the canon's layers, the
recomputed blocks, the text standardisation, the losses), so that plain ``keras.saving.load_model`` reads a run's
``model.keras`` in another program::

    import keras
    import kerasapps.training.registered  # noqa: F401
    model = keras.saving.load_model("runs/resnet20/model.keras")

Keras 3 imports the module a custom object names only for its own packages, so without this import it stops at
``Could not locate class 'ChannelPadding'``. ``kerasapps.load_model(RUN_DIR)`` does the same in one call;
``import kerasapps`` alone stays free of TensorFlow and registers nothing.
"""

import kerasapps.models.layers  # noqa: F401
import kerasapps.models.recompute  # noqa: F401
import kerasapps.models.text  # noqa: F401
import kerasapps.training.losses  # noqa: F401
