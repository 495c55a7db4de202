"""``kerasapps diagnose {init,overfit,lr,filters,features}``: parse, call the API, print."""

from __future__ import annotations

import click

from kerasapps.cli.options import JSON, api_command, click_options, echo_json, quiet_for_json
from kerasapps.core.commands import FeaturesOptions, FiltersOptions, InitOptions, LrOptions, OverfitOptions


@click.group()
def diagnose():
    """Check a network: can it overfit, which learning rate, how initialisation behaves, what it learned."""


@diagnose.command()
@click_options(InitOptions)
@JSON
def init(as_json, **options):
    """Per-layer activation statistics of a deep MLP on random N(0,1) input (Glorot & Bengio 2010)."""
    quiet_for_json(as_json)
    import kerasapps  # NumPy only: no TensorFlow

    stats = kerasapps.diagnose_init(**options)
    if as_json:
        return echo_json(stats)
    units = options["units"]
    click.echo(f"{options['activation']} activations, {options['init']} init, {options['layers']} layers x {units} "
               f"units, input N(0,1) [{options['examples']} x {units}]")
    click.echo(f"  {'layer':>5} {'mean':>10} {'std':>10} {'saturated':>10} {'dead':>8} {'zero':>8}")
    for row in stats["layers"]:
        click.echo(f"  {row['layer']:>5} {row['mean']:>10.4g} {row['std']:>10.4g} {row['saturated_fraction']:>10.1%} "
                   f"{row['dead_fraction']:>8.1%} {row['zero_fraction']:>8.1%}")
    first, last = stats["layers"][0]["std"], stats["layers"][-1]["std"]
    click.echo(f"  std last/first layer: {last / first if first else float('nan'):.3g}")
    click.echo(f"histograms: {stats['png']}")


@api_command(diagnose.command, OverfitOptions, "diagnose_overfit", exit_code=lambda result: int(not result["passed"]))
def overfit(result, options):
    """Can NAME reach 100% training accuracy (or ~0 loss) on a small slice? Exit 1 with the likely cause if not."""
    acc = result["final_accuracy"]
    acc_text = f", accuracy {acc:.1%}" if acc is not None else ""
    verdict = "overfits" if result["passed"] else "does NOT overfit"
    click.echo(f"{result['recipe']} {verdict} {result['examples']} examples: loss {result['first_loss']:.4g} -> "
               f"{result['final_loss']:.4g}{acc_text} after {result['epochs']} epochs ({result['seconds']:.1f} s)")
    if not result["passed"]:
        click.echo(f"likely cause: {result['cause']}")
        return 1
    return 0


@api_command(diagnose.command, LrOptions, "diagnose_lr")
def lr(result, options):
    """Learning-rate range test: the lr grows exponentially over --steps batches; loss against lr."""
    diverged = (f"diverges at lr {result['divergence_lr']:.3g}" if result["divergence_lr"] is not None
                else f"did not diverge up to {options['max_lr']:g}")
    click.echo(f"{result['recipe']} ({result['optimizer']}, batch {result['batch_size']}, {result['steps']} steps): "
               f"lowest loss {result['min_smoothed_loss']:.4g} at lr {result['min_loss_lr']:.3g}; {diverged}")
    suggested = result["suggested_lr"]
    click.echo(f"suggested learning_rate: {suggested:.3g}   (--set learning_rate={suggested:.2g})")
    click.echo(f"plot: {result['png']}")


def _print_filter_statistics(stats) -> None:
    corr = (f"mean |correlation| {stats['mean_abs_correlation']:.3f}, max {stats['max_abs_correlation']:.3f} "
            f"(filters {stats['most_correlated_pair'][0]} and {stats['most_correlated_pair'][1]})"
            if stats["mean_abs_correlation"] is not None else "correlation: fewer than two non-constant filters")
    click.echo(f"  {stats['filters']} filters of {stats['filter_size']} weights; norm mean {stats['norm_mean']:.4g} "
               f"(min {stats['norm_min']:.4g}, max {stats['norm_max']:.4g}); {corr}")


@api_command(diagnose.command, FiltersOptions, "diagnose_filters", run_dir=True)
def filters(result, options):
    """Grid of a run's convolution filters, with per-filter norms and pairwise correlations."""
    low, high = result["value_range"]
    click.echo(f"{result['recipe']} layer {result['layer']}: {result['rows']}x{result['cols']} grid "
               f"({result['drawn_as']}; weights {low:.3g} to {high:.3g} on one colour scale) -> {result['png']}")
    _print_filter_statistics(result["statistics"])


@api_command(diagnose.command, FeaturesOptions, "diagnose_features", run_dir=True)
def features(result, options):
    """Grid of the feature maps one input produces at a layer, with per-map statistics."""
    stats = result["statistics"]
    click.echo(f"{result['recipe']} layer {result['layer']} on {result['input']}: {stats['maps']} maps of "
               f"{result['map_shape'][0]}x{result['map_shape'][1]}, {stats['dead_maps']} all zero -> {result['png']}")
