"""In-memory splits: ``(x, y)`` pairs of numpy arrays (or nested tuples/dicts of them, like the
model's inputs), the validation split carved from training data, and each stage's selection.

Recipes load whole splits into memory (every built-in data set fits). :func:`load_splits` is the one
way every command gets a recipe's data: ``train`` and ``evaluate`` with the test split, ``tune``
and ``diagnose`` without it (they never read it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kerasapps.core.errors import DataError
from kerasapps.core.recipe import Splits, meta_of

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


def load_splits(recipe, hp, ctx, *, test: bool = True) -> Splits:
    """The recipe's splits and their meta, with a validation split carved from train when it has none.

    ``test=False`` leaves the test split out (tuning and diagnostics never read it). With
    ``ctx.smoke`` every split is cut to a small slice (:data:`SMOKE_SIZES`).
    """
    loaded = recipe.load_data(hp, ctx)
    for required in ("train", "test") if test else ("train",):
        if required not in loaded:
            raise DataError(f"recipe {recipe.name!r} returned no '{required}' split (got {', '.join(loaded)})")
    splits = Splits({name: split for name, split in loaded.items() if test or name != "test"}, meta=meta_of(loaded))
    if splits.get("validation") is None:
        splits["train"], splits["validation"] = carve_validation(splits["train"], hp.validation_split, hp.seed)
    if ctx.smoke:
        splits = Splits({k: (smoke_slice(v, k) if v is not None else None) for k, v in splits.items()},
                        meta=splits.meta)
    return splits


def stage_splits(stage, splits: Mapping[str, Any]) -> dict[str, Any]:
    """The splits as ``stage`` sees them (its ``select`` applied); a stage that selects nothing is an error."""
    out = {}
    for name, split in splits.items():
        if split is not None:
            out[name] = stage.select(split) if stage.select else split
            if length(out[name]) == 0:
                raise DataError(f"stage '{stage.name}' selects no examples from the {name} split")
    return out
