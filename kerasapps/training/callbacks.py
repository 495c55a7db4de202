"""Training-practice callbacks: early stopping, max-norm weight constraints and a NaN guard
(the learning-rate schedule callbacks are in :mod:`kerasapps.training.schedules`).

Each callback composes Keras's own where one exists
(`keras.callbacks.LearningRateScheduler`, `keras.callbacks.EarlyStopping`,
`keras.callbacks.TerminateOnNaN`, `keras.constraints.MaxNorm`) and adds what a reproducible run needs:
`get_config()` returns the JSON-able constructor arguments so the run
configuration can record the callback, `from_config()` rebuilds it, and the
outcome (`lr` per epoch, `best_epoch`, `triggered`...) is exposed as plain
attributes or epoch-log entries.

All epoch indices are 0-based, as in Keras's callback API (`fit` shows
epoch index 2 as "Epoch 3/N").

Ordering contract for `model.fit(callbacks=[...])`: put `NaNGuard` first,
the learning-rate schedule next, then anything that reads the logs or saves
(EarlyStopping, checkpoints, CSVLogger, TensorBoard).

One module, a little over 400 lines: these callbacks share that ordering contract and the checkpoint
state they read and write; each is short.
"""

import inspect
import logging
import math
from pathlib import Path

import keras
import numpy as np

from kerasapps.models.walk import iter_layers
from kerasapps.training.optimizers import current_lr

logger = logging.getLogger("kerasapps")
EXPLOSION = 1e6  # NaNGuard warns once when the loss grows past this many times the first batch's

__all__ = ["ConfigMixin", "EarlyStopping", "MaxNorm", "NaNGuard"]


class ConfigMixin:
    """`get_config()` from the constructor signature; `from_config(config)`.

    Subclasses store every constructor argument under an attribute of the
    same name.
    """

    def get_config(self):
        params = inspect.signature(type(self).__init__).parameters
        return {
            name: _jsonable(getattr(self, name))
            for name in params
            if name != "self"
            and params[name].kind
            not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def positive_number(name, value, cls_name):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{cls_name}: {name} must be a positive number; received {name}={value!r}")
    return float(value)


def positive_int(name, value, cls_name):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{cls_name}: {name} must be an integer >= 1; received {name}={value!r}")
    return value


# --------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------


class EarlyStopping(ConfigMixin, keras.callbacks.EarlyStopping):
    """keras.callbacks.EarlyStopping with its outcome exposed for the run's metrics.

    Keras 3.15's EarlyStopping already tracks `best` (renamed here
    `best_value`), `best_epoch` and `stopped_epoch`, and with
    `restore_best_weights=True` (our default) restores the weights of the best
    epoch at the end of training whether or not it stopped early. This
    subclass adds `best_value`, `stopped_early`, `summary()` (a JSON-able dict
    for metrics.json) and `get_config()`; `best_epoch` is `None` until the
    monitored value has been seen.

    `stopped_epoch` keeps Keras's meaning: the 0-based epoch at whose end
    training stopped, 0 if it ran all epochs (Keras never stops at epoch 0).

    With `state_dir`, it keeps its state across a resume: after every epoch it
    records (best value, best epoch, epochs waited) in `state_dir/early_stopping.json`
    and, when the epoch is the best so far, that epoch's weights in
    `best-epoch-NNN.npz`; a run resumed at `initial_epoch` k takes the state
    recorded after epoch k - 1 (0-based), so patience and the best weights
    carry over the kill. Without it, `fit(initial_epoch=k)` starts afresh.

    With an optimizer that keeps an exponential moving average of the weights (`use_ema`), the weights kept for
    the best epoch are the averages, which validation scored (`keras.callbacks.SwapEMAWeights`) and which `fit`
    leaves in the model at its end; restoring them replaces that end state.
    """

    def __init__(
        self,
        monitor="val_loss",
        patience=5,
        min_delta=0.0,
        mode="auto",
        restore_best_weights=True,
        baseline=None,
        start_from_epoch=0,
        state_dir=None,
        initial_epoch=0,
    ):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be one of auto, min, max; received mode={mode!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 0; received patience={patience!r}")
        super().__init__(
            monitor=monitor,
            min_delta=min_delta,
            patience=patience,
            mode=mode,
            baseline=baseline,
            restore_best_weights=restore_best_weights,
            start_from_epoch=start_from_epoch,
        )
        self.min_delta_arg = float(min_delta)
        self.best_epoch = None
        self.state_dir = None if state_dir is None else str(state_dir)
        self.initial_epoch = initial_epoch

    def get_config(self):
        config = super().get_config()
        config["min_delta"] = self.min_delta_arg  # Keras flips the sign of self.min_delta
        return config

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.best_epoch = None
        if self.state_dir is not None and self.initial_epoch > 0:
            self._restore(self.initial_epoch - 1)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.best is None:  # monitored value not seen yet
            self.best_epoch = None
        if self.restore_best_weights and self.best_epoch == epoch and getattr(self.model.optimizer, "use_ema", False):
            from kerasapps.core import compat

            # an optimizer that averages the weights was validated on the averages (SwapEMAWeights): keep those
            self.best_weights = compat.averaged_weights(self.model)
        if self.state_dir is not None:
            self._record(epoch)

    def _paths(self, epoch=None):
        folder = Path(self.state_dir)
        return folder / "early_stopping.json", (folder / f"best-epoch-{epoch:03d}.npz" if epoch is not None else None)

    def _record(self, epoch):
        from kerasapps.training import rundir

        history_path, _ = self._paths()
        history = rundir.read_json(history_path) if history_path.is_file() else {}
        history = {k: v for k, v in history.items() if int(k) < epoch}  # a resumed run rewrites what followed
        history[str(epoch)] = {"best": self.best_value, "best_epoch": self.best_epoch, "wait": self.wait}
        if self.best_epoch == epoch and self.best_weights is not None:
            _, weights_path = self._paths(epoch)
            with rundir.atomic_path(weights_path) as tmp:
                np.savez(tmp, *self.best_weights)
        rundir.write_json(history_path, history)
        keep = {self._paths(state["best_epoch"])[1].name for state in history.values()
                if state["best_epoch"] is not None}
        for old in Path(self.state_dir).glob("best-epoch-*.npz"):
            if old.name not in keep:
                old.unlink(missing_ok=True)

    def _restore(self, epoch):
        from kerasapps.training import rundir

        history_path, _ = self._paths()
        state = (rundir.read_json(history_path) if history_path.is_file() else {}).get(str(epoch))
        if state is None:
            logger.warning("early stopping: no state recorded after epoch %d; patience counts from the resume",
                           epoch + 1)
            return
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        _, weights_path = self._paths(self.best_epoch) if self.best_epoch is not None else (None, None)
        if weights_path is not None and weights_path.is_file():
            with np.load(weights_path) as saved:
                self.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]

    @property
    def best_value(self):
        return None if self.best is None else float(self.best)

    @property
    def stopped_early(self):
        return self.stopped_epoch > 0

    def summary(self):
        """JSON-able outcome: monitor, best_epoch, best_value, stopped_epoch, stopped_early."""
        return {
            "monitor": self.monitor,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "stopped_epoch": self.stopped_epoch if self.stopped_early else None,
            "stopped_early": self.stopped_early,
        }


# --------------------------------------------------------------------------
# Max-norm constraint
# --------------------------------------------------------------------------


def _max_norm_axes(layer, axis):
    """(axes, None) for the unit's incoming-weight axes, or (None, reason) to skip."""
    if hasattr(layer, "cell"):
        return None, "recurrent layer: its kernels live in layer.cell and are not constrained"
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        return None, "no kernel"
    if not isinstance(kernel, keras.Variable):
        return None, "kernel is not a plain variable (LoRA or quantized)"
    if axis is not None:
        return axis, None
    rank = len(kernel.shape)
    if isinstance(layer, keras.layers.Dense) and rank == 2:
        return 0, None  # (in, out)
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        return tuple(range(rank - 1)), None  # (k..., in, out)
    return None, f"{type(layer).__name__} kernel layout not supported (pass axis= to force)"


class MaxNorm(ConfigMixin, keras.callbacks.Callback):
    """Clip each unit's incoming weight vector to L2 norm <= max_value after every batch.

    Max-norm regularisation as used with dropout (Hinton et al. 2012,
    Srivastava et al. 2014). Works on any model, imported ones included:
    walks every layer (`kerasapps.models.walk.iter_layers`: nested models and recomputed blocks
    included) and constrains

    - `Dense` kernels (in, out): the norm over axis 0;
    - `Conv1D/2D/3D` kernels (k..., in, out): the norm over all axes but the last.

    Frozen layers (`trainable=False`) are left alone. Other layers with a `kernel` (Conv*Transpose, whose kernel is
    (k..., out, in); DepthwiseConv; EinsumDense; LoRA or quantized Dense)
    are skipped unless `axis` is given, which then applies to every layer
    with a plain-variable kernel. Embeddings (`embeddings`), recurrent layers
    (kernels live in `layer.cell`, not reached) and biases are never touched.
    `self.constrained` and `self.skipped` list what was chosen.

    The norms use `keras.constraints.MaxNorm`'s axis convention, but only
    units whose norm exceeds `max_value` are rescaled: Keras's constraint
    multiplies every unit by n / (n + epsilon), a small decay of units that
    are already within the limit. Also applied once at the start of training.

    Args:
        max_value: the maximum L2 norm of a unit's incoming weights.
        axis: None (per layer type, above) or an int/tuple applied to all.
        layers: optional list of layer names to restrict to; a name that is
            not a constrainable layer of the model is a ValueError.
    """

    def __init__(self, max_value, axis=None, layers=None):
        super().__init__()
        self.max_value = positive_number("max_value", max_value, "MaxNorm")
        self.axis = axis
        self.layers = list(layers) if layers is not None else None
        self.constrained = []  # [(layer name, axes)]
        self.skipped = []  # [(layer name, reason)]
        self._targets = []
        self._clip_fn = None

    def _collect(self):
        self.constrained, self.skipped, self._targets = [], [], []
        self._clip_fn = None
        for layer in iter_layers(self.model):
            if self.layers is not None and layer.name not in self.layers:
                continue
            axes, reason = _max_norm_axes(layer, self.axis)
            if axes is not None and not layer.trainable:
                axes, reason = None, "frozen: its weights are not being trained"
            if axes is None:
                if reason != "no kernel":
                    self.skipped.append((layer.name, reason))
                continue
            self.constrained.append((layer.name, axes))
            self._targets.append((layer.kernel, axes))
        if self.layers is not None:
            missing = sorted(set(self.layers) - {name for name, _ in self.constrained})
            if missing:
                valid = [
                    layer.name
                    for layer in iter_layers(self.model)
                    if _max_norm_axes(layer, self.axis)[0] is not None and layer.trainable
                ]
                raise ValueError(
                    f"MaxNorm: layers {missing} are not constrainable layers of model "
                    f"{self.model.name!r}; valid: {valid}"
                )
        for name, reason in self.skipped:
            logger.debug("MaxNorm skips layer %s: %s", name, reason)

    def clip(self):
        """Apply the constraint now to every targeted kernel."""
        if self._clip_fn is None:
            self._clip_fn = self._clip
            if keras.backend.backend() == "tensorflow":  # one graph call instead of ~6 eager ops per layer
                import tensorflow as tf

                self._clip_fn = tf.function(self._clip)
        self._clip_fn()

    def _clip(self):
        ops = keras.ops
        for kernel, axes in self._targets:
            w = ops.convert_to_tensor(kernel)
            norms = ops.sqrt(ops.sum(ops.square(w), axis=axes, keepdims=True))
            scale = ops.where(norms > self.max_value, self.max_value / norms, ops.ones_like(norms))
            kernel.assign(w * scale)
        return None

    def on_train_begin(self, logs=None):
        self._collect()
        self.clip()

    def on_train_batch_end(self, batch, logs=None):
        self.clip()


# --------------------------------------------------------------------------
# NaN guard
# --------------------------------------------------------------------------


class NaNGuard(ConfigMixin, keras.callbacks.TerminateOnNaN):
    """Stop training at the first non-finite batch loss, and say why.

    On a NaN or Inf loss it sets `model.stop_training = True` (Keras then
    ends the epoch and training, calling `on_epoch_end`/`on_train_end`), and
    records:

    - `triggered`: True;
    - `epoch`: 0-based epoch index; `batch`: 0-based batch within the epoch;
    - `step`: the global step, `optimizer.iterations` after the bad batch
      (the 1-based number of updates, the step TensorBoard plots);
    - `loss`, `learning_rate`, and `message`: one line naming the likely
      cause, logged at `log_level` (ERROR) on the "kerasapps" logger. The
      message names `rate_key`, the key that sets the rate (a stage's own,
      such as `finetune_learning_rate`), and `initial_lr`, the rate that key
      holds (not the rate a schedule had decayed it to), when given.

    With `warn_growth`, a loss that stays finite but grows past a million
    times the first batch's gets one warning per training, naming that key.

    If the very first update's loss is non-finite the weights had not been
    updated yet, so the message points at the data or the loss instead of the
    learning rate.

    Contract: put the guard FIRST in the callback list. The weights are
    already non-finite when it triggers, so a checkpoint callback (which runs
    after it, e.g. at the `on_epoch_end` Keras still calls) must check
    `guard.triggered` and not save once it is True; the trainer honours this.
    With `raise_error=True` it raises RuntimeError(message) instead of
    stopping gracefully (no other callback's `on_train_end` runs).
    """

    def __init__(self, raise_error=False, log_level=logging.ERROR, rate_key="learning_rate", initial_lr=None,
                 warn_growth=True):
        super().__init__(raise_error=raise_error)
        self.log_level, self.rate_key, self.initial_lr, self.warn_growth = log_level, rate_key, initial_lr, warn_growth
        self._first_loss, self._warned, self._growth = None, False, None
        self.triggered = False
        self.epoch = None
        self.batch = None
        self.step = None
        self.loss = None
        self.learning_rate = None
        self.message = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.triggered = False
        self.epoch = self.batch = self.step = self.loss = self.learning_rate = None
        self.message = None
        self._first_loss, self._warned, self._growth = None, False, None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.triggered:
            return
        loss = float(np.asarray(loss))
        if math.isfinite(loss):
            self._watch_growth(batch, loss)
            return
        optimizer = self.model.optimizer
        self.triggered = True
        self.epoch, self.batch, self.loss = self._epoch, batch, loss
        self.step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        self.learning_rate = current_lr(optimizer)
        self.message = self._explain()
        logger.log(self.log_level, self.message)
        if self.raise_error:
            raise RuntimeError(self.message)
        self.model.stop_training = True

    def _watch_growth(self, batch, loss):
        if self._first_loss is None:
            self._first_loss = abs(loss)
        elif self.warn_growth and not self._warned and abs(loss) > EXPLOSION * max(self._first_loss, 1e-12):
            self._warned = True  # said at the epoch's end, unless the loss turns non-finite first (then that is said)
            self._growth = (f"loss {loss:.3g} at epoch {self._epoch} (0-based), batch {batch} is over "
                            f"{EXPLOSION:,.0f} times the first batch's ({self._first_loss:.3g}): training is "
                            f"diverging; lower {self.rate_key}")

    def on_epoch_end(self, epoch, logs=None):
        if self._growth is not None and not self.triggered:
            logger.warning(self._growth)
        self._growth = None

    def _explain(self):
        what = f"loss became {self.loss} at epoch {self.epoch} (0-based), step {self.step}"
        if self.step <= 1:
            return (
                f"{what}: the first batch's loss was already non-finite before any update, "
                "so the learning rate is not the cause; check the input data for nan/inf "
                "and the loss for log(0) or a division by zero"
            )
        lr = self.initial_lr if self.initial_lr is not None else self.learning_rate
        return (
            f"{what}: the learning rate ({lr:g}) is probably too high; lower it "
            f"(e.g. --set {self.rate_key}={lr / 10:g}); otherwise check the data for nan/inf"
        )
