"""The Python API: one function per command, with the command's options as typed keyword arguments
and the same defaults (``kerasapps train NAME --epochs 1`` is ``kerasapps.train(NAME, epochs=1)``).

The options are declared once, as the fields of a dataclass per command (:mod:`kerasapps.core.commands`,
:mod:`kerasapps.serving.options`); :func:`kerasapps.core.options.takes` makes them each function's parameters
and the list of options in its docstring, and hands the function the options object. Parameters that only
Python can pass (``callbacks``, ``verbose``, ``build``) are the functions' own.

Each function imports the layer it calls when it is called, so ``import kerasapps`` loads neither
TensorFlow nor Keras. Errors are :class:`kerasapps.core.errors.KerasappsError` subclasses whose
message is the one line the command prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from kerasapps.core.commands import (
    EvaluateOptions,
    ExportOptions,
    FeaturesOptions,
    FiltersOptions,
    GenerateOptions,
    InitOptions,
    LrOptions,
    OverfitOptions,
    PredictOptions,
    ReportOptions,
    TrainOptions,
    TuneOptions,
    assignments,
)
from kerasapps.core.errors import UsageError
from kerasapps.core.options import PathLike, keywords, takes
from kerasapps.serving.options import ServeOptions

__all__ = ["list_recipes", "get_recipe", "register_recipe", "info", "train", "evaluate", "report", "export",
           "predict", "serve", "generate", "tune", "diagnose_init", "diagnose_overfit", "diagnose_lr",
           "diagnose_filters", "diagnose_features"]


# ----------------------------------------------------------------------------- recipes

def list_recipes() -> list[dict]:
    """Name, summary and providing package of every registered recipe (``kerasapps list``)."""
    from kerasapps.core.registry import REGISTRY

    return [{"name": n, "summary": REGISTRY.get(n).summary, "source": REGISTRY.source(n)} for n in REGISTRY.names()]


def get_recipe(name: str):
    """The registered :class:`~kerasapps.core.recipe.Recipe` called ``name``."""
    from kerasapps.core.registry import REGISTRY

    return REGISTRY.get(name)


def register_recipe(recipe, source: str = "python"):
    """Register a recipe from Python (a notebook, a script); packages use the ``kerasapps.recipes`` entry points."""
    from kerasapps.core.registry import REGISTRY

    return REGISTRY.register(recipe, source)


def info(name: str, *, build: bool = True) -> dict:
    """A recipe's hyper-parameters, data, stages, serving signature and, with ``build``, its parameter count
    and layers (``kerasapps info``; building imports Keras)."""
    from kerasapps.tools.info import recipe_info

    return recipe_info(name, build=build)


# ----------------------------------------------------------------------------- training

@takes(TrainOptions)
def train(recipe, *, options: TrainOptions, callbacks: Iterable = (), verbose: int | str = "auto"):
    """Train ``recipe`` (a name or a Recipe) into a run directory (``kerasapps train``); returns a RunResult
    (``run_dir``, ``recipe``, ``metrics``).

    Hyper-parameters: the recipe's defaults, then ``config`` (a YAML/JSON file, e.g. a run's
    ``config.yaml``), then ``set`` (``["learning_rate=0.01"]`` or ``{"learning_rate": 0.01}``), then
    ``epochs`` (per stage), ``batch_size`` (per replica), ``steps_per_epoch`` and ``seed``.
    ``data_dir`` (else ``$KERASAPPS_DATA_DIR``) holds the built-in data sets, without it the recipe
    downloads with TFDS; ``data`` is the user's own instead (:mod:`kerasapps.data.sources`). ``strategy`` is a
    ``tf.distribute`` strategy name or a Strategy. ``callbacks`` are extra Keras callbacks for every stage;
    ``verbose`` is ``fit``'s ("auto": a progress bar when stdout is a terminal).
    """
    from kerasapps.training.train import train as run

    return run(recipe, options, callbacks=callbacks, verbose=verbose)


@takes(EvaluateOptions)
def evaluate(run_dir: PathLike, *, options: EvaluateOptions, verbose: int | str = "auto") -> dict:
    """Evaluate a finished run's final model on ``split`` (train, validation or test) of its last stage, on
    the data it trained on or ``data`` (a source with the same classes); writes
    ``RUN_DIR/evaluation-SPLIT.json`` (``kerasapps evaluate``). ``verbose`` is ``model.evaluate``'s:
    "auto" shows its progress bar when stdout is a terminal, and nothing otherwise."""
    from kerasapps.training.evaluate import evaluate as run

    return run(run_dir, **keywords(options), verbose=verbose)


@takes(ReportOptions)
def report(run_dirs: Sequence[PathLike], *, options: ReportOptions) -> Path:
    """One self-contained HTML page about finished runs: configuration, data, training curves, every evaluation
    (tables and pictures), the worst mistakes and, for several runs, their settings and scores side by side
    (``kerasapps report``)."""
    from kerasapps.tools.report import report as run

    return run([Path(p) for p in ([run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else run_dirs)],
               out=options.out)


# ----------------------------------------------------------------------------- export and serving

@takes(ExportOptions)
def export(run_dir: PathLike, *, options: ExportOptions) -> Path:
    """Export a finished run at ``OUT/NAME/VERSION`` (default: the next version), written atomically, as a
    SavedModel (``saved_models/``) or in another ``format`` (ONNX, LiteRT: each under its own root); an existing
    version is refused unless ``force`` (``kerasapps export``)."""
    from kerasapps.savedmodel.export import export as run

    return run(run_dir, **keywords(options))


def load_model(path: PathLike, *, compile: bool = False):
    """A run's Keras model for your own Keras code: ``RUN_DIR`` (its final model) or a ``.keras`` file a run
    saved, with the canon's layers (``ChannelPadding``, ``LocalResponseNormalization``, ``MissingValues``, ...)
    registered, which ``keras.saving.load_model`` alone cannot find unless ``kerasapps.models.layers`` was
    imported. ``compile=True`` also restores the optimizer and loss the run compiled with."""

    from kerasapps.training import rundir
    from kerasapps.training.checkpoints import load_model as load

    path = Path(path)
    if path.is_dir():
        path = rundir.final_model_path(rundir.require_run_dir(path))
    elif not path.is_file():
        raise UsageError(f"{path}: no such run directory or .keras file")
    return load(path, compile=compile)


@takes(PredictOptions)
def predict(model: PathLike | None = None, inputs: Sequence[PathLike] = (), *,
            options: PredictOptions) -> list[dict]:
    """Predict on inputs with ``model`` (an export, ``saved_models/NAME`` for its newest version, or a
    run directory), or with the server at ``url`` (``http://HOST:PORT/v1/models/NAME``, ours or TF
    Serving). Inputs are what the signature takes: images (PNG/JPEG/BMP/GIF) or ``.npy`` arrays for
    image inputs, text files (one example each) or ``text`` for string inputs, tables (every row) for a model
    of named columns, and folders of those (recursively). They are read and predicted in chunks, with a
    progress bar on a terminal. One dict per example, in order; with ``out``, also written there, one row per
    input (``kerasapps predict``). With ``url`` neither TensorFlow nor Keras is imported."""
    from kerasapps.savedmodel.collect import check_texts, expand, predict_in_chunks
    from kerasapps.savedmodel.predictions import check_out, write_predictions

    inputs, texts = [str(path) for path in inputs], assignments(options.text)
    check_out(options.out)
    if isinstance(options.top_k, bool) or not isinstance(options.top_k, int) or options.top_k < 1:
        raise UsageError(f"top_k must be a whole number >= 1; got {options.top_k!r}")
    class_names = None  # the model's, where it says them (a server's answers name only the most probable)
    if options.url:
        from kerasapps.serving.client import predict_url, remote_input_specs

        def specs():
            return remote_input_specs(options.url, options.signature)

        def run(files):
            return predict_url(options.url, files, signature=options.signature)
    else:
        if model is None or not (inputs or texts):
            raise UsageError("give MODEL and at least one INPUT (or --url URL INPUT...)")
        from kerasapps.savedmodel.predict import load_signature, predict_files

        function = load_signature(model, options.signature)
        class_names = function.class_names

        def specs():
            return function.inputs

        def run(files):
            return predict_files(function, files)
    if texts:
        check_texts(texts, specs)
    rows = predict_in_chunks(run, expand(inputs, specs), texts=texts)
    if options.out is not None:
        write_predictions(rows, options.out, options.top_k, class_names)
    return rows


@takes(GenerateOptions)
def generate(model: PathLike, *, options: GenerateOptions) -> str | list[str]:
    """prompt + ``length`` generated characters from a text-generation export or run directory
    (``char_lm``; same seed, same text); 0 temperature is greedy (``kerasapps generate``)."""
    from kerasapps.savedmodel.predict import generate as run

    return run(model, **keywords(options))


@takes(ServeOptions)
def serve(*, options: ServeOptions) -> None:
    """Serve every export under ``model_base`` (or the models of ``model_config_file``, TF Serving's
    ModelServerConfig text protobuf) with TensorFlow Serving's REST API, and its gRPC API on ``grpc_port``,
    until interrupted (``kerasapps serve``). ``batching`` groups concurrent predict requests into one model
    call; the other options bound what one request or client may take (see ``ServingOptions``)."""
    if options.model_config_file is not None:
        from kerasapps.serving.repository import read_model_config

        try:
            read_model_config(options.model_config_file)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    elif not Path(options.model_base).is_dir():
        raise UsageError(f"model base {options.model_base} does not exist; export a run first "
                         "(kerasapps export RUN_DIR)")
    from kerasapps.serving.server import serve as run

    run(options.model_base, host=options.host, port=options.port, options=options.serving())


# ----------------------------------------------------------------------------- tuning and diagnostics

@takes(TuneOptions)
def tune(recipe, *, options: TuneOptions) -> dict:
    """Random search (keras-tuner) over ``recipe``'s hyper-parameters, each trial scored on a validation
    split carved from the training data (the test split is never read); writes ``OUT/best_config.yaml``
    (default ``tune/NAME``): the best trial's values and the ``set`` values for a full run under
    ``hparams``, how the trials ran (and what capped them) under ``search``, which ``train`` does not
    read. Running it again resumes the search (``kerasapps tune``). ``space`` is a mapping or a YAML
    file: ``key: {min:, max:, log: true}`` or ``key: [choices]``. ``trials`` is required unless
    ``smoke``, which runs at most 2 trials of one epoch of 2 steps on a small slice (in ``tune/NAME-smoke``)
    to check the search end to end."""
    from kerasapps.tools.tune import tune as run

    space = options.space
    mapping = space if isinstance(space, Mapping) else None
    return run(recipe, trials=options.trials, max_epochs=options.max_epochs, space=mapping,
               space_file=None if space is None or mapping is not None else space,
               validation_split=options.validation_split, out=options.out, overrides=assignments(options.set),
               data_dir=options.data_dir, data=options.data, smoke=options.smoke)


@takes(InitOptions)
def diagnose_init(*, options: InitOptions) -> dict:
    """Per-layer activation statistics of a deep MLP on random N(0, 1) input, and their histograms in
    ``png`` (default ``diagnostics/init-ACTIVATION-INIT.png``) (``kerasapps diagnose init``; NumPy only)."""
    from kerasapps.tools.initialization import init_statistics, plot_init_histograms

    stats = init_statistics(options.activation, options.init, layers=options.layers, units=options.units,
                            examples=options.examples, seed=options.seed, keep_activations=True)
    path = plot_init_histograms(stats, options.png or f"diagnostics/init-{options.activation}-{options.init}.png")
    stats.pop("activations")
    return {**stats, "png": str(path)}


@takes(OverfitOptions)
def diagnose_overfit(recipe, *, options: OverfitOptions) -> dict:
    """Can ``recipe`` reach 100% training accuracy (or a loss near 0) on its first ``examples`` training
    examples? ``passed``, the loss curve and, when it fails, the likely ``cause`` (``kerasapps diagnose overfit``)."""
    from kerasapps.tools.diagnose import overfit_check

    return overfit_check(recipe, examples=options.examples, max_epochs=options.max_epochs,
                         batch_size=options.batch_size, overrides=assignments(options.set),
                         data_dir=options.data_dir, data=options.data)


@takes(LrOptions)
def diagnose_lr(recipe, *, options: LrOptions) -> dict:
    """Learning-rate range test: the rate grows exponentially from ``min_lr`` to ``max_lr`` over ``steps``
    batches; the suggested rate, where it diverges, and the plot in ``png`` (default
    ``diagnostics/lr-NAME.png``) (``kerasapps diagnose lr``)."""
    from kerasapps.tools.diagnose import lr_range_test, plot_lr_range

    result = lr_range_test(recipe, min_lr=options.min_lr, max_lr=options.max_lr, steps=options.steps,
                           batch_size=options.batch_size, overrides=assignments(options.set),
                           data_dir=options.data_dir, data=options.data)
    result["png"] = str(plot_lr_range(result, options.png or f"diagnostics/lr-{result['recipe']}.png"))
    return result


@takes(FiltersOptions)
def diagnose_filters(run_dir: PathLike, *, options: FiltersOptions) -> dict:
    """A grid of a run's convolution filters (the first convolution, or ``layer``) with per-filter norms and
    pairwise correlations (``kerasapps diagnose filters``)."""
    from kerasapps.tools.filter_grids import filters_picture

    return filters_picture(run_dir, **keywords(options))


@takes(FeaturesOptions)
def diagnose_features(run_dir: PathLike, *, options: FeaturesOptions) -> dict:
    """A grid of the feature maps one input file produces at ``layer`` (default: the first convolution),
    with per-map statistics (``kerasapps diagnose features``)."""
    from kerasapps.tools.filter_grids import features_picture

    return features_picture(run_dir, str(options.input), layer=options.layer, png=options.png)
