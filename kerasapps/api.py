"""The Python API: one function per command, with the command's options as typed keyword arguments
and the same defaults (``kerasapps train NAME --epochs 1`` is ``kerasapps.train(NAME, epochs=1)``).

Each function imports the layer it calls when it is called, so ``import kerasapps`` loads neither
TensorFlow nor Keras. Errors are :class:`kerasapps.core.errors.KerasappsError` subclasses whose
message is the one line the command prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from kerasapps.core.errors import UsageError
from kerasapps.core.schema import (
    EXPORT_ROOT,
    GENERATION,
    INIT_EXPERIMENT,
    LR_RANGE,
    OVERFIT_EXAMPLES,
    OVERFIT_MAX_EPOCHS,
    TUNE_VALIDATION_SPLIT,
)
from kerasapps.serving.options import ServingOptions

PathLike = Union[str, os.PathLike]
Assignments = Union[Iterable[str], Mapping[str, Any]]  # --set: "key=value" strings, or a mapping

__all__ = ["list_recipes", "get_recipe", "register_recipe", "info", "train", "evaluate", "report", "export",
           "predict", "serve", "generate", "tune", "diagnose_init", "diagnose_overfit", "diagnose_lr", "diagnose_filters",
           "diagnose_features"]


def _assignments(values: Assignments) -> Assignments:
    """``set=`` as given: a single "key=value" string is one assignment, not a sequence of characters."""
    return [values] if isinstance(values, str) else values


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

def train(recipe, *, epochs: int | None = None, batch_size: int | None = None, steps_per_epoch: int | None = None,
          seed: int | None = None, set: Assignments = (), config: PathLike | None = None,
          run_dir: PathLike | None = None, data_dir: PathLike | None = None, data: str | None = None,
          resume: bool = False,
          smoke: bool = False, strategy="default", tpu: str | None = None, backup_steps: int | None = None,
          callbacks: Iterable = (), verbose: int | str = "auto", overwrite: bool = False):
    """Train ``recipe`` (a name or a Recipe) into a run directory (``kerasapps train``); returns a RunResult
    (``run_dir``, ``recipe``, ``metrics``).

    Hyper-parameters: the recipe's defaults, then ``config`` (a YAML/JSON file, e.g. a run's
    ``config.yaml``), then ``set`` (``["learning_rate=0.01"]`` or ``{"learning_rate": 0.01}``), then
    ``epochs`` (per stage), ``batch_size`` (per replica), ``steps_per_epoch`` and ``seed``.
    ``run_dir`` defaults to ``runs/NAME-TIMESTAMP``; ``data_dir`` (else ``$KERASAPPS_DATA_DIR``)
    holds the built-in data sets, without it the recipe downloads with TFDS; ``data`` is the user's own
    instead: a folder of class folders (images or text files), a ``.csv``/``.jsonl`` table or
    ``tfds:NAME[/CONFIG][:VERSION]`` (:mod:`kerasapps.data.sources`). ``resume`` continues ``run_dir``
    from its last completed epoch; ``overwrite`` replaces a run directory that is not empty (a finished or
    failed run; refused while a process trains in it), once the new run has checked its data and settings;
    ``smoke`` trains a tiny slice for a few steps. ``strategy`` is a
    ``tf.distribute`` strategy name (``auto``, ``default``, ``one_device``, ``mirrored``,
    ``multi_worker``, ``tpu`` with ``tpu=ADDRESS``) or a Strategy; ``backup_steps`` adds mid-epoch
    backups to multi-worker runs. ``callbacks`` are extra Keras callbacks for every stage.
    """
    from kerasapps.training.train import train as run

    flags = {"epochs": epochs, "batch_size": batch_size, "steps_per_epoch": steps_per_epoch, "seed": seed}
    return run(recipe, run_dir=run_dir, config_file=config, overrides=_assignments(set), flags=flags,
               data_dir=data_dir, data=data, resume=resume, smoke=smoke, verbose=verbose, callbacks=callbacks,
               strategy=strategy, tpu=tpu, backup_steps=backup_steps, overwrite=overwrite)


def evaluate(run_dir: PathLike, *, split: str = "test", data_dir: PathLike | None = None,
             data: str | None = None, verbose: int | str = "auto") -> dict:
    """Evaluate a finished run's final model on ``split`` (train, validation or test) of its last stage, on
    the data it trained on or ``data`` (a source with the same classes); writes
    ``RUN_DIR/evaluation-SPLIT.json`` (``kerasapps evaluate``). ``verbose`` is ``model.evaluate``'s:
    "auto" shows its progress bar when stdout is a terminal, and nothing otherwise."""
    from kerasapps.training.evaluate import evaluate as run

    return run(run_dir, split=split, data_dir=data_dir, data=data, verbose=verbose)


def report(run_dirs: Sequence[PathLike], *, out: PathLike | None = None) -> Path:
    """One self-contained HTML page about finished runs: configuration, data, training curves, every evaluation
    (tables and pictures), the worst mistakes and, for several runs, their settings and scores side by side.
    Written to ``out`` (default ``RUN_DIR/report.html`` for one run, ``report.html`` for several)
    (``kerasapps report``)."""
    from kerasapps.tools.report import report as run

    return run([Path(p) for p in ([run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else run_dirs)], out=out)


# ----------------------------------------------------------------------------- export and serving

def export(run_dir: PathLike, *, version: int | None = None, out: PathLike = EXPORT_ROOT,
           force: bool = False) -> Path:
    """Export a finished run as a SavedModel at ``out/NAME/VERSION`` (default: the next version), written
    atomically; an existing version is refused unless ``force`` (``kerasapps export``)."""
    from kerasapps.savedmodel.export import export as run

    return run(run_dir, out=out, version=version, force=force)


def predict(model: PathLike | None = None, inputs: Sequence[PathLike] = (), *, url: str | None = None,
            signature: str = "serving_default") -> list[dict]:
    """Predict on input files with ``model`` (an export, ``saved_models/NAME`` for its newest version, or a
    run directory), or with the server at ``url`` (``http://HOST:PORT/v1/models/NAME``, ours or TF
    Serving). Inputs are what the signature takes: images (PNG/JPEG/BMP/GIF) or ``.npy`` arrays for
    image inputs, text files (one example each) for string inputs. One dict per example, in order
    (``kerasapps predict``). With ``url`` neither TensorFlow nor Keras is imported."""
    inputs = [str(path) for path in inputs]
    if url:
        from kerasapps.serving.client import predict_url

        return predict_url(url, inputs, signature=signature)
    if model is None or not inputs:
        raise UsageError("give MODEL and at least one INPUT (or --url URL INPUT...)")
    from kerasapps.savedmodel.predict import predict as run

    return run(model, inputs, signature=signature)


def generate(model: PathLike, prompt: str | Sequence[str] = "", *, length: int = GENERATION["length"],
             temperature: float = GENERATION["temperature"], seed: int = GENERATION["seed"]) -> str | list[str]:
    """prompt + ``length`` generated characters from a text-generation export or run directory
    (``char_lm``; same seed, same text); 0 temperature is greedy (``kerasapps generate``)."""
    from kerasapps.savedmodel.predict import generate as run

    return run(model, prompt, length=length, temperature=temperature, seed=seed)


def serve(model_base: PathLike = EXPORT_ROOT, *, host: str = ServingOptions.host, port: int = ServingOptions.port,
          grpc_port: int | None = ServingOptions.grpc_port, model_config_file: PathLike | None = None,
          batching: bool = ServingOptions.batching, max_batch_size: int = ServingOptions.max_batch_size,
          batch_timeout_ms: float = ServingOptions.batch_timeout_ms,
          max_request_bytes: int = ServingOptions.max_request_bytes,
          max_request_elements: int = ServingOptions.max_request_elements,
          request_timeout_s: float = ServingOptions.request_timeout_s,
          max_in_flight: int | None = ServingOptions.max_in_flight, max_queued: int = ServingOptions.max_queued,
          max_header_bytes: int = ServingOptions.max_header_bytes, max_headers: int = ServingOptions.max_headers,
          header_timeout_s: float = ServingOptions.header_timeout_s,
          keep_alive_timeout_s: float = ServingOptions.keep_alive_timeout_s,
          max_connections: int = ServingOptions.max_connections,
          load_retry_interval_s: float = ServingOptions.load_retry_interval_s,
          poll_interval_s: float = ServingOptions.poll_interval_s) -> None:
    """Serve every export under ``model_base`` (or the models of ``model_config_file``, TF Serving's
    ModelServerConfig text protobuf) with TensorFlow Serving's REST API, and its gRPC API on ``grpc_port``,
    until interrupted (``kerasapps serve``). ``batching`` groups concurrent predict requests into one model
    call; the other options bound what one request or client may take (see ``ServingOptions``)."""
    if model_config_file is not None:
        from kerasapps.serving.repository import read_model_config

        try:
            read_model_config(model_config_file)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    elif not Path(model_base).is_dir():
        raise UsageError(f"model base {model_base} does not exist; export a run first (kerasapps export RUN_DIR)")
    from kerasapps.serving.server import serve as run

    try:
        options = ServingOptions(
            host=host, port=port, grpc_port=grpc_port,
            model_config_file=None if model_config_file is None else str(model_config_file), batching=batching,
            max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms, max_request_bytes=max_request_bytes,
            max_request_elements=max_request_elements, request_timeout_s=request_timeout_s,
            max_in_flight=max_in_flight, max_queued=max_queued, max_header_bytes=max_header_bytes,
            max_headers=max_headers, header_timeout_s=header_timeout_s, keep_alive_timeout_s=keep_alive_timeout_s,
            max_connections=max_connections, load_retry_interval_s=load_retry_interval_s,
            poll_interval_s=poll_interval_s)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    run(model_base, host=host, port=port, options=options)


# ----------------------------------------------------------------------------- tuning and diagnostics

def tune(recipe, *, trials: int | None = None, max_epochs: int | None = None, space: Mapping | PathLike | None = None,
         validation_split: float = TUNE_VALIDATION_SPLIT, out: PathLike | None = None, set: Assignments = (),
         data_dir: PathLike | None = None, data: str | None = None, smoke: bool = False) -> dict:
    """Random search (keras-tuner) over ``recipe``'s hyper-parameters, each trial scored on a validation
    split carved from the training data (the test split is never read); writes ``OUT/best_config.yaml``
    (default ``tune/NAME``): the best trial's values and the ``set`` values for a full run under
    ``hparams``, how the trials ran (and what capped them) under ``search``, which ``train`` does not
    read. Running it again resumes the search (``kerasapps tune``). ``space`` is a mapping or a YAML
    file: ``key: {min:, max:, log: true}`` or ``key: [choices]``. ``trials`` is required unless
    ``smoke``, which runs at most 2 trials of one epoch of 2 steps on a small slice (in ``tune/NAME-smoke``)
    to check the search end to end."""
    from kerasapps.tools.tune import tune as run

    mapping = space if isinstance(space, Mapping) else None
    return run(recipe, trials=trials, max_epochs=max_epochs, space=mapping,
               space_file=None if space is None or mapping is not None else space,
               validation_split=validation_split, out=out, overrides=_assignments(set), data_dir=data_dir, data=data,
               smoke=smoke)


def diagnose_init(activation: str = INIT_EXPERIMENT["activation"], init: str = INIT_EXPERIMENT["init"], *,
                  layers: int = INIT_EXPERIMENT["layers"], units: int = INIT_EXPERIMENT["units"],
                  examples: int = INIT_EXPERIMENT["examples"], seed: int = INIT_EXPERIMENT["seed"],
                  png: PathLike | None = None) -> dict:
    """Per-layer activation statistics of a deep MLP on random N(0, 1) input, and their histograms in
    ``png`` (default ``diagnostics/init-ACTIVATION-INIT.png``) (``kerasapps diagnose init``; NumPy only)."""
    from kerasapps.tools.initialization import init_statistics, plot_init_histograms

    stats = init_statistics(activation, init, layers=layers, units=units, examples=examples, seed=seed,
                            keep_activations=True)
    path = plot_init_histograms(stats, png or f"diagnostics/init-{activation}-{init}.png")
    stats.pop("activations")
    return {**stats, "png": str(path)}


def diagnose_overfit(recipe, *, examples: int = OVERFIT_EXAMPLES, max_epochs: int = OVERFIT_MAX_EPOCHS,
                     batch_size: int | None = None, set: Assignments = (), data_dir: PathLike | None = None,
                     data: str | None = None) -> dict:
    """Can ``recipe`` reach 100% training accuracy (or a loss near 0) on its first ``examples`` training
    examples? ``passed``, the loss curve and, when it fails, the likely ``cause`` (``kerasapps diagnose overfit``)."""
    from kerasapps.tools.diagnose import overfit_check

    return overfit_check(recipe, examples=examples, max_epochs=max_epochs, batch_size=batch_size,
                         overrides=_assignments(set), data_dir=data_dir, data=data)


def diagnose_lr(recipe, *, min_lr: float = LR_RANGE["min_lr"], max_lr: float = LR_RANGE["max_lr"],
                steps: int = LR_RANGE["steps"], batch_size: int | None = None, png: PathLike | None = None,
                set: Assignments = (), data_dir: PathLike | None = None, data: str | None = None) -> dict:
    """Learning-rate range test: the rate grows exponentially from ``min_lr`` to ``max_lr`` over ``steps``
    batches; the suggested rate, where it diverges, and the plot in ``png`` (default
    ``diagnostics/lr-NAME.png``) (``kerasapps diagnose lr``)."""
    from kerasapps.tools.diagnose import lr_range_test, plot_lr_range

    result = lr_range_test(recipe, min_lr=min_lr, max_lr=max_lr, steps=steps, batch_size=batch_size,
                           overrides=_assignments(set), data_dir=data_dir, data=data)
    result["png"] = str(plot_lr_range(result, png or f"diagnostics/lr-{result['recipe']}.png"))
    return result


def diagnose_filters(run_dir: PathLike, *, layer: str | None = None, png: PathLike | None = None) -> dict:
    """A grid of a run's convolution filters (the first convolution, or ``layer``) with per-filter norms and
    pairwise correlations (``kerasapps diagnose filters``)."""
    from kerasapps.tools.filter_grids import filters_picture

    return filters_picture(run_dir, layer=layer, png=png)


def diagnose_features(run_dir: PathLike, input: PathLike, *, layer: str | None = None,
                      png: PathLike | None = None) -> dict:
    """A grid of the feature maps one input file produces at ``layer`` (default: the first convolution),
    with per-map statistics (``kerasapps diagnose features``)."""
    from kerasapps.tools.filter_grids import features_picture

    return features_picture(run_dir, str(input), layer=layer, png=png)
