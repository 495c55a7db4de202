"""The run directory: config, manifest, state, checkpoints, logs, metrics and plots.

Every file is written atomically (a temporary file, then ``os.replace``), so a run
killed at any moment leaves each file either at its old or its new content.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kerasapps.errors import UsageError

CONFIG = "config.yaml"
MANIFEST = "manifest.json"
STATE = "state.json"
METRICS = "metrics.json"
FINAL_MODEL = "model.keras"


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# ----------------------------------------------------------------------------- models

def _seed_generators(model):
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
    with atomic_path(path.with_suffix(".rng.npz")) as tmp:
        np.savez(tmp, **{key: np.asarray(g.state.numpy()) for key, g in _seed_generators(model)})
    with atomic_path(path) as tmp:
        model.save(tmp)


def load_model(path: Path, compile: bool = True):
    import keras

    model = keras.saving.load_model(path, compile=compile)
    rng = Path(path).with_suffix(".rng.npz")
    if rng.is_file():
        with np.load(rng) as saved:
            for key, generator in _seed_generators(model):
                if key in saved.files:
                    generator.state.assign(saved[key])
    return model


def remove_model(path: Path) -> None:
    for file in (Path(path), Path(path).with_suffix(".rng.npz")):
        with contextlib.suppress(FileNotFoundError):
            file.unlink()


# ----------------------------------------------------------------------------- run dirs

def default_run_dir(recipe_name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{recipe_name}-{stamp}"


def require_run_dir(run_dir) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise UsageError(f"{run_dir} is not a kerasapps run directory (no {CONFIG} in it)")
    return run_dir


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def manifest(recipe_name: str, source: str, seed: int, data_dir, smoke: bool, strategy=None) -> dict:
    import keras
    import tensorflow as tf

    from kerasapps import __version__

    devices = [d.name for d in tf.config.list_logical_devices()]
    return {
        "recipe": recipe_name,
        "recipe_source": source,
        "seed": seed,
        "smoke": smoke,
        "data_dir": str(data_dir) if data_dir else None,
        "data_source": "local" if data_dir else "tfds",
        "command": sys.argv,
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "versions": {"kerasapps": __version__, "python": platform.python_version(),
                     "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
        "hardware": {"platform": platform.platform(), "machine": platform.machine(),
                     "cpu_count": os.cpu_count(), "devices": devices},
        "strategy": strategy or {"name": "default", "replicas": 1},
    }


def trim_csv(path: Path, first_epoch: int) -> None:
    """Drop rows for epochs >= ``first_epoch`` (written after the last checkpoint of a killed run)."""
    if not path.is_file():
        return
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [row for row in rows[1:] if row and int(float(row[0])) < first_epoch]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        csv.writer(handle).writerows(kept)


def plot_curves(run_dir: Path, stage_names: list[str]) -> Path | None:
    """``training_curves.png``: loss and each metric against epoch, one column per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    metric_names = [k for k in tables[0][1][0] if k not in ("epoch", "learning_rate", "lr") and not k.startswith("val_")]
    fig, axes = plt.subplots(len(metric_names), len(tables), figsize=(4.5 * len(tables), 3 * len(metric_names)),
                             squeeze=False)
    for col, (stage, rows) in enumerate(tables):
        epochs = [int(float(r["epoch"])) + 1 for r in rows]
        for row, metric in enumerate(metric_names):
            ax = axes[row][col]
            for key, style in ((metric, "-o"), (f"val_{metric}", "--s")):
                if key in rows[0]:
                    ax.plot(epochs, [float(r[key]) if r[key] not in ("", "NA", None) else np.nan for r in rows], style, label=key, ms=3)
            ax.set_title(f"{stage}: {metric}")
            ax.set_xlabel("epoch")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    out = run_dir / "training_curves.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return out


def copy_tree_atomic(source: Path, target: Path) -> None:
    tmp = target.parent / f".{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    os.replace(tmp, target)
