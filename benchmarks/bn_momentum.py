"""A factory in a user's own Keras loop, at each batch-norm momentum: ``resnet20`` trained with Adam for two
epochs on the CIFAR-10 subset, test accuracy on its 1,000 test images, beside always answering the most frequent
class measured on the same split.

    python benchmarks/bn_momentum.py --data-dir ../shared/data [--momenta 0.99 0.9] [--epochs 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--momenta", type=float, nargs="+", default=[0.99, 0.9])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    import keras

    from kerasapps.recipes import resnet20

    data = np.load(Path(args.data_dir) / "cifar10_subset" / "cifar10_subset.npz")
    x, y = data["x_train"] / 255.0, data["y_train"].ravel()
    x_test, y_test = data["x_test"] / 255.0, data["y_test"].ravel()
    majority = np.mean(y_test == np.bincount(y).argmax())
    print(f"| bn_momentum | test accuracy ({len(y_test):,} images) |\n|---|---|\n| (always the most frequent class) | "
          f"{majority:.3f} |")
    for momentum in args.momenta:
        keras.utils.set_random_seed(0)
        model = resnet20(input_shape=(32, 32, 3), classes=10, bn_momentum=momentum)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=args.epochs, batch_size=64, verbose=0)
        print(f"| {momentum:g}{' (default)' if momentum == 0.99 else ''} | "
              f"{model.evaluate(x_test, y_test, verbose=0)[1]:.3f} |")


if __name__ == "__main__":
    main()
