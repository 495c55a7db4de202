"""Exact resume: a run stopped after an epoch and resumed ends with the weights of an uninterrupted run."""

import keras
import numpy as np
import pytest

import kerasapps
from kerasapps.core.errors import RunError


class Crash(keras.callbacks.Callback):
    """Simulates a killed process at the start of an epoch (after the previous epoch's checkpoint)."""

    def __init__(self, stage_epochs_seen: int):
        super().__init__()
        self.seen = stage_epochs_seen

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.seen:
            raise KeyboardInterrupt("killed")


def _weights(path):
    return [w.numpy() for w in keras.saving.load_model(path, compile=False).weights]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_data_dir):
    run_dir = tmp_path_factory.mktemp("resume") / "full"
    kerasapps.train("mnist_transfer", run_dir=run_dir, data_dir=tiny_data_dir,
                    epochs=2, batch_size=32, verbose=0)
    return _weights(run_dir / "model.keras")


@pytest.mark.parametrize("crash_stage", ["pretrain", "finetune"])
def test_resumed_run_ends_with_identical_weights(uninterrupted, tmp_path, tiny_data_dir, crash_stage):
    run_dir = tmp_path / "run"
    options = dict(data_dir=tiny_data_dir, verbose=0)
    if crash_stage == "pretrain":
        crash = Crash(1)
    else:  # let pretrain finish (crash never fires there), die after finetune's first epoch
        class CrashInFinetune(Crash):
            def on_epoch_begin(self, epoch, logs=None):
                if self.model.get_layer("features_conv1").trainable is False:
                    super().on_epoch_begin(epoch, logs)
        crash = CrashInFinetune(1)
    with pytest.raises(KeyboardInterrupt):
        kerasapps.train("mnist_transfer", run_dir=run_dir, epochs=2, batch_size=32,
                        callbacks=[crash], **options)
    assert not (run_dir / "model.keras").exists()
    result = kerasapps.train("mnist_transfer", run_dir=run_dir, resume=True, **options)
    resumed = _weights(run_dir / "model.keras")
    assert len(resumed) == len(uninterrupted)
    for a, b in zip(uninterrupted, resumed):
        np.testing.assert_array_equal(a, b)  # bitwise on this CPU
    assert result.metrics["stages"]["finetune"]["epochs"] == 2
    rows = (run_dir / "logs" / f"{crash_stage}.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + one row per epoch, none repeated


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_data_dir):
    run_dir = tmp_path / "run"
    with pytest.raises(RunError, match="learning rate"):
        kerasapps.train("mnist_transfer", run_dir=run_dir, data_dir=tiny_data_dir, verbose=0,
                        set=["optimizer=sgd", "learning_rate=1e12", "lr_schedule=constant"],
                        epochs=2, batch_size=32)
    assert not (run_dir / "model.keras").exists()
    state = (run_dir / "state.json").read_text()
    assert '"diverged"' in state
    for checkpoint in (run_dir / "checkpoints").rglob("*.keras"):
        model = keras.saving.load_model(checkpoint)
        assert all(np.isfinite(w.numpy()).all() for w in model.weights)
