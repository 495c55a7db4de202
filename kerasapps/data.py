"""Local data directories, TFDS fallback, and deterministic ``tf.data`` pipelines.

Recipes load whole splits into memory as numpy arrays (every canon data set fits),
either from a data directory laid out like ``../shared/data`` (``--data-dir`` or
``$KERASAPPS_DATA_DIR``) or, when no directory is set, from TFDS with its normal
download. Training pipelines draw one seeded permutation per (stage, epoch), so a
resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kerasapps.errors import DataError

DATA_DIR_ENV = "KERASAPPS_DATA_DIR"
SMOKE_SIZES = {"train": 256, "validation": 64, "test": 128}


def resolve_data_dir(option: str | os.PathLike | None = None) -> Path | None:
    """The data directory from the option, else ``$KERASAPPS_DATA_DIR``, else None (use TFDS)."""
    value = option if option not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        origin = "--data-dir" if option not in (None, "") else f"${DATA_DIR_ENV}"
        raise DataError(f"data directory {path} (from {origin}) does not exist or is not a directory")
    return path


def require_file(data_dir: Path | None, relative: str, hint: str = "") -> Path:
    """``data_dir/relative``, or a DataError saying which file was looked for and how to provide it."""
    if data_dir is None:
        raise DataError(f"no data directory is set; set --data-dir or ${DATA_DIR_ENV} to a folder holding {relative}")
    path = data_dir / relative
    if not path.is_file():
        extra = f" ({hint})" if hint else ""
        raise DataError(f"data file not found: {path}; put {relative} under the data directory{extra}, "
                        f"or unset ${DATA_DIR_ENV} and drop --data-dir to download it with TFDS")
    return path


def load_npz(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Load ``keys`` from an .npz file, with one-line errors for corrupt files and missing keys."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise DataError(f"{path} lacks arrays {', '.join(missing)} (it has {', '.join(archive.files) or 'none'})")
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
                        f"minutes before failing: set --data-dir or ${DATA_DIR_ENV} to a folder holding {local_hint}") from None
    return x, y


# ----------------------------------------------------------------------------- splits

def length(arrays: Any) -> int:
    leaves = _leaves(arrays)
    if not leaves:
        raise DataError("a data split holds no arrays")
    sizes = {len(leaf) for leaf in leaves}
    if len(sizes) != 1:
        raise DataError(f"the arrays of a data split have different lengths: {sorted(sizes)}")
    return sizes.pop()


def take(arrays: Any, index) -> Any:
    """Index every array of a nested structure (tuple, list, dict) with ``index``."""
    if isinstance(arrays, Mapping):
        return {key: take(value, index) for key, value in arrays.items()}
    if isinstance(arrays, (tuple, list)):
        return type(arrays)(take(value, index) for value in arrays)
    return arrays[index]


def _leaves(arrays: Any) -> list:
    if isinstance(arrays, Mapping):
        return [leaf for value in arrays.values() for leaf in _leaves(value)]
    if isinstance(arrays, (tuple, list)):
        return [leaf for value in arrays for leaf in _leaves(value)]
    return [arrays]


def carve_validation(train, fraction: float, seed: int):
    """Split ``(x, y)`` into train and validation by a seeded permutation."""
    n = length(train)
    n_val = int(round(n * fraction))
    if n_val == 0:
        return train, None
    order = np.random.default_rng([seed, 7919]).permutation(n)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    return take(train, train_idx), take(train, val_idx)


def smoke_slice(split, name: str):
    return take(split, slice(0, min(SMOKE_SIZES.get(name, 128), length(split))))


# ----------------------------------------------------------------------------- pipelines

def steps_for(n: int, batch_size: int, steps_per_epoch: int | None) -> int:
    steps = math.ceil(n / batch_size)
    return min(steps, steps_per_epoch) if steps_per_epoch else steps


def epoch_order(n: int, seed: int, stage_index: int, epoch: int, limit: int) -> np.ndarray:
    """The example order of one epoch: a permutation seeded by (seed, stage, epoch)."""
    return np.random.default_rng([seed, stage_index, epoch]).permutation(n)[:limit].astype(np.int64)


def training_dataset(split, *, batch_size: int, seed: int, stage_index: int, first_epoch: int,
                     epochs: int, steps_per_epoch: int | None,
                     preprocess: Callable | None = None, augment: Callable | None = None):
    """Batches for epochs ``first_epoch..epochs-1``, each epoch in its own seeded order."""
    import tensorflow as tf

    x, y = split
    n = length(split)
    steps = steps_for(n, batch_size, steps_per_epoch)
    limit = min(n, steps * batch_size)
    orders = np.stack([epoch_order(n, seed, stage_index, e, limit) for e in range(first_epoch, epochs)])
    source = tf.nest.map_structure(tf.constant, (x, y))

    def gather(index):
        return tf.nest.map_structure(lambda a: tf.gather(a, index), source)

    ds = (tf.data.Dataset.from_tensor_slices(orders)
          .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
          .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
    if preprocess is not None:
        ds = ds.map(lambda bx, by: (preprocess(bx), by), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if augment is not None:
        ds = ds.map(lambda bx, by: (augment(bx), by), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE), steps


def evaluation_dataset(split, *, batch_size: int, preprocess: Callable | None = None, cache: bool = True):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(tuple(split)).batch(batch_size)
    if preprocess is not None:
        ds = ds.map(lambda bx, by: (preprocess(bx), by), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE)
