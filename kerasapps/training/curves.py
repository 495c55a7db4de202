"""Figures: ``training_curves.png`` of a run, and the matplotlib set-up the diagnostics share."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from kerasapps.training.rundir import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, plt, path, dpi: int = 90) -> Path:
    """Write ``fig`` to ``path`` (atomically, creating folders) and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def plot_curves(run_dir: Path, stage_names: list[str]) -> Path | None:
    """``training_curves.png``: loss and each metric against epoch, one column per stage."""
    plt = pyplot()
    tables = []
    for name in stage_names:
        path = run_dir / "logs" / f"{name}.csv"
        if path.is_file():
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle))
            if rows:
                tables.append((name, rows))
    if not tables:
        return None
    metric_names = [k for k in tables[0][1][0]
                    if k not in ("epoch", "learning_rate", "lr") and not k.startswith("val_")]
    fig, axes = plt.subplots(len(metric_names), len(tables), figsize=(4.5 * len(tables), 3 * len(metric_names)),
                             squeeze=False)
    for col, (stage, rows) in enumerate(tables):
        epochs = [int(float(r["epoch"])) + 1 for r in rows]
        for row, metric in enumerate(metric_names):
            ax = axes[row][col]
            for key, style in ((metric, "-o"), (f"val_{metric}", "--s")):
                if key in rows[0]:
                    ax.plot(epochs, [float(r[key]) if r[key] not in ("", "NA", None) else np.nan for r in rows], style,
                            label=key, ms=3)
            ax.set_title(f"{stage}: {metric}")
            ax.set_xlabel("epoch")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, plt, run_dir / "training_curves.png")
