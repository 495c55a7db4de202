"""The one stage runner: every command that trains runs its stages through :func:`run_stage`.

One call prepares and runs a stage: its examples (the stage's ``select``), the model (built,
carried over from the previous stage, loaded from a file, or resumed from a checkpoint), its
frozen layers, weight penalties, optimizer, loss and metrics, then ``fit`` (or full-batch L-BFGS,
or the multi-worker loop) and the test metrics. :class:`StagePlan` says what to run;
:class:`StageResult` is what came of it.

``kerasapps train`` runs every stage of a recipe into a run directory
(:mod:`kerasapps.training.train`), ``tune`` runs them for each trial, ``diagnose overfit`` and
``diagnose lr`` run the first stage on a slice of the training data, and the training monitors
take their probe batch from the stage's data here.

One module, a little over 400 lines: the plan, the run and the result of a stage (``StageResult.record``
writes it into the run's state and metrics) change together whenever a practice key is added.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import keras

from kerasapps.core.errors import ConfigError
from kerasapps.core.hparams import HParams
from kerasapps.core.recipe import Recipe, Split, Stage, meta_of
from kerasapps.core.schema import AUTO, FULL_BATCH
from kerasapps.data.image_practice import augmentation
from kerasapps.data.pipelines import evaluation_dataset, steps_for, training_dataset, whole_batch_steps
from kerasapps.data.splits import length, stage_splits, take
from kerasapps.models.recompute import Recompute
from kerasapps.training import precision
from kerasapps.training.callbacks import EarlyStopping, MaxNorm, NaNGuard
from kerasapps.training.checkpoints import load_model, recipe_objects
from kerasapps.training.distribute import Distribution, evaluate_custom, fit_custom
from kerasapps.training.features import cached_features
from kerasapps.training.losses import choose_loss, example_weights, sampling_probabilities, with_auxiliary_targets
from kerasapps.training.optimizers import build_optimizer, decay_kernels_only
from kerasapps.training.regularizers import apply_weight_penalties
from kerasapps.training.schedules import schedule_callback
from kerasapps.training.tta import with_tta

log = logging.getLogger("kerasapps")
SMOKE_STEPS = 2  # --smoke: steps per epoch (and L-BFGS iterations)


@dataclasses.dataclass
class StagePlan:
    """One stage of a recipe, ready to run (make one with :meth:`for_stage`).

    ``batch_size`` is the examples per optimizer step (all replicas together); ``augment`` and
    ``practice_callbacks`` switch the recipe's augmentation and the schedule / early-stopping / max-norm /
    monitor callbacks of ``hp`` (the diagnostics run without them); ``run_dir`` is where L-BFGS logs
    its iterations and the monitors write (``train`` only).
    """

    recipe: Recipe
    index: int
    hp: HParams  # the stage's own: Stage.overrides applied
    data: Mapping[str, Split]  # train and, where present, validation and test: the stage's selection
    meta: Mapping[str, Any]
    batch_size: int
    epochs: int
    steps_per_epoch: int
    initial_epoch: int = 0
    augment: bool = True
    practice_callbacks: bool = True
    run_dir: Path | None = None
    smoke: bool = False
    expect_divergence: bool = False  # the lr range test ends at divergence: the NaN guard stops it quietly
    full_batch_ok: bool = False  # train: an optimizer=lbfgs stage runs L-BFGS; tune and diagnose refuse it
    epochs_rule: str = ""  # how epochs=auto chose ``epochs`` ("" where they were given)

    @classmethod
    def for_stage(cls, recipe: Recipe, index: int, hp: HParams, splits: Mapping[str, Split], *,
                  replicas: int = 1, smoke: bool = False, examples: int | None = None, whole_batches: bool = False,
                  **fields) -> "StagePlan":
        """The plan for ``recipe.stages[index]`` on ``splits`` (a run's train / validation / test).

        ``examples`` keeps only the first that many of the stage's training examples; ``whole_batches``
        (multi-worker runs, whose workers read disjoint parts of each global batch) leaves each epoch's
        last partial batch out. ``fields`` set the plan's other fields (``epochs``, ``batch_size``,
        ``run_dir``, ...).
        """
        stage = recipe.stages[index]
        stage_hp = stage.hparams(hp)
        data = stage_splits(stage, splits)
        if examples is not None:
            data["train"] = take(data["train"], slice(0, min(examples, length(data["train"]))))
        batch = fields.pop("batch_size", None) or stage_hp.batch_size * replicas
        steps = fields.pop("steps_per_epoch", None)
        if not steps:
            count, limit = length(data["train"]), SMOKE_STEPS if smoke else stage_hp.steps_per_epoch
            if whole_batches:
                try:
                    steps = whole_batch_steps(count, batch, limit)
                except ValueError as exc:
                    raise ConfigError(f"{stage.name!r}: {exc} ({stage_hp.batch_size} per replica x {replicas} "
                                      "replicas); lower --batch-size") from None
            else:
                steps = steps_for(count, batch, limit)
        fields["augment"] = fields.get("augment", True) and stage.augmented(stage_hp)
        epochs, rule = fields.pop("epochs", None), ""
        if not epochs:
            epochs, rule = (1, "") if smoke else epochs_for(stage_hp, length(data["train"]))
        return cls(recipe, index, stage_hp, data, meta_of(splits), batch, epochs, steps, smoke=smoke, epochs_rule=rule,
                   **fields)

    @property
    def stage(self) -> Stage:
        return self.recipe.stages[self.index]

    @property
    def full_batch(self) -> bool:
        """Whether L-BFGS minimises the stage full-batch (``optimizer=lbfgs``, where allowed) instead of ``fit``."""
        return self.full_batch_ok and self.hp.optimizer in FULL_BATCH

    @property
    def title(self) -> str:
        """``stage 1/2 'pretrain' (digits 0-4)``: how the log names this stage."""
        on = f" ({self.stage.trains_on})" if self.stage.trains_on else ""
        running = [stage.name for stage in self.recipe.stages if stage.runs(self.hp)]  # the stages this run has
        position = running.index(self.stage.name) + 1 if self.stage.name in running else self.index + 1
        return f"stage {position}/{max(len(running), position)} '{self.stage.name}'{on}"


@dataclasses.dataclass
class StageResult:
    """What a stage left: its model, the per-epoch history and the test metrics (when it had a test split)."""

    model: Any
    history: dict[str, list[float]]
    test: dict[str, float] | None
    seconds: float
    samples_per_second: float | None
    diverged: str | None = None  # the NaN guard's one-line message
    early_stopping: dict | None = None
    lbfgs: dict | None = None
    initial_epoch: int = 0
    features_seconds: float | None = None  # the stage trained its head on frozen features computed once, in this time
    precision: str = "float32"  # the policy it trained in (every model it hands on is float32)

    def record(self, info: dict, *, epochs: int, epochs_rule: str = "", validation: dict | None = None) -> dict:
        """Write what the stage left into its entry of the run's state (``info``: time, speed, precision, early
        stopping, L-BFGS, ...; a resumed stage adds its time to the earlier part's) and return its entry of
        ``metrics.json``: the test metrics, the epochs trained (``epochs``, or L-BFGS's iterations), the
        same facts and the ``validation`` split's class check."""
        if self.lbfgs is not None:  # an interrupted L-BFGS stage is redone whole
            info["seconds"] = round(self.seconds, 2)
        elif self.history:
            info["seconds"] = round(info.get("seconds", 0.0) + self.seconds, 2)
        if self.history or self.lbfgs:
            info["samples_per_second"] = self.samples_per_second
            info["precision"] = self.precision
        for key, value in (("early_stopping", self.early_stopping), ("lbfgs", self.lbfgs),
                           ("features_seconds", self.features_seconds), ("epochs_rule", epochs_rule or None)):
            if value is not None:
                info[key] = value
        metrics = {"test": self.test, "epochs": info["lbfgs"]["iterations"] if "lbfgs" in info else epochs,
                   "seconds": info.get("seconds"), "samples_per_second": info.get("samples_per_second")}
        metrics.update({name: info[key] for key, name in STATE_TO_METRICS if key in info})
        return {**metrics, **({"validation": validation} if validation else {})}


# the facts a stage's state entry keeps that its metrics.json entry repeats, under the metrics' names
STATE_TO_METRICS = (("precision", "precision"), ("epochs_rule", "epochs_rule"), ("early_stopping", "early_stopping"),
                    ("lbfgs", "lbfgs"), ("features_seconds", "features_cached_in_seconds"))


def epochs_for(hp: HParams, examples: int) -> tuple[int, str]:
    """(epochs, how they were chosen) for a stage of ``examples`` training examples: ``epochs`` as given, or
    (``epochs=auto``) ceil(auto_examples / examples) between ``min_epochs`` and ``max_epochs``, so that the stage
    sees at least as many examples as the recipe's defaults were chosen with on its built-in set, whatever the
    size of the data."""
    if hp.epochs != AUTO:
        return hp.epochs, ""
    wanted = math.ceil(hp.auto_examples / max(examples, 1))
    epochs = max(hp.min_epochs, min(hp.max_epochs, wanted))
    bound = (f", capped at max_epochs={hp.max_epochs}" if wanted > hp.max_epochs else
             f", raised to min_epochs={hp.min_epochs}" if wanted < hp.min_epochs else "")
    return epochs, (f"epochs=auto: {hp.auto_examples:,} examples / {examples:,} per epoch = {epochs} "
                    f"epoch{'s' if epochs != 1 else ''}{bound}")


def seed_everything(hp: HParams) -> None:
    """Seed Python, NumPy and Keras from ``hp.seed``; with ``hp.deterministic``, deterministic TensorFlow ops."""
    import tensorflow as tf

    keras.utils.set_random_seed(hp.seed)
    if hp.deterministic:
        tf.config.experimental.enable_op_determinism()


def freeze(model, prefixes: Iterable[str], *, rule: bool = False) -> list[str]:
    """Make layers whose names start with any of ``prefixes`` non-trainable and every other layer trainable (a
    later stage unfreezes what an earlier one froze); nested models are followed, and a matched nested model
    freezes whole. Returns the frozen names (outermost). No prefixes: nothing changes, unless they come from
    a ``rule`` (a stage's ``freeze(hp, model)``), which then unfreezes everything."""
    prefixes = tuple(prefixes)
    if not prefixes and not rule:
        return []
    frozen: list[str] = []

    def visit(layer):
        hit = bool(prefixes) and layer.name.startswith(prefixes)
        layer.trainable = not hit  # a nested model passes this to its layers, refined below
        if hit:
            frozen.append(layer.name)
            return
        for inner in [layer.block] if isinstance(layer, Recompute) else getattr(layer, "layers", None) or []:
            visit(inner)

    for layer in model.layers:
        visit(layer)
    if not frozen and not rule:
        raise ConfigError(f"no layer of {model.name} starts with {', '.join(prefixes)}")
    return frozen


def freeze_prefixes(stage, hp: HParams, model) -> tuple[str, ...]:
    """The layer-name prefixes ``stage`` freezes with the stage's hyper-parameters ``hp``: ``Stage.freeze``
    itself, or what its rule says for ``model``."""
    rule = stage.freeze
    return tuple(rule(hp, model)) if callable(rule) else tuple(rule)


def freeze_stage(stage, hp: HParams, model) -> list[str]:
    """Freeze ``model`` as ``stage`` trains it (:func:`freeze` with the stage's prefixes or rule)."""
    return freeze(model, freeze_prefixes(stage, hp, model), rule=callable(stage.freeze))


def check_early_stopping(hp: HParams, has_validation: bool) -> None:
    """Refuse early stopping on a validation metric in a run without a validation split."""
    if hp.early_stopping and hp.early_stopping_monitor.startswith("val_") and not has_validation:
        raise ConfigError(f"early stopping monitors {hp.early_stopping_monitor}, but this run has no "
                          "validation split (validation_split is 0)")


def check_loss(recipe: Recipe, hp: HParams, model) -> None:
    """Refuse a ``loss`` that does not fit ``model``'s head (before a run writes anything)."""
    choose_loss(recipe, hp, model)


def run_stage(plan: StagePlan, model=None, *, checkpoint: Path | None = None,
              callbacks: Iterable | Callable[[int], Iterable] = (),
              distribution: Distribution | None = None, verbose=0) -> StageResult:
    """Prepare and run one stage; see the module docstring.

    ``model``: None (build it from the recipe), a model (the previous stage's, or one built to check
    it) or the path of a saved model (the previous stage's). ``checkpoint``: the ``.keras`` file of
    a stage interrupted after ``plan.initial_epoch`` epochs, resumed with its optimizer and RNG
    state. ``callbacks`` come after the runner's own (NaN guard first, then the practice callbacks,
    then the recipe's). Divergence is reported in :attr:`StageResult.diverged`, not raised.
    """
    recipe, hp = plan.recipe, plan.hp
    distribution = distribution or Distribution.local()
    initial_epoch, skip_steps, backup = plan.initial_epoch, 0, None
    policy = precision.resolve(hp.precision)
    with distribution.scope():  # model, optimizer and metrics live on the strategy's devices
        if checkpoint is not None:
            model = load_model(checkpoint, custom_objects=recipe_objects(recipe))
            apply_weight_penalties(model, hp)  # kernel regularisers are not saved with the model
            decay_kernels_only(model)  # nor is which variables the optimizer's weight decay leaves alone
            log.info("resuming %s after epoch %d from %s", plan.title, initial_epoch, checkpoint)
        else:
            if model is None:
                with precision.building(policy):
                    model = recipe.build(hp, plan.meta)
            elif isinstance(model, (str, Path)):
                model = load_model(model, compile=False)
            model = precision.in_policy(model, policy)
            freeze_stage(plan.stage, hp, model)
            apply_weight_penalties(model, hp)
            _compile(model, plan)
            if distribution.custom_loop:
                model.optimizer.build(model.trainable_variables)
                backup = distribution.backup(plan.stage.name, model)
                restored = backup.restore() if distribution.resume else None
                if restored is not None:
                    initial_epoch, skip_steps = restored
    # one-hot targets where the loss compares vectors; repeated for auxiliary heads
    data = with_auxiliary_targets(choose_loss(recipe, hp, model).apply(plan.data), len(model.outputs))
    result = StageResult(model, {}, None, 0.0, None, initial_epoch=initial_epoch)
    if plan.full_batch and initial_epoch < plan.epochs:  # full batch, no checkpoints: a resume redoes the stage
        _fit_lbfgs(plan, model, data, result)
    elif initial_epoch < plan.epochs:
        _fit(plan, model, data, result, callbacks, distribution, backup, skip_steps, verbose)
    if policy != precision.FLOAT32:  # what a stage hands on computes in float32 (kerasapps.training.precision)
        with distribution.scope():
            model = result.model = precision.in_policy(model, precision.FLOAT32)
        _compile(model, plan)  # evaluate needs the loss and metrics; this optimizer never steps
    result.precision = policy
    if "test" in data and result.diverged is None:
        result.test = _test_metrics(plan, model, data["test"], distribution)
        log.info(f"stage {plan.stage.name!r} test: " + ", ".join(f"{k} {v:.4f}" for k, v in result.test.items()))
    return result


def _test_metrics(plan: StagePlan, model, split, distribution: Distribution) -> dict[str, float]:
    """The stage's metrics on its test split, scored as the export answers (``tta``)."""
    if plan.hp.get("tta", "none") != "none":
        with distribution.scope():
            model = with_tta(model, plan.hp.tta)
        _compile(model, plan)
        if isinstance(split[1], tuple):  # targets repeated for auxiliary heads: the export answers with the first
            split = (split[0], split[1][0])
    test_ds = evaluation_dataset(split, batch_size=plan.batch_size, preprocess=plan.recipe.preprocess, cache=False)
    if distribution.custom_loop:
        test = evaluate_custom(model, distribution.strategy, test_ds, math.ceil(length(split) / plan.batch_size))
    else:
        test = model.evaluate(test_ds, return_dict=True, verbose=0)
    return {k: float(v) for k, v in test.items()}


def _compile(model, plan: StagePlan, optimizer=None) -> None:
    # A full-batch stage is minimised by kerasapps.training.lbfgs; the compiled SGD(0) is never stepped.
    # Elsewhere build_optimizer refuses optimizer=lbfgs in one line. A head on cached features shares the
    # whole model's optimizer (``optimizer``), so the whole model's checkpoints hold its state.
    optimizer = optimizer or (keras.optimizers.SGD(0.0) if plan.full_batch else build_optimizer(
        plan.hp, plan.steps_per_epoch, plan.epochs))
    loss, metrics = choose_loss(plan.recipe, plan.hp, model).loss, list(plan.recipe.metrics_for(plan.hp))
    heads = len(model.outputs)
    if heads == 1:
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=False)
    elif plan.full_batch:
        raise ConfigError(f"optimizer=lbfgs takes single-output models; {model.name} has {heads} outputs "
                          "(auxiliary heads)")
    else:
        model.compile(optimizer=optimizer, loss=[loss] * heads, loss_weights=[1.0] + [plan.recipe.aux_loss_weight] *
                      (heads - 1), metrics=[metrics] + [[]] * (heads - 1), jit_compile=False)
    decay_kernels_only(model)


def _callbacks(plan: StagePlan, data, guard, extra, initial_epoch: int) -> tuple[list, Any]:
    """NaN guard first, then schedule / early stopping / max-norm / monitor, the recipe's, the caller's."""
    callbacks, stopper = [guard], None
    if plan.practice_callbacks:
        hp = plan.hp
        schedule = schedule_callback(hp)
        if schedule is not None:
            callbacks.append(schedule)
        if hp.early_stopping:
            check_early_stopping(hp, "validation" in data)
            # in a run directory its state is kept beside the checkpoints, so a resume keeps the best epoch
            state_dir = plan.run_dir / "checkpoints" / plan.stage.name if plan.run_dir is not None else None
            stopper = EarlyStopping(monitor=hp.early_stopping_monitor, patience=hp.early_stopping_patience,
                                    min_delta=hp.early_stopping_min_delta, restore_best_weights=True,
                                    state_dir=state_dir, initial_epoch=initial_epoch)
            callbacks.append(stopper)
        if hp.max_norm is not None:
            callbacks.append(MaxNorm(hp.max_norm))
        if hp.monitor:
            from kerasapps.training.monitors import TrainingMonitor, probe_batch

            callbacks.append(TrainingMonitor(plan.run_dir, plan.stage.name, every_steps=hp.monitor_every_steps,
                                             probe=probe_batch(data, hp.monitor_probe_size, plan.recipe.preprocess)))
    callbacks += list(plan.recipe.callbacks(plan.hp) if plan.recipe.callbacks else [])
    return callbacks + list(extra), stopper


def _fit(plan, model, data, result, extra, distribution, backup, skip_steps, verbose) -> None:
    recipe, initial_epoch = plan.recipe, result.initial_epoch
    augment = augmentation(plan.hp, recipe) if plan.augment else None
    preprocess, trained_model = recipe.preprocess, model
    started = time.perf_counter()
    cached = cached_features(plan, model, data, augment=augment is not None, custom_loop=distribution.custom_loop)
    if cached is not None:  # the head trains on the frozen bottom's outputs, computed once
        trained_model, data = cached
        result.features_seconds = round(time.perf_counter() - started, 3)
        _compile(trained_model, plan, optimizer=model.optimizer)
        preprocess = None
    weights = example_weights(plan.hp, plan.data["train"][1], len(model.outputs))  # class_weight, from the labels
    train = data["train"] if weights is None else (*data["train"], weights)
    sampling = sampling_probabilities(plan.hp, plan.data["train"][1])  # class_weight=sampler

    def train_batches(shard=None, replica_batch=None):
        return training_dataset(train, batch_size=plan.batch_size, seed=plan.hp.seed, stage_index=plan.index,
                                first_epoch=initial_epoch, epochs=plan.epochs, steps_per_epoch=plan.steps_per_epoch,
                                preprocess=preprocess, augment=augment, shard=shard, replica_batch=replica_batch,
                                sampling=sampling)[0]

    val_ds = (evaluation_dataset(data["validation"], batch_size=plan.batch_size, preprocess=preprocess)
              if "validation" in data else None)
    # The guard's message reaches the user once, as StageResult.diverged (train raises it); not logged here too.
    guard = NaNGuard(log_level=logging.DEBUG, rate_key=plan.stage.overrides.get("learning_rate", "learning_rate"),
                     initial_lr=plan.hp.learning_rate, warn_growth=not plan.expect_divergence)
    callbacks, stopper = _callbacks(plan, data, guard, extra(initial_epoch) if callable(extra) else extra,
                                    initial_epoch)
    if getattr(trained_model.optimizer, "use_ema", False):  # validation scores the averaged weights
        callbacks.insert(1, keras.callbacks.SwapEMAWeights())
    policy = precision.policy_of(trained_model)
    log.info(f"{plan.title}: {length(data['train'])} training examples, "
             f"{plan.steps_per_epoch} steps x {plan.epochs - initial_epoch} epochs"
             + (f" ({plan.epochs_rule})" if plan.epochs_rule else "")
             + ("" if policy == precision.FLOAT32 else f", computing in {policy}"))
    started = time.perf_counter()
    if distribution.custom_loop:
        validation = (val_ds, math.ceil(length(data["validation"]) / plan.batch_size)) if val_ds else None
        history = fit_custom(trained_model, distribution.strategy, train_batches, plan.batch_size,
                             epochs=plan.epochs, initial_epoch=initial_epoch, steps=plan.steps_per_epoch,
                             callbacks=callbacks, verbose=verbose, backup=backup, skip_steps=skip_steps,
                             backup_steps=distribution.backup_steps, validation=validation)
    else:
        history = trained_model.fit(train_batches(), epochs=plan.epochs, initial_epoch=initial_epoch,
                                    steps_per_epoch=plan.steps_per_epoch, shuffle=False, validation_data=val_ds,
                                    callbacks=callbacks, verbose=verbose)
    result.seconds = time.perf_counter() - started
    result.history = {k: [float(v) for v in values] for k, values in history.history.items()}
    trained = ((plan.epochs - initial_epoch) * plan.steps_per_epoch - skip_steps) * plan.batch_size
    result.samples_per_second = round(trained / result.seconds, 1) if result.seconds > 0 else None
    result.diverged = guard.message if guard.triggered else None
    result.early_stopping = stopper.summary() if stopper is not None else None


def _fit_lbfgs(plan, model, data, result) -> None:
    """The stage by full-batch L-BFGS (kerasapps.training.lbfgs) instead of ``fit``; loss per iteration to the CSV."""
    from kerasapps.training.lbfgs import fit_stage

    iterations = min(plan.hp.lbfgs_iterations, SMOKE_STEPS) if plan.smoke else plan.hp.lbfgs_iterations
    name, train = plan.stage.name, data["train"]
    log.info(f"stage '{name}': L-BFGS, full batch of {length(train)} examples, at most {iterations} iterations")
    csv_path = plan.run_dir / "logs" / f"{name}.csv" if plan.run_dir is not None else None
    fitted = fit_stage(model, train, model.loss, preprocess=plan.recipe.preprocess, iterations=iterations,
                       csv_path=csv_path)
    result.seconds = fitted.seconds
    result.samples_per_second = (round(fitted.evaluations * length(train) / fitted.seconds, 1)
                                 if fitted.seconds > 0 else None)
    result.history = {"loss": [value for _, value in fitted.history]}
    result.lbfgs = {"loss": fitted.loss, "iterations": fitted.iterations, "evaluations": fitted.evaluations,
                    "message": fitted.message}
    if not math.isfinite(fitted.loss):
        result.diverged = f"stage '{name}': L-BFGS reached a non-finite loss ({fitted.loss})"
        return
    log.info(f"stage '{name}': L-BFGS loss {fitted.loss:.4g} after {fitted.iterations} iterations "
             f"({fitted.evaluations} evaluations, {fitted.seconds:.1f} s): {fitted.message}")
