"""``kerasapps``: the command line. Each command parses its options, calls its function of the Python API
(:mod:`kerasapps.api`) and prints. The options are not written here: each command's come from its options
dataclass (:mod:`kerasapps.core.commands`, :class:`kerasapps.serving.options.ServeOptions`) through
:func:`kerasapps.cli.options.click_options`, and reach the API function under the same names.

Imports are lazy, so ``--help``, ``list`` and ``predict --url`` answer without TensorFlow; the
commands that run a model import it quietly first (its start-up chatter stays off stderr unless
``--verbose`` or ``--debug``). Every error is one line on stderr with exit code 2 (bad usage or
input) or 1 (failure at run time).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import click

from kerasapps.cli.diagnose import diagnose
from kerasapps.cli.options import (
    JSON,
    RECIPE_NAME,
    Settings,
    click_options,
    echo_json,
    pass_settings,
    quiet_for_json,
)
from kerasapps.cli.tune import tune
from kerasapps.core.commands import (
    EvaluateOptions,
    ExportOptions,
    GenerateOptions,
    PredictOptions,
    ReportOptions,
    TrainOptions,
)
from kerasapps.core.version import __version__
from kerasapps.serving.options import ServeOptions


class _Handler(logging.Handler):
    """INFO to stdout as plain lines, WARNING and above to stderr as 'warning: ...'. Written to the streams
    ``sys`` holds now, so that a line logged under a progress bar is printed above it."""

    def emit(self, record):
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            click.echo(f"{record.levelname.lower()}: {message}", file=sys.stderr)
        else:
            click.echo(message, file=sys.stdout)


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("kerasapps")
    logger.handlers[:] = [_Handler()]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


class _Failure(click.ClickException):
    """An error from the library, as the one line and exit code the CLI contract gives it."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class KerasappsGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
            if ctx.find_object(Settings) and ctx.find_object(Settings).debug:
                raise
            from kerasapps.core.errors import KerasappsError

            if isinstance(exc, KerasappsError):
                raise _Failure(str(exc), exc.exit_code) from None
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise _Failure(f"{type(exc).__name__}: {first} (run with --debug for the traceback)", 1) from None

    def main(self, args=None, prog_name=None, **extra):
        try:
            rv = super().main(args=args, prog_name=prog_name or "kerasapps", standalone_mode=False, **extra)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except click.exceptions.UsageError as exc:
            path = exc.ctx.command_path if exc.ctx else ""
            hint = f" (see: kerasapps {path.split(' ', 1)[1]} --help)" if " " in path else ""
            click.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(2)
        except click.exceptions.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=KerasappsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kerasapps")
@click.option("--verbose", "-v", is_flag=True, help="Show TensorFlow's logging and debug messages.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx, verbose, debug):
    """The deep-learning canon as Keras 3 recipes: list, train, evaluate, export, predict, serve."""
    ctx.obj = Settings(verbose=verbose, debug=debug)
    _setup_logging(verbose or debug)


@cli.command("list")
@JSON
def list_command(as_json):
    """List every registered recipe: name, summary, providing package."""
    quiet_for_json(as_json)
    import kerasapps
    from kerasapps.core.quiet_import import native_stderr_to_devnull

    with native_stderr_to_devnull():  # a plugin's recipe module may import TensorFlow, which chatters on fd 2
        rows = kerasapps.list_recipes()
    if as_json:
        return echo_json(rows)
    width = max([len(r["name"]) for r in rows] + [4])
    for row in rows:
        click.echo(f"{row['name']:<{width}}  {row['summary']}  [{row['source'].split(' ')[0]}]")


@cli.command()
@RECIPE_NAME
@JSON
@pass_settings
def info(settings, name, as_json):
    """Show a recipe's hyper-parameters, data, stages, parameter count and layers."""
    settings.start(as_json)
    import kerasapps

    data = kerasapps.info(name)
    if as_json:
        data.pop("summary_text", None)
        return echo_json(data)
    click.echo(f"{data['name']}: {data['summary']}")
    click.echo(f"  provided by: {data['source']}")
    if data["reference"]:
        click.echo(f"  reference:   {data['reference']}")
    click.echo(f"  data:        {data['data']}")
    click.echo(f"  serving:     {data['serving']}")
    click.echo(f"  parameters:  {data['parameters']:,} ({data['trainable_parameters']:,} trainable)")
    click.echo("  stages:")
    for stage in data["stages"]:
        frozen = f" [frozen: {', '.join(stage['frozen'])}]" if stage["frozen"] else ""
        click.echo(f"    {stage['name']}: {stage['summary']}{frozen}")
    click.echo("  hyper-parameters (--set key=value):")
    for hp in data["hparams"]:
        choices = f" {{{', '.join(map(str, hp['choices']))}}}" if hp.get("choices") else ""
        click.echo(f"    {hp['key']:<18} {hp['type']:<14} default {hp['default']!s:<10} {hp['help']}{choices}")
    click.echo("  layers:")
    for layer in data["layers"]:
        click.echo(f"    {layer['name']:<24} {layer['type']:<22} {layer['parameters']:>12,}")


@cli.command()
@RECIPE_NAME
@click_options(TrainOptions)
@pass_settings
def train(settings, name, **options):
    """Train recipe NAME into a run directory."""
    settings.import_tensorflow()
    import kerasapps

    result = kerasapps.train(name, **options)
    click.echo(f"run directory: {result.run_dir}")
    click.echo(describe_test(result.metrics))
    for line in describe_validation(result.metrics, result.run_dir):
        click.echo(line)
    click.echo(f"next: kerasapps export {result.run_dir}")


def describe_validation(metrics: dict, run_dir) -> list[str]:
    """A classifier's validation accuracy and balanced accuracy beside always answering its most frequent class,
    and a warning where it does no better."""
    stages = list(metrics.get("stages", {}).values())
    check = stages[-1].get("validation") if stages else None
    if not check:
        return []
    majority = repr(check["majority_class"])
    lines = [f"validation: accuracy {check['accuracy']:.4f}, balanced accuracy {check['balanced_accuracy']:.4f} "
             f"(always answering {majority}: {check['majority_accuracy']:.4f}, "
             f"{check['majority_balanced_accuracy']:.4f})"]
    if check["no_better"]:
        lines.append(f"WARNING: this classifier does no better than always answering {majority} on the validation "
                     f"split; see its classes with: kerasapps evaluate {run_dir}")
    return lines


def describe_test(metrics: dict) -> str:
    """The run's test metrics in one line; each stage's where several stages were tested
    (``test: pretrain accuracy 0.9986; finetune accuracy 0.9932``)."""
    stages = {name: m["test"] for name, m in metrics.get("stages", {}).items() if m.get("test")}
    if len(stages) < 2:
        return "test: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.get("test", {}).items())
    return "test: " + "; ".join(f"{name} " + ", ".join(f"{k} {v:.4f}" for k, v in test.items())
                                for name, test in stages.items())


@cli.command()
@click.argument("run_dir", type=click.Path())
@click_options(EvaluateOptions)
@JSON
@pass_settings
def evaluate(settings, run_dir, as_json, **options):
    """Evaluate a finished run's final model; writes RUN_DIR/evaluation-SPLIT.json."""
    settings.start(as_json)
    import kerasapps

    result = kerasapps.evaluate(run_dir, **options, verbose=0 if as_json else "auto")  # stdout: only the JSON
    if as_json:
        return echo_json(result)
    click.echo(f"{result['recipe']} {options['split']} ({result['examples']} examples): "
               + ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items()))
    for line in describe_evaluation(result, run_dir):
        click.echo(line)


CLASSES_SHOWN = 20  # more classes than this: the table shows the ones recalled worst


def describe_evaluation(result: dict, run_dir) -> list[str]:
    """The compact table ``evaluate`` prints: per-class scores, the confusions, the regression errors, the files."""
    lines = []
    classes, regression = result.get("classes"), result.get("regression")
    if classes:
        majority = classes.get("majority_class")
        lines.append(f"balanced accuracy {classes['balanced_accuracy']:.4f}, macro F1 {classes['macro_f1']:.4f}"
                     + (f", ROC AUC {classes['roc_auc']:.4f}, PR AUC {classes['pr_auc']:.4f} (positive class "
                        f"{classes['positive_class']!r})" if "roc_auc" in classes else "")
                     + (f" (always answering {majority['class']!r}: accuracy {majority['accuracy']:.4f}, balanced "
                        f"{majority['balanced_accuracy']:.4f})" if majority else ""))
        rows = classes["per_class"]
        if len(rows) > CLASSES_SHOWN:
            rows = sorted(rows, key=lambda r: r["recall"])[:CLASSES_SHOWN // 2]
            lines.append(f"the {len(rows)} classes recalled worst of {len(classes['per_class'])}:")
        width = max([len("class")] + [len(str(r["class"])) for r in rows])
        lines.append(f"{'class':<{width}}  precision  recall      f1  support")
        lines += [f"{r['class']:<{width}}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:6.4f}  {r['support']:7d}"
                  for r in rows]
        if classes["top_confusions"]:
            lines.append("most frequent confusions (true -> predicted): " + ", ".join(
                f"{c['true']} -> {c['predicted']} {c['count']}" for c in classes["top_confusions"]))
    if regression:
        mean = regression.get("training_mean")
        lines.append(f"MAE {regression['mae']:.4f}, RMSE {regression['rmse']:.4f}, R2 {regression['r2']:.4f}"
                     + (f" (the training mean: MAE {mean['mae']:.4f})" if mean else ""))
    captions = result.get("captions")
    if captions:
        lines.append(f"BLEU-1..4 of the {captions['images']} images' captions ({captions['decoding']}): "
                     + ", ".join(f"{100 * captions[f'bleu{n}']:.1f}" for n in range(1, 5)))
        lines += [f"  {c['source']}: {c['caption']}" for c in captions["examples"]]
    if "bits_per_character" in result:
        lines.append(f"bits per character {result['bits_per_character']:.4f}")
    if result.get("files"):
        lines.append("wrote " + ", ".join(str(Path(run_dir) / name) for name in result["files"].values()))
    return lines


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(), metavar="RUN_DIR...")
@click_options(ReportOptions)
@pass_settings
def report(settings, run_dirs, **options):
    """One self-contained HTML page about finished runs (run kerasapps evaluate first for its class tables)."""
    import kerasapps  # neither TensorFlow nor Keras: the page is made from the run's files

    click.echo(f"wrote {kerasapps.report(list(run_dirs), **options)}")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click_options(ExportOptions)
@pass_settings
def export(settings, run_dir, **options):
    """Export a finished run: a SavedModel that TF Serving serves unchanged, or ONNX / LiteRT."""
    settings.import_tensorflow()
    import kerasapps

    path = kerasapps.export(run_dir, **options)
    click.echo(f"exported {path}")


@cli.command()
@click.argument("args", nargs=-1, metavar="[MODEL] INPUT...")
@click_options(PredictOptions)
@JSON
@pass_settings
def predict(settings, args, as_json, **options):
    """Predict with MODEL (an export or run directory) or --url on INPUTs: images (PNG/JPEG) or .npy arrays for
    image models, text files (one example each) or --text for text models, tables (every row) for table models,
    and folders of them (recursively). --out FILE.csv|.jsonl writes one row per input."""
    quiet_for_json(as_json)
    import kerasapps

    url = options["url"]
    if not args and not options["text"]:
        raise click.UsageError("Missing argument '[MODEL] INPUT...'.")
    if url:
        rows = kerasapps.predict(inputs=args, **options)
    else:
        if len(args) < 2 and not (args and options["text"]):
            raise click.UsageError("give MODEL and at least one INPUT (or --url URL INPUT...)")
        settings.import_tensorflow()
        rows = kerasapps.predict(args[0], args[1:], **options)
    with _quiet_when_the_reader_leaves():
        _print_predictions(rows, as_json, None if url else args[0], options["out"])


def _print_predictions(rows: list[dict], as_json: bool, model: str | None, out) -> None:
    if as_json:
        return echo_json(rows)
    if model is not None:
        from kerasapps.savedmodel.predict import known_classes

        knows = known_classes(model)
        if knows:  # a digit 3 given to the digits-5-9 head still gets one of 5-9: say so first
            click.echo(f"this model knows {knows} only")
    if out is not None:
        return click.echo(f"wrote {len(rows)} prediction{'s' * (len(rows) != 1)} to {out}")
    for row in rows:
        click.echo(f"{row['input']}: {describe_prediction(row)}")


@contextlib.contextmanager
def _quiet_when_the_reader_leaves():
    """``kerasapps predict ... | head -1``: once the reader has closed the pipe, the rest of the output goes
    nowhere and the command ends with exit 0, as a shell's own tools do (no traceback, no error line)."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit then writes nowhere
        except (OSError, ValueError, AttributeError):
            pass


def describe_prediction(row: dict) -> str:
    """One prediction for a person: ``class cat (p=0.9812)`` for a classifier (its own label names), else
    ``k=v, ...``."""
    if "classes" in row and ("probabilities" in row or "probability" in row):
        if "probabilities" in row:
            p = max(row["probabilities"])
        else:  # a binary head: the probability of class 1
            p = row["probability"] if row.get("class_ids", 1) == 1 else 1.0 - row["probability"]
        return f"class {row['classes']} (p={p:.4f})"
    return ", ".join(f"{k}={v}" for k, v in row.items() if k != "input")


@cli.command()
@click.argument("model", type=click.Path())
@click_options(GenerateOptions)
@pass_settings
def generate(settings, model, **options):
    """Generate text with a char_lm MODEL: a run directory or an export (saved_models/char_lm[/VERSION])."""
    settings.import_tensorflow()
    import kerasapps

    click.echo(kerasapps.generate(model, **options))


@cli.command()
@click_options(ServeOptions)
@pass_settings
def serve(settings, **options):
    """Serve every export under --model-base with TensorFlow Serving's REST API (and gRPC with --grpc-port)."""
    import kerasapps

    where = options["model_config_file"] or options["model_base"]
    if options["model_config_file"] or Path(where).is_dir():  # a missing model base is the API's one-line error
        settings.import_tensorflow()
        host, grpc_port = options["host"], options["grpc_port"]
        grpc = f" and grpc://{host}:{grpc_port}" if grpc_port is not None else ""
        click.echo(f"serving {where} on http://{host}:{options['port']}/v1/models/NAME{grpc} (Ctrl+C to stop)")
    kerasapps.serve(**options)


cli.add_command(diagnose)
cli.add_command(tune)


def main():
    cli.main()


if __name__ == "__main__":
    main()
