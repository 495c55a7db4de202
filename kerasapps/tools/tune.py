"""Random search over a recipe's hyper-parameters on a validation split, with keras-tuner.

Random search beats grid search (Bergstra & Bengio 2012), rates are searched on a log scale, and
tuning uses a validation split carved from the training data -- never the test split, which
:func:`tune` does not read (it keeps only ``train`` and ``validation`` from ``load_data``).
Each trial runs the recipe's stages through the stage runner (:func:`kerasapps.training.stage.run_stage`).

A search space is a mapping from hyper-parameter key to one of::

    learning_rate: {min: 1.0e-4, max: 1.0e-1, log: true}   # log-uniform (floats or ints)
    dropout: {min: 0.0, max: 0.5}                          # uniform
    depth: {min: 1, max: 3}                                 # int keys give integers
    batch_size: [32, 64, 128]                               # a choice (also {choices: [...]})

Every key must be one of the recipe's; values are checked against its types and ranges.
Without ``--space`` the :func:`default_space` is used. The search lives in ``OUT/search``
(keras-tuner's ``directory``/``project_name``), so running the same command again resumes it;
``OUT/results.json`` holds every trial, best first.

``OUT/best_config.yaml`` is a config file ``kerasapps train NAME --config`` accepts: its ``hparams``
hold the best trial's values and the user's own ``--set`` values, for a full run; its ``search``
section (which ``train`` does not read) records how the trials ran: the space, the objective and
score, the validation split, and the caps that only made the trials cheap (``max_epochs``,
``steps_per_epoch``, the smoke slice), so none of them caps the full run.

``smoke=True`` (``--smoke``) runs a tiny search, at most :data:`SMOKE_TRIALS` trials of one epoch of
``SMOKE_STEPS`` steps on a small slice of the data, as ``train --smoke`` trains: it checks a search space
end to end in seconds, in ``tune/NAME-smoke`` by default, replacing the previous smoke search there.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import keras_tuner as kt
import yaml

from kerasapps.core.errors import ConfigError, UsageError
from kerasapps.core.hparams import dump_config, parse_assignments, unknown_key_error
from kerasapps.core.recipe import DataContext
from kerasapps.core.schema import FULL_BATCH, MINI_BATCH, TUNE_VALIDATION_SPLIT
from kerasapps.data.sources import load_splits
from kerasapps.data.splits import length
from kerasapps.training.optimizers import check_mini_batch, check_schedule
from kerasapps.training.stage import SMOKE_STEPS, StagePlan, run_stage, seed_everything
from kerasapps.training.train import as_recipe

log = logging.getLogger("kerasapps")

DEFAULT_SPACE: dict[str, Any] = {
    "learning_rate": {"min": 1e-4, "max": 1e-1, "log": True},
    "batch_size": [32, 64, 128],
    "l2": [0.0, 1e-5, 1e-4, 1e-3],
}
# Added to the default space when the recipe declares the key (mlp_mnist, for instance, has both).
DEFAULT_RECIPE_KEYS: dict[str, Any] = {
    "dropout": {"min": 0.0, "max": 0.5},
    "units": [64, 128, 256, 512],
}
META = "tune.json"
SMOKE_TRIALS = 2  # --smoke: at most this many trials
TRIAL_CAPS = ("steps_per_epoch",)  # --set keys that only make trials cheaper: in best_config's search section


def default_space(recipe) -> dict[str, Any]:
    """learning_rate log-uniform 1e-4..1e-1, batch_size {32, 64, 128}, l2 {0, 1e-5, 1e-4, 1e-3};
    plus dropout uniform 0..0.5 and units {64, 128, 256, 512} when the recipe has those keys."""
    schema = recipe.schema()
    return {**DEFAULT_SPACE, **{k: v for k, v in DEFAULT_RECIPE_KEYS.items() if k in schema}}


def read_space(path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read search space {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"search space {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"search space {path} must be a non-empty mapping of key: range or choices")
    return data


def check_space(recipe, space: dict[str, Any]) -> dict[str, dict]:
    """Normalise ``space`` to ``{key: {"choices": [...]}}`` or ``{key: {"min", "max", "log"}}``, checked."""
    schema = recipe.schema()
    out: dict[str, dict] = {}
    for key, spec in space.items():
        if key not in schema:
            raise unknown_key_error(key, schema, " in the search space")
        hparam = schema[key]
        if isinstance(spec, list):
            spec = {"choices": spec}
        if not isinstance(spec, dict):
            raise ConfigError(f"search space '{key}': give a list of choices or {{min:, max:[, log: true]}}; "
                              f"got {spec!r}")
        extra = set(spec) - {"choices", "min", "max", "log"}
        if extra:
            raise ConfigError(f"search space '{key}' has unknown fields {', '.join(sorted(extra))}; "
                              "valid: choices, min, max, log")
        if "choices" in spec:
            if set(spec) != {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ConfigError(f"search space '{key}': 'choices' must be a non-empty list, alone")
            out[key] = {"choices": [hparam.coerce(key, value) for value in spec["choices"]]}
            full_batch = [name for name in out[key]["choices"] if name in FULL_BATCH] if key == "optimizer" else []
            if full_batch:
                raise ConfigError(f"search space 'optimizer' must hold mini-batch optimizers "
                                  f"({', '.join(MINI_BATCH)}): "
                                  f"tune trains with fit, not full-batch {', '.join(full_batch)}")
            continue
        if hparam.type not in (int, float) or "min" not in spec or "max" not in spec:
            raise ConfigError(f"search space '{key}' ({hparam.type_name}) needs choices: [...]"
                              if hparam.type not in (int, float) else
                              f"search space '{key}' needs both min and max")
        low, high = hparam.coerce(key, spec["min"]), hparam.coerce(key, spec["max"])
        log_scale = spec.get("log", False)
        if not isinstance(log_scale, bool):
            raise ConfigError(f"search space '{key}': log must be true or false; got {log_scale!r}")
        if low is None or high is None or not low < high:
            raise ConfigError(f"search space '{key}': need min < max; got {spec['min']!r} and {spec['max']!r}")
        if log_scale and low <= 0:
            raise ConfigError(f"search space '{key}': a log scale needs min > 0; got {spec['min']!r}")
        out[key] = {"min": low, "max": high, "log": log_scale}
    return out


def _hyperparameters(space: dict[str, dict]):
    hps = kt.HyperParameters()
    for key, spec in space.items():
        if "choices" in spec:
            hps.Choice(key, spec["choices"])
        elif isinstance(spec["min"], int):
            hps.Int(key, spec["min"], spec["max"], sampling="log" if spec["log"] else "linear")
        else:
            hps.Float(key, spec["min"], spec["max"], sampling="log" if spec["log"] else "linear")
    return hps


def objective_of(recipe, hp) -> tuple[str, str]:
    return ("val_accuracy", "max") if "accuracy" in recipe.metrics_for(hp) else ("val_loss", "min")


def run_trial(recipe, hp, splits, objective: tuple[str, str], smoke: bool = False) -> dict[str, float]:
    """Train every stage of ``recipe`` with ``hp`` on ``splits`` (train and validation); the best epoch's
    validation metrics of the last stage. ``smoke``: one epoch of ``SMOKE_STEPS`` steps a stage."""
    seed_everything(hp)
    model, history = None, {}
    for index, stage in enumerate(recipe.stages):
        if not stage.runs(hp):
            continue
        result = run_stage(StagePlan.for_stage(recipe, index, hp, splits, smoke=smoke), model)
        model, history = result.model, result.history
        if result.diverged:
            log.warning("trial diverged: %s", result.diverged)
            break
    name, direction = objective
    values = history.get(name, [])
    finite = [v for v in values if math.isfinite(v)]
    if not finite or not all(math.isfinite(v) for v in history.get("loss", [])):
        return {name: 0.0 if direction == "max" else 1e9, "diverged": 1.0}
    best = (max if direction == "max" else min)(range(len(values)),
                                                 key=lambda i: values[i] if math.isfinite(values[i]) else
                                                 (-math.inf if direction == "max" else math.inf))
    out = {k: float(v[best]) for k, v in history.items() if k.startswith("val_") and math.isfinite(v[best])}
    out["best_epoch"] = float(best + 1)
    return out


class RecipeTuner(kt.RandomSearch):
    """keras-tuner's random search whose trials run a recipe's stages (:func:`run_trial`) with each trial's
    values over ``base`` (the user's settings and the validation split); ``trials`` is the search's length,
    for the log, and ``max_epochs`` caps each trial's epochs."""

    def __init__(self, recipe, base: dict[str, Any], splits, objective: tuple[str, str], *, trials: int,
                 max_epochs: int | None, smoke: bool, **kwargs):
        self.recipe, self.base, self.splits, self.trial_objective = recipe, base, splits, objective
        self.trial_count, self.max_epochs, self.smoke = trials, max_epochs, smoke
        super().__init__(objective=kt.Objective(*objective), max_trials=trials, **kwargs)

    def trial_hparams(self, values: dict[str, Any]):
        """The recipe's hyper-parameters for a trial's ``values``, its epochs capped at ``max_epochs``."""
        hp = self.recipe.resolve(overrides={**self.base, **values})
        return hp.replace(epochs=self.max_epochs) if self.max_epochs else hp

    def run_trial(self, trial, *args, **kwargs):
        values = dict(trial.hyperparameters.values)
        done = sum(t.status == "COMPLETED" for t in self.oracle.trials.values())
        best = [t for t in self.oracle.get_best_trials(1) if t.score is not None]
        so_far = f" (best so far: {self.trial_objective[0]} {best[0].score:.4f})" if best else ""
        log.info("trial %d of %d: %s%s", done + 1, self.trial_count, ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()), so_far)
        return run_trial(self.recipe, self.trial_hparams(values), self.splits, self.trial_objective, smoke=self.smoke)


def check_search_size(trials: int | None, max_epochs: int | None, validation_split: float, smoke: bool) -> int:
    """The checks of ``tune``'s counts; returns the number of trials to run (at most :data:`SMOKE_TRIALS` with
    ``smoke``, where ``trials`` may be None)."""
    if trials is None and not smoke:
        raise UsageError("give --trials N, the configurations to try (or --smoke for a quick check of the space)")
    trials = SMOKE_TRIALS if trials is None else trials
    if trials < 1:
        raise UsageError(f"--trials must be a positive integer; got {trials}")
    if max_epochs is not None and max_epochs < 1:
        raise UsageError(f"--max-epochs must be a positive integer; got {max_epochs}")
    if not 0.0 < validation_split <= 0.5:
        raise UsageError(f"--validation-split must be in (0, 0.5]; got {validation_split}")
    return min(trials, SMOKE_TRIALS) if smoke else trials


def check_saved_search(out: Path, meta: dict[str, Any], smoke: bool) -> None:
    """Refuses an ``out`` that holds another search: a full one for a smoke search or the other way round, or
    one with different options (a full search resumes only with the same; a smoke search is replaced)."""
    meta_path = out / META
    saved = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    if saved is not None and bool(saved.get("smoke")) != smoke:
        raise UsageError(f"{out} holds a {'full' if smoke else '--smoke'} search; choose another --out for this "
                         f"{'--smoke' if smoke else 'full'} one")
    if saved is not None and saved != meta and not smoke:  # a smoke search is replaced, never resumed
        changed = [k for k in meta if saved.get(k) != meta[k]]
        raise UsageError(f"{out} holds a search with a different {', '.join(changed)}; resume it with the "
                         "same options, or choose another --out")


def finished_trials(tuner, objective: tuple[str, str], out: Path) -> list[dict[str, Any]]:
    """The search's completed trials as rows (trial, score, diverged, hparams, metrics), best first and the
    diverged last."""
    rows = []
    for trial in tuner.oracle.trials.values():
        if trial.status != "COMPLETED" or trial.score is None:
            continue
        metrics = {name: trial.metrics.get_best_value(name) for name in trial.metrics.metrics}
        rows.append({"trial": trial.trial_id, "score": float(trial.score), "diverged": bool(metrics.get("diverged")),
                     "hparams": dict(trial.hyperparameters.values),
                     "metrics": {k: v for k, v in metrics.items() if k != "diverged"}})
    if not rows:
        raise UsageError(f"no trial of the search in {out} has finished")
    rows.sort(key=lambda r: (r["diverged"], -r["score"] if objective[1] == "max" else r["score"]))
    return rows


def tune(recipe, *, trials: int | None = None, max_epochs: int | None = None, space=None, space_file=None,
         validation_split: float = TUNE_VALIDATION_SPLIT, out=None, overrides=(), data_dir=None, data=None,
         smoke: bool = False, verbose: int = 0) -> dict[str, Any]:
    """Random search (keras-tuner) on a validation split; writes OUT/best_config.yaml and OUT/results.json.

    ``space`` (a mapping) or ``space_file`` (YAML) gives the ranges, else :func:`default_space`.
    ``max_epochs`` caps the epochs of each trial (default: the recipe's ``epochs``); the best
    configuration keeps the recipe's ``epochs``. Running again with the same ``out`` resumes the
    search: finished trials are kept and only the missing ones run. ``smoke`` runs a tiny search
    (see the module docstring); ``trials`` is then optional.
    """
    recipe = as_recipe(recipe)
    trials = check_search_size(trials, max_epochs, validation_split, smoke)
    user = dict(overrides) if isinstance(overrides, dict) else parse_assignments(overrides)
    base = {**user, "validation_split": validation_split}
    hp0 = recipe.resolve(overrides=base)
    if space is None:
        space = read_space(space_file) if space_file else default_space(recipe)
    space = check_space(recipe, space)
    for stage in recipe.stages:  # what the base configuration cannot take fails before anything is written
        check_schedule(stage.hparams(hp0))
        check_mini_batch(stage.hparams(hp0))
    out = Path(out) if out else Path("tune") / (f"{recipe.name}-smoke" if smoke else recipe.name)
    meta = json.loads(json.dumps({"recipe": recipe.name, "space": space,
                                  "overrides": {k: str(v) for k, v in base.items()}, "max_epochs": max_epochs,
                                  **({"smoke": True} if smoke else {})}))
    check_saved_search(out, meta, smoke)
    ctx = DataContext.from_option(data_dir, smoke, source=data)
    splits = load_splits(recipe, hp0, ctx, test=False)  # bad data fails before anything is written
    if splits.get("validation") is None:
        raise UsageError(f"validation_split {hp0.validation_split} leaves no validation examples; raise it")
    out.mkdir(parents=True, exist_ok=True)
    (out / META).write_text(json.dumps(meta, indent=2))
    objective = objective_of(recipe, hp0)
    resuming = (out / "search" / "oracle.json").is_file() and not smoke
    with contextlib.redirect_stdout(io.StringIO()):  # keras-tuner prints "Reloading Tuner from ..."
        tuner = RecipeTuner(recipe, base, splits, objective, trials=trials, max_epochs=max_epochs, smoke=smoke,
                            seed=hp0.seed, hyperparameters=_hyperparameters(space), tune_new_entries=False,
                            directory=str(out), project_name="search", overwrite=smoke)
    if resuming:
        log.info("resuming the search in %s: %d trial(s) recorded", out, len(tuner.oracle.trials))
    tuner.search(verbose=verbose)
    rows = finished_trials(tuner, objective, out)
    search = {"trials": len(rows), "objective": objective[0], "direction": objective[1], "best_trial": rows[0]["trial"],
              "score": rows[0]["score"], "space": space, "validation_split": validation_split,
              **({"data": data} if data else {}), **({"max_epochs": max_epochs} if max_epochs else {}),
              **{key: hp0[key] for key in TRIAL_CAPS if key in user},
              **({"smoke": {"epochs": 1, "steps_per_epoch": SMOKE_STEPS, "train_examples": length(splits["train"]),
                            "validation_examples": length(splits["validation"])}} if smoke else {})}
    config_path = out / "best_config.yaml"
    config_path.write_text(best_config(recipe, user, rows[0]["hparams"], search, config_path))
    result = {"recipe": recipe.name, "objective": objective[0], "direction": objective[1], "trials": rows,
              "space": space, "best": rows[0], "best_config": str(config_path), "out": str(out), "smoke": smoke,
              "search": search}
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def best_config(recipe, user: dict[str, Any], best: dict[str, Any], search: dict[str, Any], path) -> str:
    """The text of ``best_config.yaml``: ``hparams`` are the user's own settings (less the trial caps) and the
    best trial's values, for a full run; ``search`` records how the trials ran, and ``train`` does not read it."""
    own = {key: value for key, value in user.items() if key not in TRIAL_CAPS and key not in best}
    hp = recipe.resolve(overrides={**own, **best})  # checked and coerced as train will read them
    chosen = {key: hp[key] for key in [*best, *own]}
    return ("# kerasapps tune: the best trial's values and your own settings, for a full run:\n"
            f"#   kerasapps train {recipe.name} --config {path}\n"
            + dump_config(recipe.name, chosen)
            + "# how the trials ran (train does not read this section; max_epochs, steps_per_epoch and smoke\n"
              "# capped the trials only)\n"
            + yaml.safe_dump(json.loads(json.dumps({"search": search}, default=str)), sort_keys=False))
