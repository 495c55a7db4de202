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
    units = model.outputs[0].shape[-1]
    layer = model.layers[-1]
    activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if type(layer).__name__ in ("Softmax",):
        activation = "softmax"
    return units, activation


def one_hot(classes: int) -> Callable[[np.ndarray], np.ndarray]:
    def convert(y):
        y = np.asarray(y)
        if y.ndim > 1 and y.shape[-1] == classes:
            return y.astype("float32")
        return np.eye(classes, dtype="float32")[y.reshape(-1).astype("int64")]
    return convert


def choose_loss(recipe, hp, model) -> LossChoice:
    """The loss for ``hp.loss`` on ``model`` (see the module docstring)."""
    name = hp.get("loss", "auto")
    own = recipe.loss_for(hp)
    if name == "auto":
        return LossChoice(recipe_loss(recipe, hp), str(own))
    if own in REGRESSION_LOSSES:  # a regression recipe: any regression loss compares its numbers
        if name not in REGRESSION_LOSSES:
            raise ConfigError(f"recipe {recipe.name!r} is a regression (its loss is {own}); loss={name} "
                              f"is for classifiers: choose {', '.join(REGRESSION_LOSSES)}")
        return LossChoice(keras.losses.get(name), name)
    if own not in CLASS_ID_LOSSES:
        raise ConfigError(f"recipe {recipe.name!r} trains with its own loss ({own}); loss={name} "
                          "only applies to classifiers with class-id targets and to regressions")
    units, activation = head_of(model)
    logits = activation == "linear"
    if activation not in ("softmax", "sigmoid", "linear"):
        raise ConfigError(f"loss={name}: the model ends in {activation!r}, not softmax, sigmoid or logits")
    binary = units == 1
    where = f"{model.name} ends in {'logits' if logits else activation} over {units} unit(s)"
    if name == "sparse_categorical_crossentropy":
        if binary:
            raise ConfigError(f"loss={name} needs one output per class; {where}: use binary_crossentropy")
        return LossChoice(keras.losses.SparseCategoricalCrossentropy(from_logits=logits), name)
    if name == "categorical_crossentropy":
        if binary:
            raise ConfigError(f"loss={name} needs one output per class; {where}: use binary_crossentropy")
        return LossChoice(keras.losses.CategoricalCrossentropy(from_logits=logits), name, one_hot(units))
    if name == "binary_crossentropy":
        if activation == "softmax":
            raise ConfigError(f"loss={name} scores each output on its own; {where}, whose outputs compete: "
                              "use categorical_crossentropy or sparse_categorical_crossentropy")
        return LossChoice(keras.losses.BinaryCrossentropy(from_logits=logits), name,
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
