"""How a command's options are declared: once, as the fields of a dataclass, from which the command line's
click options, the Python API's signature and docstring, and every default follow.

A command's options are a frozen dataclass whose fields are made with :func:`option`::

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class ExportOptions:
        version: int | None = option(None, "Version number (default: next).", minimum=1)

From that one line the command line (:func:`kerasapps.cli.options.click_options`) makes ``--version`` (the flag
is the field's name with dashes unless ``flag`` says otherwise; the click type follows the annotation and
``minimum``/``maximum``/``choices``/``path``; the default and the help as given, the default shown), and the
Python API (:func:`takes`) gets a keyword-only parameter ``version: 'int | None' = None`` and a line of its
docstring. A field declared ``positional`` is a positional parameter of the API function as well (after the
function's own), and comes first on the command line too. An annotation of ``Any`` leaves the API's
parameter unannotated (``strategy`` takes a name or a ``tf.distribute.Strategy``).

Standard library only: ``kerasapps COMMAND --help`` reads these without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

from kerasapps.core.errors import UsageError

PathLike = Union[str, os.PathLike]
Assignments = Union[Iterable[str], Mapping[str, Any]]  # --set: "key=value" strings, or a mapping

PATHS = ("file", "dir", "any")


@dataclasses.dataclass(frozen=True)
class Spec:
    """What one option is besides its name, type and default: its help and how the command line takes it."""

    help: str = ""
    flag: str | None = None  # the command line's flag(s): "--request-timeout", "--batching/--no-batching"
    positional: bool = False  # the API takes it positionally too (``generate(model, prompt)``)
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False  # the value must be above ``minimum``, not equal to it
    choices: tuple | None = None
    path: str | None = None  # a filesystem path: a "file", a "dir" or "any"
    multiple: bool = False  # repeatable on the command line (a tuple of values)
    envvar: str | None = None  # the command line reads it from this environment variable when not given
    metavar: str | None = None
    show_default: bool = True

    def __post_init__(self):
        if self.path is not None and self.path not in PATHS:
            raise ValueError(f"Spec.path must be one of {', '.join(PATHS)}; got {self.path!r}")

    def flags(self, name: str) -> str:
        return self.flag or "--" + name.replace("_", "-")


def option(default: Any = dataclasses.MISSING, help: str = "", **spec) -> Any:
    """A dataclass field that is a command's option; ``spec`` holds :class:`Spec`'s other fields. Without a
    default the option is required."""
    return dataclasses.field(default=default, metadata={"option": Spec(help, **spec)})


def options_of(cls) -> list[tuple[dataclasses.Field, Spec]]:
    """``cls``'s option fields with their specs: the positional ones first, each group in declaration order."""
    found = [(field, field.metadata["option"]) for field in dataclasses.fields(cls) if "option" in field.metadata]
    return [pair for pair in found if pair[1].positional] + [pair for pair in found if not pair[1].positional]


def keywords(options) -> dict[str, Any]:
    """An options object as keyword arguments (its fields, not copied)."""
    return {field.name: getattr(options, field.name) for field, _ in options_of(type(options))}


def required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING


def base_type(field: dataclasses.Field) -> str:
    """The annotation's first type other than None: ``"int"`` for ``int | None``."""
    annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    names = [part.strip() for part in annotation.split("|") if part.strip() != "None"]
    return names[0] if names else "Any"


def _parameter(field: dataclasses.Field, spec: Spec) -> inspect.Parameter:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if spec.positional else inspect.Parameter.KEYWORD_ONLY
    annotation = inspect.Parameter.empty if field.type in ("Any", Any) else field.type
    default = inspect.Parameter.empty if required(field) else field.default
    return inspect.Parameter(field.name, kind, default=default, annotation=annotation)


def signature_with(function: Callable, cls) -> inspect.Signature:
    """``function``'s signature with its parameter ``options`` replaced by the fields of ``cls``."""
    own = inspect.signature(function)
    if "options" not in own.parameters:
        raise TypeError(f"{function.__name__} takes no parameter 'options' to expand")
    parameters = []
    for parameter in own.parameters.values():
        parameters += [_parameter(f, s) for f, s in options_of(cls)] if parameter.name == "options" else [parameter]
    return own.replace(parameters=sorted(parameters, key=lambda p: p.kind))  # positional first (a stable sort)


def describe(cls) -> str:
    """The docstring section listing ``cls``'s options: name, type, default and help."""
    lines = ["Options (the command's flags, with the same defaults):"]
    for field, spec in options_of(cls):
        default = "required" if required(field) else f"default {field.default!r}"
        kind = "" if field.type in ("Any", Any) else f"{field.type}, "
        lines.append(textwrap.fill(f"{field.name} ({kind}{default}): {spec.help or '-'}", width=112,
                                   initial_indent="    ", subsequent_indent="        "))
    return "\n".join(lines)


def takes(cls) -> Callable:
    """Decorate an API function written as ``f(own..., *, options, python_only...)``: its signature becomes
    ``f(own..., <the fields of cls>, *, python_only...)`` (the positional fields after ``own``, the others
    keyword-only), its docstring gains the list of options, and a call builds ``cls`` from the arguments and
    hands it to ``f`` as ``options``. A value that ``cls`` itself refuses (a ValueError) is a UsageError."""

    def decorate(function: Callable) -> Callable:
        signature = signature_with(function, cls)
        names = [field.name for field, _ in options_of(cls)]

        @functools.wraps(function)
        def call(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs)
            arguments.apply_defaults()
            values = dict(arguments.arguments)
            try:
                options = cls(**{name: values.pop(name) for name in names})
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            return function(**values, options=options)

        call.__signature__ = signature
        call.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()
                                if p.annotation is not p.empty}
        if signature.return_annotation is not signature.empty:
            call.__annotations__["return"] = signature.return_annotation
        call.__doc__ = inspect.cleandoc(function.__doc__ or "") + "\n\n" + describe(cls)
        call.options = cls
        return call

    return decorate


def check_ranges(options) -> None:
    """Raise ValueError ``Invalid NAME: VALUE`` for the first option outside its declared minimum, maximum or
    choices (None passes: it is the "not set" of an optional option)."""
    for field, spec in options_of(type(options)):
        value = getattr(options, field.name)
        if value is None:
            continue
        low = spec.minimum is not None and (value <= spec.minimum if spec.min_open else value < spec.minimum)
        high = spec.maximum is not None and value > spec.maximum
        if low or high or (spec.choices is not None and value not in spec.choices):
            raise ValueError(f"Invalid {field.name}: {value!r}")
