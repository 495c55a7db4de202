"""Weight penalties: the ``l1`` / ``l2`` keys as an elastic-net kernel regulariser on every layer being trained."""

from __future__ import annotations

from kerasapps.core.errors import ConfigError
from kerasapps.core.hparams import HParams
from kerasapps.models.walk import kernel_layers


def apply_weight_penalties(model, hp: HParams) -> int:
    """Attach an L1/L2 (elastic-net) penalty to every trainable Dense/Conv kernel; returns how many.

    Nested models and recomputed blocks are included (:func:`kerasapps.models.walk.kernel_layers`);
    frozen layers are not penalised, since their weights do not move.
    """
    import keras

    if not hp.l1 and not hp.l2:
        return 0
    regularizer = keras.regularizers.L1L2(l1=hp.l1, l2=hp.l2)
    layers = kernel_layers(model, trainable_only=True)
    for layer in layers:
        layer.kernel.regularizer = regularizer
    if not layers:
        raise ConfigError(f"l1/l2 set, but {model.name} has no trainable Dense or Conv kernel to penalise")
    return len(layers)
