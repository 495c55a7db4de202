"""Train a recipe into a run directory, stage by stage, with exact resume.

:func:`train` resolves the configuration (or reads a resumed run's), loads the data and refuses
what cannot work before it writes anything, then runs each stage through the stage runner
(:func:`kerasapps.training.stage.run_stage`) and records checkpoints, logs, the stage models,
the final model and the metrics in the run directory (layout: :mod:`kerasapps.training.rundir`).

Under a distribution strategy (``strategy=``, see :mod:`kerasapps.training.distribute`) the model,
optimizer and metrics are built inside ``strategy.scope()``, ``batch_size`` is per replica (the
global batch is ``batch_size * replicas``), and only the chief writes the run directory; other
workers write into a temporary directory removed at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasapps.core.commands import TrainOptions, assignments
from kerasapps.core.compat import tracked_layers
from kerasapps.core.errors import ConfigError, DataError, RunError, UsageError
from kerasapps.core.hparams import HParams, dump_config
from kerasapps.core.recipe import DataContext, Recipe, Splits
from kerasapps.core.registry import REGISTRY
from kerasapps.core.schema import FULL_BATCH
from kerasapps.data.files import unreadable
from kerasapps.data.image_practice import augmentation
from kerasapps.data.sources import load_splits
from kerasapps.data.splits import length, stage_splits
from kerasapps.training import rundir
from kerasapps.training.checkpoints import (
    EpochCheckpoint,
    epoch_checkpoint,
    load_model,
    newest_checkpoint,
    save_model,
)
from kerasapps.training.curves import plot_curves
from kerasapps.training.distribute import Distribution
from kerasapps.training.evaluate import class_check
from kerasapps.training.features import check_cache_features
from kerasapps.training.lbfgs import check_full_batch
from kerasapps.training.losses import class_ids
from kerasapps.training.optimizers import check_schedule, current_lr
from kerasapps.training.stage import (
    StagePlan,
    check_early_stopping,
    check_loss,
    freeze_stage,
    run_stage,
    seed_everything,
)
from kerasapps.training.tta import check_tta

log = logging.getLogger("kerasapps")


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    recipe: str
    metrics: dict


@dataclasses.dataclass
class Run:
    """One training run as it proceeds: what it trains, on what, and where it writes."""

    recipe: Recipe
    hp: HParams
    run_dir: Path  # where this process writes (a temporary folder on a multi-worker run's other workers)
    read_dir: Path  # the run directory itself: what a resumed run reads
    state: dict  # state.json: per-stage progress and the run's status
    splits: Splits
    ctx: DataContext  # the data directory, --data source and smoke flag the run trains with
    smoke: bool
    resume: bool
    distribution: Distribution

    def save_state(self, status: str | None = None) -> None:
        if status is not None:
            self.state["status"] = status
        rundir.write_json(self.run_dir / rundir.STATE, self.state)


def as_recipe(recipe: Recipe | str) -> Recipe:
    return recipe if isinstance(recipe, Recipe) else REGISTRY.get(recipe)


class _LogLearningRate(keras.callbacks.Callback):
    """Put the learning rate at the start of each epoch into the logs as ``lr`` (progress bar, CSV, TensorBoard):
    the rate the epoch trained at, not where a decaying schedule ends (zero, for cosine, after the last step)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.rate = current_lr(self.model.optimizer)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and "lr" not in logs:
            logs["lr"] = self.rate


_DEFAULT_OPTIONS = TrainOptions()


def train(recipe: Recipe | str, options: TrainOptions = _DEFAULT_OPTIONS, *, verbose="auto",
          callbacks: Iterable = ()) -> RunResult:
    """Train ``recipe`` into ``options.run_dir`` (see the module docstring); :class:`TrainOptions` (the options of
    ``kerasapps train``) documents the options. ``options.strategy`` is a name from
    :data:`kerasapps.core.schema.STRATEGIES` or a ``tf.distribute.Strategy``.
    """
    recipe = as_recipe(recipe)
    run_dir, config_file, data_dir, data = options.run_dir, options.config, options.data_dir, options.data
    resume, smoke, overwrite, overrides = options.resume, options.smoke, options.overwrite, assignments(options.set)
    # first: collective ops (multi_worker) must be configured before TensorFlow initialises its devices
    distribution = Distribution.start(options.strategy, options.tpu, backup_steps=options.backup_steps, resume=resume)
    flags = options.flags()
    if resume and overwrite:
        raise UsageError("--resume continues a run and --overwrite replaces it: pass one of them")
    if resume:
        hp, state, run_dir, smoke, recorded = _resumed(recipe, run_dir, config_file, overrides, flags)
        data_dir = rundir.recorded_data_dir(run_dir, data_dir)
        if data and data != recorded:
            raise UsageError(f"{run_dir} trains on {recorded or 'its built-in data'}; --resume continues it there "
                             "(drop --data)")
        data = recorded
    else:
        hp = recipe.resolve(config_file=config_file, overrides=overrides, flags=flags)
        run_dir, state = _fresh(recipe, run_dir, distribution, overwrite), {"status": "running", "stages": {}}
    with contextlib.ExitStack() as held:
        if resume and distribution.chief:  # one writer per run directory: a second --resume is refused here
            held.enter_context(rundir.lock(run_dir))
            rundir.remove_partial_files(run_dir)
        ctx = DataContext.from_option(data_dir, smoke, data)
        seed_everything(hp)
        splits = load_splits(recipe, hp, ctx)  # fail on bad data before writing anything
        first_model = _check(recipe, hp, splits, distribution, built=not resume)
        if not resume and distribution.chief:
            if overwrite and run_dir.exists() and any(run_dir.iterdir()):
                rundir.remove_run(run_dir)  # only now, when the new run is known to start: never lost for nothing
            held.enter_context(rundir.lock(run_dir))
        distribution = dataclasses.replace(distribution, backup_dir=run_dir / "backup")  # multi-worker backups
        writes = run_dir if distribution.chief else Path(tempfile.mkdtemp(prefix=f"kerasapps-{recipe.name}-worker-"))
        run = Run(recipe, hp, writes, run_dir, state, splits, ctx, smoke, resume, distribution)
        try:
            return _run_stages(run, first_model, callbacks, verbose)
        except Exception as exc:
            _unreadable_file(run, exc)
            raise
        finally:
            if not distribution.chief:  # other workers' logs and checkpoints go where nobody looks
                shutil.rmtree(writes, ignore_errors=True)


def _unreadable_file(run: Run, exc: Exception) -> None:
    """A TensorFlow error while training reads its files: where a file no longer reads as it did at the check
    before training (changed on disk since), the run is marked failed and the error is one line naming it."""
    import tensorflow as tf

    if not isinstance(exc, (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.DataLossError)):
        return
    culprit = unreadable(run.splits)
    if culprit is None:
        return
    run.save_state("failed")
    raise DataError(f"{culprit} can no longer be read as training read it before it started (changed on disk "
                    f"since?); the run is marked failed: fix or remove the file, or start again with --overwrite "
                    f"--set bad_files=skip") from None


def _resumed(recipe, run_dir, config_file, overrides, flags):
    """(hp, state, run_dir, smoke, --data source) of the run to continue."""
    if run_dir is None:
        raise UsageError("--resume needs --run-dir, the run to continue")
    run_dir = rundir.require_run_dir(run_dir)
    if config_file or overrides or flags:
        raise UsageError("--resume continues a run with its recorded configuration; drop --config, --set "
                         "and hyper-parameter flags, or start a new run with --config RUN_DIR/config.yaml")
    saved = rundir.read_config(run_dir)
    if saved.get("recipe") != recipe.name:
        raise UsageError(f"{run_dir} is a run of '{saved.get('recipe')}', not '{recipe.name}'")
    hp = recipe.resolve(config_file=run_dir / rundir.CONFIG, legacy=True)
    state = rundir.read_json(run_dir / rundir.STATE) if (run_dir / rundir.STATE).is_file() else {"stages": {}}
    if state.get("status") == "completed":
        raise UsageError(f"run {run_dir} has already completed; nothing to resume (start anew with --overwrite, "
                         "which replaces it, or another --run-dir)")
    return hp, state, run_dir, bool(saved.get("smoke", False)), saved.get("data")


def _fresh(recipe, run_dir, distribution, overwrite: bool = False) -> Path:
    if distribution.custom_loop and run_dir is None:
        raise UsageError("--strategy multi_worker needs --run-dir, a directory every worker can reach")
    run_dir = Path(run_dir) if run_dir else rundir.default_run_dir(recipe.name)
    if distribution.chief and run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise UsageError(f"run directory {run_dir} is not empty; pass --resume to continue it, --overwrite "
                             "to replace it, or choose another --run-dir")
        rundir.check_replaceable(run_dir)
    return run_dir


def _check(recipe, hp, splits, distribution, *, built: bool):
    """Refuse, before anything is written, what cannot work; returns the first stage's model when
    ``loss`` had to be checked against one (a new run then trains that model)."""
    augment = augmentation(hp, recipe)  # an augmentation the recipe cannot take is refused here
    augments = {stage.name: augment if stage.augmented(stage.hparams(hp)) else None for stage in recipe.stages}
    for stage in recipe.stages:
        stage_hp = stage.hparams(hp)
        check_schedule(stage_hp, stage.name if len(recipe.stages) > 1 else None)
        if stage_hp.optimizer in FULL_BATCH:
            check_full_batch(recipe.name, stage.name, stage_splits(stage, splits)["train"],
                             augment=augments[stage.name], strategy_name=distribution.name, hp=stage_hp)
    if hp.gradient_accumulation > 1 and distribution.name not in ("default", "one_device"):
        raise ConfigError(f"gradient_accumulation={hp.gradient_accumulation} does not work under --strategy "
                          f"{distribution.name}: Keras accumulates inside a conditional that tf.distribute cannot "
                          "synchronise in (keras-team/keras#20582); replicas already add up to a larger batch: "
                          "raise batch_size instead, or train with --strategy default")
    check_early_stopping(hp, splits.get("validation") is not None)
    if not built:
        return None
    with distribution.scope():  # built now so that what only building finds (weights that will not load) is
        # refused before the run directory is written; the run then trains this very model
        model = recipe.build(recipe.stages[0].hparams(hp), splits.meta)
    check_loss(recipe, hp, model)
    check_tta(recipe, hp, model)
    if hp.class_weight != "none":
        for stage in recipe.stages:
            if stage.runs(hp):
                class_ids(stage_splits(stage, splits)["train"][1], f" (recipe {recipe.name}, stage {stage.name})")
    if hp.cache_features == "true":  # each stage's frozen layers, as the stage will freeze them; then as built
        built_as = [(layer, layer.trainable) for layer in tracked_layers(model)]
        for stage in recipe.stages:
            if stage.runs(hp) and stage.freeze:  # a stage that freezes nothing has nothing to cache
                stage_hp = stage.hparams(hp)
                freeze_stage(stage, stage_hp, model)
                check_cache_features(stage_hp, stage, model,
                                     augment=augments[stage.name] is not None,
                                     custom_loop=distribution.custom_loop,
                                     full_batch=stage_hp.optimizer in FULL_BATCH)
        for layer, trainable in built_as:
            layer.trainable = trainable
    return model


def _start(run: Run) -> dict:
    """Write the configuration (a new run), the manifest and the state; returns the manifest."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    if not run.resume:
        rundir.write_text(run.run_dir / rundir.CONFIG,
                          dump_config(run.recipe.name, run.hp, **({"data": run.ctx.source} if run.ctx.source else {}),
                                      **({"smoke": True} if run.smoke else {})))
    rundir.write_json(run.run_dir / rundir.DATA, data_record(run.ctx, run.splits))
    source = REGISTRY.source(run.recipe.name) if run.recipe.name in REGISTRY else "python"
    manifest = rundir.manifest(run.recipe.name, source, run.hp.seed, run.ctx.data_dir, run.smoke,
                               strategy=run.distribution.describe())
    rundir.write_json(run.run_dir / rundir.MANIFEST, manifest)
    run.save_state("running")
    return manifest


def data_record(ctx: DataContext, splits: Splits) -> dict:
    """``RUN_DIR/data.json``: where the data came from, how many examples each split has (and of each class,
    for class-id labels), the class names (the labels the model's outputs stand for; the export returns them)
    and a table's columns."""
    counts = {}
    for name, split in splits.items():
        y = np.asarray(split[1]) if split is not None and not isinstance(split[1], (tuple, dict)) else None
        if y is not None and y.ndim == 1 and np.issubdtype(y.dtype, np.integer) and len(y):
            counts[name] = np.bincount(y, minlength=len(splits.meta.get("class_names") or ())).tolist()
    return {"source": ctx.source or "built-in", "data_dir": str(ctx.data_dir) if ctx.data_dir else None,
            "examples": {name: length(split) for name, split in splits.items() if split is not None},
            "class_names": splits.meta.get("class_names"),
            **({"class_counts": counts} if counts else {}),
            **({"columns": splits.meta["columns"]} if "columns" in splits.meta else {})}


def _verbose(verbose) -> int:
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


class _EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback, without the per-batch summaries it issues even at ``update_freq="epoch"``
    (where nothing records them: 0.5 s of Python over the 2,900 steps of ``mnist_transfer``)."""

    def on_train_batch_end(self, batch, logs=None):
        pass


def _loggers(run: Run, stage: str, hp: HParams, user_callbacks) -> Any:
    """The callbacks a run adds to a stage, as a function of the stage's first epoch (a resumed stage
    drops the log rows written after its checkpoint and appends)."""
    def make(initial_epoch: int) -> list:
        csv_path = run.run_dir / "logs" / f"{stage}.csv"
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        if initial_epoch:
            rundir.trim_csv(csv_path, initial_epoch)
        return [*user_callbacks, _LogLearningRate(),
                keras.callbacks.CSVLogger(str(csv_path), append=initial_epoch > 0),
                _EpochTensorBoard(log_dir=str(run.run_dir / "tensorboard" / stage), write_graph=False,
                                  profile_batch=0, update_freq="epoch"),
                EpochCheckpoint(run.run_dir, stage, run.state, hp.keep_checkpoints)]
    return make


def _run_stages(run: Run, model, user_callbacks, verbose) -> RunResult:
    manifest = _start(run)
    verbose = _verbose(verbose)
    recipe, distribution = run.recipe, run.distribution
    metrics: dict[str, Any] = dict(run.state.get("metrics", {}))
    previous = None  # the last finished stage's saved model, when no model is in memory
    last = [stage.name for stage in recipe.stages if stage.runs(run.hp)][-1]
    for index, stage in enumerate(recipe.stages):
        if not stage.runs(run.hp):  # e.g. image_transfer's finetune with finetune_blocks=0
            continue
        info = run.state["stages"].setdefault(stage.name, {"completed_epochs": 0, "done": False})
        stage_path = run.run_dir / "stages" / f"{stage.name}.keras"
        if info["done"]:
            model, previous = None, run.read_dir / "stages" / f"{stage.name}.keras"
            continue
        # a multi-worker stage restores its progress from its backup instead
        checkpoint = None if distribution.custom_loop else _checkpoint_to_resume(run, stage.name, info)
        info["completed_epochs"] = checkpoint[1] if checkpoint else 0
        plan = StagePlan.for_stage(recipe, index, run.hp, run.splits, replicas=distribution.replicas,
                                   smoke=run.smoke, run_dir=run.run_dir, full_batch_ok=True,
                                   initial_epoch=info["completed_epochs"], whole_batches=distribution.custom_loop)
        result = run_stage(plan, model if model is not None else previous, checkpoint=checkpoint and checkpoint[0],
                           callbacks=_loggers(run, stage.name, plan.hp, user_callbacks),
                           distribution=distribution, verbose=verbose)
        if result.diverged:
            run.save_state("diverged")
            raise RunError(result.diverged)
        model = result.model
        check = class_check(plan, model) if stage.name == last and not distribution.custom_loop else {}
        if result.test is not None and "test" in check:
            result.test.update(check["test"])
        metrics[stage.name] = result.record(info, epochs=plan.epochs, epochs_rule=plan.epochs_rule,
                                            validation=check.get("validation"))
        save_model(model, stage_path)
        info["done"] = True
        run.state["metrics"] = metrics
        run.save_state()
        previous = stage_path
    return _finish(run, model, previous, metrics, manifest)


def _checkpoint_to_resume(run: Run, stage: str, info: dict) -> tuple[Path, int] | None:
    """(checkpoint, epochs) a stage resumes from: the one its state records or, if that file is missing, the
    newest before it (a warning says which); None to start the stage from its first epoch."""
    completed = info["completed_epochs"]
    if not completed:
        return None
    found = newest_checkpoint(run.run_dir, stage, completed)
    if found is None or found[1] != completed:
        missing = epoch_checkpoint(run.run_dir, stage, completed).relative_to(run.run_dir)
        then = f"resuming from {found[0].name}" if found else "the stage starts again from its first epoch"
        log.warning(f"stage '{stage}' recorded {completed} completed epochs but {missing} is missing; {then}")
    return found


def _finish(run: Run, model, previous, metrics: Mapping, manifest: dict) -> RunResult:
    if model is None:
        with run.distribution.scope():
            model = load_model(previous)
    save_model(model, run.run_dir / rundir.FINAL_MODEL)
    if run.distribution.custom_loop and run.distribution.chief:
        shutil.rmtree(run.run_dir / "backup", ignore_errors=True)
    ran = [s.name for s in run.recipe.stages if s.runs(run.hp)]
    final = {"recipe": run.recipe.name, "stages": dict(metrics), "test": metrics[ran[-1]]["test"]}
    rundir.write_json(run.run_dir / rundir.METRICS, final)
    plot_curves(run.run_dir, ran)
    run.save_state("completed")
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    rundir.write_json(run.run_dir / rundir.MANIFEST, manifest)
    return RunResult(run.read_dir, run.recipe.name, final)
