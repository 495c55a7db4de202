"""In-memory splits: ``(x, y)`` pairs of numpy arrays (or nested tuples/dicts of them, like the
model's inputs), the validation split carved from training data, and each stage's selection.

Built-in sets load whole into memory (every one fits); a ``--data`` source keeps its file inputs as
:class:`kerasapps.data.files.Examples`, which index like arrays. ``load_splits`` in
:mod:`kerasapps.data.sources` is the one way every command gets a recipe's data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from kerasapps.core.errors import DataError

SMOKE_SIZES = {"train": 256, "validation": 64, "test": 128}


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


def split_off(split, fraction: float, seed: int, salt: int):
    """``(x, y)`` as (the rest, ``fraction`` of the examples held out), by a permutation seeded by (seed, salt);
    (split, None) when the fraction holds out nothing."""
    n = length(split)
    held = int(round(n * fraction))
    if held == 0:
        return split, None
    order = np.random.default_rng([seed, salt]).permutation(n)
    held_idx, kept_idx = np.sort(order[:held]), np.sort(order[held:])
    return take(split, kept_idx), take(split, held_idx)


def carve_validation(train, fraction: float, seed: int):
    """Split ``(x, y)`` into train and validation by a seeded permutation."""
    return split_off(train, fraction, seed, salt=7919)


def smoke_slice(split, name: str):
    return take(split, slice(0, min(SMOKE_SIZES.get(name, 128), length(split))))


def stage_splits(stage, splits: Mapping[str, Any]) -> dict[str, Any]:
    """The splits as ``stage`` sees them (its ``select`` applied); a stage that selects nothing is an error."""
    out = {}
    for name, split in splits.items():
        if split is not None:
            out[name] = stage.select(split) if stage.select else split
            if length(out[name]) == 0:
                raise DataError(f"stage '{stage.name}' selects no examples from the {name} split")
    return out


def class_names(labels: Mapping[str, Iterable], where, counted: str, hint: str = "") -> list[str]:
    """The sorted class names in the training labels of ``labels`` (split -> label strings); one line when they
    are fewer than two (``counted`` says what was counted) or when another split has a class training never saw."""
    names = sorted({str(v) for v in labels["train"]})
    if len(names) < 2:
        raise DataError(f"--data {where} has {len(names)} {counted} ({', '.join(names[:5]) or 'none'}); a classifier "
                        f"needs at least two{hint}")
    for split, values in labels.items():
        unseen = sorted({str(v) for v in values} - set(names))
        if unseen:
            raise DataError(f"--data {where}: the {split} split has classes training never saw: "
                            f"{', '.join(unseen[:5])}")
    return names
