"""Optimizers and learning-rate schedules built by name from hyper-parameters.

Two kinds of optimizer (:mod:`kerasapps.core.schema`): the mini-batch ones, which ``fit`` steps
(``MINI_BATCH``), and full-batch L-BFGS (``FULL_BATCH``), which the stage runner hands to
:mod:`kerasapps.training.lbfgs`. Two kinds of schedule: those evaluated per optimizer step
(``STEP_SCHEDULES``: a Keras schedule inside the optimizer, so a resumed run continues it exactly)
and the callbacks of :mod:`kerasapps.training.schedules` (``EPOCH_SCHEDULES``). A linear warm-up
(``warmup_epochs``) goes in front of the step schedules.
"""

from __future__ import annotations

import logging

from kerasapps.core.errors import ConfigError
from kerasapps.core.hparams import HParams
from kerasapps.core.schema import (
    ADAMW_WEIGHT_DECAY,
    EPOCH_SCHEDULES,
    FULL_BATCH,
    LR_SCHEDULES,
    MINI_BATCH,
    OPTIMIZERS,
    STEP_SCHEDULES,
)

log = logging.getLogger("kerasapps")
WARMUP_START = 0.1  # warm-up starts at learning_rate * WARMUP_START (He et al. 2015: 0.01 before 0.1)


def check_schedule(hp: HParams, stage: str | None = None) -> None:
    """Refuse a warm-up the schedule cannot take (checked before a run writes anything). A warm-up longer
    than the stage is not refused: it is cut to the stage, with a warning (``learning_rate``)."""
    if not hp.warmup_epochs:
        return
    where = f" (stage {stage})" if stage else ""
    if hp.lr_schedule not in STEP_SCHEDULES:
        raise ConfigError(f"warmup_epochs works with lr_schedule {' or '.join(STEP_SCHEDULES)}, not "
                          f"{hp.lr_schedule!r}{where}: that schedule is an epoch callback that sets the rate itself")


def learning_rate(hp: HParams, steps_per_epoch: int, epochs: int | None = None):
    """A float or a Keras schedule for one stage of ``epochs`` (default ``hp.epochs``) epochs.

    With ``warmup_epochs`` the rate rises linearly from ``learning_rate * 0.1`` to
    ``learning_rate`` over that many epochs (Goyal et al. 2017; He et al. 2015 warm up
    ResNet-110 on CIFAR at 0.01), then follows ``lr_schedule`` (cosine, or constant)
    over the remaining steps: ``keras.optimizers.schedules.CosineDecay``'s own warm-up.
    """
    import keras

    check_schedule(hp)
    epochs = hp.epochs if epochs is None else epochs
    if not isinstance(epochs, int):  # epochs=auto: the stage decides (kerasapps.training.stage.epochs_for)
        raise ValueError(f"learning_rate needs the stage's epochs; hp.epochs is {epochs!r}")
    total = max(1, epochs * steps_per_epoch)
    warmup = min(int(round(hp.warmup_epochs * steps_per_epoch)), total)
    if warmup and warmup == total:  # e.g. --epochs 1 on a recipe that warms up for 2: the rate only rises
        log.warning("warmup_epochs (%g) covers the whole %d-step stage: the rate rises to learning_rate and "
                    "the %s schedule never starts", hp.warmup_epochs, total, hp.lr_schedule)
    if hp.lr_schedule in EPOCH_SCHEDULES or (hp.lr_schedule == "constant" and warmup == 0):
        return hp.learning_rate  # the epoch schedules are callbacks (kerasapps.training.schedules)
    if hp.lr_schedule not in STEP_SCHEDULES:
        raise ConfigError(f"'lr_schedule' must be one of {', '.join(LR_SCHEDULES)}; got {hp.lr_schedule!r}")
    # constant after the warm-up: a cosine whose floor (alpha) is the rate itself
    alpha = 1.0 if hp.lr_schedule == "constant" else 0.0
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(hp.learning_rate, decay_steps=total, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(hp.learning_rate * WARMUP_START, max(1, total - warmup), alpha=alpha,
                                                  warmup_target=hp.learning_rate, warmup_steps=warmup)


def check_mini_batch(hp: HParams) -> None:
    """Refuse a full-batch optimizer where ``fit`` steps the model (tune, the diagnostics)."""
    if hp.optimizer in FULL_BATCH:  # the stage runner hands such a stage to kerasapps.training.lbfgs in train only
        raise ConfigError(f"optimizer={hp.optimizer} trains full-batch and only `kerasapps train` drives it; "
                          f"choose {', '.join(MINI_BATCH)} here")


def weight_decay(hp: HParams) -> float:
    """The decoupled weight decay in effect: ``weight_decay``, or (null) adamw's default and 0 elsewhere."""
    if hp.get("weight_decay") is not None:
        return hp.weight_decay
    return ADAMW_WEIGHT_DECAY if hp.optimizer == "adamw" else 0.0


def build_optimizer(hp: HParams, steps_per_epoch: int, epochs: int | None = None):
    """The optimizer named by ``hp.optimizer`` with its schedule, gradient clipping, decoupled weight decay,
    weight averaging (``ema``) and gradient accumulation, all Keras's own.

    Keras evaluates a schedule at the number of batches the optimizer has been called with, also while it
    accumulates gradients, so the schedule spans the stage's ``epochs x steps_per_epoch`` batches either way.
    Which variables decay is set once the model is known (:func:`decay_kernels_only`).
    """
    import keras

    check_mini_batch(hp)
    name = hp.optimizer
    common = {"learning_rate": learning_rate(hp, steps_per_epoch, epochs)}
    if hp.clipnorm is not None:
        common["clipnorm"] = hp.clipnorm
    if hp.clipvalue is not None:
        common["clipvalue"] = hp.clipvalue
    decay = weight_decay(hp)
    if decay:
        common["weight_decay"] = decay
    if hp.get("ema") is not None:
        common.update(use_ema=True, ema_momentum=hp.ema)
    if hp.get("gradient_accumulation", 1) > 1:
        common["gradient_accumulation_steps"] = hp.gradient_accumulation
    if name == "sgd":
        return keras.optimizers.SGD(momentum=hp.momentum, nesterov=hp.nesterov, **common)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(momentum=hp.momentum, **common)
    if name == "adagrad":
        return keras.optimizers.Adagrad(**common)
    if name == "adam":
        return keras.optimizers.Adam(**common)
    if name == "adamw":
        return keras.optimizers.AdamW(**{"weight_decay": 0.0, **common})
    if name == "adadelta":
        return keras.optimizers.Adadelta(**common)
    raise ConfigError(f"'optimizer' must be one of {', '.join(OPTIMIZERS)}; got {name!r}")


def decay_kernels_only(model) -> None:
    """Keep the optimizer's weight decay off every variable of rank 0 or 1 (biases, batch and layer
    normalisation's scales and offsets), as timm and torchvision do. Keras does not save the exclusion with the
    optimizer, so it is set again whenever a model is compiled or loaded to train on."""
    from kerasapps.core import compat

    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "weight_decay", None):
        return
    compat.exclude_from_weight_decay(optimizer, [v for v in model.trainable_variables if len(v.shape) <= 1])


def current_lr(optimizer) -> float:
    """The learning rate the optimizer uses now (a schedule evaluated at its current iteration)."""
    import keras

    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
