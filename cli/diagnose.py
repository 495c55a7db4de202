"""``kerasapps diagnose {init,overfit,lr,filters,features}`` and ``kerasapps tune``: parse, call the API, print."""

from __future__ import annotations

import click

from kerasapps.cli.options import (
    DATA,
    DATA_DIR,
    JSON,
    RECIPE_NAME,
    SET,
    echo_json,
    pass_settings,
    quiet_for_json,
)
from kerasapps.core.schema import (
    INIT_ACTIVATIONS,
    INIT_EXPERIMENT,
    INIT_SCHEMES,
    LR_RANGE,
    OVERFIT_EXAMPLES,
    OVERFIT_MAX_EPOCHS,
    TUNE_VALIDATION_SPLIT,
)


@click.group()
def diagnose():
    """Check a network: can it overfit, which learning rate, how initialisation behaves, what it learned."""


@diagnose.command()
@click.option("--activation", default=INIT_EXPERIMENT["activation"], show_default=True,
              type=click.Choice(INIT_ACTIVATIONS))
@click.option("--init", "init", default=INIT_EXPERIMENT["init"], show_default=True, type=click.Choice(INIT_SCHEMES),
              help="normal: N(0,1); small: N(0,0.01^2); glorot: N(0,2/(fan_in+fan_out)); he: N(0,2/fan_in).")
@click.option("--layers", default=INIT_EXPERIMENT["layers"], show_default=True, type=click.IntRange(min=1))
@click.option("--units", default=INIT_EXPERIMENT["units"], show_default=True, type=click.IntRange(min=1))
@click.option("--examples", default=INIT_EXPERIMENT["examples"], show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=INIT_EXPERIMENT["seed"], show_default=True, type=int)
@click.option("--png", type=click.Path(dir_okay=False),
              help="Histogram PNG (default diagnostics/init-ACTIVATION-INIT.png).")
@JSON
def init(activation, init, layers, units, examples, seed, png, as_json):
    """Per-layer activation statistics of a deep MLP on random N(0,1) input (Glorot & Bengio 2010)."""
    quiet_for_json(as_json)
    import kerasapps  # NumPy only: no TensorFlow

    stats = kerasapps.diagnose_init(activation, init, layers=layers, units=units, examples=examples, seed=seed,
                                    png=png)
    if as_json:
        return echo_json(stats)
    click.echo(f"{activation} activations, {init} init, {layers} layers x {units} units, "
               f"input N(0,1) [{examples} x {units}]")
    click.echo(f"  {'layer':>5} {'mean':>10} {'std':>10} {'saturated':>10} {'dead':>8} {'zero':>8}")
    for row in stats["layers"]:
        click.echo(f"  {row['layer']:>5} {row['mean']:>10.4g} {row['std']:>10.4g} {row['saturated_fraction']:>10.1%} "
                   f"{row['dead_fraction']:>8.1%} {row['zero_fraction']:>8.1%}")
    first, last = stats["layers"][0]["std"], stats["layers"][-1]["std"]
    click.echo(f"  std last/first layer: {last / first if first else float('nan'):.3g}")
    click.echo(f"histograms: {stats['png']}")


@diagnose.command()
@RECIPE_NAME
@click.option("--examples", default=OVERFIT_EXAMPLES, show_default=True, type=click.IntRange(min=1),
              help="Training examples to overfit.")
@click.option("--max-epochs", default=OVERFIT_MAX_EPOCHS, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: the recipe's, at most --examples.")
@SET
@DATA_DIR
@DATA
@JSON
@pass_settings
def overfit(settings, name, examples, max_epochs, batch_size, assignments, data_dir, data, as_json):
    """Can NAME reach 100% training accuracy (or ~0 loss) on a small slice? Exit 1 with the likely cause if not."""
    settings.start(as_json)
    import kerasapps

    result = kerasapps.diagnose_overfit(name, examples=examples, max_epochs=max_epochs, batch_size=batch_size,
                                        set=assignments, data_dir=data_dir, data=data)
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
@click.option("--min-lr", default=LR_RANGE["min_lr"], show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--max-lr", default=LR_RANGE["max_lr"], show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--steps", default=LR_RANGE["steps"], show_default=True, type=click.IntRange(min=10))
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: the recipe's.")
@click.option("--png", type=click.Path(dir_okay=False), help="Plot PNG (default diagnostics/lr-NAME.png).")
@SET
@DATA_DIR
@DATA
@JSON
@pass_settings
def lr(settings, name, min_lr, max_lr, steps, batch_size, png, assignments, data_dir, data, as_json):
    """Learning-rate range test: the lr grows exponentially over --steps batches; loss against lr."""
    settings.start(as_json)
    import kerasapps

    result = kerasapps.diagnose_lr(name, min_lr=min_lr, max_lr=max_lr, steps=steps, batch_size=batch_size, png=png,
                                   set=assignments, data_dir=data_dir, data=data)
    if as_json:
        return echo_json(result)
    diverged = (f"diverges at lr {result['divergence_lr']:.3g}" if result["divergence_lr"] is not None
                else f"did not diverge up to {max_lr:g}")
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
@click.option("--layer", help="Convolution layer to draw (default: the first).")
@click.option("--png", type=click.Path(dir_okay=False),
              help="Output PNG (default RUN_DIR/diagnostics/filters.png, filters-LAYER.png with --layer).")
@JSON
@pass_settings
def filters(settings, run_dir, layer, png, as_json):
    """Grid of a run's convolution filters, with per-filter norms and pairwise correlations."""
    settings.start(as_json)
    import kerasapps

    result = kerasapps.diagnose_filters(run_dir, layer=layer, png=png)
    if as_json:
        return echo_json(result)
    low, high = result["value_range"]
    click.echo(f"{result['recipe']} layer {result['layer']}: {result['rows']}x{result['cols']} grid "
               f"({result['drawn_as']}; weights {low:.3g} to {high:.3g} on one colour scale) -> {result['png']}")
    _print_filter_statistics(result["statistics"])


@diagnose.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="A PNG/JPEG image or .npy array in the recipe's raw input format (first example used).")
@click.option("--layer", help="Layer whose [N, H, W, C] output to draw (default: the first convolution).")
@click.option("--png", type=click.Path(dir_okay=False),
              help="Output PNG (default RUN_DIR/diagnostics/features-LAYER.png).")
@JSON
@pass_settings
def features(settings, run_dir, input_path, layer, png, as_json):
    """Grid of the feature maps one input produces at a layer, with per-map statistics."""
    settings.start(as_json)
    import kerasapps

    result = kerasapps.diagnose_features(run_dir, input_path, layer=layer, png=png)
    if as_json:
        return echo_json(result)
    stats = result["statistics"]
    click.echo(f"{result['recipe']} layer {result['layer']} on {result['input']}: {stats['maps']} maps of "
               f"{result['map_shape'][0]}x{result['map_shape'][1]}, {stats['dead_maps']} all zero -> {result['png']}")


@click.command()
@RECIPE_NAME
@click.option("--trials", type=click.IntRange(min=1),
              help="Configurations to try (in total); required without --smoke.")
@click.option("--max-epochs", type=click.IntRange(min=1), help="Epochs per trial (default: the recipe's).")
@click.option("--space", "space_file", type=click.Path(dir_okay=False),
              help="YAML search space: key: {min:, max:, log: true} or key: [choices]. Default: see README.")
@click.option("--validation-split", default=TUNE_VALIDATION_SPLIT, show_default=True,
              type=click.FloatRange(0, 0.5, min_open=True),
              help="Fraction of the training data held out to score trials (the test split is never read).")
@click.option("--out", type=click.Path(file_okay=False), help="Search directory (default tune/NAME); rerun to resume.")
@click.option("--smoke", is_flag=True, help="A tiny search (at most 2 trials of 1 epoch x 2 steps on a small slice, "
              "in tune/NAME-smoke): checks the space end to end in seconds.")
@SET
@DATA_DIR
@DATA
@JSON
@pass_settings
def tune(settings, name, trials, max_epochs, space_file, validation_split, out, smoke, assignments, data_dir, data,
         as_json):
    """Random search over NAME's hyper-parameters; writes OUT/best_config.yaml for `train --config`."""
    settings.start(as_json)
    import kerasapps

    result = kerasapps.tune(name, trials=trials, max_epochs=max_epochs, space=space_file,
                            validation_split=validation_split, out=out, set=assignments, data_dir=data_dir, data=data,
                            smoke=smoke)
    if as_json:
        return echo_json(result)
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
