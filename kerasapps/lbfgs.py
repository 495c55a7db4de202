"""Full-batch L-BFGS for small Keras models, on ``scipy.optimize.minimize(method="L-BFGS-B")``.

The notes' second-order option: for a small model and a data set that fits in memory, L-BFGS
uses the whole training set per step and builds a curvature estimate from the last few
gradients, so it needs no learning rate. We do not write the algorithm: SciPy's L-BFGS-B
(Byrd, Lu, Nocedal & Zhu 1995) drives it, and this module only hands it the model's loss
and gradient as one flat float64 vector (computed by TensorFlow in float32, in chunks so
that memory stays bounded).

    from kerasapps.lbfgs import minimize
    result = minimize(model, x, y, "sparse_categorical_crossentropy", max_iterations=100)
    result.history  # [(seconds, loss)] per iteration
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np


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
