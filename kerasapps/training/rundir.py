"""The run directory: its file names, atomic writes, the manifest, and opening a finished run.

Every file is written atomically (a temporary file, then ``os.replace``), so a run
killed at any moment leaves each file either at its old or its new content. Models and
checkpoints are saved by :mod:`kerasapps.training.checkpoints`, the training-curve plot by
:mod:`kerasapps.training.curves`.

Layout of a run directory::

    config.yaml         resolved hyper-parameters (``--config RUN_DIR/config.yaml`` reproduces the run)
    manifest.json       versions, seed, hardware, git revision, data source, timings
    state.json          per-stage progress: completed epochs, done, run status
    checkpoints/STAGE/epoch-NNN.keras   model + optimizer after each epoch (newest kept)
    stages/STAGE.keras  the model at the end of each stage
    model.keras         the final model (what evaluate, export and predict use)
    logs/STAGE.csv, tensorboard/STAGE/, training_curves.png, metrics.json
    backup/STAGE/       multi-worker runs only: tf.train.CheckpointManager backups (removed when done)
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kerasapps.core.errors import UsageError
from kerasapps.core.recipe import DATA_DIR_ENV
from kerasapps.core.registry import REGISTRY

CONFIG = "config.yaml"
MANIFEST = "manifest.json"
STATE = "state.json"
METRICS = "metrics.json"
FINAL_MODEL = "model.keras"
DATA = "data.json"


LOCK = ".lock"
PARTIAL = ".partial-"  # in the names of temporary files: what a killed process left behind


def umask() -> int:
    """The process's umask (from /proc where it can be read, without changing it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0o022)  # no /proc: read it by setting it, and put it back at once
    os.umask(current)
    return current


def shareable(path: Path) -> Path:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would (0644 files, 0755 folders under umask 022):
    ``mkstemp``/``mkdtemp`` make them private to the user, and TF Serving may run as another user."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask())
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{PARTIAL}", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        shareable(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_partial_files(folder: Path) -> int:
    """Remove the temporary files a killed run left in ``folder`` (call it holding the run's :func:`lock`)."""
    partial = [p for p in Path(folder).rglob(f".*{PARTIAL}*") if p.is_file()]
    for path in partial:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return len(partial)


@contextlib.contextmanager
def lock(run_dir: Path):
    """Hold ``RUN_DIR/.lock`` while a run writes there; a second process is refused in one line.

    The lock is an ``flock``: the system releases it when the holding process ends, however it ends.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on this platform: no lock
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / LOCK, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UsageError(f"run directory {run_dir} is in use by {holder}, which is still training in it; "
                             "wait for it to finish, or stop it before --resume") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"kerasapps process {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def check_replaceable(run_dir: Path) -> None:
    """Refuse, in one line, to replace ``run_dir`` unless it is a kerasapps run directory (``--overwrite``
    never removes a folder of something else)."""
    if not run_dir.is_dir() or not any((run_dir / name).exists() for name in (CONFIG, STATE, MANIFEST)):
        raise UsageError(f"{run_dir} is not a kerasapps run directory (no {CONFIG} or {STATE}); --overwrite "
                         "replaces run directories only: choose another --run-dir")


def remove_run(run_dir: Path) -> None:
    """Remove the run directory ``run_dir`` (``--overwrite``): refused while a process trains in it; moved aside
    in one rename first, so ``run_dir`` never holds half of the old run."""
    import shutil

    check_replaceable(run_dir)
    aside = run_dir.with_name(f".{run_dir.name}.replaced-{os.getpid()}")
    with lock(run_dir):
        os.replace(run_dir, aside)
    shutil.rmtree(aside)


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


# ----------------------------------------------------------------------------- run dirs

def default_run_dir(recipe_name: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
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

    from kerasapps.core.version import __version__

    devices = [d.name for d in tf.config.list_logical_devices()]
    return {
        "recipe": recipe_name,
        "recipe_source": source,
        "seed": seed,
        "smoke": smoke,
        "data_dir": str(data_dir) if data_dir else None,
        "data_source": "local" if data_dir else "tfds",
        "command": sys.argv,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
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


def read_config(run_dir) -> dict:
    """The run's ``config.yaml`` as written (``{recipe:, hparams:, ...}``); a file that does not parse is one line."""
    path = require_run_dir(run_dir) / CONFIG
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"{path} is not a readable run configuration ({first})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("recipe"), str):
        raise UsageError(f"{path} is not a run configuration: it names no recipe")
    return saved


def open_run(run_dir):
    """(the recipe, its hyper-parameters, the saved config) of a run directory."""
    saved = read_config(run_dir)
    recipe = REGISTRY.get(saved["recipe"])
    return recipe, recipe.resolve(config_file=Path(run_dir) / CONFIG, legacy=True), saved


def recorded_data_dir(run_dir, data_dir=None):
    """``data_dir`` if given (or ``$KERASAPPS_DATA_DIR`` is set), else the data directory the run recorded in its
    manifest when it still exists: continuing or evaluating a run reads the data it trained on."""
    if data_dir not in (None, "") or os.environ.get(DATA_DIR_ENV):
        return data_dir
    path = Path(run_dir) / MANIFEST
    recorded = read_json(path).get("data_dir") if path.is_file() else None
    return recorded if recorded and Path(recorded).is_dir() else None


def final_model_path(run_dir) -> Path:
    """``RUN_DIR/model.keras``, or a one-line error saying how far the run got and how to continue it."""
    run_dir = Path(run_dir)
    path = run_dir / FINAL_MODEL
    if not path.is_file():
        state = read_json(run_dir / STATE) if (run_dir / STATE).is_file() else {}
        progress = ", ".join(f"{k} {v.get('completed_epochs', 0)} epochs" for k, v in state.get("stages", {}).items())
        name = read_config(run_dir)["recipe"]
        raise UsageError(f"run {run_dir} has not finished ({progress or 'no epoch completed'}); "
                         f"continue it with: kerasapps train {name} --resume --run-dir {run_dir}")
    return path
