"""Typed hyper-parameters and their resolution: defaults, then a file, then ``--set``.

A recipe declares ``HParam`` objects; :func:`resolve` merges, in this order, the
defaults, a YAML or JSON config file, repeated ``key=value`` overrides and finally
explicit CLI flags (``--epochs``), checking every key and coercing every value to
its declared type. Errors name the key, the value and the valid choices.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from kerasapps.core.errors import ConfigError

_TYPES = {int: "int", float: "float", str: "str", bool: "bool"}
NO_LEGACY = object()  # HParam.legacy: the key has been there since the first release


@dataclasses.dataclass(frozen=True)
class HParam:
    """One typed hyper-parameter: default, type, help and optional choices/range."""

    default: Any
    type: type
    help: str = ""
    choices: tuple | None = None
    optional: bool = False  # None is a valid value
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # the value must be above ``minimum``, not equal to it
    words: tuple[str, ...] = ()  # words taken besides a value of ``type`` (``epochs=auto``)
    # What a run directory's configuration means when it lacks this key (it was written before the key existed):
    # the behaviour of those releases, whatever the default is now. NO_LEGACY: the key was always written.
    legacy: Any = NO_LEGACY

    def __post_init__(self):
        if self.type not in _TYPES:
            raise TypeError(f"HParam type must be one of int, float, str, bool; got {self.type!r}")
        if self.default is None and not self.optional:
            object.__setattr__(self, "optional", True)

    @property
    def type_name(self) -> str:
        name = " or ".join((_TYPES[self.type], *self.words))
        return f"{name} or null" if self.optional else name

    def coerce(self, key: str, value: Any) -> Any:
        """Return ``value`` as this parameter's type, or raise ConfigError naming ``key``."""
        if isinstance(value, str) and value.strip().lower() in self.words:
            return value.strip().lower()
        if isinstance(value, str) and self.type is not str:
            parsed = _parse_scalar(value)
        else:
            parsed = value
        if parsed is None or (isinstance(parsed, str) and parsed.lower() in ("none", "null")
                              and self.type is not str):
            if self.optional:
                return None
            raise ConfigError(f"'{key}' expects {self.type_name}, got {value!r}")
        out = _convert(self.type, parsed)
        if out is _INVALID:
            raise ConfigError(f"'{key}' expects {self.type_name}, got {value!r}")
        if self.choices is not None and out not in self.choices:
            raise ConfigError(
                f"'{key}' must be one of {', '.join(map(str, self.choices))}; got {value!r}")
        if self.minimum is not None and (out <= self.minimum if self.exclusive_minimum else out < self.minimum):
            raise ConfigError(f"'{key}' must be {'>' if self.exclusive_minimum else '>='} {self.minimum}; "
                              f"got {value!r}")
        if self.maximum is not None and out > self.maximum:
            raise ConfigError(f"'{key}' must be <= {self.maximum}; got {value!r}")
        return out


_INVALID = object()


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _convert(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        return _INVALID
    if kind is int:
        if isinstance(value, bool):
            return _INVALID
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _INVALID
    if kind is float:
        if isinstance(value, bool):
            return _INVALID
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                return _INVALID
            return number if math.isfinite(number) else _INVALID
        return _INVALID
    if kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        return _INVALID
    return _INVALID


class HParams(Mapping):
    """Resolved hyper-parameters: a read-only mapping with attribute access."""

    def __init__(self, values: Mapping[str, Any]):
        object.__setattr__(self, "_values", dict(values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"no hyper-parameter {key!r}; valid: {', '.join(sorted(self._values))}") from None

    def __setattr__(self, key, value):
        raise AttributeError("HParams are read-only; use .replace(**changes)")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"HParams({self._values!r})"

    def replace(self, **changes: Any) -> "HParams":
        return HParams({**self._values, **changes})

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)


def unknown_key_error(key: str, valid: Iterable[str], where: str = "") -> ConfigError:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(f"unknown key '{key}'{where}{hint}; valid keys: {', '.join(valid)}")


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """Parse ``key=value`` strings (from ``--set``); the values stay text for coercion."""
    out: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key] = value.strip()
    return out


def read_config_file(path: str | Path, recipe_name: str | None = None) -> dict[str, Any]:
    """Read a YAML/JSON file: either a flat mapping of keys or ``{recipe:, hparams:}``."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config file {path} is not valid YAML or JSON: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
    if "hparams" in data:
        named = data.get("recipe")
        if recipe_name and named and named != recipe_name:
            raise ConfigError(f"config file {path} is for recipe '{named}', not '{recipe_name}'")
        extra = set(data) - {"hparams", "recipe", "kerasapps_version", "smoke", "data", "search"}  # search: tune's
        if extra:
            raise ConfigError(f"config file {path} has unknown top-level keys: {', '.join(sorted(extra))}")
        data = data["hparams"] or {}
        if not isinstance(data, dict):
            raise ConfigError(f"'hparams' in {path} must be a mapping")
    return data


def resolve(schema: Mapping[str, HParam], *, config_file: str | Path | None = None,
            overrides: Iterable[str] | Mapping[str, Any] = (), flags: Mapping[str, Any] | None = None,
            recipe_name: str | None = None, legacy: bool = False) -> HParams:
    """Merge defaults, a config file, ``--set`` overrides and CLI flags, in that order.

    ``legacy``: the config file is a run directory's own; a key it lacks was added after the run was written
    and takes its :attr:`HParam.legacy` value (the behaviour the run had), not today's default.
    """
    values = {key: spec.default for key, spec in schema.items()}
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_file is not None:
        written = read_config_file(config_file, recipe_name)
        if legacy:
            values.update({key: spec.legacy for key, spec in schema.items()
                           if key not in written and spec.legacy is not NO_LEGACY})
        layers.append((f" in {config_file}", written))
    if isinstance(overrides, Mapping):
        layers.append(("", overrides))
    else:
        layers.append(("", parse_assignments(overrides)))
    layers.append(("", {k: v for k, v in (flags or {}).items() if v is not None}))
    for where, layer in layers:
        for key, value in layer.items():
            if key not in schema:
                raise unknown_key_error(key, schema, where)
            values[key] = schema[key].coerce(key, value)
    return HParams(values)


def dump_config(recipe_name: str, hparams: Mapping[str, Any], **extra: Any) -> str:
    """The text of ``config.yaml``: re-reading it with :func:`resolve` gives the same HParams."""
    doc = {"recipe": recipe_name, **extra, "hparams": dict(hparams)}
    return yaml.safe_dump(json.loads(json.dumps(doc)), sort_keys=False)
