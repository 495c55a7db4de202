"""The recipe contract: a small declarative object binding a model to data and a schedule.

A :class:`Recipe` names a functional-model factory (``build_model(hp)``, or
``build_model(hp, meta)`` when the model depends on the data, e.g. its vocabulary), the
data it trains on (``load_data(hp, ctx)`` returning in-memory splits, a :class:`Splits`
when it carries such ``meta``), its preprocessing
(``preprocess``: raw batch -> model input, shared by the training pipeline and the
exported SavedModel), optional :class:`Stage` s (the transfer example trains,
freezes, then fine-tunes), its loss and metrics, and its :class:`Serving` signature.
Hyper-parameters common to every recipe live in :data:`COMMON_HPARAMS`; a recipe
adds its own and may change the common defaults with ``defaults=``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kerasapps.config import HParam, HParams, resolve
from kerasapps.errors import ConfigError
from kerasapps.losses import LOSSES
from kerasapps.optimizers import LR_SCHEDULES, OPTIMIZERS
from kerasapps.practice import PRACTICE_HPARAMS


COMMON_HPARAMS: dict[str, HParam] = {
    "epochs": HParam(5, int, "epochs per stage", minimum=1),
    "batch_size": HParam(128, int, "examples per batch (global batch)", minimum=1),
    "steps_per_epoch": HParam(None, int, "cap on training steps per epoch (null: the whole split)",
                              optional=True, minimum=1),
    "seed": HParam(1234, int, "seed for weights, shuffling, dropout and validation carving"),
    "deterministic": HParam(False, bool, "make TensorFlow ops deterministic (slower; bitwise-repeatable runs)"),
    "validation_split": HParam(0.1, float, "fraction of the training split held out for validation "
                               "(when the data has no validation split)", minimum=0.0, maximum=0.5),
    "optimizer": HParam("adam", str, "optimizer", choices=OPTIMIZERS),
    "lbfgs_iterations": HParam(100, int, "L-BFGS iterations per stage (optimizer=lbfgs: full-batch, small models; "
                               "epochs and batch_size do not apply)", minimum=1),
    "learning_rate": HParam(1e-3, float, "initial learning rate", minimum=0.0),
    "momentum": HParam(0.0, float, "momentum (sgd, rmsprop)", minimum=0.0, maximum=1.0),
    "nesterov": HParam(False, bool, "Nesterov momentum (sgd)"),
    "lr_schedule": HParam("constant", str, "learning-rate schedule within each stage",
                          choices=LR_SCHEDULES),
    "warmup_epochs": HParam(0.0, float, "linear warm-up from learning_rate/10 to learning_rate over this many "
                            "epochs, then lr_schedule (cosine or constant)", minimum=0.0),
    "clipnorm": HParam(None, float, "clip each gradient to this L2 norm", optional=True, minimum=0.0),
    "clipvalue": HParam(None, float, "clip each gradient element to [-v, v]", optional=True, minimum=0.0),
    "loss": HParam("auto", str, "loss: auto (the recipe's own) or one of the notes' losses, checked against the "
                   "model's head (logits use the stable from_logits form)", choices=LOSSES),
    "keep_checkpoints": HParam(2, int, "per-epoch checkpoints kept per stage (the newest)", minimum=1),
    **PRACTICE_HPARAMS,
}

Arrays = Any  # a numpy array, or a tuple/dict of them (nested like the model's inputs)
Split = tuple[Arrays, Arrays]  # (x, y)


@dataclasses.dataclass(frozen=True)
class DataContext:
    """Where a recipe finds its data: a local directory, or TFDS when none is set."""

    data_dir: Any  # pathlib.Path or None
    smoke: bool = False

    def require(self, relative: str, hint: str = "") -> Any:
        from kerasapps.data import require_file

        return require_file(self.data_dir, relative, hint)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One training stage.

    ``select(split)`` filters or relabels a ``(x, y)`` split for this stage (applied to
    train, validation and test alike); ``freeze`` lists layer-name prefixes made
    non-trainable before the stage compiles; ``overrides`` maps a common
    hyper-parameter (``learning_rate``, ``batch_size``, ``epochs``, ...) to the name of a
    recipe hyper-parameter whose value replaces it in this stage, so a fine-tuning stage
    can have its own learning rate that users set with ``--set``.
    """

    name: str
    summary: str = ""
    select: Callable[[Split], Split] | None = None
    freeze: tuple[str, ...] = ()
    overrides: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def hparams(self, hp):
        """``hp`` with this stage's overrides applied."""
        return hp.replace(**{common: hp[own] for common, own in self.overrides.items()}) if self.overrides else hp


class Serving:
    """What an exported SavedModel takes and returns; subclasses define the endpoint."""

    input_name = "inputs"

    def input_signature(self) -> list:
        raise NotImplementedError

    def outputs(self, model, preprocess, raw) -> dict:
        raise NotImplementedError

    def extra_endpoints(self, model, preprocess) -> dict:
        """Further signatures besides ``serving_default``: name -> ``tf.function`` with an input signature."""
        return {}

    def describe(self) -> str:
        raise NotImplementedError

    def load_inputs(self, paths: Sequence[str]) -> Any:
        raise NotImplementedError

    def format_prediction(self, outputs: Mapping[str, Any], index: int) -> str:
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


def meta_of(loaded) -> dict[str, Any]:
    """The ``meta`` of what ``load_data`` returned (``{}`` for a plain mapping)."""
    return dict(getattr(loaded, "meta", None) or {})


def _takes_meta(build_model) -> bool:
    import inspect

    try:
        params = inspect.signature(build_model).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named, importable training recipe (see the module docstring)."""

    name: str
    summary: str
    build_model: Callable[..., Any]  # build_model(hp), or build_model(hp, meta) to read data-derived facts
    load_data: Callable[[HParams, DataContext], Mapping[str, Split]]
    hparams: Mapping[str, HParam] = dataclasses.field(default_factory=dict)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stages: tuple[Stage, ...] = (Stage("train"),)
    preprocess: Callable[[Any], Any] | None = None
    loss: Any = "sparse_categorical_crossentropy"
    metrics: tuple = ("accuracy",)
    serving: Serving | None = None
    data: str = ""
    reference: str = ""
    callbacks: Callable[[HParams], list] | None = None
    augmentable: bool = False  # the (first) model input is an image batch [N, H, W, C] that augment_* keys may transform

    def __post_init__(self):
        if not self.name or not self.name.replace("_", "").isalnum() or not self.name[0].isalpha():
            raise ValueError(f"recipe name must be a letter followed by letters, digits or '_'; got {self.name!r}")
        if not self.stages:
            raise ValueError(f"recipe {self.name!r} needs at least one stage")
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe {self.name!r} has repeated stage names: {names}")
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
        """A fresh model: ``build_model(hp, meta)`` when the factory takes a second argument, else ``build_model(hp)``.

        ``meta`` is the loaded data's :class:`Splits` meta; ``{}`` when no data was loaded
        (``kerasapps info``), where such a factory builds its architecture with a placeholder.
        """
        if _takes_meta(self.build_model):
            return self.build_model(hp, dict(meta or {}))
        return self.build_model(hp)

    def schema(self) -> dict[str, HParam]:
        """All hyper-parameters of this recipe, with its defaults applied."""
        merged = {**COMMON_HPARAMS, **self.hparams}
        for key, value in self.defaults.items():
            spec = merged[key]
            merged[key] = dataclasses.replace(spec, default=spec.coerce(key, value))
        return merged

    def resolve(self, *, config_file=None, overrides=(), flags=None) -> HParams:
        return resolve(self.schema(), config_file=config_file, overrides=overrides, flags=flags,
                       recipe_name=self.name)

    def default_hparams(self) -> HParams:
        return self.resolve()

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(f"recipe {self.name!r} has no stage {name!r}; stages: "
                          f"{', '.join(s.name for s in self.stages)}")
