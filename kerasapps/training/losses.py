"""The ``loss`` key every recipe has: classification losses by name, checked against the model's output.

``loss=auto`` keeps the recipe's own loss. Any other choice is checked against what the
model ends in (softmax over K classes, sigmoid, or logits when the final layer has no
activation) and the recipe's targets (integer class ids for classifiers), and built with
``from_logits=True`` for a logits head, so Keras uses its log-sum-exp-stable form.
Class-id targets are turned into one-hot vectors for the losses that compare vectors
(categorical cross-entropy, hinge, squared hinge, mean squared/absolute error). A loss
that cannot fit is a :class:`ConfigError` that says why and what fits instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from kerasapps.core.errors import ConfigError

CLASS_ID_LOSSES = ("sparse_categorical_crossentropy", "binary_crossentropy")
ONE_HOT_LOSSES = ("categorical_crossentropy", "hinge", "squared_hinge", "mean_squared_error", "mean_absolute_error")


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


def recipe_loss(recipe):
    """The recipe's own loss as Keras takes it: a name or loss object as declared, a config dict deserialised."""
    import keras

    return keras.losses.get(recipe.loss) if isinstance(recipe.loss, dict) else recipe.loss


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
    import keras

    name = hp.get("loss", "auto")
    if name == "auto":
        return LossChoice(recipe_loss(recipe), str(recipe.loss))
    if recipe.loss not in CLASS_ID_LOSSES:
        raise ConfigError(f"recipe {recipe.name!r} trains with its own loss ({recipe.loss}); loss={name} "
                          "only applies to classifiers with class-id targets")
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
    if name in ("hinge", "squared_hinge"):
        if activation == "softmax":
            raise ConfigError(f"loss={name} wants unbounded scores (a margin of 1 around 0); {where}: build the "
                              "head with classifier_activation=None (logits)")
        cls = keras.losses.Hinge if name == "hinge" else keras.losses.SquaredHinge
        return LossChoice(cls(), name, None if binary else one_hot(units))  # 0/1 targets become -1/+1 inside Keras
    if name == "mean_absolute_percentage_error":
        raise ConfigError(f"loss={name} divides by the target, and class targets are 0 for every class but one; "
                          "it is a regression loss")
    if name == "mean_squared_logarithmic_error" and logits:
        raise ConfigError(f"loss={name} takes log(1 + prediction), undefined for logits below -1; {where}")
    if name == "mean_squared_logarithmic_error":
        return LossChoice(keras.losses.MeanSquaredLogarithmicError(), name, None if binary else one_hot(units))
    cls = {"mean_squared_error": keras.losses.MeanSquaredError,
           "mean_absolute_error": keras.losses.MeanAbsoluteError}[name]
    if logits:
        raise ConfigError(f"loss={name} compares probabilities with one-hot targets; {where}: use a softmax head")
    return LossChoice(cls(), name, None if binary else one_hot(units))
