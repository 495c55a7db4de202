"""``kerasapps diagnose {init,overfit,lr,filters,features}``: parse, call the API, print."""

from __future__ import annotations

import click

from kerasapps.cli.options import (
    JSON,
    RECIPE_NAME,
    click_options,
    echo_json,
    pass_settings,
    quiet_for_json,
)
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


@diagnose.command()
@RECIPE_NAME
@click_options(OverfitOptions)
@JSON
@pass_settings
def overfit(settings, name, as_json, **options):
    """Can NAME reach 100% training accuracy (or ~0 loss) on a small slice? Exit 1 with the likely cause if not."""
    settings.start(as_json)
    import kerasapps

    result = kerasapps.diagnose_overfit(name, **options)
    if as_json:
        echo_json(result)
        return 0 if result["passed"] else 1
    acc = result["final_accuracy"]
    acc_text = f", accuracy {acc:.1%}" if acc is not None else ""
    verdict = "overfits" if result["passed"] else "does NOT overfit"
    click.echo(f"{result['recipe']} {verdict} {result['examples']} examples: loss {result['first_loss']:.4g} -> "
               f"{result['final_loss']:.4g}{acc_text} after {result['epochs']} epochs ({result['seconds']:.1f} s)")
    if not result["passed"]:
        click.echo(f"likely cause: {result['cause']}")
        return 1
    return 0


@diagnose.command()
@RECIPE_NAME
@click_options(LrOptions)
@JSON
@pass_settings
def lr(settings, name, as_json, **options):
    """Learning-rate range test: the lr grows exponentially over --steps batches; loss against lr."""
    settings.start(as_json)
    import kerasapps

    result = kerasapps.diagnose_lr(name, **options)
    if as_json:
        return echo_json(result)
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


@diagnose.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click_options(FiltersOptions)
@JSON
@pass_settings
def filters(settings, run_dir, as_json, **options):
    """Grid of a run's convolution filters, with per-filter norms and pairwise correlations."""
    settings.start(as_json)
    import kerasapps

    result = kerasapps.diagnose_filters(run_dir, **options)
    if as_json:
        return echo_json(result)
    low, high = result["value_range"]
    click.echo(f"{result['recipe']} layer {result['layer']}: {result['rows']}x{result['cols']} grid "
               f"({result['drawn_as']}; weights {low:.3g} to {high:.3g} on one colour scale) -> {result['png']}")
    _print_filter_statistics(result["statistics"])


@diagnose.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click_options(FeaturesOptions)
@JSON
@pass_settings
def features(settings, run_dir, as_json, **options):
    """Grid of the feature maps one input produces at a layer, with per-map statistics."""
    settings.start(as_json)
    import kerasapps

    result = kerasapps.diagnose_features(run_dir, **options)
    if as_json:
        return echo_json(result)
    stats = result["statistics"]
    click.echo(f"{result['recipe']} layer {result['layer']} on {result['input']}: {stats['maps']} maps of "
               f"{result['map_shape'][0]}x{result['map_shape'][1]}, {stats['dead_maps']} all zero -> {result['png']}")
