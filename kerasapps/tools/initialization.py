"""``kerasapps diagnose init``: the initialisation experiment of Glorot & Bengio (2010) and CS231n.

:func:`init_statistics` forwards random normal input (10,000 x 100) through a deep MLP and reports
per-layer activation mean, std and saturated/dead fractions, showing tanh activations collapsing
with small init, sigmoid saturating with N(0, 1) init and ReLU keeping its spread with He init
(He et al. 2015). Pure NumPy: neither TensorFlow nor Keras is imported.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from kerasapps.core.errors import ConfigError, UsageError
from kerasapps.core.schema import INIT_ACTIVATIONS, INIT_EXPERIMENT, INIT_SCHEMES

SATURATION = 0.01  # sigmoid within 0.01 of 0 or 1, tanh within 0.01 of -1 or 1


def _init_std(scheme: str, fan_in: int, fan_out: int) -> float:
    if scheme == "normal":
        return 1.0  # N(0, 1): too large for deep tanh/sigmoid nets
    if scheme == "small":
        return 0.01  # N(0, 0.01^2): "small random numbers", which vanish in deep nets
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


def init_statistics(activation: str = INIT_EXPERIMENT["activation"], init: str = INIT_EXPERIMENT["init"], *,
                    layers: int = INIT_EXPERIMENT["layers"], units: int = INIT_EXPERIMENT["units"],
                    examples: int = INIT_EXPERIMENT["examples"], seed: int = INIT_EXPERIMENT["seed"],
                    keep_activations: bool = False) -> dict[str, Any]:
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


def init_histogram_figure(stats: dict[str, Any], plt):
    """The figure of :func:`plot_init_histograms`: one histogram per layer on one shared value axis, each
    axis labelled (the activation's output; the fraction of the examples x units values in each bin), under a
    title naming the experiment."""
    acts = stats["activations"]
    fig, axes = plt.subplots(1, len(acts), figsize=(2.4 * len(acts), 2.9), squeeze=False, sharey=True,
                             layout="constrained")
    lo = min(float(a.min()) for a in acts)
    hi = max(float(a.max()) for a in acts)
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    for ax, act, row in zip(axes[0], acts, stats["layers"]):
        values = act.ravel()
        ax.hist(values, bins=50, range=(lo, hi), weights=np.full(values.size, 1.0 / values.size), color="tab:blue")
        ax.set_title(f"layer {row['layer']}\nmean {row['mean']:.3g} std {row['std']:.3g}", fontsize=8)
        ax.set_xlabel(f"{stats['activation']} output", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(f"fraction of the {stats['examples']:,} x {stats['units']} values", fontsize=8)
    fig.suptitle(f"Activations layer by layer: {stats['activation']}, {stats['init']} init, "
                 f"input N(0, 1) [{stats['examples']:,} x {stats['units']}]", fontsize=9)
    return fig


def plot_init_histograms(stats: dict[str, Any], path) -> Path:
    """A PNG with one activation histogram per layer (needs ``keep_activations=True``)."""
    from kerasapps.training.curves import pyplot, save_figure

    plt = pyplot()
    return save_figure(init_histogram_figure(stats, plt), plt, path)
