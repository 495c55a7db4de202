"""The model store behind :mod:`kerasapps.serving.server`: finds, loads and unloads SavedModels.

Layout (TensorFlow Serving's): ``MODEL_BASE/NAME/VERSION/saved_model.pb``. A version is
a folder named with digits only that holds ``saved_model.pb``; anything else (``.tmp-XXXX``
folders of an export in progress, a digit folder still missing its ``saved_model.pb``) is
invisible. Every path is resolved and must stay under the resolved model base, so names,
versions and symlinks cannot reach outside it.

Disk scans are throttled to one per model per ``poll_interval_s`` (0 scans on every
request); a scan unloads versions that left the disk and drops ones whose
``saved_model.pb`` changed, so they reload on next use.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
from dataclasses import dataclass, field

logger = logging.getLogger("kerasapps.serving")

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
VERSION_PATTERN = re.compile(r"[0-9]+")
DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """An error answered as TF Serving does: HTTP ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a safe model folder name, else raise a 400 ServingError."""
    if not NAME_PATTERN.fullmatch(name) or name in (".", ".."):
        raise ServingError(
            400,
            f"Invalid model name: {name[:200]!r}; a model name matches [A-Za-z0-9_.-]+ "
            "and is not '.' or '..'",
        )
    return name


def parse_version(text: str) -> int:
    """Parse a version path segment (digits only), else raise a 400 ServingError."""
    if not VERSION_PATTERN.fullmatch(text) or len(text) > 18:
        raise ServingError(400, f"Failed to convert version: {text[:200]} to numeric.")
    return int(text)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass
class Signature:
    """One callable signature of a loaded SavedModel."""

    name: str
    function: object  # a tf ConcreteFunction taking keyword tensors
    inputs: dict  # input name -> tf.TensorSpec
    outputs: tuple  # output names, sorted


@dataclass
class Servable:
    """One loaded version of one model."""

    name: str
    version: int
    path: str
    stamp: tuple
    signatures: dict
    signature_def: dict  # TF Serving's JSON rendering of the SignatureDef map
    _loaded: object = field(repr=False, default=None)  # keeps the tf object alive

    @classmethod
    def load(cls, name: str, version: int, path: str, stamp: tuple) -> "Servable":
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        signatures = {}
        for key, fn in loaded.signatures.items():
            args, kwargs = fn.structured_input_signature
            signatures[key] = Signature(
                name=key,
                function=fn,
                inputs=dict(kwargs),
                outputs=tuple(sorted(fn.structured_outputs)),
            )
        return cls(name, version, path, stamp, signatures, read_signature_defs(path), loaded)

    def signature(self, signature_name: str) -> Signature:
        key = signature_name or DEFAULT_SIGNATURE
        try:
            return self.signatures[key]
        except KeyError:
            raise ServingError(
                400,
                f'Serving signature name: "{key}" not found in signature def '
                f"(available: {', '.join(sorted(self.signatures)) or 'none'})",
            ) from None

    def run(self, signature_name: str, inputs: dict) -> dict:
        """Call a signature on numpy inputs; returns numpy outputs keyed by name."""
        import tensorflow as tf

        fn = self.signature(signature_name).function
        tensors = {key: tf.constant(value) for key, value in inputs.items()}
        try:
            result = fn(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise ServingError(400, str(exc).strip().splitlines()[0][:2000]) from exc
        return {key: value.numpy() for key, value in result.items()}


def read_signature_defs(path: str) -> dict:
    """The ``signature_def`` map of the 'serve' meta graph, printed as TF Serving prints it."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    graphs = [g for g in saved_model.meta_graphs if "serve" in g.meta_info_def.tags]
    graph = (graphs or list(saved_model.meta_graphs))[0]
    return {
        key: json_format.MessageToDict(
            sig, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
        )
        for key, sig in sorted(graph.signature_def.items())
    }


@dataclass
class _ModelState:
    scanned_at: float = 0.0
    on_disk: dict = field(default_factory=dict)  # version -> (path, stamp)
    loaded: dict = field(default_factory=dict)  # version -> Servable
    failed: dict = field(default_factory=dict)  # version -> (stamp, message)


class ModelRepository:
    """Thread-safe cache of loaded model versions over a TF Serving model base.

    Blocking methods (``get``, ``status``, ``refresh_all``) may load SavedModels and so
    belong in a worker thread, not on the event loop.
    """

    def __init__(self, model_base: str | os.PathLike, poll_interval_s: float = 2.0):
        self.model_base = os.fspath(model_base)
        self.poll_interval_s = float(poll_interval_s)
        self._models: dict[str, _ModelState] = {}
        self._lock = threading.Lock()
        self._load_locks: dict[tuple, threading.Lock] = {}

    # -- disk -----------------------------------------------------------------
    def scan(self, name: str) -> dict:
        """Versions of ``name`` on disk: {version: (resolved path, stamp)}."""
        validate_model_name(name)
        base = os.path.realpath(self.model_base)
        model_dir = os.path.realpath(os.path.join(base, name))
        if not _within(model_dir, base) or model_dir == base or not os.path.isdir(model_dir):
            return {}
        versions: dict[int, tuple] = {}
        try:
            entries = sorted(os.scandir(model_dir), key=lambda e: e.name)
        except OSError:
            return {}
        for entry in entries:
            if not VERSION_PATTERN.fullmatch(entry.name) or len(entry.name) > 18:
                continue
            version_dir = os.path.realpath(entry.path)
            pb = os.path.join(version_dir, "saved_model.pb")
            variables = os.path.join(version_dir, "variables")
            if not (_within(version_dir, model_dir) and _within(os.path.realpath(pb), version_dir)):
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
            versions[version] = (version_dir, (st.st_ino, st.st_mtime_ns, st.st_size))
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
        with self._lock:
            state = self._models.get(name)
            if state is None:
                if not on_disk:
                    return None  # never remember unknown names: clients choose them
                state = self._models[name] = _ModelState()
            state.on_disk, state.scanned_at = on_disk, time.monotonic()
            for version in list(state.loaded):
                entry = on_disk.get(version)
                if entry is None or entry[1] != state.loaded[version].stamp:
                    logger.info("Unloading %s version %d (%s)", name, version,
                                "removed" if entry is None else "changed on disk")
                    del state.loaded[version]
            for version in list(state.failed):
                if version not in on_disk or on_disk[version][1] != state.failed[version][0]:
                    del state.failed[version]
            if not on_disk and not state.loaded:
                del self._models[name]
                return None
            return state

    # -- loading --------------------------------------------------------------
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
                failure = state.failed.get(version)
                if failure is not None and failure[0] == stamp:
                    raise ServingError(
                        404, f"Servable not found for request: Specific({name}, {version}); "
                        f"it failed to load: {failure[1]}")
            logger.info("Loading %s version %d from %s", name, version, path)
            started = time.perf_counter()
            try:
                servable = Servable.load(name, version, path, stamp)
            except Exception as exc:  # a corrupt export must not take the server down
                message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                logger.warning("Failed to load %s version %d: %s", name, version, message)
                with self._lock:
                    state.failed[version] = (stamp, message)
                raise ServingError(
                    404, f"Servable not found for request: Specific({name}, {version}); "
                    f"it failed to load: {message}") from exc
            logger.info("Loaded %s version %d in %.2fs", name, version,
                        time.perf_counter() - started)
            with self._lock:
                if state.on_disk.get(version, (None, None))[1] == stamp:
                    state.loaded[version] = servable
            return servable

    def get(self, name: str, version: int | None = None) -> Servable:
        """The servable for ``name`` at ``version`` (None: the latest loadable one)."""
        validate_model_name(name)
        spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        state = self._state(name)
        if state is None:
            raise ServingError(404, f"Servable not found for request: {spec}")
        with self._lock:
            on_disk = dict(state.on_disk)
            if version is not None and version in state.loaded:
                return state.loaded[version]
        if version is not None:
            if version not in on_disk:
                raise ServingError(404, f"Servable not found for request: {spec}")
            return self._load(name, version, *on_disk[version])
        last_error = None
        for candidate in sorted(on_disk, reverse=True):  # fall back past broken exports
            try:
                return self._load(name, candidate, *on_disk[candidate])
            except ServingError as exc:
                last_error = exc
        raise ServingError(404, f"Servable not found for request: {spec}"
                           + (f"; {last_error.message}" if last_error else ""))

    def get_cached(self, name: str, version: int | None = None) -> Servable | None:
        """Non-blocking fast path: the servable if loaded and the scan is fresh, else None."""
        with self._lock:
            state = self._models.get(name)
            if state is None or time.monotonic() - state.scanned_at >= self.poll_interval_s:
                return None
            if version is None:
                version = max(state.on_disk, default=None)
            return state.loaded.get(version)

    # -- reporting ------------------------------------------------------------
    def status(self, name: str, version: int | None = None) -> list[dict]:
        """TF Serving's ``model_version_status`` list, newest version first.

        With a version, that version is loaded (if needed) and reported. Without, the
        latest version is loaded and every version loaded or failed is reported (like
        TF Serving's default policy, on-disk versions never requested are not listed).
        """
        try:
            self.get(name, version)
        except ServingError as exc:
            if exc.status != 404:
                raise
        state = self._state(name)
        if state is None:
            raise ServingError(404, f"Could not find any versions of model {name}")
        with self._lock:
            rows = {v: ("AVAILABLE", "OK", "") for v in state.loaded}
            for v, (_, message) in state.failed.items():
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
        """Rescan every known model: unload removed versions, pre-load a new latest."""
        with self._lock:
            names = list(self._models)
        for name in names:
            state = self._state(name, refresh=True)
            if state is None:
                continue
            with self._lock:
                latest = max(state.on_disk, default=None)
                needs_load = (state.loaded and latest is not None
                              and latest not in state.loaded and latest not in state.failed)
            if needs_load:  # swap in the new latest before the first request needs it
                try:
                    self._load(name, latest, *state.on_disk[latest])
                except ServingError:
                    pass
