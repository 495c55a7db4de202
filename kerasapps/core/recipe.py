"""The recipe contract: a small declarative object binding a model to data and a schedule.

A :class:`Recipe` names a functional-model factory (``build_model(hp, meta)``, where ``meta``
holds what the data decides, such as its vocabulary), the data it trains on
(``load_data(hp, ctx)`` returning in-memory splits, a :class:`Splits` when it carries such
``meta``), its preprocessing (``preprocess``: raw batch -> model input, shared by the training
pipeline and the exported SavedModel), optional :class:`Stage` s (the transfer example trains,
freezes, then fine-tunes), its loss and metrics, and its :class:`Serving` signature.
Hyper-parameters common to every recipe live in :data:`kerasapps.core.schema.COMMON_HPARAMS`;
a recipe adds its own and may change the common defaults with ``defaults=``.

This module, like every module that declares recipes, imports neither TensorFlow nor Keras:
the registry imports every recipe module to list them (``kerasapps list``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from kerasapps.core.errors import ConfigError, DataError
from kerasapps.core.hparams import HParam, HParams, resolve
from kerasapps.core.schema import COMMON_HPARAMS, TASKS

DATA_DIR_ENV = "KERASAPPS_DATA_DIR"

Arrays = Any  # a numpy array, or a tuple/dict of them (nested like the model's inputs)
Split = tuple[Arrays, Arrays]  # (x, y)


@dataclasses.dataclass(frozen=True)
class DataContext:
    """Where a recipe finds its data: a local directory, or TFDS when none is set."""

    data_dir: Path | None
    smoke: bool = False
    source: str | None = None  # --data SOURCE: the user's own data instead of the recipe's built-in set

    @classmethod
    def from_option(cls, option: str | os.PathLike | None = None, smoke: bool = False,
                    source: str | None = None) -> "DataContext":
        """The data directory from ``option`` (``--data-dir``), else ``$KERASAPPS_DATA_DIR``, else None (TFDS)."""
        value = option if option not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
        if value is None:
            return cls(None, smoke, source or None)
        path = Path(value).expanduser()
        if not path.is_dir():
            origin = "--data-dir" if option not in (None, "") else f"${DATA_DIR_ENV}"
            raise DataError(f"data directory {path} (from {origin}) does not exist or is not a directory")
        return cls(path, smoke, source or None)

    def require(self, relative: str, hint: str = "") -> Path:
        """``data_dir/relative``, or a DataError saying which file was looked for and how to provide it."""
        if self.data_dir is None:
            raise DataError(f"no data directory is set; set --data-dir or ${DATA_DIR_ENV} to a folder holding "
                            f"{relative}")
        path = self.data_dir / relative
        if not path.is_file():
            extra = f" ({hint})" if hint else ""
            raise DataError(f"data file not found: {path}; put {relative} under the data directory{extra}, "
                            f"or unset ${DATA_DIR_ENV} and drop --data-dir to download it with TFDS")
        return path


@dataclasses.dataclass(frozen=True)
class Stage:
    """One training stage.

    ``select(split)`` filters or relabels a ``(x, y)`` split for this stage (applied to
    train, validation and test alike; ``trains_on`` says what that leaves, for the log); ``freeze`` lists
    layer-name prefixes made
    non-trainable before the stage compiles (every other layer is made trainable), or is a function
    ``freeze(hp, model)`` returning them (nested layers are matched too; a matched nested model
    freezes whole); ``when(hp)``, if given, says whether the stage runs at all; ``overrides`` maps a common
    hyper-parameter (``learning_rate``, ``batch_size``, ``epochs``, ...) to the name of a
    recipe hyper-parameter whose value replaces it in this stage, so a fine-tuning stage
    can have its own learning rate that users set with ``--set``.
    """

    name: str
    summary: str = ""
    select: Callable[[Split], Split] | None = None
    trains_on: str = ""  # what the stage trains on, in a few words (``digits 0-4``): the log names the stage by it
    freeze: tuple[str, ...] | Callable[[Any, Any], Iterable[str]] = ()
    overrides: Mapping[str, str] = dataclasses.field(default_factory=dict)
    when: Callable[[Any], bool] | None = None
    # augments(hp): whether the run's image augmentation applies in this stage (a stage on features computed
    # once, from images that do not change, leaves it out); None: always
    augments: Callable[[Any], bool] | None = None

    def runs(self, hp) -> bool:
        """Whether this stage trains in a run with ``hp`` (``when``; always without one)."""
        return self.when is None or bool(self.when(hp))

    def augmented(self, hp) -> bool:
        """Whether this stage trains on augmented images under ``hp`` (``augments``; always without one)."""
        return self.augments is None or bool(self.augments(hp))

    def describe_freeze(self) -> list[str]:
        """What ``info`` shows of ``freeze``: the prefixes, or the rule's first docstring line."""
        if callable(self.freeze):
            return [((self.freeze.__doc__ or "decided by the hyper-parameters").strip().splitlines() or [""])[0]]
        return list(self.freeze)

    def hparams(self, hp):
        """``hp`` with this stage's overrides applied (an override left at None keeps the common value)."""
        changes = {common: hp[own] for common, own in self.overrides.items() if hp[own] is not None}
        return hp.replace(**changes) if changes else hp


class Serving:
    """What an exported SavedModel takes and returns; subclasses define the endpoint.

    ``input_signature()`` lists the raw inputs (``tf.TensorSpec``), ``outputs(model, preprocess, raw)``
    maps them to named outputs inside the export, ``extra_endpoints`` adds signatures beside
    ``serving_default`` and ``describe()`` is the line ``kerasapps info`` shows. What ``kerasapps
    predict`` reads from files follows from the signature's input (images and ``.npy`` arrays for
    numbers, one text file per example for strings), so it also works against a server. ``known_classes``
    names the classes a classifier knows where they are fewer than its inputs can show (``predict`` says so).
    """

    input_name = "inputs"
    known_classes: str | None = None  # the classes a model knows, where not all its inputs can show: "the digits 5-9"

    def input_signature(self) -> list:
        raise NotImplementedError

    def outputs(self, model, preprocess, raw) -> dict:
        raise NotImplementedError

    def extra_endpoints(self, model, preprocess) -> dict:
        """Further signatures besides ``serving_default``: name -> ``tf.function`` with an input signature."""
        return {}

    def configure(self, hp) -> "Serving":
        """This signature for a run's hyper-parameters (an input size or channel count they choose); the
        export, the file readers and ``info`` call it. A signature they do not change returns itself."""
        return self

    def for_data(self, record: Mapping[str, Any]) -> "Serving":
        """This signature for the data a run trained on (its ``data.json``: ``class_names``, a table's
        ``columns``): answering with the data's own label names, taking a table's columns. The export
        calls it; a signature the data does not change returns itself."""
        return self

    def class_labels(self) -> tuple[str, ...] | None:
        """A classifier's answer for each output class, in output order (``classes``); None where it names none."""
        return None

    def numeric_outputs(self, model, preprocess, raw) -> tuple[dict, dict]:
        """What an export format without string ops (ONNX, LiteRT) holds, for ``raw`` inputs already at
        ``read_shape`` where the signature takes images of any size: (its numeric outputs, the text outputs its
        predict side makes from them). The text outputs are ``{name: {"ids": the numeric output of token ids,
        "vocabulary": [word of each id], "end": the id that ends a text, "skip_below": ids below it are left
        out}}``, JSON the export's info file holds. By default :meth:`outputs` without its string outputs
        (a classifier's class names come from :meth:`class_labels`), and no text."""
        import tensorflow as tf

        return {name: value for name, value in self.outputs(model, preprocess, raw).items()
                if value.dtype != tf.string}, {}

    def describe(self) -> str:
        raise NotImplementedError


class Splits(dict):
    """What ``load_data`` may return: split name -> ``(x, y)``, plus ``meta``.

    ``meta`` holds facts derived from the data that the model is built from, such as a
    vocabulary that the targets are already encoded with; ``train`` hands it to a
    ``build_model(hp, meta)`` (see :meth:`Recipe.build`). A plain mapping means no meta.
    """

    def __init__(self, *args, meta: Mapping[str, Any] | None = None, **splits):
        super().__init__(*args, **splits)
        self.meta = dict(meta or {})


def classes_in(meta: Mapping[str, Any], default: int) -> int:
    """How many classes the data has (``meta["class_names"]``, which ``--data`` sources give), else ``default``:
    what a classifier's head is built with."""
    return len(meta.get("class_names") or ()) or default


def meta_of(loaded) -> dict[str, Any]:
    """The ``meta`` of what ``load_data`` returned (``{}`` for a plain mapping)."""
    return dict(getattr(loaded, "meta", None) or {})


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named, importable training recipe (see the module docstring)."""

    name: str
    summary: str
    build_model: Callable[[HParams, Mapping[str, Any]], Any]  # build_model(hp, meta): a functional Keras model
    load_data: Callable[[HParams, DataContext], Mapping[str, Split]]
    hparams: Mapping[str, HParam] = dataclasses.field(default_factory=dict)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stages: tuple[Stage, ...] = (Stage("train"),)
    preprocess: Callable[[Any], Any] | None = None
    loss: Any = "sparse_categorical_crossentropy"  # a Keras loss name, object or config {"class_name":, "config":}
    metrics: tuple = ("accuracy",)
    serving: Serving | None = None
    data: str = ""  # the built-in data set, in words
    task: str = ""  # what --data SOURCE it takes (kerasapps.core.schema.TASKS); "" trains on its built-in set only
    reference: str = ""
    callbacks: Callable[[HParams], list] | None = None
    # check_data(hp, splits): refuse, in one line, data the recipe cannot train on (called before a run writes)
    check_data: Callable[[HParams, Splits], None] | None = None
    # objective(hp) -> (loss, metrics), where they depend on the hyper-parameters (classification or regression)
    objective: Callable[[HParams], tuple[Any, tuple]] | None = None
    # A model with several outputs trains them all: the first is its answer (evaluated, exported), the others
    # auxiliary training heads whose losses count this much each (GoogLeNet's 0.3, Szegedy et al. 2014 sec. 5).
    aux_loss_weight: float = 0.3
    augmentable: bool = False  # the (first) model input is an image batch [N, H, W, C] augment_* keys may transform
    # evaluation(model, hp, data, split, meta, metrics) -> dict: what `evaluate` adds for this recipe beyond the
    # loss, the metrics and (for a classifier or regressor) the per-example scores, from the split's (x, y) ``data``,
    # its name and the data's meta: a captioner's BLEU, a language model's bits per character
    evaluation: Callable[..., dict] | None = None

    def __post_init__(self):
        if not self.name or not self.name.replace("_", "").isalnum() or not self.name[0].isalpha():
            raise ValueError(f"recipe name must be a letter followed by letters, digits or '_'; got {self.name!r}")
        if not self.stages:
            raise ValueError(f"recipe {self.name!r} needs at least one stage")
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe {self.name!r} has repeated stage names: {names}")
        if self.task and self.task not in TASKS:
            raise ValueError(f"recipe {self.name!r}: task must be one of {', '.join(TASKS)}; got {self.task!r}")
        clash = set(self.hparams) & set(COMMON_HPARAMS)
        if clash:
            raise ValueError(f"recipe {self.name!r} redeclares common hyper-parameters {sorted(clash)}; "
                             "change their defaults with defaults= instead")
        schema = self.schema()
        for key in self.defaults:
            if key not in schema:
                raise ValueError(f"recipe {self.name!r} sets a default for unknown key {key!r}")
        for stage in self.stages:
            for common, own in stage.overrides.items():
                if common not in COMMON_HPARAMS or own not in self.hparams:
                    raise ValueError(f"recipe {self.name!r} stage {stage.name!r}: override {common!r} -> {own!r} "
                                     "must map a common hyper-parameter to one of the recipe's own")

    def build(self, hp: HParams, meta: Mapping[str, Any] | None = None):
        """A fresh model: ``build_model(hp, meta)``.

        ``meta`` is the loaded data's :class:`Splits` meta; ``{}`` when no data was loaded
        (``kerasapps info``), where a factory that needs it builds its architecture with a placeholder.
        """
        return self.build_model(hp, dict(meta or {}))

    def loss_for(self, hp: HParams):
        """The loss this recipe trains with under ``hp`` (``loss=auto``)."""
        return self.objective(hp)[0] if self.objective is not None else self.loss

    def metrics_for(self, hp: HParams) -> tuple:
        """The metrics this recipe reports under ``hp``."""
        return tuple(self.objective(hp)[1]) if self.objective is not None else tuple(self.metrics)

    def schema(self) -> dict[str, HParam]:
        """All hyper-parameters of this recipe, with its defaults applied."""
        merged = {**COMMON_HPARAMS, **self.hparams}
        for key, value in self.defaults.items():
            spec = merged[key]
            merged[key] = dataclasses.replace(spec, default=spec.coerce(key, value))
        return merged

    def resolve(self, *, config_file=None, overrides=(), flags=None, legacy: bool = False) -> HParams:
        """Hyper-parameters from the defaults, ``config_file``, ``overrides`` and ``flags`` (see
        :func:`kerasapps.core.hparams.resolve`; ``legacy``: the file is a run directory's own)."""
        return resolve(self.schema(), config_file=config_file, overrides=overrides, flags=flags,
                       recipe_name=self.name, legacy=legacy)

    def default_hparams(self) -> HParams:
        return self.resolve()

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(f"recipe {self.name!r} has no stage {name!r}; stages: "
                          f"{', '.join(s.name for s in self.stages)}")
