"""The pictures ``kerasapps evaluate`` draws (matplotlib, no display needed): the confusion matrix and a gallery
of the worst mistakes. Each is written whole, then renamed into place."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerasapps.training.rundir import atomic_path

MAX_ANNOTATED = 30  # classes up to which every cell of the matrix shows its count
MAX_PICTURED = 100  # classes up to which the matrix is drawn (its numbers are in evaluation-SPLIT.json)
TEXT_CHARACTERS = 110  # a text mistake shows the start of its first line


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")  # not pyplot: no global state, no display


def _save(figure, path: Path) -> Path:
    path = Path(path)
    with atomic_path(path) as partial:
        figure.savefig(partial, format="png", bbox_inches="tight")
    return path


def confusion_matrix_png(matrix: Sequence[Sequence[int]], names: Sequence[str], path: Path, title: str) -> Path:
    """Counts in each cell, shaded by the row's share (the true class's recall on the diagonal); class names on
    both axes."""
    matrix = np.asarray(matrix)
    k = len(names)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    side = min(max(4.0, 0.55 * k + 2.5), 30.0)
    figure = _figure(side + 1.2, side)
    axes = figure.add_subplot()
    shown = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04, label="share of the true class's examples")
    axes.set_xticks(range(k), [str(n) for n in names], rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    axes.set_yticks(range(k), [str(n) for n in names])
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    if k <= MAX_ANNOTATED:
        for t in range(k):
            for p in range(k):
                axes.text(p, t, str(matrix[t, p]), ha="center", va="center", fontsize=9,
                          color="white" if shares[t, p] > 0.5 else "black")
    return _save(figure, path)


def mistakes_png(items: Sequence[dict], path: Path, title: str) -> Path:
    """A gallery of mistakes, each ``{"true", "predicted", "probability", "source"}`` with ``image`` (uint8
    [H, W(, C)]: a grid of thumbnails) or ``text`` (a list of the start of each text's first line)."""
    if items and "image" in items[0]:
        columns = min(4, len(items))
        rows = -(-len(items) // columns)
        figure = _figure(2.6 * columns, 2.9 * rows + 0.4)
        for i, item in enumerate(items):
            axes = figure.add_subplot(rows, columns, i + 1)
            image = np.asarray(item["image"])
            axes.imshow(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image,
                        cmap="gray" if image.ndim == 2 or image.shape[-1] == 1 else None, vmin=0, vmax=255)
            axes.set_title(f"true {item['true']}\nsaid {item['predicted']} ({item['probability']:.2f})", fontsize=9)
            axes.set_xticks([])
            axes.set_yticks([])
        figure.suptitle(title)
        return _save(figure, path)
    lines = len(items) or 1
    figure = _figure(11, 0.55 * lines + 0.8)
    axes = figure.add_subplot()
    axes.axis("off")
    axes.set_title(title, loc="left")
    for i, item in enumerate(items):
        first = (item.get("text") or "").strip().splitlines()[:1] or [""]
        text = textwrap.shorten(first[0], TEXT_CHARACTERS, placeholder=" ...")
        axes.text(0, 1 - (i + 0.5) / lines, f"true {item['true']}, said {item['predicted']} "
                  f"({item['probability']:.2f}): {text}", fontsize=9, va="center", transform=axes.transAxes,
                  family="monospace")
    if not items:
        axes.text(0, 0.5, "no mistakes", transform=axes.transAxes)
    return _save(figure, path)
