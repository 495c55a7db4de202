"""Export formats, one registry: each format says where its exports go and how one is written; versioning and
the atomic write are shared.

An export is ``ROOT/NAME/VERSION/`` (TensorFlow Serving's layout), where ``ROOT`` is ``--out`` or the format's
own default root (``saved_models`` for the SavedModel, ``onnx_models``, ``litert_models``): a folder TF Serving
scans holds SavedModels only, and another format is refused there in one line. A version is written in a
temporary folder beside it (``.tmp-VERSION-PID-...``) and renamed into place, so a half-written export never
carries a version number, and ``--force`` swaps an existing version without a moment where it is missing. A
version counts once its format's ``marker`` file is there.

A format is one :func:`register_export_format` call (the SavedModel registers itself in
:mod:`kerasapps.savedmodel.export`): its ``write`` fills a version's folder and returns what
``assets.extra/kerasapps.json`` (:data:`EXPORT_INFO`) adds to the recipe, version, run and format.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from kerasapps.core.errors import RunError, UsageError

EXPORT_INFO = "assets.extra/kerasapps.json"
SAVED_MODEL_MARKER = "saved_model.pb"


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """How one format is written: ``marker`` is the file (relative to a version's folder) whose presence makes a
    version complete; ``default_out`` the root its exports go to without ``--out``; ``write(recipe, hp, run_dir,
    model_path, folder, bar) -> dict`` writes the export of the finished run into ``folder`` and returns what the
    export's info file adds."""

    name: str
    marker: str
    write: Callable[..., dict]
    default_out: str
    summary: str = ""
    options: tuple[str, ...] = ()  # the keyword options ``write`` takes beyond the run (``quantize``)

    def root(self, out=None) -> Path:
        """Where this format's exports go: ``out``, else its default; a folder of SavedModels is refused to any
        other format (TF Serving would find a version folder without ``saved_model.pb`` there)."""
        root = Path(out if out is not None else self.default_out)
        if self.marker != SAVED_MODEL_MARKER and root.is_dir() and any(
                (version / SAVED_MODEL_MARKER).is_file() for model in root.iterdir() if model.is_dir()
                for version in model.iterdir() if version.name.isdigit()):
            raise UsageError(f"--out {root} holds SavedModels (a folder TF Serving scans); write the {self.name} "
                             f"export elsewhere (default {self.default_out})")
        return root


FORMATS: dict[str, ExportFormat] = {}


def register_export_format(fmt: ExportFormat) -> ExportFormat:
    """Add (or replace) a format; ``kerasapps export --format NAME`` writes it."""
    FORMATS[fmt.name] = fmt
    return fmt


def export_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise UsageError(f"unknown export format {name!r}; the formats are {', '.join(sorted(FORMATS))}")
    return FORMATS[name]


def is_export(path: Path, marker: str | None = None) -> bool:
    """Whether ``path`` is one complete version of an export (of the format whose ``marker`` is given, else of
    any registered format)."""
    markers = [marker] if marker else [fmt.marker for fmt in FORMATS.values()] or [SAVED_MODEL_MARKER]
    return any((Path(path) / name).is_file() for name in markers)


def versions(model_dir: Path, marker: str | None = None) -> list[int]:
    """The complete versions under ``model_dir`` (folders named by digits only that hold ``marker``, else any
    registered format's marker), sorted."""
    if not Path(model_dir).is_dir():
        return []
    return sorted(int(p.name) for p in Path(model_dir).iterdir()
                  if p.is_dir() and p.name.isdigit() and is_export(p, marker))


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


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # what TF Serving and a URL path take


def check_model_name(name: str) -> str:
    if not MODEL_NAME.fullmatch(str(name)):
        raise UsageError(f"--name {name!r}: a model name is letters, digits, '_', '.' and '-' (at most 128, "
                         "starting with a letter or digit)")
    return str(name)


def check_same_signature(model_dir: Path, marker: str, signature: str, default_name: bool) -> None:
    """Refuse a version whose signature differs from the newest existing version's under ``model_dir``."""
    existing = versions(model_dir, marker)
    if not existing:
        return
    info = Path(model_dir) / str(existing[-1]) / EXPORT_INFO
    before = json.loads(info.read_text()).get("signature") if info.is_file() else None
    if before is not None and before != signature:
        hint = " (it defaults to the recipe's)" if default_name else ""
        raise UsageError(f"{model_dir} version {existing[-1]} takes and answers otherwise ({before}); this run's "
                         f"export would be {signature}: pass another --name{hint}, so each model keeps its "
                         "clients (or --force)")


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
    made = [folder for folder in (model_dir.parent, model_dir) if not folder.exists()]
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_abandoned(model_dir)
    tmp = rundir.shareable(Path(tempfile.mkdtemp(prefix=f".tmp-{version}-{os.getpid()}-", dir=model_dir)))
    written = False
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
        written = True
    except OSError as exc:
        raise RunError(f"could not write the export to {target}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(made if not written else []):  # a refused or failed first export leaves nothing
            with contextlib.suppress(OSError):
                folder.rmdir()
    return target
