"""What is served: model and version names, version policies, and TF Serving's model config file.

A model name matches ``[A-Za-z0-9_.-]+`` (and is not ``.`` or ``..``); a version is an int64 written in digits
(:func:`validate_model_name`, :func:`parse_version`, 400s for a request that breaks them). Without a model config
every folder of the model base is a model with the default policy; with one (TF Serving's ``ModelServerConfig``
text protobuf, :func:`read_model_config`) only its models are served, each a :class:`ModelSource` with its own
``base_path``, :class:`VersionPolicy` and ``version_labels``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from kerasapps.serving.errors import bad

__all__ = ["NAME_PATTERN", "VERSION_PATTERN", "MAX_VERSION", "is_model_name", "validate_model_name", "is_version",
           "parse_version", "VersionPolicy", "ModelSource", "read_model_config"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
VERSION_PATTERN = re.compile(r"[0-9]{1,19}")
MAX_VERSION = 2**63 - 1  # versions are int64, as in TF Serving


def is_model_name(name: str) -> bool:
    """Whether ``name`` is a safe model folder name: ``[A-Za-z0-9_.-]+``, not ``.`` or ``..``."""
    return bool(NAME_PATTERN.fullmatch(name)) and name not in (".", "..")


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a safe model folder name, else raise a 400 ServingError."""
    if not is_model_name(name):
        raise bad(f"Invalid model name: {name[:200]!r}; a model name matches [A-Za-z0-9_.-]+ and is not '.' or '..'")
    return name


def is_version(text: str) -> bool:
    """Whether ``text`` names a version: digits only, an int64."""
    return bool(VERSION_PATTERN.fullmatch(text)) and int(text) <= MAX_VERSION


def parse_version(text: str) -> int:
    """Parse a version path segment (digits only, an int64), else raise a 400 ServingError."""
    if not is_version(text):
        raise bad(f"Failed to convert version: {text[:200]} to numeric.")
    return int(text)


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
        if not is_model_name(model.name):
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

