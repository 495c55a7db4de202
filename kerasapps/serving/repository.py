"""The model store behind :mod:`kerasapps.serving.server`: finds, loads and unloads SavedModels.

Layout (TensorFlow Serving's): ``BASE_PATH/VERSION/saved_model.pb`` for each model. Without a model config
every folder of the model base is a model (``MODEL_BASE/NAME/VERSION/``); with one (TF Serving's
``ModelServerConfig`` text protobuf, :func:`read_model_config`) only its models are served, each from its
own ``base_path``, with its ``model_version_policy`` and ``version_labels``. A version is a folder named
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
import re
import stat
import threading
import time
from dataclasses import dataclass, field

logger = logging.getLogger("kerasapps.serving")

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
VERSION_PATTERN = re.compile(r"[0-9]{1,19}")
MAX_VERSION = 2**63 - 1  # versions are int64, as in TF Serving
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


class ServingError(Exception):
    """An error answered as TF Serving does: HTTP ``status`` and ``{"error": message}`` (gRPC maps the status)."""

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
    """Parse a version path segment (digits only, an int64), else raise a 400 ServingError."""
    if not VERSION_PATTERN.fullmatch(text) or int(text) > MAX_VERSION:
        raise ServingError(400, f"Failed to convert version: {text[:200]} to numeric.")
    return int(text)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


# -- what is served: model sources and version policies ------------------------------------------------

@dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ``ServableVersionPolicy``: ``latest`` N (the default, N=1), ``all``, or ``specific``."""

    kind: str = "latest"
    num_versions: int = 1
    versions: frozenset = frozenset()

    def select(self, on_disk) -> list[int]:
        """The versions this policy serves out of those on disk, newest first."""
        newest_first = sorted(on_disk, reverse=True)
        if self.kind == "all":
            return newest_first
        if self.kind == "specific":
            return [v for v in newest_first if v in self.versions]
        return newest_first[:self.num_versions]

    def describe(self) -> str:
        if self.kind == "specific":
            return f"specific {sorted(self.versions)}"
        return "all" if self.kind == "all" else f"latest {self.num_versions}"


@dataclass(frozen=True)
class ModelSource:
    """One served model: its name, the folder of its versions, its version policy and labels."""

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: dict = field(default_factory=dict)  # version label -> version


def read_model_config(path: str | os.PathLike) -> list[ModelSource]:
    """The models of a TF Serving model config file (``ModelServerConfig`` in text protobuf).

    Raises ``ValueError`` with one line naming the problem: a file that does not parse, no
    ``model_config_list``, a platform other than ``tensorflow``, a bad or repeated name, a label on a
    version the policy does not serve. A relative ``base_path`` is relative to the config file's folder.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read model config file {path}: {exc.strerror or exc}") from None
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as exc:
        raise ValueError(f"model config file {path} is not a ModelServerConfig text protobuf: {exc}") from None
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(f"model config file {path} has no model_config_list (custom_model_config is not supported)")
    sources, folder = [], os.path.dirname(os.path.abspath(path))
    for model in config.model_config_list.config:
        where = f"model config file {path}, model {model.name!r}"
        if not NAME_PATTERN.fullmatch(model.name) or model.name in (".", ".."):
            raise ValueError(f"{where}: a model name matches [A-Za-z0-9_.-]+")
        if any(s.name == model.name for s in sources):
            raise ValueError(f"{where}: the name appears twice")
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{where}: model_platform {model.model_platform!r} is not served (only 'tensorflow')")
        if not model.base_path:
            raise ValueError(f"{where}: base_path is missing")
        choice = model.model_version_policy.WhichOneof("policy_choice")
        if choice == "all":
            policy = VersionPolicy("all")
        elif choice == "specific":
            versions = frozenset(model.model_version_policy.specific.versions)
            if not versions:
                raise ValueError(f"{where}: a specific version policy lists no versions")
            policy = VersionPolicy("specific", versions=versions)
        else:
            latest = model.model_version_policy.latest.num_versions if choice == "latest" else 1
            policy = VersionPolicy("latest", num_versions=max(int(latest), 1))
        labels = dict(model.version_labels)
        for label, version in labels.items():
            if policy.kind == "specific" and version not in policy.versions:
                raise ValueError(f"{where}: label {label!r} names version {version}, which the policy does not serve")
        sources.append(ModelSource(model.name, os.path.join(folder, os.path.expanduser(model.base_path)), policy,
                                   labels))
    if not sources:
        raise ValueError(f"model config file {path} lists no models")
    return sources


# -- loaded versions ---------------------------------------------------------------------------------

@dataclass
class Signature:
    """One callable signature of a loaded SavedModel."""

    name: str
    function: object  # a tf ConcreteFunction taking keyword tensors
    inputs: dict  # input name -> tf.TensorSpec
    outputs: tuple  # output names, sorted
    method_name: str = PREDICT_METHOD  # the SignatureDef's kind: predict, classify or regress


_THREAD_CANCELLATION = threading.local()


def _thread_local_cancellation() -> bool:
    """Make TensorFlow's cancellation context per thread (True when it is).

    ``CancellationManager.get_cancelable_function`` keeps the manager of the call being started in a
    module global, so two threads starting calls at once could swap managers and a timeout would cancel
    another request's call. Every eager function call reads it through ``cancellation.context()``; this
    wraps that function to prefer the calling thread's manager, leaving any other user of the global as
    it was. Without that hook (another TensorFlow), calls run uncancellable and a warning says so once.
    """
    from tensorflow.python.eager import cancellation

    if getattr(cancellation.context, "_kerasapps_thread_local", False):
        return True
    original = getattr(cancellation, "context", None)
    if original is None or not hasattr(cancellation, "CancellationManager"):
        logger.warning("This TensorFlow has no cancellation hook: model calls past their deadline run to the end")
        return False

    def context():
        manager = getattr(_THREAD_CANCELLATION, "manager", None)
        return manager if manager is not None else original()

    context._kerasapps_thread_local = True
    cancellation.context = context
    return True


class Cancellation:
    """A handle that cancels one model call from another thread (``cancel()``), as TF Serving cancels
    ``Session::Run`` when a request's deadline passes: the running ops stop and the call raises."""

    def __init__(self):
        from tensorflow.python.eager import cancellation

        self.enabled = _thread_local_cancellation()
        self._manager = cancellation.CancellationManager() if self.enabled else None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self._manager is not None:
            self._manager.start_cancel()

    def __enter__(self):
        _THREAD_CANCELLATION.manager = self._manager
        return self

    def __exit__(self, *exc):
        _THREAD_CANCELLATION.manager = None


_EAGER_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\](?: name: \S*)?$")


def op_error_message(exc: Exception) -> str:
    """The op's own message of a TensorFlow error, without the "Graph execution error:" header, the
    "Detected at node ... defined at" stack and blank lines (what TF Serving's error text carries)."""
    text = getattr(exc, "message", None) or str(exc)
    kept, skipping = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped == "Graph execution error:":
            continue
        if stripped.startswith("Detected at node") or stripped.startswith("Detected unsupported operations"):
            skipping = True
            continue
        if skipping and (line.startswith(" ") or stripped == "<stack traces unavailable>"
                         or stripped.startswith("File ")):
            continue
        skipping = False
        kept.append(stripped)
    message = _EAGER_OP_SUFFIX.sub("", " ".join(kept)) or type(exc).__name__
    return message if len(message) <= 2000 else message[:2000] + "..."


@dataclass
class Servable:
    """One loaded version of one model."""

    name: str
    version: int
    path: str
    stamp: tuple
    signatures: dict
    signature_def_map: dict  # name -> SignatureDef proto of the 'serve' meta graph
    _loaded: object = field(repr=False, default=None)  # keeps the tf object alive
    _signature_json: dict | None = field(repr=False, default=None)

    @classmethod
    def load(cls, name: str, version: int, path: str, stamp: tuple) -> "Servable":
        import tensorflow as tf

        signature_defs = read_signature_def_protos(path)
        loaded = tf.saved_model.load(path)
        signatures = {}
        for key, fn in loaded.signatures.items():
            args, kwargs = fn.structured_input_signature
            method = signature_defs[key].method_name if key in signature_defs else PREDICT_METHOD
            signatures[key] = Signature(name=key, function=fn, inputs=dict(kwargs),
                                        outputs=tuple(sorted(fn.structured_outputs)), method_name=method)
        return cls(name, version, path, stamp, signatures, signature_defs, loaded)

    @property
    def signature_def(self) -> dict:
        """TF Serving's JSON rendering of the SignatureDef map (REST metadata)."""
        if self._signature_json is None:
            from google.protobuf import json_format

            self._signature_json = {
                key: json_format.MessageToDict(sig, always_print_fields_with_no_presence=True,
                                               preserving_proto_field_name=True)
                for key, sig in sorted(self.signature_def_map.items())}
        return self._signature_json

    def signature(self, signature_name: str) -> Signature:
        key = signature_name or DEFAULT_SIGNATURE
        try:
            return self.signatures[key]
        except KeyError:
            raise ServingError(
                400,
                f'Serving signature name: "{key[:200]}" not found in signature def '
                f"(available: {', '.join(sorted(self.signatures)) or 'none'})",
            ) from None

    def run(self, signature_name: str, inputs: dict, cancellation: Cancellation | None = None) -> dict:
        """Call a signature on numpy inputs; returns numpy outputs keyed by name.

        ``cancellation`` (made by the caller) lets another thread stop the call: it then raises a 504
        ServingError. An op's failure on the inputs (an assertion, a bad shape) is a 400 with the op's message.
        """
        import tensorflow as tf

        fn = self.signature(signature_name).function
        tensors = {key: tf.constant(value) for key, value in inputs.items()}
        try:
            if cancellation is None:
                result = fn(**tensors)
            else:
                with cancellation:
                    result = fn(**tensors)
        except tf.errors.CancelledError as exc:
            raise ServingError(504, "Deadline exceeded: the model call was cancelled") from exc
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError, tf.errors.FailedPreconditionError,
                ValueError, TypeError) as exc:
            raise ServingError(400, op_error_message(exc)) from exc
        except tf.errors.ResourceExhaustedError as exc:
            raise ServingError(503, f"Resource exhausted: {op_error_message(exc)}") from exc
        except tf.errors.OpError as exc:
            raise ServingError(500, op_error_message(exc)) from exc
        return {key: value.numpy() for key, value in result.items()}


def read_signature_def_protos(path: str) -> dict:
    """The ``signature_def`` map (name -> SignatureDef proto) of the 'serve' meta graph of a SavedModel."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    graphs = [g for g in saved_model.meta_graphs if "serve" in g.meta_info_def.tags]
    graph = (graphs or list(saved_model.meta_graphs))[0]
    return {key: graph.signature_def[key] for key in sorted(graph.signature_def)}


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
            if not VERSION_PATTERN.fullmatch(entry.name) or int(entry.name) > MAX_VERSION:
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
