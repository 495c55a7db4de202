"""Learning-rate schedules set by a callback, per epoch (step and exponential decay) or per
iteration (1/t decay), composing `keras.callbacks.LearningRateScheduler` and
`keras.optimizers.schedules`. Each writes the rate it used into the epoch logs as `lr`.

The schedules evaluated inside the optimizer at every step (cosine, constant, warm-up) are
built by :func:`kerasapps.training.optimizers.learning_rate`.
"""

import inspect

import keras

from kerasapps.training.callbacks import ConfigMixin, positive_int, positive_number
from kerasapps.training.optimizers import current_lr

__all__ = ["StepDecay", "TimeDecay", "ExponentialDecay", "lr_schedule_callback", "LR_SCHEDULES", "schedule_callback"]


class _EpochSchedule(ConfigMixin, keras.callbacks.LearningRateScheduler):
    """An epoch-indexed schedule on top of keras.callbacks.LearningRateScheduler.

    The rate depends only on the epoch index, so `fit(initial_epoch=k)`
    resumes the schedule exactly. Writes `lr` (the rate used during the
    epoch) into the epoch logs, for History, CSVLogger and TensorBoard.
    """

    def __init__(self):
        super().__init__(schedule=self.lr_at_epoch, verbose=0)

    def lr_at_epoch(self, epoch, lr=None):
        """The learning rate for 0-based `epoch` (`lr`, the current one, is unused)."""
        return float(keras.ops.convert_to_numpy(self._keras_schedule(epoch)))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = current_lr(self.model.optimizer)


class StepDecay(_EpochSchedule):
    """lr = initial_lr * drop ** floor(epoch / every_epochs), epochs from 0.

    The classic "divide by 10 every 30 epochs" of AlexNet/ResNet training
    (Krizhevsky et al. 2012; He et al. 2016). Set at the start of each epoch;
    composes `keras.optimizers.schedules.ExponentialDecay(staircase=True)`
    evaluated at the epoch index.
    """

    def __init__(self, initial_lr, drop, every_epochs):
        self.initial_lr = positive_number("initial_lr", initial_lr, "StepDecay")
        self.drop = positive_number("drop", drop, "StepDecay")
        self.every_epochs = positive_int("every_epochs", every_epochs, "StepDecay")
        self._keras_schedule = keras.optimizers.schedules.ExponentialDecay(
            self.initial_lr, self.every_epochs, self.drop, staircase=True
        )
        super().__init__()


class ExponentialDecay(_EpochSchedule):
    """lr = initial_lr * rate ** (epoch / every_epochs), continuous, epochs from 0.

    Set at the start of each epoch; composes
    `keras.optimizers.schedules.ExponentialDecay(staircase=False)` evaluated
    at the epoch index.
    """

    def __init__(self, initial_lr, rate, every_epochs=1):
        self.initial_lr = positive_number("initial_lr", initial_lr, "ExponentialDecay")
        self.rate = positive_number("rate", rate, "ExponentialDecay")
        self.every_epochs = positive_int("every_epochs", every_epochs, "ExponentialDecay")
        self._keras_schedule = keras.optimizers.schedules.ExponentialDecay(
            self.initial_lr, self.every_epochs, self.rate, staircase=False
        )
        super().__init__()


class TimeDecay(ConfigMixin, keras.callbacks.Callback):
    """lr = initial_lr / (1 + decay * iterations), updated before every batch.

    The `decay` argument of the Keras 1/2 optimizers: `iterations` is
    `optimizer.iterations` before the batch's update, so the first batch uses
    `initial_lr`. Because it is derived from `optimizer.iterations`, which is
    saved and restored with the optimizer, a resumed run continues the exact
    sequence. Composes `keras.optimizers.schedules.InverseTimeDecay` with
    `decay_steps=1`. With `steps_per_execution > 1` the rate is set once per
    execution. The epoch logs get `lr`: the rate of the epoch's last batch.
    """

    def __init__(self, initial_lr, decay):
        self.initial_lr = positive_number("initial_lr", initial_lr, "TimeDecay")
        if not isinstance(decay, (int, float)) or isinstance(decay, bool) or decay < 0:
            raise ValueError(f"TimeDecay: decay must be a number >= 0; received decay={decay!r}")
        self.decay = float(decay)
        self._keras_schedule = keras.optimizers.schedules.InverseTimeDecay(
            self.initial_lr, decay_steps=1, decay_rate=self.decay
        )
        super().__init__()

    def lr_at_step(self, iterations):
        return float(keras.ops.convert_to_numpy(self._keras_schedule(iterations)))

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        optimizer.learning_rate = self.lr_at_step(step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = current_lr(self.model.optimizer)


LR_SCHEDULES = {"step": StepDecay, "time": TimeDecay, "exponential": ExponentialDecay}


def lr_schedule_callback(name, **params):
    """Build a schedule callback by name: "step", "time" or "exponential".

    >>> lr_schedule_callback("step", initial_lr=0.1, drop=0.1, every_epochs=30)
    """
    if name not in LR_SCHEDULES:
        raise ValueError(
            f"Unknown learning-rate schedule {name!r}; valid names: {', '.join(sorted(LR_SCHEDULES))}"
        )
    cls = LR_SCHEDULES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"Schedule {name!r} ({cls.__name__}) received unknown parameter(s) "
            f"{', '.join(unknown)}; it takes: {', '.join(accepted)}"
        )
    try:
        return cls(**params)
    except TypeError as e:  # missing required argument
        raise ValueError(f"Schedule {name!r} ({cls.__name__}) takes {', '.join(accepted)}: {e}") from e


def schedule_callback(hp):
    """The epoch/iteration learning-rate callback for ``hp.lr_schedule`` step, time or exponential, or None."""
    if hp.lr_schedule == "step":
        return StepDecay(hp.learning_rate, hp.lr_drop, hp.lr_every_epochs)
    if hp.lr_schedule == "time":
        return TimeDecay(hp.learning_rate, hp.lr_decay)
    if hp.lr_schedule == "exponential":
        return ExponentialDecay(hp.learning_rate, hp.lr_rate, hp.lr_every_epochs)
    return None
