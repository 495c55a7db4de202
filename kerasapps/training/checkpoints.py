"""Saving and loading models with their random-generator state, and the per-epoch checkpoint callback.

``keras.saving.load_model`` restores weights and optimizer state but not the states of the
layers' seed generators, so :func:`save_model` keeps them beside the model (``.rng.npz``) and
:func:`load_model` puts them back: a resumed run draws the dropout masks an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import keras
import numpy as np

from kerasapps.training import rundir
from kerasapps.training.features import whole_model


def seed_generators(model):
    """(key, generator) for every random seed generator in ``model``, keyed by layer-name path.

    ``keras.saving.load_model`` does not restore their states, so without this a resumed
    run would draw different dropout masks from an uninterrupted one.
    """
    stack = [(model.name, model)]
    while stack:
        key, layer = stack.pop()
        for i, generator in enumerate(getattr(layer, "_seed_generators", None) or []):
            yield f"{key}#{i}", generator
        children = getattr(layer, "_layers", None) or []
        stack.extend((f"{key}/{child.name}", child) for child in reversed(children))


def save_model(model, path: Path) -> None:
    """Save a ``.keras`` model (with optimizer state) and its RNG states, atomically."""
    path = Path(path)
    with rundir.atomic_path(path.with_suffix(".rng.npz")) as tmp:
        np.savez(tmp, **{key: np.asarray(g.state.numpy()) for key, g in seed_generators(model)})
    with rundir.atomic_path(path) as tmp:
        model.save(tmp)


def load_model(path: Path, compile: bool = True, custom_objects=None):
    """A model saved by :func:`save_model`; ``custom_objects`` names what the compiled state needs
    beyond the registered layers (a recipe's metric functions: :func:`recipe_objects`)."""
    import kerasapps.training.registered  # noqa: F401  (registers every custom object for deserialisation)

    model = keras.saving.load_model(path, compile=compile, custom_objects=custom_objects)
    rng = Path(path).with_suffix(".rng.npz")
    if rng.is_file():
        with np.load(rng) as saved:
            for key, generator in seed_generators(model):
                if key in saved.files:
                    generator.state.assign(saved[key])
    return model


def remove_model(path: Path) -> None:
    for file in (Path(path), Path(path).with_suffix(".rng.npz")):
        with contextlib.suppress(FileNotFoundError):
            file.unlink()


def recipe_objects(recipe) -> dict:
    """The plain functions among ``recipe``'s loss and metrics, by name: what loading its compiled model needs."""
    return {item.__name__: item for item in (recipe.loss, *recipe.metrics)
            if callable(item) and hasattr(item, "__name__") and not isinstance(item, type)}


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves model + optimizer + RNG state after each finite epoch and records progress in ``state.json``."""

    def __init__(self, run_dir: Path, stage: str, state: dict, keep: int):
        super().__init__()
        self.run_dir, self.stage, self.state, self.keep = run_dir, stage, state, keep

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            # never overwrite the last good checkpoint with a diverged model: a non-finite batch loss
            # (what stops the NaN guard) leaves the epoch's mean loss non-finite too
            return
        folder = self.run_dir / "checkpoints" / self.stage
        save_model(whole_model(self.model), folder / f"epoch-{epoch + 1:03d}.keras")  # not just a cached head
        self.state["stages"][self.stage]["completed_epochs"] = epoch + 1
        rundir.write_json(self.run_dir / rundir.STATE, self.state)
        for old in sorted(folder.glob("epoch-*.keras"))[:-self.keep]:
            remove_model(old)


def epoch_checkpoint(run_dir: Path, stage: str, epoch: int) -> Path:
    """Where the checkpoint written after ``epoch`` (1-based) of ``stage`` lives."""
    return Path(run_dir) / "checkpoints" / stage / f"epoch-{epoch:03d}.keras"


def newest_checkpoint(run_dir: Path, stage: str, at_most: int) -> tuple[Path, int] | None:
    """(path, epoch) of the newest checkpoint of ``stage`` written after at most ``at_most`` epochs, or None."""
    for epoch in range(at_most, 0, -1):
        path = epoch_checkpoint(run_dir, stage, epoch)
        if path.is_file():
            return path, epoch
    return None
