"""Loading weights into the canon's models: keras.applications' ImageNet files, weight files, and
another model's layers by name.
"""

from __future__ import annotations

import os

from kerasapps.models.recompute import Recompute
from kerasapps.models.walk import iter_layers

__all__ = ["apply_weights", "copy_weights_by_name"]


def apply_weights(model, weights, imagenet_reference):
    """Load ``weights`` into ``model``: None (keep the initialisation), ``"imagenet"`` or a file path.

    ``"imagenet"`` builds keras.applications' model through ``imagenet_reference()`` (which downloads
    and caches the weights and checks the configuration, as keras.applications does) and copies its
    weights, whose layout ours matches layer for layer. A path is a Keras 3 ``.weights.h5`` file or a
    keras.applications / legacy ``.h5`` weight file.
    """
    if weights is None:
        return model
    if isinstance(weights, str) and weights == "imagenet":
        reference = imagenet_reference()
        theirs, ours = reference.get_weights(), model.weights
        mismatched = [f"{v.path} {tuple(v.shape)} vs {w.shape}" for v, w in zip(ours, theirs)
                      if tuple(v.shape) != w.shape]
        if len(theirs) != len(ours) or mismatched:
            raise ValueError(f"{model.name}: ImageNet weights need the paper configuration (no batch norm, default "
                             f"widths); {len(ours)} vs {len(theirs)} weights"
                             + (f", first mismatch {mismatched[0]}" if mismatched else ""))
        model.set_weights(theirs)
        return model
    path = str(weights)
    if not os.path.isfile(path):
        raise ValueError(f"{model.name}: weights must be None, 'imagenet' or the path of a weights file; "
                         f"received weights={weights!r}, which is not a file")
    if not path.endswith((".weights.h5", ".h5", ".hdf5")):
        raise ValueError(f"{model.name}: weights file must end in .weights.h5 (Keras 3) or .h5 "
                         f"(keras.applications); received {weights!r}")
    try:
        model.load_weights(path)
    except ValueError as exc:
        raise ValueError(f"{model.name}: {path} does not fit this configuration: {exc}") from None
    return model


def copy_weights_by_name(source, target) -> int:
    """Copy the weights of ``source``'s layers into ``target``'s layers of the same name; returns how many.

    Layers without weights, and names ``source`` lacks, are left alone (so 0 means no name matched).
    A layer of the same name whose weight shapes differ is a ValueError naming it.
    """
    layers = {layer.name: layer for layer in iter_layers(source)}
    copied = 0
    for layer in iter_layers(target):
        twin = layers.get(layer.name)
        if twin is None or not layer.weights or isinstance(layer, Recompute) or hasattr(layer, "layers"):
            continue  # a nested model or recomputed block: its own layers are copied one by one
        if [w.shape for w in twin.weights] != [w.shape for w in layer.weights]:
            raise ValueError(f"layer {layer.name!r} has weights of shapes {[tuple(w.shape) for w in twin.weights]} "
                             f"in {source.name}, {[tuple(w.shape) for w in layer.weights]} in {target.name}")
        layer.set_weights(twin.get_weights())
        copied += 1
    return copied
