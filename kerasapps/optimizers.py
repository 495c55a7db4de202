"""Optimizers and learning-rate schedules built by name from hyper-parameters."""

from __future__ import annotations

from kerasapps.config import HParams
from kerasapps.errors import ConfigError


def learning_rate(hp: HParams, total_steps: int):
    """A float or a Keras schedule spanning ``total_steps`` optimizer steps of one stage."""
    import keras

    if hp.lr_schedule in ("constant", "step", "time", "exponential"):
        return hp.learning_rate  # the epoch schedules are callbacks (kerasapps.practice)
    if hp.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(hp.learning_rate, decay_steps=max(1, total_steps))
    raise ConfigError(f"'lr_schedule' must be one of constant, cosine, step, time, exponential; "
                      f"got {hp.lr_schedule!r}")


def build_optimizer(hp: HParams, total_steps: int):
    """The optimizer named by ``hp.optimizer`` with its parameters and gradient clipping."""
    import keras

    common = {"learning_rate": learning_rate(hp, total_steps)}
    if hp.clipnorm is not None:
        common["clipnorm"] = hp.clipnorm
    if hp.clipvalue is not None:
        common["clipvalue"] = hp.clipvalue
    name = hp.optimizer
    if name == "lbfgs":  # kerasapps.training routes the stage to kerasapps.lbfgs; nothing else can step it
        raise ConfigError("optimizer=lbfgs trains full-batch and only `kerasapps train` drives it; "
                          "choose sgd, adagrad, rmsprop, adam or adadelta here")
    if name == "sgd":
        return keras.optimizers.SGD(momentum=hp.momentum, nesterov=hp.nesterov, **common)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(momentum=hp.momentum, **common)
    if name == "adagrad":
        return keras.optimizers.Adagrad(**common)
    if name == "adam":
        return keras.optimizers.Adam(**common)
    if name == "adadelta":
        return keras.optimizers.Adadelta(**common)
    raise ConfigError(f"'optimizer' must be one of sgd, adagrad, rmsprop, adam, adadelta; got {name!r}")
