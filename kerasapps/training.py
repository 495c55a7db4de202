"""Train a recipe into a run directory, stage by stage, with exact resume.

Layout of a run directory::

    config.yaml         resolved hyper-parameters (``--config RUN_DIR/config.yaml`` reproduces the run)
    manifest.json       versions, seed, hardware, git revision, data source, timings
    state.json          per-stage progress: completed epochs, done, run status
    checkpoints/STAGE/epoch-NNN.keras   model + optimizer after each epoch (newest kept)
    stages/STAGE.keras  the model at the end of each stage
    model.keras         the final model (what evaluate, export and predict use)
    logs/STAGE.csv, tensorboard/STAGE/, training_curves.png, metrics.json
    backup/STAGE/       multi-worker runs only: tf.train.CheckpointManager backups (removed when done)

Under a distribution strategy (``strategy=``, see :mod:`kerasapps.distribute`) the model, optimizer and
metrics are built inside ``strategy.scope()``, ``batch_size`` is per replica (the global batch is
``batch_size * replicas``), and only the chief writes the run directory; other workers write into a
temporary directory removed at the end.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import keras
import yaml

from kerasapps import data as D
from kerasapps import distribute as DS
from kerasapps import rundir as R
from kerasapps.config import HParams, dump_config
from kerasapps.errors import ConfigError, DataError, RunError, UsageError
from kerasapps.losses import choose_loss
from kerasapps.optimizers import FULL_BATCH, build_optimizer, check_schedule
from kerasapps.practice import apply_weight_penalties, augmentation, practice_callbacks
from kerasapps.recipe import DataContext, Recipe, Splits, meta_of
from kerasapps.registry import REGISTRY

log = logging.getLogger("kerasapps")
SMOKE_STEPS = 2


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    recipe: str
    metrics: dict


def as_recipe(recipe: Recipe | str) -> Recipe:
    return recipe if isinstance(recipe, Recipe) else REGISTRY.get(recipe)


class _EpochCheckpoint(keras.callbacks.Callback):
    """Saves model + optimizer + RNG state after each finite epoch and records progress."""

    def __init__(self, run_dir: Path, stage: str, state: dict, keep: int, guard=None):
        super().__init__()
        self.run_dir, self.stage, self.state, self.keep, self.guard = run_dir, stage, state, keep, guard

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if (self.guard is not None and getattr(self.guard, "triggered", False)) or \
                (loss is not None and not math.isfinite(float(loss))):
            return  # never overwrite the last good checkpoint with a diverged model
        folder = self.run_dir / "checkpoints" / self.stage
        R.save_model(self.model, folder / f"epoch-{epoch + 1:03d}.keras")
        self.state["stages"][self.stage]["completed_epochs"] = epoch + 1
        R.write_json(self.run_dir / R.STATE, self.state)
        for old in sorted(folder.glob("epoch-*.keras"))[:-self.keep]:
            R.remove_model(old)


def latest_checkpoint(run_dir: Path, stage: str, epoch: int) -> Path | None:
    path = run_dir / "checkpoints" / stage / f"epoch-{epoch:03d}.keras"
    return path if path.is_file() else None


def load_splits(recipe: Recipe, hp: HParams, ctx: DataContext) -> Splits:
    """The recipe's splits (and their meta) with a validation split carved from train when it has none."""
    loaded = recipe.load_data(hp, ctx)
    splits = Splits(loaded, meta=meta_of(loaded))
    for required in ("train", "test"):
        if required not in splits:
            raise DataError(f"recipe {recipe.name!r} returned no '{required}' split (got {', '.join(splits)})")
    if splits.get("validation") is None:
        splits["train"], splits["validation"] = D.carve_validation(splits["train"], hp.validation_split, hp.seed)
    if ctx.smoke:
        splits = Splits({k: (D.smoke_slice(v, k) if v is not None else None) for k, v in splits.items()},
                        meta=splits.meta)
    return splits


def stage_splits(stage, splits: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for name, split in splits.items():
        if split is not None:
            out[name] = stage.select(split) if stage.select else split
            if D.length(out[name]) == 0:
                raise DataError(f"stage '{stage.name}' selects no examples from the {name} split")
    return out


def freeze(model, prefixes: Iterable[str]) -> list[str]:
    """Make layers whose names start with any of ``prefixes`` non-trainable; returns their names."""
    prefixes = tuple(prefixes)
    if not prefixes:
        return []
    frozen = [layer.name for layer in model.layers if layer.name.startswith(prefixes)]
    if not frozen:
        raise ConfigError(f"no layer of {model.name} starts with {', '.join(prefixes)}")
    for layer in model.layers:
        if layer.name in frozen:
            layer.trainable = False
    return frozen


def seed_everything(hp: HParams) -> None:
    import tensorflow as tf

    keras.utils.set_random_seed(hp.seed)
    if hp.deterministic:
        tf.config.experimental.enable_op_determinism()


def _verbose(verbose) -> int:
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def _compile(model, recipe: Recipe, hp: HParams, steps_per_epoch: int, epochs: int | None = None,
             full_batch: bool = False) -> None:
    # full_batch (train's optimizer=lbfgs stages): kerasapps.lbfgs minimises; the compiled SGD(0) is never stepped.
    # Other callers (diagnose, tune) get build_optimizer's one-line refusal of lbfgs.
    lbfgs = full_batch and hp.optimizer in FULL_BATCH
    optimizer = keras.optimizers.SGD(0.0) if lbfgs else build_optimizer(hp, steps_per_epoch, epochs)
    model.compile(optimizer=optimizer, loss=choose_loss(recipe, hp, model).loss,
                  metrics=list(recipe.metrics), jit_compile=False)


class _LogLearningRate(keras.callbacks.Callback):
    """Put the learning rate in effect at the end of each epoch into the logs as ``lr`` (CSV, TensorBoard)."""

    def on_epoch_end(self, epoch, logs=None):
        from kerasapps.callbacks import current_lr

        if logs is not None and "lr" not in logs:
            logs["lr"] = current_lr(self.model.optimizer)


def _stage_callbacks(run_dir: Path, stage: str, state: dict, hp: HParams, recipe: Recipe,
                     resuming: bool, extra: Iterable, has_validation: bool) -> tuple[list, Any, Any]:
    """NaNGuard first, then schedule / early stopping / max-norm, the recipe's, the caller's, then loggers."""
    from kerasapps.callbacks import NaNGuard

    guard = NaNGuard()
    csv_path = run_dir / "logs" / f"{stage}.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    practice, stopper = practice_callbacks(hp, has_validation, run_dir=run_dir, stage=stage)
    callbacks = [guard, *practice]
    callbacks += list(recipe.callbacks(hp) if recipe.callbacks else [])
    callbacks += list(extra)
    callbacks += [
        _LogLearningRate(),
        keras.callbacks.CSVLogger(str(csv_path), append=resuming),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard" / stage), write_graph=False,
                                    profile_batch=0, update_freq="epoch"),
        _EpochCheckpoint(run_dir, stage, state, hp.keep_checkpoints, guard),
    ]
    return callbacks, guard, stopper


def train(recipe: Recipe | str, *, run_dir=None, config_file=None, overrides=(), flags=None,
          data_dir=None, resume: bool = False, smoke: bool = False, verbose="auto",
          callbacks: Iterable = (), strategy="default", tpu: str | None = None,
          backup_steps: int | None = None) -> RunResult:
    """Train ``recipe`` into ``run_dir`` (see the module docstring); the Python twin of ``kerasapps train``.

    ``strategy`` is a name from :data:`kerasapps.distribute.STRATEGIES` or a ``tf.distribute.Strategy``;
    ``backup_steps`` adds mid-epoch backups to multi-worker runs (which back up at every epoch end).
    """
    recipe = as_recipe(recipe)
    # first: collective ops (multi_worker) must be configured before TensorFlow initialises its devices
    strategy = DS.get_strategy(strategy, tpu) if strategy is None or isinstance(strategy, str) else strategy
    custom_loop, chief = DS.uses_custom_loop(strategy), DS.is_chief() or not DS.uses_custom_loop(strategy)
    replicas = int(strategy.num_replicas_in_sync)
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    if resume:
        if run_dir is None:
            raise UsageError("--resume needs --run-dir, the run to continue")
        run_dir = R.require_run_dir(run_dir)
        if config_file or overrides or flags:
            raise UsageError("--resume continues a run with its recorded configuration; drop --config, --set "
                             "and hyper-parameter flags, or start a new run with --config RUN_DIR/config.yaml")
        saved = yaml.safe_load((run_dir / R.CONFIG).read_text())
        if saved.get("recipe") != recipe.name:
            raise UsageError(f"{run_dir} is a run of '{saved.get('recipe')}', not '{recipe.name}'")
        hp = recipe.resolve(config_file=run_dir / R.CONFIG)
        smoke = bool(saved.get("smoke", False))
        state = R.read_json(run_dir / R.STATE) if (run_dir / R.STATE).is_file() else {"stages": {}}
        if state.get("status") == "completed":
            raise UsageError(f"run {run_dir} has already completed; nothing to resume")
    else:
        hp = recipe.resolve(config_file=config_file, overrides=overrides, flags=flags)
        if custom_loop and run_dir is None:
            raise UsageError("--strategy multi_worker needs --run-dir, a directory every worker can reach")
        run_dir = Path(run_dir) if run_dir else R.default_run_dir(recipe.name)
        if chief and run_dir.exists() and any(run_dir.iterdir()):
            raise UsageError(f"run directory {run_dir} is not empty; pass --resume to continue it, "
                             "or choose another --run-dir")
        state = {"status": "running", "stages": {}}

    ctx = DataContext(D.resolve_data_dir(data_dir), smoke)
    augment = augmentation(hp, recipe.name, recipe.augmentable)
    seed_everything(hp)
    splits = load_splits(recipe, hp, ctx)  # fail on bad data before writing anything
    if hp.loss != "auto":  # a loss that does not fit the head fails before anything is written
        choose_loss(recipe, hp, recipe.build(hp, splits.meta))
    for stage in recipe.stages:  # refuse a schedule or full-batch L-BFGS run that cannot work, before writing
        check_schedule(stage.hparams(hp), stage.name if len(recipe.stages) > 1 else None)
        if stage.hparams(hp).optimizer in FULL_BATCH:
            from kerasapps.lbfgs import check_full_batch

            check_full_batch(recipe.name, stage.name, stage_splits(stage, splits)["train"], augment=augment,
                             strategy_name=DS.strategy_name(strategy))
    if hp.early_stopping and hp.early_stopping_monitor.startswith("val_") and splits.get("validation") is None:
        raise ConfigError(f"early stopping monitors {hp.early_stopping_monitor}, but this run has no "
                          "validation split (validation_split is 0)")

    read_dir = run_dir  # what a resumed run reads: the chief's run directory
    if not chief:  # other workers write their logs and checkpoints where nobody looks, removed at the end
        run_dir = Path(tempfile.mkdtemp(prefix=f"kerasapps-{recipe.name}-worker-"))
    try:
        result = _train(recipe, hp, run_dir, read_dir, state, ctx, augment, splits, resume, smoke, verbose,
                        callbacks, strategy, custom_loop, chief, replicas, backup_steps)
        return dataclasses.replace(result, run_dir=read_dir)
    finally:
        if not chief:
            shutil.rmtree(run_dir, ignore_errors=True)


def _train(recipe, hp, run_dir, read_dir, state, ctx, augment, splits, resume, smoke, verbose, callbacks,
           strategy, custom_loop, chief, replicas, backup_steps) -> RunResult:
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        R.write_text(run_dir / R.CONFIG, dump_config(recipe.name, hp, **({"smoke": True} if smoke else {})))
    manifest = R.manifest(recipe.name, REGISTRY.source(recipe.name) if recipe.name in REGISTRY else "python",
                          hp.seed, ctx.data_dir, smoke, strategy=DS.describe(strategy))
    R.write_json(run_dir / R.MANIFEST, manifest)
    state["status"] = "running"
    R.write_json(run_dir / R.STATE, state)

    verbose = _verbose(verbose)
    metrics: dict[str, Any] = dict(state.get("metrics", {}))
    model, previous, run_hp = None, None, hp
    for index, stage in enumerate(recipe.stages):
        info = state["stages"].setdefault(stage.name, {"completed_epochs": 0, "done": False})
        stage_path = run_dir / "stages" / f"{stage.name}.keras"
        if info["done"]:
            model, previous = None, read_dir / "stages" / f"{stage.name}.keras"
            continue
        data = stage_splits(stage, splits)
        hp = stage.hparams(run_hp)
        batch = hp.batch_size * replicas  # the global batch: batch_size per replica
        epochs = 1 if smoke else hp.epochs
        steps = D.steps_for(D.length(data["train"]), batch, SMOKE_STEPS if smoke else hp.steps_per_epoch)
        checkpoint = None if custom_loop else latest_checkpoint(run_dir, stage.name, info["completed_epochs"])
        skip_steps, backup = 0, None
        with strategy.scope():  # model, optimizer and metrics live on the strategy's devices
            if checkpoint is not None:
                model = R.load_model(checkpoint)
                apply_weight_penalties(model, hp)
                initial_epoch = info["completed_epochs"]
                log.info("resuming stage %s after epoch %d from %s", stage.name, initial_epoch, checkpoint)
            else:
                if model is None:
                    model = R.load_model(previous, compile=False) if previous else recipe.build(hp, splits.meta)
                freeze(model, stage.freeze)
                apply_weight_penalties(model, hp)
                _compile(model, recipe, hp, steps, epochs, full_batch=True)
                initial_epoch = info["completed_epochs"] = 0
                if custom_loop:
                    model.optimizer.build(model.trainable_variables)
                    backup = DS.Backup(read_dir / "backup" / stage.name, model, chief)
                    restored = backup.restore() if resume else None
                    if restored is not None:
                        initial_epoch, skip_steps = restored
                        info["completed_epochs"] = initial_epoch
        data = choose_loss(recipe, hp, model).apply(data)  # one-hot targets where the loss compares vectors
        if hp.optimizer in FULL_BATCH and initial_epoch < epochs:  # full batch, no checkpoints: a resume redoes it
            _fit_lbfgs(model, recipe, hp, data["train"], run_dir, stage.name, info, state, smoke)
        elif initial_epoch < epochs:
            train_ds, _ = D.training_dataset(
                data["train"], batch_size=batch, seed=hp.seed, stage_index=index,
                first_epoch=initial_epoch, epochs=epochs, steps_per_epoch=steps, preprocess=recipe.preprocess,
                augment=augment)
            if skip_steps:
                train_ds = train_ds.skip(skip_steps)
            val_ds = (D.evaluation_dataset(data["validation"], batch_size=batch, preprocess=recipe.preprocess)
                      if "validation" in data else None)
            if initial_epoch:
                R.trim_csv(run_dir / "logs" / f"{stage.name}.csv", initial_epoch)
            stage_callbacks, guard, stopper = _stage_callbacks(run_dir, stage.name, state, hp, recipe,
                                                               initial_epoch > 0, callbacks, val_ds is not None)
            log.info(f"stage {index + 1}/{len(recipe.stages)} '{stage.name}': {D.length(data['train'])} training "
                     f"examples, {steps} steps x {epochs - initial_epoch} epochs")
            started = time.perf_counter()
            if custom_loop:
                validation = (val_ds, math.ceil(D.length(data["validation"]) / batch)) if val_ds else None
                DS.fit_custom(model, strategy, train_ds, epochs=epochs, initial_epoch=initial_epoch, steps=steps,
                              callbacks=stage_callbacks, verbose=verbose, backup=backup, skip_steps=skip_steps,
                              backup_steps=backup_steps, validation=validation)
            else:
                model.fit(train_ds, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                          shuffle=False, validation_data=val_ds, callbacks=stage_callbacks, verbose=verbose)
            seconds = time.perf_counter() - started
            if guard.triggered:
                state["status"] = "diverged"
                R.write_json(run_dir / R.STATE, state)
                raise RunError(guard.message)
            if stopper is not None:
                info["early_stopping"] = stopper.summary()
            trained = ((epochs - initial_epoch) * steps - skip_steps) * batch
            info["seconds"] = round(info.get("seconds", 0.0) + seconds, 2)
            info["samples_per_second"] = round(trained / seconds, 1) if seconds > 0 else None
        test_ds = D.evaluation_dataset(data["test"], batch_size=batch, preprocess=recipe.preprocess, cache=False)
        if custom_loop:
            result = DS.evaluate_custom(model, strategy, test_ds, math.ceil(D.length(data["test"]) / batch))
        else:
            result = model.evaluate(test_ds, return_dict=True, verbose=0)
        done = info["lbfgs"]["iterations"] if "lbfgs" in info else epochs  # L-BFGS: iterations, as in the CSV
        metrics[stage.name] = {"test": {k: float(v) for k, v in result.items()}, "epochs": done,
                               "seconds": info.get("seconds"), "samples_per_second": info.get("samples_per_second"),
                               **({"early_stopping": info["early_stopping"]} if "early_stopping" in info else {}),
                               **({"lbfgs": info["lbfgs"]} if "lbfgs" in info else {})}
        log.info(f"stage {stage.name!r} test: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
        R.save_model(model, stage_path)
        info["done"] = True
        state["metrics"] = metrics
        R.write_json(run_dir / R.STATE, state)
        previous = stage_path

    if model is None:
        with strategy.scope():
            model = R.load_model(previous)
    R.save_model(model, run_dir / R.FINAL_MODEL)
    if custom_loop and chief:
        shutil.rmtree(run_dir / "backup", ignore_errors=True)
    final = {"recipe": recipe.name, "stages": metrics, "test": metrics[recipe.stages[-1].name]["test"]}
    R.write_json(run_dir / R.METRICS, final)
    R.plot_curves(run_dir, [s.name for s in recipe.stages])
    state["status"] = "completed"
    R.write_json(run_dir / R.STATE, state)
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    R.write_json(run_dir / R.MANIFEST, manifest)
    return RunResult(run_dir, recipe.name, final)


def _fit_lbfgs(model, recipe, hp, train_split, run_dir, stage, info, state, smoke) -> None:
    """One stage by full-batch L-BFGS (kerasapps.lbfgs) instead of ``model.fit``; loss per iteration to the CSV."""
    from kerasapps.lbfgs import fit_stage

    iterations = min(hp.lbfgs_iterations, SMOKE_STEPS) if smoke else hp.lbfgs_iterations
    log.info(f"stage '{stage}': L-BFGS, full batch of {D.length(train_split)} examples, "
             f"at most {iterations} iterations")
    result = fit_stage(model, train_split, model.loss, preprocess=recipe.preprocess, iterations=iterations,
                       csv_path=run_dir / "logs" / f"{stage}.csv")
    if not math.isfinite(result.loss):
        state["status"] = "diverged"
        R.write_json(run_dir / R.STATE, state)
        raise RunError(f"stage '{stage}': L-BFGS reached a non-finite loss ({result.loss})")
    log.info(f"stage '{stage}': L-BFGS loss {result.loss:.4g} after {result.iterations} iterations "
             f"({result.evaluations} evaluations, {result.seconds:.1f} s): {result.message}")
    info["lbfgs"] = {"loss": result.loss, "iterations": result.iterations, "evaluations": result.evaluations,
                     "message": result.message}
    info["seconds"] = round(result.seconds, 2)
    info["samples_per_second"] = (round(result.evaluations * D.length(train_split) / result.seconds, 1)
                                  if result.seconds > 0 else None)


def open_run(run_dir) -> tuple[Recipe, HParams, dict]:
    """The recipe, hyper-parameters and saved config of a run directory."""
    run_dir = R.require_run_dir(run_dir)
    saved = yaml.safe_load((run_dir / R.CONFIG).read_text()) or {}
    recipe = REGISTRY.get(saved.get("recipe", ""))
    return recipe, recipe.resolve(config_file=run_dir / R.CONFIG), saved


def final_model_path(run_dir) -> Path:
    run_dir = Path(run_dir)
    path = run_dir / R.FINAL_MODEL
    if not path.is_file():
        state = R.read_json(run_dir / R.STATE) if (run_dir / R.STATE).is_file() else {}
        progress = ", ".join(f"{k} {v.get('completed_epochs', 0)} epochs" for k, v in state.get("stages", {}).items())
        raise UsageError(f"run {run_dir} has not finished ({progress or 'no epoch completed'}); "
                         f"continue it with: kerasapps train NAME --resume --run-dir {run_dir}")
    return path


def evaluate(run_dir, *, split: str = "test", data_dir=None, verbose=0) -> dict:
    """Evaluate a finished run's final model on ``split`` of its last stage; writes evaluation-SPLIT.json."""
    recipe, hp, saved = open_run(run_dir)
    run_dir = Path(run_dir)
    if split not in ("train", "validation", "test"):
        raise UsageError(f"--split must be train, validation or test; got {split!r}")
    model_path = final_model_path(run_dir)
    manifest = R.read_json(run_dir / R.MANIFEST) if (run_dir / R.MANIFEST).is_file() else {}
    if data_dir is None and not os.environ.get(D.DATA_DIR_ENV) and manifest.get("data_dir"):
        data_dir = manifest["data_dir"] if Path(manifest["data_dir"]).is_dir() else None
    ctx = DataContext(D.resolve_data_dir(data_dir), bool(saved.get("smoke", False)))
    splits = stage_splits(recipe.stages[-1], load_splits(recipe, hp, ctx))
    if split not in splits:
        raise UsageError(f"recipe {recipe.name!r} has no {split} split")
    model = R.load_model(model_path)
    splits = choose_loss(recipe, hp, model).apply(splits)
    ds = D.evaluation_dataset(splits[split], batch_size=hp.batch_size, preprocess=recipe.preprocess, cache=False)
    result = {k: float(v) for k, v in model.evaluate(ds, return_dict=True, verbose=verbose).items()}
    out = {"recipe": recipe.name, "split": split, "examples": D.length(splits[split]), "metrics": result}
    R.write_json(run_dir / f"evaluation-{split}.json", out)
    return out

