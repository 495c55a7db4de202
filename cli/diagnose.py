"""``kerasapps diagnose {overfit,lr,init,filters,features}`` and ``kerasapps tune``: parse, call the library, print.

The logic lives in :mod:`kerasapps.diagnose` and :mod:`kerasapps.tuning`; imports stay lazy so
``kerasapps --help`` does not load TensorFlow.
"""

from __future__ import annotations

import click

_DATA_DIR = click.option("--data-dir", type=click.Path(), envvar="KERASAPPS_DATA_DIR", show_envvar=True,
                         help="Local data directory (else TFDS downloads).")
_SET = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                    help="Override a hyper-parameter (repeatable).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _main():
    from kerasapps.cli import main

    return main


def _start(as_json: bool, tensorflow: bool = True):
    main = _main()
    main._quiet_for_json(as_json)
    if tensorflow:
        main._tensorflow()
    return main


@click.group()
def diagnose():
    """Check a network the notes' way: can it overfit, which learning rate, how initialisation behaves, what it learned."""


@diagnose.command()
@click.option("--activation", default="tanh", show_default=True, type=click.Choice(["sigmoid", "tanh", "relu"]))
@click.option("--init", "init", default="small", show_default=True,
              type=click.Choice(["normal", "small", "glorot", "he"]),
              help="normal: N(0,1); small: N(0,0.01^2); glorot: N(0,2/(fan_in+fan_out)); he: N(0,2/fan_in).")
@click.option("--layers", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--units", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--examples", default=10_000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--png", type=click.Path(dir_okay=False),
              help="Histogram PNG (default diagnostics/init-ACTIVATION-INIT.png).")
@_JSON
def init(activation, init, layers, units, examples, seed, png, as_json):
    """Per-layer activation statistics of a deep MLP on random N(0,1) input (the notes' experiment)."""
    main = _start(as_json, tensorflow=False)  # pure numpy
    from kerasapps.diagnose import init_statistics, plot_init_histograms

    stats = init_statistics(activation, init, layers=layers, units=units, examples=examples, seed=seed,
                            keep_activations=True)
    path = plot_init_histograms(stats, png or f"diagnostics/init-{activation}-{init}.png")
    stats.pop("activations")
    stats["png"] = str(path)
    if as_json:
        return main._echo_json(stats)
    click.echo(f"{activation} activations, {init} init, {layers} layers x {units} units, "
               f"input N(0,1) [{examples} x {units}]")
    click.echo(f"  {'layer':>5} {'mean':>10} {'std':>10} {'saturated':>10} {'dead':>8} {'zero':>8}")
    for row in stats["layers"]:
        click.echo(f"  {row['layer']:>5} {row['mean']:>10.4g} {row['std']:>10.4g} {row['saturated_fraction']:>10.1%} "
                   f"{row['dead_fraction']:>8.1%} {row['zero_fraction']:>8.1%}")
    first, last = stats["layers"][0]["std"], stats["layers"][-1]["std"]
    click.echo(f"  std last/first layer: {last / first if first else float('nan'):.3g}")
    click.echo(f"histograms: {path}")


@diagnose.command()
@click.argument("name")
@click.option("--examples", default=100, show_default=True, type=click.IntRange(min=1),
              help="Training examples to overfit.")
@click.option("--max-epochs", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: the recipe's, at most --examples.")
@_SET
@_DATA_DIR
@_JSON
def overfit(name, examples, max_epochs, batch_size, overrides, data_dir, as_json):
    """Can NAME reach 100% training accuracy (or ~0 loss) on a small slice? Exit 1 with the likely cause if not."""
    main = _start(as_json)
    from kerasapps.diagnose import overfit_check

    result = overfit_check(name, examples=examples, max_epochs=max_epochs, batch_size=batch_size,
                           overrides=overrides, data_dir=data_dir)
    if as_json:
        main._echo_json(result)
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
@click.argument("name")
@click.option("--min-lr", default=1e-6, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--max-lr", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--steps", default=200, show_default=True, type=click.IntRange(min=10))
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: the recipe's.")
@click.option("--png", type=click.Path(dir_okay=False), help="Plot PNG (default diagnostics/lr-NAME.png).")
@_SET
@_DATA_DIR
@_JSON
def lr(name, min_lr, max_lr, steps, batch_size, png, overrides, data_dir, as_json):
    """Learning-rate range test: the lr grows exponentially over --steps batches; loss against lr."""
    main = _start(as_json)
    from kerasapps.diagnose import lr_range_test, plot_lr_range

    result = lr_range_test(name, min_lr=min_lr, max_lr=max_lr, steps=steps, batch_size=batch_size,
                           overrides=overrides, data_dir=data_dir)
    result["png"] = str(plot_lr_range(result, png or f"diagnostics/lr-{result['recipe']}.png"))
    if as_json:
        return main._echo_json(result)
    diverged = (f"diverges at lr {result['divergence_lr']:.3g}" if result["divergence_lr"] is not None
                else f"did not diverge up to {max_lr:g}")
    click.echo(f"{result['recipe']} ({result['optimizer']}, batch {result['batch_size']}, {result['steps']} steps): "
               f"lowest loss {result['min_smoothed_loss']:.4g} at lr {result['min_loss_lr']:.3g}; {diverged}")
    click.echo(f"suggested learning_rate: {result['suggested_lr']:.3g}   (--set learning_rate={result['suggested_lr']:.2g})")
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
@_JSON
def filters(run_dir, layer, png, as_json):
    """Grid of a run's convolution filters, with per-filter norms and pairwise correlations."""
    main = _start(as_json)
    from kerasapps.pictures import filters_picture

    result = filters_picture(run_dir, layer=layer, png=png)
    if as_json:
        return main._echo_json(result)
    click.echo(f"{result['recipe']} layer {result['layer']}: {result['rows']}x{result['cols']} grid "
               f"({result['drawn_as']}) -> {result['png']}")
    _print_filter_statistics(result["statistics"])


@diagnose.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="A PNG/JPEG image or .npy array in the recipe's raw input format (first example used).")
@click.option("--layer", help="Layer whose [N, H, W, C] output to draw (default: the first convolution).")
@click.option("--png", type=click.Path(dir_okay=False),
              help="Output PNG (default RUN_DIR/diagnostics/features-LAYER.png).")
@_JSON
def features(run_dir, input_path, layer, png, as_json):
    """Grid of the feature maps one input produces at a layer, with per-map statistics."""
    main = _start(as_json)
    from kerasapps.pictures import features_picture

    result = features_picture(run_dir, input_path, layer=layer, png=png)
    if as_json:
        return main._echo_json(result)
    stats = result["statistics"]
    click.echo(f"{result['recipe']} layer {result['layer']} on {result['input']}: {stats['maps']} maps of "
               f"{result['map_shape'][0]}x{result['map_shape'][1]}, {stats['dead_maps']} all zero -> {result['png']}")

@click.command()
@click.argument("name")
@click.option("--trials", required=True, type=click.IntRange(min=1), help="Configurations to try (in total).")
@click.option("--max-epochs", type=click.IntRange(min=1), help="Epochs per trial (default: the recipe's).")
@click.option("--space", "space_file", type=click.Path(dir_okay=False),
              help="YAML search space: key: {min:, max:, log: true} or key: [choices]. Default: see README.")
@click.option("--validation-split", default=0.1, show_default=True, type=click.FloatRange(0, 0.5, min_open=True),
              help="Fraction of the training data held out to score trials (the test split is never read).")
@click.option("--out", type=click.Path(file_okay=False), help="Search directory (default tune/NAME); rerun to resume.")
@_SET
@_DATA_DIR
@_JSON
def tune(name, trials, max_epochs, space_file, validation_split, out, overrides, data_dir, as_json):
    """Random search over NAME's hyper-parameters; writes OUT/best_config.yaml for `train --config`."""
    main = _start(as_json)
    from kerasapps.tuning import tune as run_search

    result = run_search(name, trials=trials, max_epochs=max_epochs, space_file=space_file,
                        validation_split=validation_split, out=out, overrides=overrides, data_dir=data_dir)
    if as_json:
        return main._echo_json(result)
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
    click.echo(f"next: kerasapps train {result['recipe']} --config {result['best_config']}")
