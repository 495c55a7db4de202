"""Network diagnostics from CS231n's "babysitting the learning process", as functions the CLI prints.

* :func:`overfit_check`: can the recipe drive training accuracy to 100% (or the loss to ~0)
  on a small slice of its training data? If not, one line with the likely cause.
* :func:`lr_range_test`: the learning rate grows exponentially over a few hundred steps
  (Smith 2017, "Cyclical Learning Rates"); the loss against lr suggests a rate (a tenth of the
  rate at the lowest smoothed loss) and shows where training diverges.

Both run the recipe's first stage through the stage runner
(:func:`kerasapps.training.stage.run_stage`) without augmentation or the practice callbacks
(schedules, early stopping, max-norm). Neither reads a recipe's test split.
The initialisation experiment (``diagnose init``) is :mod:`kerasapps.tools.initialization`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasapps.core.errors import UsageError
from kerasapps.core.recipe import DataContext
from kerasapps.core.schema import LR_RANGE, OVERFIT_EXAMPLES, OVERFIT_MAX_EPOCHS
from kerasapps.data.pipelines import steps_for
from kerasapps.data.sources import load_splits
from kerasapps.data.splits import length
from kerasapps.training.curves import pyplot, save_figure
from kerasapps.training.stage import StagePlan, run_stage, seed_everything
from kerasapps.training.train import as_recipe

log = logging.getLogger("kerasapps")


def first_stage_plan(recipe, overrides, data_dir, *, data=None, examples: int | None = None,
                     batch_size: int | None = None, **fields) -> StagePlan:
    """The recipe's first stage on (the first ``examples`` of) its training split, seeded, ready to run:
    no validation or test split, no augmentation, no practice callbacks."""
    recipe = as_recipe(recipe)
    hp = recipe.resolve(overrides=overrides)
    if examples is not None and examples < 1:
        raise UsageError(f"--examples must be a positive integer; got {examples}")
    seed_everything(recipe.stages[0].hparams(hp))
    splits = load_splits(recipe, hp, DataContext.from_option(data_dir, source=data), test=False)
    splits.pop("validation", None)
    plan = StagePlan.for_stage(recipe, 0, hp, splits, examples=examples, augment=False, practice_callbacks=False,
                               **fields)
    n = length(plan.data["train"])
    batch = min(batch_size or plan.hp.batch_size, n)
    return dataclasses.replace(plan, batch_size=batch, steps_per_epoch=steps_for(n, batch, None))


# ----------------------------------------------------------------------------- overfit check

def overfit_check(recipe, *, examples: int = OVERFIT_EXAMPLES, max_epochs: int = OVERFIT_MAX_EPOCHS, overrides=(),
                  data_dir=None, data=None, batch_size: int | None = None,
                  loss_target: float = 0.01) -> dict[str, Any]:
    """Train on the first ``examples`` training examples until accuracy 1.0 (or loss < ``loss_target``).

    Returns ``passed``, ``epochs`` (to reach it, or run), ``seconds``, the first and final loss and
    accuracy, and ``cause`` (one line) when it fails. Augmentation is not applied.
    """
    if max_epochs < 1:
        raise UsageError(f"--max-epochs must be a positive integer; got {max_epochs}")
    plan = first_stage_plan(recipe, overrides, data_dir, data=data, examples=examples, batch_size=batch_size,
                            epochs=max_epochs)
    history: list[dict] = []

    class _StopWhenFit(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            history.append(logs)
            if not math.isfinite(logs.get("loss", 0.0)) or _fitted(logs, loss_target):
                self.model.stop_training = True

    fitted = run_stage(plan, callbacks=[_StopWhenFit()])
    hp = plan.hp
    first, last = history[0], history[-1]
    passed = _fitted(last, loss_target)
    result = {"recipe": plan.recipe.name, "examples": length(plan.data["train"]), "batch_size": plan.batch_size,
              "learning_rate": hp.learning_rate, "passed": passed, "epochs": len(history), "max_epochs": max_epochs,
              "seconds": round(fitted.seconds, 2),
              "first_loss": first.get("loss"), "final_loss": last.get("loss"),
              "first_accuracy": first.get("accuracy"), "final_accuracy": last.get("accuracy"),
              "loss_curve": [h.get("loss") for h in history]}
    result["cause"] = None if passed else _overfit_cause(result, hp)
    return result


def _fitted(logs: dict, loss_target: float) -> bool:
    if "accuracy" in logs and logs["accuracy"] >= 1.0:
        return True
    loss = logs.get("loss")
    return loss is not None and math.isfinite(loss) and loss < loss_target


def _overfit_cause(result: dict, hp) -> str:
    first, final = result["first_loss"], result["final_loss"]
    if final is None or not math.isfinite(final):
        return (f"the loss became NaN/inf: learning_rate={hp.learning_rate:g} is probably too high "
                "(try 10x lower, or clipnorm)")
    if first is not None and final > 0.97 * first:
        return (f"the loss did not fall ({first:.4g} -> {final:.4g}): learning_rate={hp.learning_rate:g} is "
                "probably too low, or gradients do not reach the weights (frozen layers, a bug in the model)")
    return (f"the loss fell ({first:.4g} -> {final:.4g}) but not to zero in {result['epochs']} epochs: train "
            "longer or raise the learning rate; else the model is too small or regularisation "
            "(dropout, l1/l2, max_norm) too strong")


# ----------------------------------------------------------------------------- learning-rate range test

def lr_range_test(recipe, *, min_lr: float = LR_RANGE["min_lr"], max_lr: float = LR_RANGE["max_lr"],
                  steps: int = LR_RANGE["steps"], overrides=(), data_dir=None, data=None,
                  batch_size: int | None = None, smoothing: float = 0.9, diverge_factor: float = 4.0) -> dict[str, Any]:
    """Train with the lr growing from ``min_lr`` to ``max_lr`` exponentially over ``steps`` batches.

    Records the loss of each batch, an exponential moving average of it (``smoothing``) and stops
    once the smoothed loss exceeds ``diverge_factor`` times its minimum or is not finite: that lr is
    the ``divergence_lr`` (None when it never diverged). ``suggested_lr`` is a tenth of the lr at the
    lowest smoothed loss. Uses the recipe's optimizer on its training split.
    """
    if not (0 < min_lr < max_lr):
        raise UsageError(f"need 0 < --min-lr < --max-lr; got {min_lr:g} and {max_lr:g}")
    if steps < 10:
        raise UsageError(f"--steps must be at least 10; got {steps}")
    plan = first_stage_plan(recipe, overrides, data_dir, data=data, batch_size=batch_size, expect_divergence=True)
    hp = plan.hp.replace(learning_rate=min_lr, lr_schedule="constant", warmup_epochs=0.0)
    plan = dataclasses.replace(plan, hp=hp, epochs=math.ceil(steps / plan.steps_per_epoch))
    lrs = min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))
    test = _RangeTest(lrs, smoothing, diverge_factor)
    run_stage(plan, callbacks=[test])
    losses, smoothed, divergence = test.losses, test.smoothed, test.divergence
    finite = [(v, i) for i, v in enumerate(smoothed) if math.isfinite(v)]
    if not finite:
        raise UsageError(f"the loss was not finite even at lr {min_lr:g}; lower --min-lr or check the data")
    best_value, best_index = min(finite)
    return {"recipe": plan.recipe.name, "optimizer": hp.optimizer, "batch_size": plan.batch_size, "min_lr": min_lr,
            "max_lr": max_lr, "steps": len(losses), "min_loss_lr": float(lrs[best_index]),
            "min_smoothed_loss": best_value, "suggested_lr": float(lrs[best_index]) / 10.0,
            "divergence_lr": divergence, "lr": [float(v) for v in lrs[:len(losses)]],
            "loss": losses, "smoothed_loss": smoothed}


class _RangeTest(keras.callbacks.Callback):
    """Sets each batch's rate from ``lrs``, records that batch's loss, and stops after the last rate or
    at divergence (see :func:`lr_range_test`)."""

    def __init__(self, lrs, smoothing: float, diverge_factor: float):
        super().__init__()
        self.lrs, self.smoothing, self.diverge_factor = lrs, smoothing, diverge_factor
        self.losses, self.smoothed, self.divergence = [], [], None
        self._average, self._best = 0.0, math.inf

    def on_train_batch_begin(self, batch, logs=None):
        self.model.reset_metrics()  # the batch's own loss, not the epoch's running mean (as train_on_batch)
        self.model.optimizer.learning_rate.assign(float(self.lrs[len(self.losses)]))

    def on_train_batch_end(self, batch, logs=None):
        step, loss = len(self.losses), float((logs or {})["loss"])
        self.losses.append(loss)
        if not math.isfinite(loss):
            self.smoothed.append(math.nan)
            self._stop(step)
            return
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        value = self._average / (1 - self.smoothing ** (step + 1))
        self.smoothed.append(value)
        self._best = min(self._best, value)
        if step > 5 and value > self.diverge_factor * self._best:
            self._stop(step)
        elif step + 1 == len(self.lrs):
            self.model.stop_training = True

    def _stop(self, step):
        self.divergence = float(self.lrs[step])
        self.model.stop_training = True


def plot_lr_range(result: dict[str, Any], path) -> Path:
    """PNG of loss (raw and smoothed) against lr on a log axis, with the suggestion and divergence marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result["lr"], result["loss"], color="0.7", lw=0.8, label="loss per batch")
    ax.plot(result["lr"], result["smoothed_loss"], color="tab:blue", label="smoothed")
    ax.axvline(result["suggested_lr"], color="tab:green", ls="--", label=f"suggested {result['suggested_lr']:.2g}")
    if result["divergence_lr"] is not None:
        ax.axvline(result["divergence_lr"], color="tab:red", ls=":", label=f"diverges {result['divergence_lr']:.2g}")
    finite = [v for v in result["smoothed_loss"] if math.isfinite(v)]
    if finite:
        ax.set_ylim(0, min(max(finite), 4 * min(finite)) * 1.1 + 1e-9)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"{result['recipe']}: learning-rate range test ({result['optimizer']})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, plt, path)
