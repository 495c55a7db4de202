"""The ``loss`` key every recipe has: classification losses by name, checked against the model's output.

``loss=auto`` keeps the recipe's own loss. Any other choice is checked against what the
model ends in (softmax over K classes, sigmoid, or logits when the final layer has no
activation) and the recipe's targets (integer class ids for classifiers), and built with
``from_logits=True`` for a logits head, so Keras uses its log-sum-exp-stable form.
Class-id targets are turned into one-hot vectors for the losses that compare vectors
(categorical cross-entropy, hinge, squared hinge, mean squared/absolute error). The hinge
losses want raw scores: a softmax or sigmoid head's are recovered from its output
(:class:`HingeOnScores`), so they work on every classifier. A loss that cannot fit is a
:class:`ConfigError` that says why and what fits instead.

``label_smoothing`` applies to every cross-entropy (``auto``: 0.1 there, 0 with any other loss, so a recipe can
smooth by default and its users still compare hinge or squared-error losses against it): class-id targets stay
ids (a language model's [N, T] targets over its vocabulary would take T x V times the memory as one-hot vectors)
and :class:`SmoothedSparseCrossentropy` encodes each batch; MixUp and CutMix mix labels, so with them an image
classifier's targets become one-hot vectors (:func:`mixes_labels`) and Keras's ``CategoricalCrossentropy`` scores the
mixtures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from kerasapps.core.errors import ConfigError

CLASS_ID_LOSSES = ("sparse_categorical_crossentropy", "binary_crossentropy")
REGRESSION_LOSSES = ("mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
                     "mean_squared_logarithmic_error")
ONE_HOT_LOSSES = ("categorical_crossentropy", "hinge", "squared_hinge", "mean_squared_error", "mean_absolute_error")


@keras.saving.register_keras_serializable(package="kerasapps")
class HingeOnScores(keras.losses.Loss):
    """Hinge (or squared hinge) on the raw scores behind a softmax or sigmoid output.

    A softmax output p = softmax(z) gives its logits back up to a constant, log p - mean(log p)
    = z - mean(z) (the centred scores); a sigmoid output gives z = log p - log(1 - p). Keras's
    hinge then compares those scores with the 0/1 targets (as -1/+1), exactly as it would a logits
    head's outputs, so the model and its export keep their probabilities.
    """

    def __init__(self, squared: bool = False, head: str = "softmax", name=None, **kwargs):
        if head not in ("softmax", "sigmoid"):
            raise ValueError(f"HingeOnScores: head must be softmax or sigmoid; received head={head!r}")
        super().__init__(name=name or ("squared_hinge" if squared else "hinge"), **kwargs)
        self.squared, self.head = squared, head

    def call(self, y_true, y_pred):
        ops = keras.ops
        p = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0 - 1e-7)
        if self.head == "softmax":
            scores = ops.log(p) - ops.mean(ops.log(p), axis=-1, keepdims=True)
        else:
            scores = ops.log(p) - ops.log(1.0 - p)
        y_true = ops.cast(y_true, "float32")
        if len(y_true.shape) == len(scores.shape) - 1:  # [N] targets for [N, 1] scores, as Keras's wrappers do
            y_true = ops.expand_dims(y_true, -1)
        loss = keras.losses.squared_hinge if self.squared else keras.losses.hinge
        return loss(y_true, scores)

    def get_config(self):
        return {**super().get_config(), "squared": self.squared, "head": self.head}


@keras.saving.register_keras_serializable(package="kerasapps")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of class-id targets against label-smoothed one-hot vectors (Szegedy et al. 2016, sec. 7):
    the target of class k is (1 - e) at k plus e / K everywhere, for K outputs.

    Keras's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``, and its ``CategoricalCrossentropy``
    wants one-hot targets; here the ids are encoded per batch, any shape ([N] for a classifier, [N, T] for a
    sequence), and ``ignore_class`` positions (padding) count for nothing, as in Keras's sparse loss.
    """

    def __init__(self, label_smoothing=0.0, from_logits=False, ignore_class=None, name=None, **kwargs):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"SmoothedSparseCrossentropy: label_smoothing must be in [0, 1); received "
                             f"label_smoothing={label_smoothing!r}")
        super().__init__(name=name or "sparse_categorical_crossentropy", **kwargs)
        self.label_smoothing, self.from_logits, self.ignore_class = float(label_smoothing), from_logits, ignore_class

    def call(self, y_true, y_pred):
        from kerasapps.core import compat

        ops = keras.ops
        y_true = ops.cast(y_true, "int32")
        if len(y_true.shape) == len(y_pred.shape):  # [N, 1] ids for [N, K] outputs
            y_true = ops.squeeze(y_true, -1)
        valid = None
        if self.ignore_class is not None:
            valid = ops.not_equal(y_true, self.ignore_class)
            y_true = ops.where(valid, y_true, 0)
        target = ops.one_hot(y_true, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        loss = keras.losses.categorical_crossentropy(target, y_pred, from_logits=self.from_logits,
                                                     label_smoothing=self.label_smoothing)
        if valid is not None:
            loss = ops.where(valid, loss, ops.zeros_like(loss))
            compat.set_keras_mask(loss, valid)  # the mean counts the valid positions only
        return loss

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "from_logits": self.from_logits,
                "ignore_class": self.ignore_class}


AUTO_LABEL_SMOOTHING = 0.1  # label_smoothing=auto on a cross-entropy (Szegedy et al. 2016's 0.1)
CROSS_ENTROPIES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy")


def smoothing_for(hp, cross_entropy: bool) -> float:
    """``label_smoothing`` for a loss: its number, or for ``auto`` 0.1 on a cross-entropy and 0 on any other."""
    value = hp.get("label_smoothing", 0.0)
    if value == "auto":
        return AUTO_LABEL_SMOOTHING if cross_entropy else 0.0
    return value


def mixes_labels(hp) -> bool:
    """Whether MixUp or CutMix mixes the training batches (and so their labels) under ``hp``."""
    return bool(hp.get("mixup", 0.0) or hp.get("cutmix", 0.0))


@dataclasses.dataclass(frozen=True)
class LossChoice:
    """The loss to compile with, and how to turn the recipe's targets into what it compares."""

    loss: Any
    name: str
    targets: Callable[[np.ndarray], np.ndarray] | None = None

    def apply(self, data: dict) -> dict:
        """Map every ``(x, y)`` split of ``data`` through :attr:`targets`."""
        if self.targets is None:
            return data
        return {name: (x, self.targets(y)) for name, (x, y) in data.items()}


def with_auxiliary_targets(data: dict, outputs: int) -> dict:
    """Every split's targets repeated for each output of a model with auxiliary heads (one output: unchanged)."""
    if outputs == 1:
        return data
    return {name: (x, (y,) * outputs) for name, (x, y) in data.items()}


def recipe_loss(recipe, hp=None):
    """The recipe's own loss (under ``hp``) as Keras takes it: a name or loss object as declared, a config dict
    deserialised."""
    own = recipe.loss_for(hp) if hp is not None else recipe.loss
    return keras.losses.get(own) if isinstance(own, dict) else own


def head_of(model) -> tuple[int, str]:
    """(output units, activation name: softmax, sigmoid, linear or another) of a single-output model."""
    if len(model.outputs) != 1:
        raise ConfigError(f"loss= needs a single-output model; {model.name} has {len(model.outputs)} outputs")
    return layer_head(model.layers[-1])


def main_head(model) -> tuple[int | None, str]:
    """(units, activation) of a model's answer: its one output, or the layer named ``predictions`` among several
    (GoogLeNet's main head beside its auxiliary ones); (None, "linear") where there is no such layer."""
    if len(model.outputs) == 1:
        return layer_head(model.layers[-1])
    if "predictions" not in [layer.name for layer in model.layers]:
        return None, "linear"
    return layer_head(model.get_layer("predictions"))


def layer_head(layer) -> tuple[int, str]:
    """(output units, activation name) of a model's last layer."""
    activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if type(layer).__name__ == "Softmax":
        activation = "softmax"
    return int(layer.output.shape[-1]), activation


def one_hot(classes: int) -> Callable[[np.ndarray], np.ndarray]:
    def convert(y):
        y = np.asarray(y)
        if y.ndim > 1 and y.shape[-1] == classes:
            return y.astype("float32")
        return np.eye(classes, dtype="float32")[y.reshape(-1).astype("int64")]
    return convert


def _sparse_options(loss) -> dict:
    """(from_logits, ignore_class) of a recipe's own sparse cross-entropy: a name, a function or a Loss object."""
    config = loss.get_config() if isinstance(loss, keras.losses.Loss) else {}
    return {"from_logits": bool(config.get("from_logits", False)), "ignore_class": config.get("ignore_class")}


def _own_loss(recipe, hp, model, own) -> LossChoice:
    """``loss=auto``: the recipe's own loss, label-smoothed or scoring mixed labels where ``hp`` asks."""
    sparse = own == "sparse_categorical_crossentropy" or (
        isinstance(own, dict) and own.get("class_name") == "SparseCategoricalCrossentropy")
    smoothing, mixed = smoothing_for(hp, sparse or own == "binary_crossentropy"), mixes_labels(hp)
    declared = recipe_loss(recipe, hp)
    if not smoothing and not mixed:
        return LossChoice(declared, str(own))
    if own == "binary_crossentropy" and not mixed:
        return LossChoice(keras.losses.BinaryCrossentropy(label_smoothing=smoothing), str(own))
    if not sparse:
        what = "label_smoothing" if not mixed else "mixup/cutmix"
        raise ConfigError(f"{what} applies to classifiers trained with cross-entropy; recipe {recipe.name!r} trains "
                          f"with {own if isinstance(own, str) else own.get('class_name')}")
    options = _sparse_options(declared)
    if not mixed:
        return LossChoice(SmoothedSparseCrossentropy(smoothing, **options), "sparse_categorical_crossentropy")
    units = model.outputs[0].shape[-1]  # mixed labels are distributions over the classes: one-hot targets
    return LossChoice(keras.losses.CategoricalCrossentropy(label_smoothing=smoothing,
                                                           from_logits=options["from_logits"]),
                      "categorical_crossentropy", one_hot(units))


def choose_loss(recipe, hp, model) -> LossChoice:
    """The loss for ``hp.loss`` on ``model`` (see the module docstring)."""
    name = hp.get("loss", "auto")
    own = recipe.loss_for(hp)
    if name == "auto":
        return _own_loss(recipe, hp, model, own)
    smoothing = smoothing_for(hp, name in CROSS_ENTROPIES and own not in REGRESSION_LOSSES)
    if own in REGRESSION_LOSSES:  # a regression recipe: any regression loss compares its numbers
        if name not in REGRESSION_LOSSES:
            raise ConfigError(f"recipe {recipe.name!r} is a regression (its loss is {own}); loss={name} "
                              f"is for classifiers: choose {', '.join(REGRESSION_LOSSES)}")
        if smoothing:
            raise ConfigError(f"label_smoothing={smoothing} is for classifiers; recipe {recipe.name!r} is a "
                              "regression")
        return LossChoice(keras.losses.get(name), name)
    if own not in CLASS_ID_LOSSES:
        raise ConfigError(f"recipe {recipe.name!r} trains with its own loss ({own}); loss={name} "
                          "only applies to classifiers with class-id targets and to regressions")
    if (smoothing or mixes_labels(hp)) and name not in CROSS_ENTROPIES:
        raise ConfigError(f"label_smoothing, mixup and cutmix change cross-entropy targets; loss={name} is not a "
                          "cross-entropy (drop them, or choose a cross-entropy loss)")
    if name == "sparse_categorical_crossentropy" and mixes_labels(hp):
        name = "categorical_crossentropy"  # mixed labels are distributions, not ids
    units, activation = head_of(model)
    logits = activation == "linear"
    if activation not in ("softmax", "sigmoid", "linear"):
        raise ConfigError(f"loss={name}: the model ends in {activation!r}, not softmax, sigmoid or logits")
    binary = units == 1
    where = f"{model.name} ends in {'logits' if logits else activation} over {units} unit(s)"
    if name == "sparse_categorical_crossentropy":
        if binary:
            raise ConfigError(f"loss={name} needs one output per class; {where}: use binary_crossentropy")
        if smoothing:
            return LossChoice(SmoothedSparseCrossentropy(smoothing, from_logits=logits), name)
        return LossChoice(keras.losses.SparseCategoricalCrossentropy(from_logits=logits), name)
    if name == "categorical_crossentropy":
        if binary:
            raise ConfigError(f"loss={name} needs one output per class; {where}: use binary_crossentropy")
        return LossChoice(keras.losses.CategoricalCrossentropy(from_logits=logits, label_smoothing=smoothing), name,
                          one_hot(units))
    if name == "binary_crossentropy":
        if activation == "softmax":
            raise ConfigError(f"loss={name} scores each output on its own; {where}, whose outputs compete: "
                              "use categorical_crossentropy or sparse_categorical_crossentropy")
        return LossChoice(keras.losses.BinaryCrossentropy(from_logits=logits, label_smoothing=smoothing), name,
                          None if binary else one_hot(units))
    if name in ("hinge", "squared_hinge"):  # 0/1 targets become -1/+1 inside Keras
        if activation in ("softmax", "sigmoid"):  # the scores behind the probabilities
            return LossChoice(HingeOnScores(squared=name == "squared_hinge", head=activation), name,
                              None if binary else one_hot(units))
        cls = keras.losses.Hinge if name == "hinge" else keras.losses.SquaredHinge
        return LossChoice(cls(), name, None if binary else one_hot(units))
    if name == "mean_absolute_percentage_error":
        raise ConfigError(f"loss={name} divides by the target, and class targets are 0 for every class but one; "
                          "it is a regression loss (it works on regression recipes)")
    if name == "mean_squared_logarithmic_error" and logits:
        raise ConfigError(f"loss={name} takes log(1 + prediction), undefined for logits below -1; {where}")
    if name == "mean_squared_logarithmic_error":
        return LossChoice(keras.losses.MeanSquaredLogarithmicError(), name, None if binary else one_hot(units))
    cls = {"mean_squared_error": keras.losses.MeanSquaredError,
           "mean_absolute_error": keras.losses.MeanAbsoluteError}[name]
    if logits:
        raise ConfigError(f"loss={name} compares probabilities with one-hot targets; {where}: use a softmax head")
    return LossChoice(cls(), name, None if binary else one_hot(units))


def class_ids(labels, where: str = "") -> np.ndarray:
    """The class id of every example of ``labels`` ([N] ids, or [N, K] one-hot), or a ConfigError: class weights
    need one class per example."""
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] > 1 and np.issubdtype(y.dtype, np.floating):
        y = y.argmax(axis=1)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"class_weight needs one class id per example{where}; the targets are "
                          f"{y.dtype} of shape {list(y.shape)}")
    return y.astype(np.int64)


def example_weights(hp, labels, heads: int = 1):
    """``class_weight=balanced``: each example's loss weight, n / (K x the count of its class) over the K classes
    present in ``labels`` (the stage's training split), so every class weighs as much in total (scikit-learn's
    'balanced'); repeated for auxiliary heads. None for ``class_weight=none``."""
    if hp.get("class_weight", "none") != "balanced":
        return None
    weights = _balanced(labels).astype(np.float32)
    return weights if heads == 1 else (weights,) * heads


def _balanced(labels) -> np.ndarray:
    y = class_ids(labels)
    counts = np.bincount(y)
    return np.where(counts > 0, len(y) / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0)[y]


def sampling_probabilities(hp, labels):
    """``class_weight=sampler``: each training example's probability of being drawn, 1 / (K x the count of its
    class), so that every class is drawn equally often in expectation; None for the other values."""
    if hp.get("class_weight", "none") != "sampler":
        return None
    weights = _balanced(labels)
    return weights / weights.sum()
