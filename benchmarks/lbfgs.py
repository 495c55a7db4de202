"""L-BFGS against Adam on the same small model and data: full-batch training loss against wall time.

The model is ``mlp_mnist``'s MLP (784-64-10, ReLU, He init) on the first ``--examples`` MNIST
training images; both start from the same weights. Adam runs full-batch steps (learning rate
1e-2) for as long as L-BFGS took; the table gives the full-batch loss each reached at equal
wall-time marks, and the test accuracy at the end.

    python benchmarks/lbfgs.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kerasapps.core.quiet_import import import_tensorflow

import_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasapps.recipes.mlp import mlp  # noqa: E402
from kerasapps.training.lbfgs import minimize  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()

    arrays = np.load(args.data_dir / "mnist" / "mnist.npz")
    x = arrays["x_train"][: args.examples].reshape(-1, 784).astype("float32") / 255.0
    y = arrays["y_train"][: args.examples].astype("int64")
    x_test = arrays["x_test"].reshape(-1, 784).astype("float32") / 255.0
    y_test = arrays["y_test"].astype("int64")

    def fresh():
        keras.utils.set_random_seed(0)
        return mlp(units=64, depth=1, activation="relu", init="he")

    def full_loss(model):
        return float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, model(x))))

    def accuracy(model):
        return float((np.argmax(model.predict(x_test, batch_size=2048, verbose=0), -1) == y_test).mean())

    model = fresh()
    result = minimize(model, x, y, "sparse_categorical_crossentropy", max_iterations=args.iterations)
    lbfgs_curve, lbfgs_acc = result.history, accuracy(model)

    adam = fresh()
    adam.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", jit_compile=False)
    adam.fit(x, y, batch_size=len(x), epochs=2, verbose=0)  # trace and warm up, then restart from the same weights
    adam.set_weights(fresh().get_weights())
    adam.optimizer = keras.optimizers.Adam(1e-2)
    adam.compile(optimizer=adam.optimizer, loss="sparse_categorical_crossentropy", jit_compile=False)
    adam_curve, started = [], time.perf_counter()
    while time.perf_counter() - started < result.seconds:
        adam.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
        adam_curve.append((time.perf_counter() - started, full_loss(adam)))
    adam_acc = accuracy(adam)

    def at(curve, seconds):
        done = [loss for t, loss in curve if t <= seconds]
        return f"{done[-1]:.4f}" if done else "-"

    marks = [result.seconds * f for f in (0.1, 0.25, 0.5, 1.0)]
    print(f"{args.examples} MNIST examples, MLP 784-64-10, full batch; L-BFGS-B {result.iterations} iterations "
          f"({result.evaluations} loss+gradient evaluations) in {result.seconds:.1f} s; Adam 1e-2 "
          f"{len(adam_curve)} full-batch steps in the same time\n")
    print("| optimiser | " + " | ".join(f"loss at {m:.1f} s" for m in marks) + " | test accuracy |")
    print("|---|" + "---|" * len(marks) + "---|")
    print("| L-BFGS-B | " + " | ".join(at(lbfgs_curve, m) for m in marks) + f" | {lbfgs_acc:.4f} |")
    print("| Adam 1e-2 | " + " | ".join(at(adam_curve, m) for m in marks) + f" | {adam_acc:.4f} |")


if __name__ == "__main__":
    main()
