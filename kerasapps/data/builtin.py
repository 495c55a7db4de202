"""Reading the built-in data sets: ``.npz`` files from a data directory, or TFDS with its normal download.

A data directory holds ``mnist/mnist.npz``, ``cifar10_subset/cifar10_subset.npz`` and the other sets' files
(``--data-dir`` or ``$KERASAPPS_DATA_DIR``; see :class:`kerasapps.core.recipe.DataContext`). Only when none is
set does a recipe call TFDS. The image sets several recipes share are loaded here: :func:`load_mnist`,
:func:`load_cifar10` (each a recipe's ``load_data``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerasapps.core.errors import DataError
from kerasapps.core.recipe import DATA_DIR_ENV


def load_npz(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Load ``keys`` from an .npz file, with one-line errors for corrupt files and missing keys."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise DataError(f"{path} lacks arrays {', '.join(missing)} "
                                f"(it has {', '.join(archive.files) or 'none'})")
            return {key: archive[key] for key in keys}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path}: not a valid .npz file ({type(exc).__name__}: {exc})") from None


def tfds_arrays(name: str, split: str, local_hint: str) -> tuple[np.ndarray, np.ndarray]:
    """Download (or read from TFDS's cache) a supervised split as numpy arrays."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:  # pragma: no cover - tensorflow-datasets is a dependency
        raise DataError(f"tensorflow-datasets is not importable ({exc}); set ${DATA_DIR_ENV} instead") from None
    try:
        x, y = tfds.as_numpy(tfds.load(name, split=split, batch_size=-1, as_supervised=True))
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(f"TFDS could not load '{name}' split '{split}' ({first}); offline, TFDS retries for "
                        f"minutes before failing: set --data-dir or ${DATA_DIR_ENV} to a folder holding "
                        f"{local_hint}") from None
    return x, y


def _image_set(ctx, name: str, title: str, local: str, hint: str, shape: tuple[int, ...]) -> dict:
    """The train and test splits of a built-in image set as uint8 ``[N, *shape]`` images and int64 labels:
    ``local`` (an .npz with x_train, y_train, x_test, y_test) under the data directory, else TFDS ``name``."""
    if ctx.data_dir is not None:
        arrays = load_npz(ctx.require(local, hint), ["x_train", "y_train", "x_test", "y_test"])
        splits = {"train": (arrays["x_train"], arrays["y_train"]), "test": (arrays["x_test"], arrays["y_test"])}
    else:
        splits = {split: tfds_arrays(name, split, local) for split in ("train", "test")}
    out = {}
    for split, (x, y) in splits.items():
        x = np.asarray(x)
        if x.ndim == len(shape) + 2 and x.shape[-1] == 1 and len(shape) == 2:
            x = x[..., 0]  # TFDS's MNIST has a channel axis
        if x.shape[1:] != shape or x.dtype != np.uint8:
            raise DataError(f"{title} {split} images must be uint8 "
                            f"[N, {', '.join(map(str, shape))}]; got {x.dtype} {list(x.shape)}")
        out[split] = (x, np.asarray(y).reshape(-1).astype(np.int64))
    return out


def load_mnist(hp, ctx) -> dict:
    """Full MNIST as uint8 [N, 28, 28] images and integer labels: local npz, else TFDS."""
    return _image_set(ctx, "mnist", "MNIST", "mnist/mnist.npz",
                      "the keras.datasets.mnist layout: x_train, y_train, x_test, y_test", (28, 28))


def load_cifar10(hp, ctx) -> dict:
    """CIFAR-10 as uint8 [N, 32, 32, 3] images and integer labels: the local subset's npz, else TFDS (all of it)."""
    return _image_set(ctx, "cifar10", "CIFAR-10", "cifar10_subset/cifar10_subset.npz",
                      "keys x_train, y_train, x_test, y_test", (32, 32, 3))
