"""Every command's options, declared once: ``kerasapps COMMAND``'s flags and :mod:`kerasapps.api`'s keyword
arguments both follow from these dataclasses (see :mod:`kerasapps.core.options`), and so do their defaults.
``serve``'s are :class:`kerasapps.serving.options.ServeOptions`, next to the server that reads them.

Adding an option to a command is one field here; the layer that runs the command then reads it (the training
loop reads :class:`TrainOptions` itself, the other commands' API functions hand their options on).
Standard library only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from kerasapps.core.options import Assignments, PathLike, option
from kerasapps.core.schema import (
    EXPORT_ROOT,
    GENERATION,
    INIT_ACTIVATIONS,
    INIT_EXPERIMENT,
    INIT_SCHEMES,
    LR_RANGE,
    OVERFIT_EXAMPLES,
    OVERFIT_MAX_EPOCHS,
    QUANTIZATIONS,
    SPLITS,
    STRATEGIES,
    TUNE_VALIDATION_SPLIT,
)

__all__ = ["TrainOptions", "EvaluateOptions", "ReportOptions", "ExportOptions", "PredictOptions", "GenerateOptions",
           "TuneOptions", "InitOptions", "OverfitOptions", "LrOptions", "FiltersOptions", "FeaturesOptions",
           "assignments"]


# ----------------------------------------------------------------------------- options several commands take

def _set():
    return option((), "Override a hyper-parameter (repeatable).", multiple=True, metavar="KEY=VALUE")


def _data_dir():
    return option(None, "Local data directory (else TFDS downloads).", path="any", envvar="KERASAPPS_DATA_DIR")


def _data():
    return option(None, "Your own data: a folder of class folders (images or .txt files), a .csv/.jsonl table, "
                        "or tfds:NAME[/CONFIG][:VERSION].", metavar="SOURCE")


def _png(what: str):
    return option(None, what, path="file")


def assignments(values: Assignments) -> Assignments:
    """``set=`` as given: a single "key=value" string is one assignment, not a sequence of characters."""
    return (values,) if isinstance(values, str) else values


# ----------------------------------------------------------------------------- training and evaluation

@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """``kerasapps train NAME``: hyper-parameters are the recipe's defaults, then ``config``, then ``set``, then
    ``epochs``, ``batch_size``, ``steps_per_epoch`` and ``seed``."""

    epochs: int | None = option(None, "Epochs per stage (same as --set epochs=N).")
    batch_size: int | None = option(None, "Examples per batch on each replica.")
    steps_per_epoch: int | None = option(None, "Cap on training steps per epoch.")
    seed: int | None = option(None, "Random seed (weights, shuffling, dropout, validation split).")
    set: Assignments = _set()
    config: PathLike | None = option(None, "YAML/JSON config (e.g. RUN_DIR/config.yaml).", path="any")
    run_dir: PathLike | None = option(None, "Run directory (default runs/NAME-TIMESTAMP).", path="dir")
    data_dir: PathLike | None = _data_dir()
    data: str | None = _data()
    resume: bool = option(False, "Continue the run in --run-dir from its last completed epoch.")
    overwrite: bool = option(False, "Replace the finished or failed run in --run-dir (removed once the new run has "
                                    "checked its data and settings; refused while a process trains in it).")
    smoke: bool = option(False, "Train on a tiny slice for a few steps (a quick end-to-end check).")
    strategy: Any = option("default", "tf.distribute strategy (or, from Python, a Strategy); multi_worker reads the "
                                      "cluster from $TF_CONFIG. --batch-size is per replica.", choices=STRATEGIES)
    tpu: str | None = option(None, "TPU to connect to with --strategy tpu/auto ('local' on a TPU VM).",
                             metavar="ADDRESS")
    backup_steps: int | None = option(None, "multi_worker: also back up every N steps (default: each epoch).")

    def flags(self) -> dict[str, int]:
        """The values that come last in the hyper-parameters, where given."""
        given = {"epochs": self.epochs, "batch_size": self.batch_size, "steps_per_epoch": self.steps_per_epoch,
                 "seed": self.seed}
        return {key: value for key, value in given.items() if value is not None}


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateOptions:
    """``kerasapps evaluate RUN_DIR``."""

    split: str = option("test", "The split of the run's last stage to evaluate.", choices=SPLITS)
    data_dir: PathLike | None = _data_dir()
    data: str | None = _data()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """``kerasapps report RUN_DIR...``."""

    out: PathLike | None = option(None, "The HTML file (default: RUN_DIR/report.html for one run, report.html for "
                                        "several).", path="file")


# ----------------------------------------------------------------------------- export, prediction, generation

@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """``kerasapps export RUN_DIR``."""

    version: int | None = option(None, "Version number (default: next).", minimum=1)
    out: PathLike | None = option(None, f"Export root, OUT/NAME/VERSION (default: {EXPORT_ROOT} for a SavedModel, "
                                        "onnx_models, litert_models).", path="dir")
    force: bool = option(False, "Replace an existing version; export a changed signature under the same name.")
    name: str | None = option(None, "Model name under the export root (default: the recipe's); a run whose "
                                    "signature differs from the name's newest version is refused (unless --force).")
    format: str = option("saved_model", "saved_model (TF Serving's), onnx or litert: the last two hold the model's "
                                        "numeric core, class names beside it.")
    quantize: str = option("none", "LiteRT only: float16 weights, or int8 (post-training, calibrated on training "
                                   "examples).", choices=QUANTIZATIONS)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PredictOptions:
    """``kerasapps predict [MODEL] INPUT...``."""

    url: str | None = option(None, "Query a running server instead: http://HOST:PORT/v1/models/NAME.")
    signature: str = option("serving_default", "The SavedModel signature to call.")
    text: str | Sequence[str] = option((), "A text to predict on, for text models (repeatable; each is one input).",
                                       multiple=True, metavar="TEXT")
    out: PathLike | None = option(None, "Write one row per input to this .csv or .jsonl file (input, class, "
                                        "probability, top_k; or prediction) instead of printing each.", path="file")
    top_k: int = option(3, "Classes listed in --out's top_k column.", minimum=1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerateOptions:
    """``kerasapps generate MODEL``."""

    prompt: str | Sequence[str] = option("", "Text to continue (default: start from nothing).", positional=True,
                                         show_default=False)
    length: int = option(GENERATION["length"], "Characters to generate.", minimum=0)
    temperature: float = option(GENERATION["temperature"], "Sampling temperature; 0 is greedy.", minimum=0.0)
    seed: int = option(GENERATION["seed"], "Sampling seed (same seed, same text).")


# ----------------------------------------------------------------------------- tuning and diagnostics

@dataclasses.dataclass(frozen=True, kw_only=True)
class TuneOptions:
    """``kerasapps tune NAME``."""

    trials: int | None = option(None, "Configurations to try (in total); required without --smoke.", minimum=1)
    max_epochs: int | None = option(None, "Epochs per trial (default: the recipe's).", minimum=1)
    space: Mapping | PathLike | None = option(None, "YAML search space: key: {min:, max:, log: true} or key: "
                                                    "[choices] (from Python also a mapping). Default: see "
                                                    "docs/tuning-and-diagnostics.md.",
                                              path="file")
    validation_split: float = option(TUNE_VALIDATION_SPLIT, "Fraction of the training data held out to score "
                                     "trials (the test split is never read).", minimum=0, maximum=0.5, min_open=True)
    out: PathLike | None = option(None, "Search directory (default tune/NAME); rerun to resume.", path="dir")
    smoke: bool = option(False, "A tiny search (at most 2 trials of 1 epoch x 2 steps on a small slice, in "
                                "tune/NAME-smoke): checks the space end to end in seconds.")
    set: Assignments = _set()
    data_dir: PathLike | None = _data_dir()
    data: str | None = _data()


@dataclasses.dataclass(frozen=True, kw_only=True)
class InitOptions:
    """``kerasapps diagnose init``."""

    activation: str = option(INIT_EXPERIMENT["activation"], "Hidden activation.", choices=INIT_ACTIVATIONS,
                             positional=True)
    init: str = option(INIT_EXPERIMENT["init"], "normal: N(0,1); small: N(0,0.01^2); glorot: N(0,2/(fan_in+fan_out)); "
                                                "he: N(0,2/fan_in).", choices=INIT_SCHEMES, positional=True)
    layers: int = option(INIT_EXPERIMENT["layers"], "Hidden layers.", minimum=1)
    units: int = option(INIT_EXPERIMENT["units"], "Units per layer.", minimum=1)
    examples: int = option(INIT_EXPERIMENT["examples"], "Random inputs.", minimum=1)
    seed: int = option(INIT_EXPERIMENT["seed"], "Seed of the weights and inputs.")
    png: PathLike | None = _png("Histogram PNG (default diagnostics/init-ACTIVATION-INIT.png).")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OverfitOptions:
    """``kerasapps diagnose overfit NAME``."""

    examples: int = option(OVERFIT_EXAMPLES, "Training examples to overfit.", minimum=1)
    max_epochs: int = option(OVERFIT_MAX_EPOCHS, "Epochs before giving up.", minimum=1)
    batch_size: int | None = option(None, "Default: the recipe's, at most --examples.", minimum=1)
    set: Assignments = _set()
    data_dir: PathLike | None = _data_dir()
    data: str | None = _data()


@dataclasses.dataclass(frozen=True, kw_only=True)
class LrOptions:
    """``kerasapps diagnose lr NAME``."""

    min_lr: float = option(LR_RANGE["min_lr"], "First learning rate.", minimum=0, min_open=True)
    max_lr: float = option(LR_RANGE["max_lr"], "Last learning rate.", minimum=0, min_open=True)
    steps: int = option(LR_RANGE["steps"], "Batches, the rate growing exponentially.", minimum=10)
    batch_size: int | None = option(None, "Default: the recipe's.", minimum=1)
    png: PathLike | None = _png("Plot PNG (default diagnostics/lr-NAME.png).")
    set: Assignments = _set()
    data_dir: PathLike | None = _data_dir()
    data: str | None = _data()


@dataclasses.dataclass(frozen=True, kw_only=True)
class FiltersOptions:
    """``kerasapps diagnose filters RUN_DIR``."""

    layer: str | None = option(None, "Convolution layer to draw (default: the first).")
    png: PathLike | None = _png("Output PNG (default RUN_DIR/diagnostics/filters.png, filters-LAYER.png with "
                                "--layer).")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeaturesOptions:
    """``kerasapps diagnose features RUN_DIR --input FILE``."""

    input: PathLike = option(help="A PNG/JPEG image or .npy array in the recipe's raw input format (first example "
                                  "used).", path="file", positional=True)
    layer: str | None = option(None, "Layer whose [N, H, W, C] output to draw (default: the first convolution).")
    png: PathLike | None = _png("Output PNG (default RUN_DIR/diagnostics/features-LAYER.png).")
