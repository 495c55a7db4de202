"""One walk over a model's layers, into nested models and recomputed blocks, for everything that
acts on every layer: weight penalties, max-norm, batch-norm momentum, freezing, weight copying and
the filter pictures.
"""

from __future__ import annotations

from collections.abc import Iterator

import keras

from kerasapps.models.arguments import check_rate
from kerasapps.models.recompute import Recompute, bn_momentum_for_remat

__all__ = ["iter_layers", "recomputed_layers", "kernel_layers", "set_batch_norm_momentum"]

KERNEL_LAYERS = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def iter_layers(model) -> Iterator:
    """Every layer inside ``model`` once, depth first in build order, nested models
    (``layer.layers``) and the blocks of :class:`~kerasapps.models.recompute.Recompute` included."""
    seen: set[int] = set()
    stack = list(reversed(model.layers))
    while stack:
        layer = stack.pop()
        if id(layer) in seen:  # shared between nested models
            continue
        seen.add(id(layer))
        yield layer
        if isinstance(layer, Recompute):
            stack.append(layer.block)
        else:
            stack.extend(reversed(getattr(layer, "layers", None) or []))


def recomputed_layers(model) -> set[int]:
    """``id`` of every layer that runs inside a recomputed block (its forward pass runs twice per step)."""
    return {id(inner) for layer in iter_layers(model) if isinstance(layer, Recompute)
            for inner in [layer.block, *iter_layers(layer.block)]}


def kernel_layers(model, *, trainable_only: bool = False) -> list:
    """The Dense and Conv1D/2D/3D layers of ``model`` (with ``trainable_only``, those being trained)."""
    return [layer for layer in iter_layers(model)
            if isinstance(layer, KERNEL_LAYERS) and (layer.trainable or not trainable_only)]


def set_batch_norm_momentum(model, momentum: float) -> int:
    """Set the moving-average momentum of every BatchNormalization in ``model``; returns how many.

    Nested models are included. Blocks wrapped for recomputation (:class:`~kerasapps.models.recompute.Recompute`)
    run their forward pass twice per training step, so their layers get the momentum whose two
    updates equal one (``sqrt(momentum)``), as the factories give them. Keras' default, 0.99,
    averages over about 100 steps; Torch's (0.1 there, 0.9 here), which the original CIFAR
    ResNets trained with, over about 10: short runs on small data need the faster one.
    """
    check_rate(momentum, "momentum")
    twice = recomputed_layers(model)
    count = 0
    for layer in iter_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum_for_remat(momentum) if id(layer) in twice else float(momentum)
            count += 1
    return count
