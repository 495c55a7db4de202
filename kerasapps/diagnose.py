"""Network diagnostics from the notes' tuning workflow, as functions the CLI prints.

* :func:`init_statistics`: the notes' initialisation experiment -- a deep MLP on random
  normal input (10,000 x 100), per-layer activation mean, std and saturated/dead fractions,
  showing tanh activations collapsing with small init, sigmoid saturating with N(0, 1)
  init and ReLU keeping its spread with He init. Pure numpy.
* :func:`overfit_check`: can the recipe drive training accuracy to 100% (or the loss to ~0)
  on a small slice of its training data? If not, one line with the likely cause.
* :func:`lr_range_test`: the learning rate grows exponentially over a few hundred steps;
  the loss against lr suggests a rate (a tenth of the rate at the lowest smoothed loss)
  and shows where training diverges.

None of them reads a recipe's test split.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from kerasapps.errors import ConfigError, UsageError

log = logging.getLogger("kerasapps")

INIT_ACTIVATIONS = ("sigmoid", "tanh", "relu")
INIT_SCHEMES = ("normal", "small", "glorot", "he")
SATURATION = 0.01  # sigmoid within 0.01 of 0 or 1, tanh within 0.01 of -1 or 1


# ----------------------------------------------------------------------------- initialisation

def _init_std(scheme: str, fan_in: int, fan_out: int) -> float:
    if scheme == "normal":
        return 1.0  # N(0, 1): the notes' bad example
    if scheme == "small":
        return 0.01  # N(0, 0.01^2): the notes' "small random numbers"
    if scheme == "glorot":
        return math.sqrt(2.0 / (fan_in + fan_out))  # Glorot & Bengio 2010 (normal form)
    if scheme == "he":
        return math.sqrt(2.0 / fan_in)  # He et al. 2015
    raise ConfigError(f"--init must be one of {', '.join(INIT_SCHEMES)}; got {scheme!r}")


def _activate(name: str, z: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    raise ConfigError(f"--activation must be one of {', '.join(INIT_ACTIVATIONS)}; got {name!r}")


def init_statistics(activation: str = "tanh", init: str = "small", *, layers: int = 5, units: int = 100,
                    examples: int = 10_000, seed: int = 0, keep_activations: bool = False) -> dict[str, Any]:
    """Forward random N(0, 1) input [examples, units] through ``layers`` Dense+activation layers.

    Returns ``{"activation", "init", "layers": [{"layer", "mean", "std", "saturated_fraction",
    "dead_fraction", "zero_fraction"}, ...]}`` in layer order. ``saturated_fraction`` counts
    sigmoid/tanh outputs within 0.01 of an asymptote (0 for ReLU); ``dead_fraction`` counts
    units that output 0 for every example (ReLU), ``zero_fraction`` single activations equal to 0.
    With ``keep_activations`` the arrays are returned under ``"activations"`` (for the histogram).
    """
    if activation not in INIT_ACTIVATIONS:
        raise ConfigError(f"--activation must be one of {', '.join(INIT_ACTIVATIONS)}; got {activation!r}")
    if init not in INIT_SCHEMES:
        raise ConfigError(f"--init must be one of {', '.join(INIT_SCHEMES)}; got {init!r}")
    for name, value in (("layers", layers), ("units", units), ("examples", examples)):
        if int(value) < 1:
            raise UsageError(f"--{name} must be a positive integer; got {value}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((examples, units))
    rows, kept = [], []
    for index in range(1, layers + 1):
        w = rng.standard_normal((x.shape[1], units)) * _init_std(init, x.shape[1], units)
        x = _activate(activation, x @ w)
        if activation == "sigmoid":
            saturated = float(np.mean((x < SATURATION) | (x > 1 - SATURATION)))
        elif activation == "tanh":
            saturated = float(np.mean(np.abs(x) > 1 - SATURATION))
        else:
            saturated = 0.0
        rows.append({"layer": index, "mean": float(x.mean()), "std": float(x.std()),
                     "saturated_fraction": saturated,
                     "dead_fraction": float(np.mean(np.all(x == 0.0, axis=0))),
                     "zero_fraction": float(np.mean(x == 0.0))})
        if keep_activations:
            kept.append(x.astype(np.float32))
    out = {"activation": activation, "init": init, "units": units, "examples": examples, "layers": rows}
    if keep_activations:
        out["activations"] = kept
    return out


def plot_init_histograms(stats: dict[str, Any], path) -> Path:
    """A PNG with one activation histogram per layer (needs ``keep_activations=True``)."""
    plt = pyplot()
    acts = stats["activations"]
    fig, axes = plt.subplots(1, len(acts), figsize=(2.4 * len(acts), 2.6), squeeze=False, sharey=True)
    lo = min(float(a.min()) for a in acts)
    hi = max(float(a.max()) for a in acts)
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    for ax, act, row in zip(axes[0], acts, stats["layers"]):
        ax.hist(act.ravel(), bins=50, range=(lo, hi), density=False, color="tab:blue")
        ax.set_title(f"layer {row['layer']}\nmean {row['mean']:.3g} std {row['std']:.3g}", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{stats['activation']} activations, {stats['init']} init", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, plt, path)


# ----------------------------------------------------------------------------- shared helpers

def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, plt, path, dpi: int = 90) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def training_slice(recipe, hp, ctx, examples: int | None = None):
    """(the first stage's training examples, the data's meta): the validation split carved off, never the test
    split."""
    from kerasapps import data as D
    from kerasapps.recipe import meta_of

    splits = recipe.load_data(hp, ctx)
    if "train" not in splits:
        raise UsageError(f"recipe {recipe.name!r} returned no 'train' split")
    train = splits["train"]
    if splits.get("validation") is None:
        train, _ = D.carve_validation(train, hp.validation_split, hp.seed)
    stage = recipe.stages[0]
    if stage.select:
        train = stage.select(train)
    n = D.length(train)
    if examples is not None:
        if examples < 1:
            raise UsageError(f"--examples must be a positive integer; got {examples}")
        train = D.take(train, slice(0, min(examples, n)))
    return train, meta_of(splits)


def _prepare(recipe, overrides, data_dir, examples=None):
    """(recipe, first-stage hp, its training examples, a fresh model for that stage, the compile function)."""
    from kerasapps import data as D
    from kerasapps.practice import apply_weight_penalties
    from kerasapps.recipe import DataContext
    from kerasapps.training import _compile, as_recipe, freeze, seed_everything

    recipe = as_recipe(recipe)
    hp = recipe.resolve(overrides=overrides)
    stage = recipe.stages[0]
    hp = stage.hparams(hp)
    ctx = DataContext(D.resolve_data_dir(data_dir))
    seed_everything(hp)
    train, meta = training_slice(recipe, hp, ctx, examples)  # first: the model may be built from the data's meta
    model = recipe.build(hp, meta)
    freeze(model, stage.freeze)
    apply_weight_penalties(model, hp)
    return recipe, hp, train, model, _compile


# ----------------------------------------------------------------------------- overfit check

def overfit_check(recipe, *, examples: int = 100, max_epochs: int = 200, overrides=(), data_dir=None,
                  batch_size: int | None = None, loss_target: float = 0.01) -> dict[str, Any]:
    """Train on the first ``examples`` training examples until accuracy 1.0 (or loss < ``loss_target``).

    Returns ``passed``, ``epochs`` (to reach it, or run), ``seconds``, the first and final loss and
    accuracy, and ``cause`` (one line) when it fails. Augmentation is not applied.
    """
    import time

    import keras

    from kerasapps import data as D

    if max_epochs < 1:
        raise UsageError(f"--max-epochs must be a positive integer; got {max_epochs}")
    recipe, hp, train, model, compile_ = _prepare(recipe, overrides, data_dir, examples)
    n = D.length(train)
    batch = min(batch_size or hp.batch_size, n)
    steps = D.steps_for(n, batch, None)
    compile_(model, recipe, hp, steps, max_epochs)
    ds, _ = D.training_dataset(train, batch_size=batch, seed=hp.seed, stage_index=0, first_epoch=0,
                               epochs=max_epochs, steps_per_epoch=None, preprocess=recipe.preprocess)
    history: list[dict] = []

    class _StopWhenFit(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            history.append(logs)
            if not math.isfinite(logs.get("loss", 0.0)) or _fitted(logs, loss_target):
                self.model.stop_training = True

    started = time.perf_counter()
    model.fit(ds, epochs=max_epochs, steps_per_epoch=steps, callbacks=[_StopWhenFit()], shuffle=False,
              verbose=0)
    seconds = time.perf_counter() - started
    first, last = history[0], history[-1]
    passed = _fitted(last, loss_target)
    result = {"recipe": recipe.name, "examples": n, "batch_size": batch, "learning_rate": hp.learning_rate,
              "passed": passed, "epochs": len(history), "max_epochs": max_epochs, "seconds": round(seconds, 2),
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

def lr_range_test(recipe, *, min_lr: float = 1e-6, max_lr: float = 1.0, steps: int = 200, overrides=(),
                  data_dir=None, batch_size: int | None = None, smoothing: float = 0.9,
                  diverge_factor: float = 4.0) -> dict[str, Any]:
    """Train with the lr growing from ``min_lr`` to ``max_lr`` exponentially over ``steps`` batches.

    Records the loss of each batch, an exponential moving average of it (``smoothing``) and stops
    once the smoothed loss exceeds ``diverge_factor`` times its minimum or is not finite: that lr is
    the ``divergence_lr`` (None when it never diverged). ``suggested_lr`` is a tenth of the lr at the
    lowest smoothed loss. Uses the recipe's optimizer on its training split.
    """
    from kerasapps import data as D

    if not (0 < min_lr < max_lr):
        raise UsageError(f"need 0 < --min-lr < --max-lr; got {min_lr:g} and {max_lr:g}")
    if steps < 10:
        raise UsageError(f"--steps must be at least 10; got {steps}")
    recipe, hp, train, model, compile_ = _prepare(recipe, overrides, data_dir)
    hp = hp.replace(learning_rate=min_lr, lr_schedule="constant", warmup_epochs=0.0)
    n = D.length(train)
    batch = min(batch_size or hp.batch_size, n)
    per_epoch = D.steps_for(n, batch, None)
    epochs = math.ceil(steps / per_epoch)
    compile_(model, recipe, hp, steps, 1)
    ds, _ = D.training_dataset(train, batch_size=batch, seed=hp.seed, stage_index=0, first_epoch=0,
                               epochs=epochs, steps_per_epoch=None, preprocess=recipe.preprocess)
    lrs = min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))
    losses, smoothed, avg, best, divergence = [], [], 0.0, math.inf, None
    for step, (x, y) in enumerate(ds.take(steps)):
        model.optimizer.learning_rate.assign(float(lrs[step]))
        loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
        losses.append(loss)
        if not math.isfinite(loss):
            smoothed.append(math.nan)
            divergence = float(lrs[step])
            break
        avg = smoothing * avg + (1 - smoothing) * loss
        value = avg / (1 - smoothing ** (step + 1))
        smoothed.append(value)
        best = min(best, value)
        if step > 5 and value > diverge_factor * best:
            divergence = float(lrs[step])
            break
    finite = [(v, i) for i, v in enumerate(smoothed) if math.isfinite(v)]
    if not finite:
        raise UsageError(f"the loss was not finite even at lr {min_lr:g}; lower --min-lr or check the data")
    best_value, best_index = min(finite)
    return {"recipe": recipe.name, "optimizer": hp.optimizer, "batch_size": batch, "min_lr": min_lr,
            "max_lr": max_lr, "steps": len(losses), "min_loss_lr": float(lrs[best_index]),
            "min_smoothed_loss": best_value, "suggested_lr": float(lrs[best_index]) / 10.0,
            "divergence_lr": divergence, "lr": [float(v) for v in lrs[:len(losses)]],
            "loss": losses, "smoothed_loss": smoothed}


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
