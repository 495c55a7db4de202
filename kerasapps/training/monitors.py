"""Training monitors (the checks of Karpathy's CS231n notes, "Babysitting the learning process"):
switched on for any run by ``monitor=true``.

Every ``monitor_every_steps`` optimizer steps :class:`TrainingMonitor` records, per layer with a
kernel: the relative update ``|dW| / |W|`` of that step (rule of thumb: about 1e-3;
a warning outside 1e-4 ... 1e-2), the weight norm and the gradient norm on a fixed probe batch;
and, per ReLU/sigmoid/tanh layer, activation statistics on the probe batch: mean, std, the
dead-unit fraction (ReLU units that are 0 for every probe example) and the saturated fraction
(sigmoid/tanh outputs within 0.01 of an asymptote). Records go to TensorBoard
(``RUN_DIR/tensorboard/STAGE/monitors``) and ``RUN_DIR/monitors.json``.

The probe batch is the first ``monitor_probe_size`` validation examples of the stage (training
examples when there is no validation split), preprocessed; the stage runner hands it over
(:func:`probe_batch`) -- never the test split.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import keras
import numpy as np

log = logging.getLogger("kerasapps")

RATIO_LOW, RATIO_HIGH = 1e-4, 1e-2
SATURATION = 0.01
_WATCHED = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}


def _activation_kind(layer) -> str | None:
    if isinstance(layer, keras.layers.ReLU):
        return "relu"
    fn = getattr(layer, "activation", None)
    return _WATCHED.get(getattr(fn, "__name__", "")) if fn is not None else None


def probe_batch(data, size: int, preprocess=None):
    """(x, y): the first ``size`` validation (else training) examples of a stage's ``data``, preprocessed."""
    from kerasapps.data.files import materialize
    from kerasapps.data.splits import length, take

    split = data.get("validation") or data["train"]
    x, y = materialize(take(split, slice(0, min(size, length(split)))))
    return (preprocess(x) if preprocess is not None else x), y


class TrainingMonitor(keras.callbacks.Callback):
    """Update/weight ratios, weight and gradient norms and activation statistics every ``every_steps``."""

    def __init__(self, run_dir=None, stage: str = "train", every_steps: int = 50, probe=None):
        super().__init__()
        if every_steps < 1:
            raise ValueError(f"every_steps must be positive; received {every_steps}")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.stage, self.every_steps, self.probe = stage, every_steps, probe
        self.records: list[dict] = []
        self.warned: set[str] = set()
        self._before = None
        self._step = 0
        self._writer = None

    # -- setup
    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self._kernels = [(layer.name, layer.kernel) for layer in self.model.layers
                         if getattr(layer, "kernel", None) is not None and layer.trainable]
        watched = [(layer.name, kind) for layer in self.model.layers if (kind := _activation_kind(layer))]
        self._kinds = dict(watched)
        self._features = (keras.Model(self.model.input, [self.model.get_layer(n).output for n, _ in watched])
                          if watched else None)
        self._step = int(self.model.optimizer.iterations.numpy())
        if self.run_dir is not None:
            self._writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard" / self.stage / "monitors"))

    # -- per step
    def on_train_batch_begin(self, batch, logs=None):
        if (self._step + 1) % self.every_steps == 0:  # steps N, 2N, ...: not Adam's outsized first step
            self._before = [np.array(k.numpy()) for _, k in self._kernels]

    def on_train_batch_end(self, batch, logs=None):
        if self._before is not None:
            self._record(self._step + 1, self._before)
            self._before = None
        self._step += 1

    def _record(self, step: int, before):
        record = {"stage": self.stage, "step": step, "layers": {}, "activations": {}}
        grads = self._gradient_norms()
        for (name, kernel), old in zip(self._kernels, before):
            new = kernel.numpy()
            norm = float(np.linalg.norm(new))
            ratio = float(np.linalg.norm(new - old) / (np.linalg.norm(old) + 1e-12))
            record["layers"][name] = {"update_ratio": ratio, "weight_norm": norm, "grad_norm": grads.get(name)}
            if not RATIO_LOW <= ratio <= RATIO_HIGH and name not in self.warned:
                self.warned.add(name)
                log.warning(f"monitor: layer {name} update/weight ratio {ratio:.2g} at step {step} is outside "
                            f"{RATIO_LOW:g}...{RATIO_HIGH:g} "
                            f"(learning rate too {'low' if ratio < RATIO_LOW else 'high'}?)")
        record["activations"] = self._activation_stats()
        self.records.append(record)
        self._summarise(record)

    def _gradient_norms(self) -> dict:
        import tensorflow as tf

        if self.probe is None:
            return {}
        x, y = self.probe
        variables = [k for _, k in self._kernels]
        with tf.GradientTape() as tape:
            y_pred = self.model(x, training=False)
            loss = self.model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
        grads = tape.gradient(loss, variables)
        return {name: (float(tf.norm(g)) if g is not None else None) for (name, _), g in zip(self._kernels, grads)}

    def _activation_stats(self) -> dict:
        if self.probe is None or self._features is None:
            return {}
        outputs = self._features(self.probe[0], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        stats = {}
        for (name, kind), value in zip(self._kinds.items(), outputs):
            a = np.asarray(value).reshape(len(value), -1)
            if kind == "relu":
                saturated = 0.0
            elif kind == "sigmoid":
                saturated = float(np.mean((a < SATURATION) | (a > 1 - SATURATION)))
            else:
                saturated = float(np.mean(np.abs(a) > 1 - SATURATION))
            stats[name] = {"kind": kind, "mean": float(a.mean()), "std": float(a.std()),
                           "dead_fraction": float(np.mean(np.all(a <= 0, axis=0))) if kind == "relu" else 0.0,
                           "saturated_fraction": saturated}
        return stats

    def _summarise(self, record):
        if self._writer is None:
            return
        import tensorflow as tf

        with self._writer.as_default(step=record["step"]):
            for name, values in record["layers"].items():
                for key, value in values.items():
                    if value is not None and math.isfinite(value):
                        tf.summary.scalar(f"{key}/{name}", value)
            for name, values in record["activations"].items():
                for key in ("mean", "std", "dead_fraction", "saturated_fraction"):
                    tf.summary.scalar(f"activation_{key}/{name}", values[key])

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
        if self.run_dir is None:
            return
        from kerasapps.training import rundir

        path = self.run_dir / "monitors.json"
        data = rundir.read_json(path) if path.is_file() else {"records": []}
        data["records"] = [r for r in data["records"] if r["stage"] != self.stage or r["step"] < self._first_step()]
        data["records"] += self.records
        data["ratio_range"] = [RATIO_LOW, RATIO_HIGH]
        data.setdefault("warnings", {})[self.stage] = sorted(self.warned)
        rundir.write_json(path, data)

    def _first_step(self) -> int:
        return self.records[0]["step"] if self.records else 1 << 62
