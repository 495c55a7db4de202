"""Export formats, one registry: each format says where its exports go and how one is written; versioning and
the atomic write are shared.

An export is ``ROOT/NAME/VERSION/`` (TensorFlow Serving's layout), where ``ROOT`` is the format's own root
(:meth:`ExportFormat.root`): the SavedModel's is the export root itself, so a folder TF Serving scans holds
SavedModels only. A version is written in a temporary folder beside it (``.tmp-VERSION-PID-...``) and renamed
into place, so a half-written export never carries a version number, and ``--force`` swaps an existing
version without a moment where it is missing. A version counts once its format's ``marker`` file is there.

A format is one :func:`register_export_format` call (the SavedModel registers itself in
:mod:`kerasapps.savedmodel.export`): ``write(model_path, run_dir, folder, bar)`` fills ``folder`` and returns
what ``assets.extra/kerasapps.json`` (:data:`EXPORT_INFO`) should add to the recipe, version and run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from kerasapps.core.errors import RunError, UsageError

EXPORT_INFO = "assets.extra/kerasapps.json"


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """How one format is written: ``marker`` is the file (relative to a version's folder) whose presence makes a
    version complete; ``subfolder`` is the format's root under the export root ("" for the export root itself);
    ``write(run_dir, folder, bar) -> dict`` writes the export of the finished run into ``folder``."""

    name: str
    marker: str
    write: Callable[..., dict]
    subfolder: str = ""
    summary: str = ""

    def root(self, out) -> Path:
        return Path(out) / self.subfolder if self.subfolder else Path(out)


FORMATS: dict[str, ExportFormat] = {}


def register_export_format(fmt: ExportFormat) -> ExportFormat:
    """Add (or replace) a format; ``kerasapps export --format NAME`` writes it."""
    FORMATS[fmt.name] = fmt
    return fmt


def export_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise UsageError(f"unknown export format {name!r}; the formats are {', '.join(sorted(FORMATS))}")
    return FORMATS[name]


def is_export(path: Path, marker: str = "saved_model.pb") -> bool:
    return (Path(path) / marker).is_file()


def versions(model_dir: Path, marker: str = "saved_model.pb") -> list[int]:
    """The complete versions under ``model_dir`` (folders named by digits only that hold ``marker``), sorted."""
    if not Path(model_dir).is_dir():
        return []
    return sorted(int(p.name) for p in Path(model_dir).iterdir()
                  if p.is_dir() and p.name.isdigit() and (p / marker).is_file())


def remove_abandoned(model_dir: Path) -> None:
    """Remove the temporary folders of exports whose process has died (a killed ``export``)."""
    for folder in model_dir.glob(".*-*-*"):
        parts = folder.name.split("-")
        if folder.is_dir() and parts[0] in (".tmp", ".old") and len(parts) > 3 and parts[2].isdigit() \
                and not _alive(int(parts[2])):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def version_folder(model_dir: Path, marker: str, version: int | None, force: bool) -> tuple[int, Path]:
    """The version an export writes (``version``, else one past the newest) and its folder; a version that
    exists already is refused unless ``force``."""
    if version is not None and version < 1:
        raise UsageError(f"--version must be a positive integer; got {version}")
    existing = versions(model_dir, marker)
    version = version if version is not None else (existing[-1] + 1 if existing else 1)
    target = Path(model_dir) / str(version)
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to replace it, or choose another --version")
    return version, target


def write_version(target: Path, fill: Callable[[Path], dict], info: dict) -> Path:
    """Write one version atomically: ``fill(folder)`` writes the files into a temporary folder beside
    ``target`` and returns what the export's info file adds to ``info``; the folder is then renamed to
    ``target`` (an existing ``target`` is swapped out, never left missing or half-written)."""
    from kerasapps.training import rundir

    model_dir, version = target.parent, target.name
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_abandoned(model_dir)
    tmp = rundir.shareable(Path(tempfile.mkdtemp(prefix=f".tmp-{version}-{os.getpid()}-", dir=model_dir)))
    try:
        info = {**info, **fill(tmp)}
        (tmp / EXPORT_INFO).parent.mkdir(exist_ok=True)
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
        if target.exists():  # --force: swap, never leaving the version missing or half-written
            old = Path(tempfile.mkdtemp(prefix=f".old-{version}-{os.getpid()}-", dir=model_dir))
            os.replace(target, old / "v")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        raise RunError(f"could not write the export to {target}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
