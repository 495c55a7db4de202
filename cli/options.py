"""What every command shares: the group's settings (``--verbose``, ``--debug``), JSON output, the recipe NAME
argument, and :func:`click_options`, which makes a command's click options from its options dataclass
(:mod:`kerasapps.core.commands`, :mod:`kerasapps.serving.options`)."""

from __future__ import annotations

import dataclasses
import json
import logging

import click

from kerasapps.core.options import base_type, options_of, required


@dataclasses.dataclass(frozen=True)
class Settings:
    """The group's own flags, handed to every command through click's context."""

    verbose: bool = False
    debug: bool = False

    def import_tensorflow(self) -> None:
        from kerasapps.core.quiet_import import import_tensorflow

        import_tensorflow(verbose=self.verbose or self.debug)

    def start(self, as_json: bool = False) -> None:
        """What a command that runs a model does first: mute informational logging under --json, and
        import TensorFlow quietly."""
        quiet_for_json(as_json)
        self.import_tensorflow()


pass_settings = click.make_pass_decorator(Settings, ensure=True)


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def quiet_for_json(as_json: bool) -> None:
    """With --json, stdout carries only the JSON document: informational logging is muted."""
    if as_json:
        logging.getLogger("kerasapps").setLevel(logging.WARNING)


JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def complete_recipe(ctx, param, incomplete: str) -> list:
    """Shell completion of a recipe NAME from the registry (``_KERASAPPS_COMPLETE=bash_source kerasapps``)."""
    from kerasapps.core.registry import REGISTRY

    return [click.shell_completion.CompletionItem(name) for name in REGISTRY.names() if name.startswith(incomplete)]


RECIPE_NAME = click.argument("name", shell_complete=complete_recipe)


_TYPES = {"int": int, "float": float, "str": str}


def _click_type(field, spec):
    if spec.path is not None:
        return click.Path(file_okay=spec.path != "dir", dir_okay=spec.path != "file")
    if spec.choices is not None:
        return click.Choice(spec.choices)
    kind = _TYPES.get(base_type(field), str)
    if kind is str or (spec.minimum is None and spec.maximum is None):
        return kind
    ranged = click.IntRange if kind is int else click.FloatRange
    return ranged(spec.minimum, spec.maximum, min_open=spec.min_open)


def click_option(field, spec):
    """One declared option as a click option: ``--NAME`` (or ``spec.flag``), passed to the command as NAME."""
    flag = base_type(field) == "bool" and "/" not in spec.flags(field.name)
    settings = {"help": spec.help or None, "show_default": spec.show_default, "metavar": spec.metavar}
    if spec.envvar:
        settings.update(envvar=spec.envvar, show_envvar=True)
    if flag:
        settings["is_flag"] = True
    elif base_type(field) != "bool":
        settings["type"] = _click_type(field, spec)
    if spec.multiple:
        settings["multiple"] = True
    if required(field):
        settings["required"] = True
    else:
        settings["default"] = field.default
    return click.option(spec.flags(field.name), field.name, **settings)


def click_options(cls):
    """Decorate a command with the options of ``cls`` (a dataclass of :func:`kerasapps.core.options.option`
    fields), in their order; the command receives each as a keyword argument named like the field, as the
    Python API function takes it."""
    made = [click_option(field, spec) for field, spec in options_of(cls)]

    def decorate(command):
        for decorator in reversed(made):
            command = decorator(command)
        return command

    return decorate


def api_command(register, options_class, call: str, *, run_dir: bool = False, exit_code=None):
    """A command that calls ``kerasapps.<call>(TARGET, **options)`` and prints its result: TARGET is the recipe
    NAME (``run_dir``: a RUN_DIR), the options are ``options_class``'s, and ``--json``. The settings start
    (logging muted under --json, TensorFlow imported quietly) before the call. The decorated function,
    ``printer(result, options)``, prints the result for a reader and returns the exit code (None: 0), and its
    docstring is the command's help; with --json the result is printed as JSON instead and ``exit_code(result)``
    gives the exit code. ``register`` is ``cli.command`` or a group's ``command``."""
    argument = click.argument("run_dir", type=click.Path(file_okay=False)) if run_dir else RECIPE_NAME
    key = "run_dir" if run_dir else "name"

    def wrap(printer):
        @register(name=printer.__name__, help=printer.__doc__)
        @argument
        @click_options(options_class)
        @JSON
        @pass_settings
        def command(settings, as_json, **options):
            settings.start(as_json)
            import kerasapps

            result = getattr(kerasapps, call)(options.pop(key), **options)
            if as_json:
                echo_json(result)
                return exit_code(result) if exit_code is not None else None
            return printer(result, options)

        return command

    return wrap
