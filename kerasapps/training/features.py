"""Frozen features computed once: a stage that trains only the top of a model on a frozen, deterministic
bottom (transfer learning's head stage) runs the bottom once per example instead of every batch.

The cut is the input of the model's first *live* layer (in the graph's topological order): one with
trainable weights, or one whose training call is random (dropout, noise, random augmentation layers)
or batch-dependent (batch normalisation left trainable). Everything before it is frozen and gives the
same output in training as in inference, so its outputs are computed once per example (the recipe's
preprocessing first) and the stage trains ``head``, the model from the cut to the outputs, on them. A
dropout right at the boundary therefore falls into the head, where it still drops every step.

The head shares its layers with the whole model: the weights it trains are the whole model's, the
checkpoints save the whole model (:func:`whole_model`), and the model a stage returns, exports and
resumes from is the whole model. The example order of each epoch, its batches and so the exact resume
are those of the uncached stage.

``cache_features``: ``auto`` (default) caches where a stage freezes layers, the cut exists, the frozen
bottom holds weights (more than a resize or a standardisation), nothing random acts before it (no
augmentation, no monitors, one process) and the features fit in :data:`AUTO_BUDGET_BYTES`; ``true`` caches or
refuses in one line naming what prevents it; ``false`` never caches.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from kerasapps.core.compat import is_random, tracked_layers
from kerasapps.core.errors import ConfigError
from kerasapps.data.splits import length

log = logging.getLogger("kerasapps")
AUTO_BUDGET_BYTES = 2 << 30  # cache_features=auto keeps at most this many bytes of features in memory
_WHOLE: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


@dataclass
class Cut:
    """Where a model splits into a frozen deterministic bottom and a live top."""

    tensor: Any  # the KerasTensor the head starts from
    first_live_layer: Any  # the first layer that must run every step

    @property
    def width(self) -> int:
        return int(np.prod([d for d in self.tensor.shape[1:]]))


def whole_model(model):
    """The whole model behind a head trained on cached features (``model`` itself otherwise): what a
    checkpoint saves."""
    return _WHOLE.get(model, model)


def live_reason(layer) -> str | None:
    """Why ``layer`` must run every step (trainable weights, randomness, batch statistics), or None."""
    import keras

    if isinstance(layer, keras.layers.InputLayer):
        return None
    if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
        return "trains its batch statistics"
    if layer.trainable and layer.trainable_weights:
        return "is trainable"
    if any(is_random(sub) for sub in tracked_layers(layer)):
        return "is random in training"
    if hasattr(layer, "layers") and any(live_reason(sub) for sub in layer.layers):
        return "holds a live layer"
    return None


def find_cut(model) -> tuple[Cut | None, str]:
    """The cut of ``model`` (see the module docstring), or None and the reason in words."""
    import keras

    for layer in model.layers:
        reason = live_reason(layer)
        if reason is None:
            continue
        try:  # the tensors of its first call in the model
            inputs = keras.tree.flatten(layer.input)
        except (ValueError, AttributeError):  # never called
            inputs = []
        if len(inputs) != 1:
            return None, f"layer {layer.name!r} {reason} and takes {len(inputs)} inputs"
        tensor = inputs[0]
        if any(tensor is t for t in model.inputs):
            return None, f"layer {layer.name!r} {reason} and is the first layer: nothing before it is frozen"
        try:
            keras.Model(tensor, model.outputs)
        except ValueError:
            return None, f"the outputs of {model.name} need more than the input of layer {layer.name!r}, which {reason}"
        return Cut(tensor, layer), ""
    return None, f"no layer of {model.name} is live: nothing to train"


def refusal(hp, stage, model, *, augment: bool, custom_loop: bool, full_batch: bool = False) -> str | None:
    """Why the frozen features of ``stage`` (its layers frozen in ``model``) cannot be cached, or None."""
    for blocked, why in ((full_batch, "optimizer=lbfgs minimises the whole model full-batch"),
                         (augment, "augmentation changes the images every epoch"),
                         (hp.monitor, "monitor=true probes the whole model"),
                         (custom_loop, "a multi-worker run shards its input by file")):
        if blocked:
            return why
    cut, why = find_cut(model)
    return None if cut is not None else why


def check_cache_features(hp, stage, model, *, augment: bool, custom_loop: bool, full_batch: bool = False) -> None:
    """``cache_features=true`` that ``stage`` cannot hold: one line naming what prevents it (before a run writes)."""
    if hp.cache_features == "true":
        why = refusal(hp, stage, model, augment=augment, custom_loop=custom_loop, full_batch=full_batch)
        if why:
            raise ConfigError(f"cache_features=true, stage {stage.name!r}: {why}; set cache_features=auto or false")


def cached_features(plan, model, data, *, augment: bool, custom_loop: bool):
    """``(head, data)`` with the stage's train and validation inputs replaced by the frozen bottom's outputs,
    or None where the stage does not cache (see the module docstring)."""
    import keras

    mode = plan.hp.cache_features
    if mode == "false" or not plan.stage.freeze:
        return None
    check_cache_features(plan.hp, plan.stage, model, augment=plan.augment and augment, custom_loop=custom_loop,
                         full_batch=plan.full_batch)
    why = refusal(plan.hp, plan.stage, model, augment=plan.augment and augment, custom_loop=custom_loop,
                  full_batch=plan.full_batch)
    if why:
        log.info("%s: frozen features not cached (%s)", plan.title, why)
        return None
    strict = mode == "true"
    cut, _ = find_cut(model)
    examples = sum(length(split) for name, split in data.items() if name in ("train", "validation"))
    size = examples * cut.width * 4
    if not strict and size > AUTO_BUDGET_BYTES:
        log.info("%s: frozen features not cached (%.1f GiB for %d examples; cache_features=true keeps them anyway)",
                 plan.title, size / 2 ** 30, examples)
        return None
    head = keras.Model(cut.tensor, model.outputs, name=f"{model.name}_head")
    bottom = keras.Model(model.inputs, cut.tensor, name=f"{model.name}_frozen")
    if not bottom.weights and not strict:  # only reshaping and standardising before the live layers: no gain
        return None
    log.info("%s: computing the frozen layers' outputs once (%d examples x %d values, the input of layer %r)",
             plan.title, examples, cut.width, cut.first_live_layer.name)
    out = dict(data)
    for name in ("train", "validation"):
        if name in data:
            x, y = data[name]
            out[name] = (features_of(bottom, x, plan.recipe.preprocess, plan.batch_size), y)
    _WHOLE[head] = model
    return head, out


def features_of(bottom, x, preprocess, batch_size: int) -> np.ndarray:
    """The frozen bottom's outputs for every example of ``x`` (arrays or files), in order."""
    from kerasapps.data.pipelines import evaluation_dataset

    n = length(x)
    dataset = evaluation_dataset((x, np.zeros(n, np.int8)), batch_size=max(batch_size, 256), preprocess=preprocess,
                                 cache=False)
    if n == 0:
        return np.zeros((0, *bottom.output.shape[1:]), np.float32)
    return np.asarray(bottom.predict(dataset.map(lambda batch, _: batch), verbose=0))
