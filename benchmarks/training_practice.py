"""Training-practice claims on MNIST, measured: initialisation (Glorot & Bengio 2010, He et al. 2015), batch
norm and elastic distortions.

1. Epochs (and seconds) until test accuracy first reaches 98% for the MLP (784-256-256-10, Adam 1e-3,
   batch 128) with sigmoid + N(0, 1) init, ReLU + He, and ReLU + He + batch norm (capped at --max-epochs).
2. The MNIST CNN (the transfer example's architecture with 10 classes) trained for --cnn-epochs epochs with
   and without elastic distortions (Simard et al. 2003: alpha 34, sigma 4): test accuracy and seconds.

Test accuracy is read once per epoch for reporting only; nothing is tuned on it.

    python benchmarks/training_practice.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kerasapps.core.quiet_import import import_tensorflow

import_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasapps  # noqa: E402
from kerasapps.core.recipe import Recipe, Stage  # noqa: E402
from kerasapps.data.builtin import load_mnist  # noqa: E402
from kerasapps.recipes.mlp import MLP_MNIST  # noqa: E402
from kerasapps.recipes.mnist_transfer import mnist_transfer_cnn  # noqa: E402
from kerasapps.recipes.mnist_transfer import preprocess as cnn_preprocess  # noqa: E402
from kerasapps.savedmodel.signatures import ImageClassifier  # noqa: E402


class TestAccuracyWatch(keras.callbacks.Callback):
    """Records test accuracy and elapsed time after every epoch; stops once ``target`` is reached."""

    def __init__(self, x_test, y_test, target: float | None):
        super().__init__()
        self.x, self.y, self.target = x_test, y_test, target
        self.history: list[tuple[int, float, float]] = []

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        accuracy = float((np.argmax(self.model.predict(self.x, verbose=0, batch_size=1024), -1) == self.y).mean())
        self.history.append((epoch + 1, accuracy, time.perf_counter() - self.started))
        if self.target is not None and accuracy >= self.target:
            self.model.stop_training = True


def run(recipe, data_dir, test, overrides, epochs, target):
    watch = TestAccuracyWatch(*test, target)
    with tempfile.TemporaryDirectory() as tmp:
        kerasapps.train(recipe, run_dir=Path(tmp) / "run", data_dir=data_dir, set=overrides,
                        epochs=epochs, callbacks=[watch], verbose=0)
    return watch.history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--cnn-epochs", type=int, default=5)
    args = parser.parse_args()

    arrays = np.load(args.data_dir / "mnist" / "mnist.npz")
    x_test, y_test = arrays["x_test"], arrays["y_test"].astype("int64")

    print("| MLP setting | epochs to 98% test accuracy | seconds | best accuracy (epoch) |")
    print("|---|---|---|---|")
    mlp_test = (keras.ops.convert_to_numpy(MLP_MNIST.preprocess(x_test)), y_test)
    for label, overrides in [("sigmoid + N(0,1) init", ["activation=sigmoid", "init=normal"]),
                             ("ReLU + He", ["activation=relu", "init=he"]),
                             ("ReLU + He + batch norm", ["activation=relu", "init=he", "batch_norm=true"])]:
        history = run(MLP_MNIST, args.data_dir, mlp_test, overrides, args.max_epochs, 0.98)
        reached = next(((e, s) for e, a, s in history if a >= 0.98), None)
        best = max(history, key=lambda h: h[1])
        epochs_text = str(reached[0]) if reached else f"not within {args.max_epochs}"
        seconds_text = f"{reached[1]:.0f}" if reached else f"{history[-1][2]:.0f} (all)"
        print(f"| {label} | {epochs_text} | {seconds_text} | {best[1]:.4f} ({best[0]}) |", flush=True)

    cnn = Recipe(name="cnn_mnist", summary="the transfer example's CNN on all 10 digits",
                 build_model=lambda hp, meta: mnist_transfer_cnn(classes=10), load_data=load_mnist,
                 preprocess=cnn_preprocess, serving=ImageClassifier(28, 28), augmentable=True,
                 defaults={"lr_schedule": "cosine"}, stages=(Stage("train"),))
    cnn_test = (keras.ops.convert_to_numpy(cnn_preprocess(x_test)), y_test)
    print(f"\n| MNIST CNN, {args.cnn_epochs} epochs | test accuracy | seconds |")
    print("|---|---|---|")
    for label, overrides in [("no augmentation", []), ("elastic distortion (alpha 34, sigma 4)",
                                                       ["elastic_alpha=34", "elastic_sigma=4"])]:
        history = run(cnn, args.data_dir, cnn_test, overrides, args.cnn_epochs, None)
        print(f"| {label} | {history[-1][1]:.4f} | {history[-1][2]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
