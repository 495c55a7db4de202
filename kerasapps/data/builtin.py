"""Reading the built-in data sets: ``.npz`` files from a data directory, or TFDS with its normal download.

A data directory is laid out like ``../shared/data`` (``--data-dir`` or ``$KERASAPPS_DATA_DIR``; see
:class:`kerasapps.core.recipe.DataContext`). Only when none is set does a recipe call TFDS.
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
