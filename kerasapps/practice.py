"""Training practice selectable for every recipe from config: schedules, early stopping,
max-norm, weight penalties and augmentation.

The keys live in :data:`PRACTICE_HPARAMS` (merged into every recipe's schema); this
module turns resolved hyper-parameters into Keras callbacks, weight regularizers and
an augmentation pipeline, composing :mod:`kerasapps.callbacks` and
:mod:`kerasapps.augment`.
"""

from __future__ import annotations

from kerasapps.config import HParam, HParams
from kerasapps.errors import ConfigError

FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")

PRACTICE_HPARAMS: dict[str, HParam] = {
    "lr_drop": HParam(0.5, float, "step decay: lr = learning_rate * lr_drop^floor(epoch / lr_every_epochs)",
                      minimum=0.0, maximum=1.0),
    "lr_every_epochs": HParam(10, int, "step/exponential decay: epochs per drop (step) or per factor lr_rate",
                              minimum=1),
    "lr_rate": HParam(0.96, float, "exponential decay: lr = learning_rate * lr_rate^(epoch / lr_every_epochs)",
                      minimum=0.0, maximum=1.0),
    "lr_decay": HParam(1e-4, float, "time decay: lr = learning_rate / (1 + lr_decay * iterations)", minimum=0.0),
    "early_stopping": HParam(False, bool, "stop when early_stopping_monitor stops improving; keep the best weights"),
    "early_stopping_monitor": HParam("val_loss", str, "metric early stopping watches"),
    "early_stopping_patience": HParam(5, int, "epochs without improvement before stopping", minimum=1),
    "early_stopping_min_delta": HParam(0.0, float, "smallest change that counts as improvement", minimum=0.0),
    "max_norm": HParam(None, float, "after every update, clip each unit's incoming weight vector to this L2 norm",
                       optional=True, minimum=0.0),
    "l1": HParam(0.0, float, "L1 penalty on Dense/Conv kernels (with l2: elastic net)", minimum=0.0),
    "l2": HParam(0.0, float, "L2 penalty on Dense/Conv kernels", minimum=0.0),
    "augment_shift": HParam(0.0, float, "random shift, fraction of height/width (image recipes)",
                            minimum=0.0, maximum=0.99),
    "augment_rotation": HParam(0.0, float, "random rotation, max degrees either way (image recipes)",
                               minimum=0.0, maximum=180.0),
    "augment_zoom": HParam(0.0, float, "random zoom, fraction (image recipes)", minimum=0.0, maximum=0.99),
    "augment_flip": HParam("none", str, "random flips (image recipes)", choices=FLIPS),
    "elastic_alpha": HParam(0.0, float, "elastic distortion scale alpha, pixels (Simard 2003: 34)", minimum=0.0),
    "elastic_sigma": HParam(4.0, float, "elastic distortion smoothing sigma, pixels (Simard 2003: 4)",
                            minimum=0.01),
    "monitor": HParam(False, bool, "record update/weight ratios, weight and gradient norms and activation "
                      "statistics on a probe batch (RUN_DIR/monitors.json, TensorBoard)"),
    "monitor_every_steps": HParam(50, int, "monitor: optimizer steps between records", minimum=1),
    "monitor_probe_size": HParam(64, int, "monitor: validation examples in the fixed probe batch", minimum=1),
}


def schedule_callback(hp: HParams):
    """The epoch/iteration learning-rate callback for step, time or exponential decay, or None."""
    from kerasapps.callbacks import ExponentialDecay, StepDecay, TimeDecay

    if hp.lr_schedule == "step":
        return StepDecay(hp.learning_rate, hp.lr_drop, hp.lr_every_epochs)
    if hp.lr_schedule == "time":
        return TimeDecay(hp.learning_rate, hp.lr_decay)
    if hp.lr_schedule == "exponential":
        return ExponentialDecay(hp.learning_rate, hp.lr_rate, hp.lr_every_epochs)
    return None


def practice_callbacks(hp: HParams, has_validation: bool, run_dir=None,
                       stage: str = "train") -> tuple[list, object | None]:
    """(callbacks in contract order, the EarlyStopping callback or None).

    With ``monitor`` set, a :class:`kerasapps.monitors.TrainingMonitor` comes last; it writes into
    ``run_dir`` (and takes its probe batch from the run's data) when one is given.
    """
    from kerasapps.callbacks import EarlyStopping, MaxNorm

    callbacks = []
    schedule = schedule_callback(hp)
    if schedule is not None:
        callbacks.append(schedule)
    stopper = None
    if hp.early_stopping:
        if hp.early_stopping_monitor.startswith("val_") and not has_validation:
            raise ConfigError(f"early stopping monitors {hp.early_stopping_monitor}, but this run has no "
                              "validation split (validation_split is 0)")
        stopper = EarlyStopping(monitor=hp.early_stopping_monitor, patience=hp.early_stopping_patience,
                                min_delta=hp.early_stopping_min_delta, restore_best_weights=True)
        callbacks.append(stopper)
    if hp.max_norm is not None:
        callbacks.append(MaxNorm(hp.max_norm))
    if hp.monitor:
        from kerasapps.monitors import TrainingMonitor

        callbacks.append(TrainingMonitor(run_dir, stage, every_steps=hp.monitor_every_steps,
                                         probe_size=hp.monitor_probe_size))
    return callbacks, stopper


def apply_weight_penalties(model, hp: HParams) -> int:
    """Attach an L1/L2 (elastic-net) penalty to every Dense/Conv kernel; returns how many."""
    import keras

    if not hp.l1 and not hp.l2:
        return 0
    regularizer = keras.regularizers.L1L2(l1=hp.l1, l2=hp.l2)
    count = 0
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []) or [])
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
            layer.kernel.regularizer = regularizer
            count += 1
    if count == 0:
        raise ConfigError(f"l1/l2 set, but {model.name} has no Dense or Conv kernel to penalise")
    return count


def augmentation(hp: HParams, recipe_name: str, augmentable: bool):
    """The augmentation pipeline from the augment_* / elastic_* keys, or None when none is set."""
    from kerasapps.augment import build_augmentation

    spec = {"shift": hp.augment_shift, "rotation": hp.augment_rotation, "zoom": hp.augment_zoom,
            "flip": None if hp.augment_flip == "none" else hp.augment_flip,
            "elastic_alpha": hp.elastic_alpha, "elastic_sigma": hp.elastic_sigma if hp.elastic_alpha else None,
            "seed": hp.seed}
    active = {k: v for k, v in spec.items() if k != "seed" and v}
    if not active:
        return None
    if not augmentable:
        raise ConfigError(f"recipe '{recipe_name}' does not take image augmentation "
                          f"(got {', '.join(sorted(active))})")
    try:
        pipeline = build_augmentation(spec)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if pipeline is None:
        return None

    def augment(batch):
        # A multi-input model (image, caption, ...) gets its first input, the image batch, augmented.
        if isinstance(batch, (tuple, list)):
            return (pipeline(batch[0], training=True), *batch[1:])
        return pipeline(batch, training=True)

    return augment
