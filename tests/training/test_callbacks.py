"""Numbers for kerasapps.training.callbacks and .schedules: each observed during a real model.fit on a tiny model."""

import csv
import json
import logging
import math

import keras
import numpy as np
import pytest

from kerasapps.training.callbacks import EarlyStopping, MaxNorm, NaNGuard
from kerasapps.training.schedules import ExponentialDecay, StepDecay, TimeDecay, lr_schedule_callback

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

STEPS_PER_EPOCH = 4
BATCH = 8


def _data(n=STEPS_PER_EPOCH * BATCH, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x @ rng.normal(size=(features, 1))).astype("float32")
    return x, y


def _model(lr=0.01, features=4, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    outputs = keras.layers.Dense(1, name="out")(keras.layers.Dense(3, name="hidden")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(lr), loss="mse")
    return model


def _lr(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class LrRecorder(keras.callbacks.Callback):
    """Placed after the schedule: records (epoch, optimizer.iterations, lr) before every batch."""

    def __init__(self):
        super().__init__()
        self.rows = []
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        it = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.rows.append((self.epoch, it, _lr(self.model)))

    def per_epoch(self):
        lrs = {}
        for epoch, _, lr in self.rows:
            lrs.setdefault(epoch, set()).add(lr)
        assert all(len(v) == 1 for v in lrs.values()), "lr changed within an epoch"
        return {e: v.pop() for e, v in lrs.items()}


@pytest.mark.parametrize(
    "schedule, formula",
    [
        (StepDecay(0.1, drop=0.5, every_epochs=2), lambda e: 0.1 * 0.5 ** math.floor(e / 2)),
        (ExponentialDecay(0.1, rate=0.5, every_epochs=2), lambda e: 0.1 * 0.5 ** (e / 2)),
    ],
    ids=["step", "exponential"],
)
def test_epoch_schedules_follow_formula_and_resume(schedule, formula, tmp_path):
    x, y = _data()
    model = _model(lr=123.0)  # overwritten by the schedule from the first batch
    recorder = LrRecorder()
    csv_path = tmp_path / "log.csv"
    history = model.fit(
        x, y, batch_size=BATCH, epochs=5, verbose=0,
        callbacks=[schedule, recorder, keras.callbacks.CSVLogger(str(csv_path))],
    )
    observed = recorder.per_epoch()
    assert sorted(observed) == [0, 1, 2, 3, 4]
    for epoch, lr in observed.items():
        assert lr == pytest.approx(formula(epoch), rel=1e-6)
    assert history.history["lr"] == pytest.approx([formula(e) for e in range(5)], rel=1e-6)
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["lr"]) for r in rows] == pytest.approx([formula(e) for e in range(5)], rel=1e-6)

    # Resume at epoch 3 with a freshly built callback: the lr depends only on the epoch index.
    model.optimizer.learning_rate = 123.0
    resumed_schedule = type(schedule).from_config(schedule.get_config())
    recorder = LrRecorder()
    history = model.fit(
        x, y, batch_size=BATCH, epochs=7, initial_epoch=3, verbose=0,
        callbacks=[resumed_schedule, recorder],
    )
    observed = recorder.per_epoch()
    assert sorted(observed) == [3, 4, 5, 6]
    for epoch, lr in observed.items():
        assert lr == pytest.approx(formula(epoch), rel=1e-6)
    assert history.history["lr"] == pytest.approx([formula(e) for e in range(3, 7)], rel=1e-6)


def test_time_decay_per_step_and_resume_from_saved_optimizer(tmp_path):
    initial_lr, decay = 0.05, 0.1
    formula = lambda it: initial_lr / (1 + decay * it)  # noqa: E731
    x, y = _data()
    model = _model(lr=123.0)
    recorder = LrRecorder()
    history = model.fit(
        x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[TimeDecay(initial_lr, decay), recorder]
    )
    iterations = [it for _, it, _ in recorder.rows]
    assert iterations == list(range(2 * STEPS_PER_EPOCH))
    assert recorder.rows[0][2] == pytest.approx(initial_lr, rel=1e-6)  # first batch uses initial_lr
    for _, it, lr in recorder.rows:
        assert lr == pytest.approx(formula(it), rel=1e-6)
    # Epoch log: the rate of the epoch's last batch.
    last = [formula(STEPS_PER_EPOCH - 1), formula(2 * STEPS_PER_EPOCH - 1)]
    assert history.history["lr"] == pytest.approx(last, rel=1e-6)

    # Resume from a saved model: optimizer.iterations is restored, so the sequence continues.
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    recorder = LrRecorder()
    restored.fit(
        x, y, batch_size=BATCH, epochs=3, initial_epoch=2, verbose=0,
        callbacks=[TimeDecay.from_config(TimeDecay(initial_lr, decay).get_config()), recorder],
    )
    assert [it for _, it, _ in recorder.rows] == list(range(8, 12))
    for _, it, lr in recorder.rows:
        assert lr == pytest.approx(formula(it), rel=1e-6)


def test_lr_schedule_callback_by_name_and_configs_are_json():
    cb = lr_schedule_callback("step", initial_lr=0.1, drop=0.1, every_epochs=30)
    assert isinstance(cb, StepDecay)
    assert cb.lr_at_epoch(29) == pytest.approx(0.1)
    assert cb.lr_at_epoch(30) == pytest.approx(0.01)
    assert isinstance(lr_schedule_callback("time", initial_lr=0.1, decay=1e-4), TimeDecay)
    assert isinstance(lr_schedule_callback("exponential", initial_lr=0.1, rate=0.9), ExponentialDecay)
    with pytest.raises(ValueError, match="exponential, step, time"):
        lr_schedule_callback("cosine", initial_lr=0.1)
    with pytest.raises(ValueError, match="initial_lr, drop, every_epochs"):
        lr_schedule_callback("step", initial_lr=0.1, dropp=0.1, every_epochs=3)
    with pytest.raises(ValueError, match="every_epochs"):
        StepDecay(0.1, 0.5, every_epochs=0)
    for cb in [
        StepDecay(0.1, 0.5, 3), TimeDecay(0.1, 0.01), ExponentialDecay(0.1, 0.9, 2),
        EarlyStopping(patience=3, min_delta=0.01), MaxNorm(2.0, layers=["a"]), NaNGuard(),
    ]:
        config = json.loads(json.dumps(cb.get_config()))
        assert type(cb).from_config(config).get_config() == config
    assert EarlyStopping(patience=3, min_delta=0.01).get_config()["min_delta"] == 0.01


class InjectValLoss(keras.callbacks.Callback):
    """Scripted validation: must come before EarlyStopping in the list."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


class WeightRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = [w.copy() for w in self.model.get_weights()]


def test_early_stopping_stops_at_expected_epoch_and_restores_best():
    x, y = _data()
    model = _model(lr=0.05)
    recorder = WeightRecorder()
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    values = [5, 4, 3, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1]
    history = model.fit(
        x, y, batch_size=BATCH, epochs=10, verbose=0,
        callbacks=[InjectValLoss(values), recorder, stopper],
    )
    # best at epoch 2; epochs 3 and 4 do not improve; patience 2 -> stops at the end of epoch 4.
    assert len(history.history["loss"]) == 5
    assert stopper.best_epoch == 2
    assert stopper.best_value == 3.0
    assert stopper.stopped_epoch == 4 and stopper.stopped_early
    assert stopper.summary() == {
        "monitor": "val_loss", "best_epoch": 2, "best_value": 3.0, "stopped_epoch": 4, "stopped_early": True,
    }
    final = model.get_weights()
    for w, best in zip(final, recorder.weights[2]):
        np.testing.assert_array_equal(w, best)
    assert any(not np.array_equal(w, last) for w, last in zip(final, recorder.weights[4]))


def test_early_stopping_that_never_triggers_still_reports_best():
    x, y = _data()
    model = _model(lr=0.05)
    stopper = EarlyStopping(monitor="val_loss", patience=3)
    model.fit(x, y, batch_size=BATCH, epochs=4, verbose=0, callbacks=[InjectValLoss([4, 2, 3, 3]), stopper])
    assert stopper.best_epoch == 1 and stopper.best_value == 2.0
    assert not stopper.stopped_early and stopper.summary()["stopped_epoch"] is None


def _unit_norms(kernel):
    kernel = keras.ops.convert_to_numpy(kernel).astype("float64")
    return np.sqrt((kernel**2).reshape(-1, kernel.shape[-1]).sum(axis=0))


def _conv_dense_model(lr):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    h = keras.layers.Flatten()(h)
    block = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, name="dense")], name="block")
    outputs = keras.layers.Dense(1, name="out")(block(h))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(lr), loss="mse")
    return model


def test_max_norm_bounds_every_unit_after_training():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6, 6, 2)).astype("float32")
    y = (10 * rng.normal(size=(32, 1))).astype("float32")
    max_value = 0.5
    model = _conv_dense_model(lr=0.5)  # diverges to nan without the constraint
    cb = MaxNorm(max_value)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb])
    assert sorted(name for name, _ in cb.constrained) == ["conv", "dense", "out"]  # nested "dense" found
    for layer in ("conv", "out"):
        norms = _unit_norms(model.get_layer(layer).kernel)
        assert norms.max() <= max_value + 1e-6
    norms = _unit_norms(model.get_layer("block").get_layer("dense").kernel)
    assert norms.max() <= max_value + 1e-6
    # The large lr pushes units to the limit: the constraint was binding.
    assert norms.max() == pytest.approx(max_value, rel=1e-5)

    # Restricted to one layer: the others are free to grow (smaller lr, or they diverge).
    model = _conv_dense_model(lr=0.01)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[MaxNorm(max_value, layers=["conv"])])
    assert _unit_norms(model.get_layer("conv").kernel).max() <= max_value + 1e-6
    assert _unit_norms(model.get_layer("out").kernel).max() > max_value
    with pytest.raises(ValueError, match="nope"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[MaxNorm(1.0, layers=["nope"])])


def test_max_norm_matches_keras_constraint_on_units_over_the_limit():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 2, 5)).astype("float32")
    kernel[..., 0] *= 0.01  # one unit well under the limit
    layer = keras.layers.Conv2D(5, 3)
    layer.build((None, 8, 8, 2))
    layer.kernel.assign(kernel)
    model = keras.Sequential([keras.Input((8, 8, 2)), layer])
    cb = MaxNorm(1.0)
    cb.set_model(model)
    cb.on_train_begin()
    ours = keras.ops.convert_to_numpy(layer.kernel)
    theirs = keras.ops.convert_to_numpy(keras.constraints.MaxNorm(1.0, axis=[0, 1, 2])(kernel))
    np.testing.assert_allclose(ours[..., 1:], theirs[..., 1:], rtol=1e-5)
    np.testing.assert_array_equal(ours[..., 0], kernel[..., 0])  # untouched, no epsilon shrink


def test_nan_guard_stops_within_the_epoch_and_names_the_step(caplog):
    rng = np.random.default_rng(0)
    x = (10 * rng.normal(size=(256, 4))).astype("float32")
    y = (100 * rng.normal(size=(256, 1))).astype("float32")
    model = _model(lr=1e10)
    guard = NaNGuard()
    after = WeightRecorder()
    with caplog.at_level(logging.ERROR, logger="kerasapps"):
        history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[guard, after])
    assert guard.triggered
    assert guard.epoch == 0 and len(history.history["loss"]) == 1
    steps_taken = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    assert 1 < guard.step == steps_taken < 64  # stopped right after the bad batch, mid-epoch
    assert guard.batch == guard.step - 1
    assert not math.isfinite(guard.loss)
    assert f"step {guard.step}" in guard.message and "epoch 0" in guard.message
    assert "learning rate (1e+10) is probably too high" in guard.message
    assert "--set learning_rate=1e+09" in guard.message
    assert guard.message in caplog.text


def test_nan_guard_blames_the_data_when_the_first_batch_is_already_nan():
    x, y = _data()
    x[0, 0] = np.nan
    model = _model()
    guard = NaNGuard()
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, shuffle=False, callbacks=[guard])
    assert guard.triggered and guard.step == 1
    assert "input data" in guard.message and "not the cause" in guard.message


def test_max_norm_skips_recurrent_and_unsupported_kernels():
    inputs = keras.Input((5, 3))
    h = keras.layers.LSTM(4, return_sequences=True, name="lstm")(inputs)
    h = keras.layers.Conv1DTranspose(2, 3, name="deconv")(h)
    outputs = keras.layers.Dense(2, name="dense")(h)
    cb = MaxNorm(1.0)
    cb.set_model(keras.Model(inputs, outputs))
    cb.on_train_begin()
    assert cb.constrained == [("dense", 0)]
    assert [name for name, _ in cb.skipped] == ["lstm", "deconv"]
    assert _unit_norms(cb.model.get_layer("dense").kernel).max() <= 1.0 + 1e-6
