"""The model store behind both front ends: finds, loads (as :class:`~kerasapps.serving.servable.Servable`)
and unloads SavedModels.

Layout (TensorFlow Serving's): ``BASE_PATH/VERSION/saved_model.pb`` for each model. Without a model config
every folder of the model base is a model (``MODEL_BASE/NAME/VERSION/``); with one (TF Serving's
``ModelServerConfig`` text protobuf, read by :mod:`kerasapps.serving.model_config`) only its models are served,
each from its own ``base_path``, with its ``model_version_policy`` and ``version_labels``. A version is a folder named
with digits only (an int64) that holds ``saved_model.pb``; anything else (``.tmp-XXXX`` folders of an export
in progress, a digit folder still missing its ``saved_model.pb``) is invisible. Every path is resolved and
must stay under its model's folder, so names, versions and symlinks cannot reach outside it.

Version policy, as TF Serving's: by default (``latest {num_versions: 1}``) only the newest version is
served and older ones answer 404; ``latest {num_versions: N}``, ``all {}`` and ``specific {versions: ...}``
serve others. One difference, to keep a model available: when no version the policy selects can be loaded
(the newest export is corrupt), requests without a version fall back to the newest older version that
loads, and a warning says so. A version whose load failed is retried once ``load_retry_interval_s`` has
passed or its files changed (a copy that wrote ``saved_model.pb`` before ``variables/`` is served once the
variables are there), as TF Serving retries failed loads.

Disk scans are throttled to one per model per ``poll_interval_s`` (0 scans on every request); a scan
unloads versions that left the disk and drops ones whose files changed, so they reload on next use.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field

from kerasapps.serving.errors import ServingError
from kerasapps.serving.model_config import ModelSource, is_version, read_model_config, validate_model_name
from kerasapps.serving.servable import Servable

logger = logging.getLogger("kerasapps.serving")

__all__ = ["ModelRepository", "read_model_config"]  # read_model_config: kerasapps.serve reads configs from here


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass
class _ModelState:
    scanned_at: float = 0.0
    on_disk: dict = field(default_factory=dict)  # version -> (path, stamp)
    loaded: dict = field(default_factory=dict)  # version -> Servable
    failed: dict = field(default_factory=dict)  # version -> (stamp, message, failed at)
    served: list = field(default_factory=list)  # the versions the policy serves, newest first
    fallback: int | None = None  # an older version served because none the policy selects loads


def _stamp(pb_stat, version_dir: str) -> tuple:
    """What identifies one version's files: ``saved_model.pb``'s inode, time and size, and the variables index's."""
    try:
        index = os.stat(os.path.join(version_dir, "variables", "variables.index"))
        variables = (index.st_ino, index.st_mtime_ns, index.st_size)
    except OSError:
        variables = None
    return (pb_stat.st_ino, pb_stat.st_mtime_ns, pb_stat.st_size, variables)


class ModelRepository:
    """Thread-safe cache of loaded model versions over a TF Serving model base or model config.

    Blocking methods (``get``, ``status``, ``refresh_all``) may load SavedModels and so belong in a
    worker thread, not on the event loop.
    """

    def __init__(self, model_base: str | os.PathLike | None, poll_interval_s: float = 2.0, *,
                 models: list[ModelSource] | None = None, load_retry_interval_s: float = 5.0):
        self.model_base = None if model_base is None else os.fspath(model_base)
        self.sources = None if models is None else {source.name: source for source in models}
        self.poll_interval_s = float(poll_interval_s)
        self.load_retry_interval_s = float(load_retry_interval_s)
        self._models: dict[str, _ModelState] = {}
        self._lock = threading.Lock()
        self._load_locks: dict[tuple, threading.Lock] = {}
        self.on_load_failure = None  # called (name, version) in the loading thread when a load fails

    def has_model(self, name: str) -> bool:
        """Whether ``name`` is a configured model or one found on disk (no disk access here)."""
        if self.sources is not None:
            return name in self.sources
        with self._lock:
            return name in self._models

    # -- disk -----------------------------------------------------------------
    def source(self, name: str) -> ModelSource | None:
        """Where ``name``'s versions live and which are served (None: not a model here)."""
        validate_model_name(name)
        if self.sources is not None:
            return self.sources.get(name)
        if self.model_base is None:
            return None
        base = os.path.realpath(self.model_base)
        model_dir = os.path.realpath(os.path.join(base, name))
        if not _within(model_dir, base) or model_dir == base:
            return None
        return ModelSource(name, model_dir)

    def scan(self, name: str) -> dict:
        """Versions of ``name`` on disk: {version: (resolved path, stamp)}."""
        source = self.source(name)
        if source is None:
            return {}
        model_dir = os.path.realpath(source.base_path)
        if not os.path.isdir(model_dir):
            return {}
        versions: dict[int, tuple] = {}
        try:
            entries = sorted(os.scandir(model_dir), key=lambda e: e.name)
        except OSError:
            return {}
        for entry in entries:
            if not is_version(entry.name):
                continue
            version_dir = os.path.realpath(entry.path)
            pb = os.path.join(version_dir, "saved_model.pb")
            variables = os.path.join(version_dir, "variables")
            if not (_within(version_dir, model_dir) and version_dir != model_dir
                    and _within(os.path.realpath(pb), version_dir)):
                continue  # a symlink out of the model folder
            if os.path.lexists(variables) and not _within(os.path.realpath(variables), version_dir):
                continue
            try:
                st = os.stat(pb)
            except OSError:
                continue  # no saved_model.pb (yet): not a version
            if not stat.S_ISREG(st.st_mode):
                continue
            version = int(entry.name)
            if version in versions and entry.name != str(version):
                continue  # "1" wins over "01"
            versions[version] = (version_dir, _stamp(st, version_dir))
        return versions

    def _state(self, name: str, refresh: bool = False) -> _ModelState | None:
        """The model's state after a scan if the last one is older than the poll interval."""
        with self._lock:
            state = self._models.get(name)
            fresh = state is not None and (
                time.monotonic() - state.scanned_at < self.poll_interval_s
            )
        if fresh and not refresh:
            return state
        on_disk = self.scan(name)
        source = self.source(name)
        served = source.policy.select(on_disk) if source is not None else []
        with self._lock:
            state = self._models.get(name)
            if state is None:
                if not on_disk:
                    return None  # never remember unknown names: clients choose them
                state = self._models[name] = _ModelState()
            state.on_disk, state.served, state.scanned_at = on_disk, served, time.monotonic()
            for version in list(state.loaded):
                entry = on_disk.get(version)
                if entry is None or entry[1] != state.loaded[version].stamp:
                    logger.info("Unloading %s version %d (%s)", name, version,
                                "removed" if entry is None else "changed on disk")
                    del state.loaded[version]
            for version in list(state.failed):
                if version not in on_disk or on_disk[version][1] != state.failed[version][0]:
                    del state.failed[version]
            if state.fallback is not None and state.fallback not in on_disk:
                state.fallback = None
            if not on_disk and not state.loaded:
                del self._models[name]
                return None
            return state

    # -- loading --------------------------------------------------------------
    def _failure(self, state: _ModelState, version: int, stamp: tuple) -> str | None:
        """The message of a failed load of these files that is not yet due for a retry."""
        failure = state.failed.get(version)
        if failure is None or failure[0] != stamp:
            return None
        if time.monotonic() - failure[2] >= self.load_retry_interval_s:
            return None
        return failure[1]

    def _load(self, name: str, version: int, path: str, stamp: tuple) -> Servable:
        key = (name, version)
        with self._lock:
            lock = self._load_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                state = self._models.get(name)
                if state is None:
                    raise ServingError(
                        404, f"Servable not found for request: Specific({name}, {version})")
                servable = state.loaded.get(version)
                if servable is not None and servable.stamp == stamp:
                    return servable
                message = self._failure(state, version, stamp)
                if message is not None:
                    raise ServingError(
                        404, f"Servable not found for request: Specific({name}, {version}); "
                        f"it failed to load: {message}")
                retry = version in state.failed
            logger.info("%s %s version %d from %s", "Retrying" if retry else "Loading", name, version, path)
            started = time.perf_counter()
            try:
                servable = Servable.load(name, version, path, stamp)
            except Exception as exc:  # a corrupt export must not take the server down
                message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                if not retry:
                    logger.warning("Failed to load %s version %d: %s (retried every %g s)", name, version,
                                   message, self.load_retry_interval_s)
                with self._lock:
                    state.failed[version] = (stamp, message, time.monotonic())
                if self.on_load_failure is not None:
                    self.on_load_failure(name, version)
                raise ServingError(
                    404, f"Servable not found for request: Specific({name}, {version}); "
                    f"it failed to load: {message}") from exc
            logger.info("Loaded %s version %d in %.2fs", name, version,
                        time.perf_counter() - started)
            with self._lock:
                state.failed.pop(version, None)
                if state.on_disk.get(version, (None, None))[1] == stamp:
                    state.loaded[version] = servable
            return servable

    def resolve_label(self, name: str, label: str) -> int:
        """The version a label names (TF Serving's ``version_labels``), else a 400 ServingError."""
        source = self.source(name)
        if source is None:
            raise ServingError(404, f"Servable not found for request: Latest({name})")
        if label not in source.labels:
            raise ServingError(400, f"Unrecognized servable version label: {label[:200]}")
        return source.labels[label]

    def get(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable for ``name`` at ``version`` or ``label`` (neither: the newest served one)."""
        validate_model_name(name)
        if label is not None:
            version = self.resolve_label(name, label)
        spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        state = self._state(name)
        if state is None:
            raise ServingError(404, f"Servable not found for request: {spec}")
        served = list(state.served)
        with self._lock:
            on_disk = dict(state.on_disk)
            if version is not None and version in state.loaded and (
                    version in served or version == state.fallback):
                return state.loaded[version]
        if version is not None:
            if version not in on_disk or (version not in served and version != state.fallback):
                raise ServingError(404, f"Servable not found for request: {spec}")
            return self._load(name, version, *on_disk[version])
        last_error = None
        for candidate in served:
            try:
                servable = self._load(name, candidate, *on_disk[candidate])
            except ServingError as exc:
                last_error = exc
                continue
            self._settle(name, state, served, candidate)
            return servable
        for candidate in sorted(set(on_disk) - set(served), reverse=True):  # keep the model available
            try:
                servable = self._load(name, candidate, *on_disk[candidate])
            except ServingError:
                continue
            with self._lock:
                if state.fallback != candidate:
                    logger.warning("No version of %s its policy serves loads (%s); serving version %d meanwhile",
                                   name, last_error.message if last_error else "none", candidate)
                state.fallback = candidate
            return servable
        raise ServingError(404, f"Servable not found for request: {spec}"
                           + (f"; {last_error.message}" if last_error else ""))

    def _settle(self, name: str, state: _ModelState, served: list[int], available: int) -> None:
        """Once a served version is available, unload what the policy no longer serves (TF Serving's
        availability-preserving order: the new version loads before the old one goes)."""
        with self._lock:
            state.fallback = None
            for version in list(state.loaded):
                if version not in served:
                    logger.info("Unloading %s version %d (version %d serves; policy %s)", name, version,
                                available, self.source(name).policy.describe())
                    del state.loaded[version]

    def get_cached(self, name: str, version: int | None = None) -> Servable | None:
        """Non-blocking fast path: the servable if loaded and the scan is fresh, else None."""
        with self._lock:
            state = self._models.get(name)
            if state is None or time.monotonic() - state.scanned_at >= self.poll_interval_s:
                return None
            if version is None:
                version = state.served[0] if state.served else None
            elif version not in state.served and version != state.fallback:
                return None  # not served: the slow path says so
            return state.loaded.get(version)

    # -- reporting ------------------------------------------------------------
    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[dict]:
        """TF Serving's ``model_version_status`` list, newest version first.

        With a version (or label), that version is loaded (if needed) and reported. Without, every
        version the policy serves is loaded and reported, and a fallback version while one serves.
        """
        if label is not None:
            version = self.resolve_label(name, label)
        if version is not None:
            wanted = [version]
        else:
            state = self._state(name)
            wanted = list(state.served) if state is not None else []
        for candidate in wanted:
            try:
                self.get(name, candidate)
            except ServingError as exc:
                if exc.status != 404:
                    raise
        if version is None:
            try:
                self.get(name)
            except ServingError as exc:
                if exc.status != 404:
                    raise
        state = self._state(name)
        if state is None:
            raise ServingError(404, f"Could not find any versions of model {name}")
        served = set(state.served)
        with self._lock:
            rows = {v: ("AVAILABLE", "OK", "") for v in state.loaded if v in served or v == state.fallback}
            for v, (_, message, _) in state.failed.items():
                if v in served:
                    rows.setdefault(v, ("END", "UNKNOWN", message))
        if version is not None:
            if version not in rows:
                raise ServingError(404, f"Could not find version {version} of model {name}")
            rows = {version: rows[version]}
        if not rows:
            raise ServingError(404, f"Could not find any versions of model {name}")
        return [
            {"version": str(v), "state": s, "status": {"error_code": code, "error_message": msg}}
            for v, (s, code, msg) in sorted(rows.items(), reverse=True)
        ]

    def loaded_versions(self) -> dict[str, list[int]]:
        """{name: [loaded versions]} — for logs, tests and benchmarks."""
        with self._lock:
            return {n: sorted(s.loaded) for n, s in self._models.items() if s.loaded}

    def refresh_all(self) -> None:
        """Rescan every known model: unload removed versions, load new served ones, retry failed loads."""
        with self._lock:
            names = list(self._models)
        for name in names:
            state = self._state(name, refresh=True)
            if state is None:
                continue
            with self._lock:
                in_use = bool(state.loaded)
            if not in_use:
                continue  # loaded on first use, as before
            served = list(state.served)
            with self._lock:
                pending = [v for v in served if v not in state.loaded
                           and self._failure(state, v, state.on_disk[v][1]) is None]
            for version in pending:  # swap in a new version before the first request needs it
                try:
                    self._load(name, version, *state.on_disk[version])
                except ServingError:
                    pass
            with self._lock:
                available = [v for v in served if v in state.loaded]
            if available:
                self._settle(name, state, served, available[0])
