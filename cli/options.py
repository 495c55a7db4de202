"""What every command shares: the group's settings (``--verbose``, ``--debug``), common options and JSON output."""

from __future__ import annotations

import dataclasses
import json
import logging

import click


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


DATA_DIR = click.option("--data-dir", type=click.Path(), envvar="KERASAPPS_DATA_DIR", show_envvar=True,
                        help="Local data directory (else TFDS downloads).")
DATA = click.option("--data", "data", metavar="SOURCE",
                    help="Your own data: a folder of class folders (images or .txt files), a .csv/.jsonl table, "
                         "or tfds:NAME[/CONFIG][:VERSION].")
SET = click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                   help="Override a hyper-parameter (repeatable).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def complete_recipe(ctx, param, incomplete: str) -> list:
    """Shell completion of a recipe NAME from the registry (``_KERASAPPS_COMPLETE=bash_source kerasapps``)."""
    from kerasapps.core.registry import REGISTRY

    return [click.shell_completion.CompletionItem(name) for name in REGISTRY.names() if name.startswith(incomplete)]


RECIPE_NAME = click.argument("name", shell_complete=complete_recipe)
