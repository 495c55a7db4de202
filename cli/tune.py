"""``kerasapps tune NAME``: random search over a recipe's hyper-parameters; parse, call the API, print."""

from __future__ import annotations

import click

from kerasapps.cli.options import api_command
from kerasapps.core.commands import TuneOptions


@api_command(click.command, TuneOptions, "tune")
def tune(result, options):
    """Random search over NAME's hyper-parameters; writes OUT/best_config.yaml for `train --config`."""
    keys = list(result["space"])
    header = f"  {'trial':>5}  {result['objective']:>12}  " + "  ".join(f"{k:>13}" for k in keys)
    click.echo(f"{result['recipe']}: {len(result['trials'])} trials, best first ({result['direction']} "
               f"{result['objective']} on the validation split)")
    click.echo(header)
    for row in result["trials"]:
        cells = "  ".join(f"{row['hparams'].get(k):>13.4g}" if isinstance(row["hparams"].get(k), float)
                          else f"{row['hparams'].get(k)!s:>13}" for k in keys)
        click.echo(f"  {row['trial']:>5}  {row['score']:>12.4f}  {cells}" + ("  (diverged)" if row["diverged"] else ""))
    click.echo(f"best config: {result['best_config']}")
    if result["smoke"]:
        click.echo("smoke search passed: the space trains end to end; next: the same command with --trials N "
                   "and without --smoke")
        return
    click.echo(f"next: kerasapps train {result['recipe']} --config {result['best_config']}")
