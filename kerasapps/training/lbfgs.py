"""Full-batch L-BFGS for small Keras models, on ``scipy.optimize.minimize(method="L-BFGS-B")``.

A second-order option (Nocedal & Wright, ch. 7): for a small model and a data set that fits in memory, L-BFGS
uses the whole training set per step and builds a curvature estimate from the last few
gradients, so it needs no learning rate. We do not write the algorithm: SciPy's L-BFGS-B
(Byrd, Lu, Nocedal & Zhu 1995) drives it, and this module only hands it the model's loss
and gradient as one flat float64 vector (computed by TensorFlow in float32, in chunks so
that memory stays bounded).

    from kerasapps.training.lbfgs import minimize
    result = minimize(model, x, y, "sparse_categorical_crossentropy", max_iterations=100)
    result.history  # [(seconds, loss)] per iteration

``kerasapps train NAME --set optimizer=lbfgs [--set lbfgs_iterations=N]``: the stage runner routes each stage here
(:func:`fit_stage`) instead of ``model.fit``: the stage's whole training split, preprocessed once
in memory, at most :data:`MAX_EXAMPLES` examples, no augmentation, default or one-device strategy
only (:func:`check_full_batch`). The objective is deterministic (``training=False``: dropout off,
batch normalisation uses its moving statistics), as L-BFGS's line search requires.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from pathlib import Path

import keras
import numpy as np

MAX_EXAMPLES = 60_000  # full-batch training splits above this are refused (an MNIST-sized set at most)
STRATEGIES = ("default", "one_device")


@dataclasses.dataclass
class LBFGSResult:
    loss: float
    iterations: int
    evaluations: int
    seconds: float
    message: str
    history: list  # (seconds since start, full-batch loss) after each iteration


def minimize(model, x, y, loss, *, max_iterations: int = 100, chunk: int = 8192, memory: int = 10,
             tolerance: float = 1e-9) -> LBFGSResult:
    """Minimise ``loss(y, model(x)) + model.losses`` over ``model.trainable_weights`` with L-BFGS-B.

    ``x``, ``y``: the whole training set (numpy or tensors, model input format). ``loss``: a
    Keras loss name or object. Regularisation losses of the model (L1/L2) are included.
    Uses the TensorFlow backend's gradient tape.
    """
    import scipy.optimize
    import tensorflow as tf

    if max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1; received {max_iterations!r}")
    loss_fn = keras.losses.get(loss)
    weights = list(model.trainable_weights)
    if not weights:
        raise ValueError(f"{model.name} has no trainable weights to optimise")
    shapes = [tuple(w.shape) for w in weights]
    sizes = [int(np.prod(s)) for s in shapes]
    n = len(y) if not isinstance(y, dict) else len(next(iter(y.values())))
    chunks = [(start, min(start + chunk, n)) for start in range(0, n, chunk)]

    def assign(flat):
        offset = 0
        for w, shape, size in zip(weights, shapes, sizes):
            w.assign(flat[offset:offset + size].reshape(shape).astype(w.dtype))
            offset += size

    @tf.function(reduce_retracing=True)
    def chunk_loss_and_grads(xb, yb, scale):
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(loss_fn(yb, model(xb, training=False))) * scale
        return value, tape.gradient(value, [w.value for w in weights])

    @tf.function
    def penalty_and_grads():
        with tf.GradientTape() as tape:
            value = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
        grads = tape.gradient(value, [w.value for w in weights])
        return value, [tf.zeros_like(w) if g is None else g for w, g in zip(weights, grads)]

    def value_and_grad(flat):
        assign(flat)
        total = 0.0
        grads = [np.zeros(size, np.float64) for size in sizes]
        for start, stop in chunks:
            value, chunk_grads = chunk_loss_and_grads(x[start:stop], y[start:stop],
                                                      tf.constant((stop - start) / n, tf.float32))
            total += float(value)
            for acc, g in zip(grads, chunk_grads):
                if g is not None:
                    acc += np.asarray(tf.convert_to_tensor(g), np.float64).reshape(-1)
        value, penalty_grads = penalty_and_grads()
        total += float(value)
        for acc, g in zip(grads, penalty_grads):
            acc += np.asarray(g, np.float64).reshape(-1)
        return total, np.concatenate(grads)

    started, history = time.perf_counter(), []
    start_flat = np.concatenate([np.asarray(w.numpy(), np.float64).reshape(-1) for w in weights])

    def record(flat):
        history.append((time.perf_counter() - started, last["loss"]))

    last = {"loss": float("nan")}

    def tracked(flat):
        value, grad = value_and_grad(flat)
        last["loss"] = value
        return value, grad

    result = scipy.optimize.minimize(tracked, start_flat, jac=True, method="L-BFGS-B", callback=record,
                                     options={"maxiter": max_iterations, "maxcor": memory, "ftol": tolerance,
                                              "gtol": 1e-10})
    assign(result.x)
    return LBFGSResult(loss=float(result.fun), iterations=int(result.nit), evaluations=int(result.nfev),
                       seconds=time.perf_counter() - started, message=str(result.message), history=history)


def check_full_batch(recipe_name: str, stage: str, train_split, *, augment, strategy_name: str, hp) -> None:
    """Refuse, in one line, what full-batch L-BFGS cannot do (called before anything is written)."""
    from kerasapps.core.errors import ConfigError
    from kerasapps.data.splits import length

    batch_keys = {"class_weight": "none", "ema": None, "gradient_accumulation": 1}  # what minibatch updates do
    asked = [f"{key}={hp[key]}" for key, off in batch_keys.items() if hp.get(key, off) != off]
    if asked:
        raise ConfigError(f"optimizer=lbfgs minimises the plain full-batch loss; it cannot take {', '.join(asked)} "
                          "(unset them, or choose another optimizer)")
    if augment is not None:
        raise ConfigError("optimizer=lbfgs minimises a fixed full-batch loss; it cannot take augmentation "
                          "(unset the augment_* / elastic_* keys)")
    if strategy_name not in STRATEGIES:
        raise ConfigError(f"optimizer=lbfgs runs on one device; --strategy {strategy_name} is not supported "
                          f"(use {' or '.join(STRATEGIES)})")
    x, _ = train_split
    if isinstance(x, (dict, tuple, list)):
        raise ConfigError(f"optimizer=lbfgs takes single-input models; recipe '{recipe_name}' has several inputs")
    n = length(train_split)
    if n > MAX_EXAMPLES:
        raise ConfigError(f"optimizer=lbfgs trains full-batch on at most {MAX_EXAMPLES} examples; stage '{stage}' "
                          f"of '{recipe_name}' has {n} (train a subset, or use another optimizer)")


def fit_stage(model, split, loss, *, preprocess, iterations: int, csv_path, chunk: int = 8192) -> LBFGSResult:
    """Minimise one training stage full-batch and write ``epoch,loss`` per iteration to ``csv_path`` (if given).

    ``epoch`` counts L-BFGS iterations (0-based, as Keras's CSVLogger counts epochs), so the
    run's ``training_curves.png`` shows the loss per iteration.
    """
    import keras
    import tensorflow as tf

    from kerasapps.data.files import materialize

    x, y = materialize(split)  # files of a --data source are read here: L-BFGS holds the split in memory
    if preprocess is not None:  # once, in chunks, kept in memory as float32
        x = np.concatenate([keras.ops.convert_to_numpy(preprocess(tf.constant(x[i:i + chunk])))
                            for i in range(0, len(x), chunk)])
    result = minimize(model, x, np.asarray(y), loss, max_iterations=iterations, chunk=chunk)
    if csv_path is None:
        return result
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "loss"])
        writer.writerows([i, f"{value:.8g}"] for i, (_, value) in enumerate(result.history))
    return result
