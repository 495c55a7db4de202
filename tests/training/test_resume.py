"""Exact resume: a run stopped after an epoch and resumed ends with the weights of an uninterrupted run."""

import keras
import numpy as np
import pytest

import kerasapps
from kerasapps.core.errors import RunError
from kerasapps.training.features import whole_model


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


# both stages 2 epochs at batch 32 (mnist_transfer's finetune has its own epochs and batch size)
TWO_BY_TWO = {"finetune_epochs": 2, "finetune_batch_size": 32}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_data_dir):
    run_dir = tmp_path_factory.mktemp("resume") / "full"
    kerasapps.train("mnist_transfer", run_dir=run_dir, data_dir=tiny_data_dir,
                    epochs=2, batch_size=32, set=TWO_BY_TWO, verbose=0)
    return _weights(run_dir / "model.keras")


@pytest.mark.parametrize("crash_stage", ["pretrain", "finetune"])
def test_resumed_run_ends_with_identical_weights(uninterrupted, tmp_path, tiny_data_dir, crash_stage):
    run_dir = tmp_path / "run"
    options = dict(data_dir=tiny_data_dir, verbose=0)
    if crash_stage == "pretrain":
        crash = Crash(1)
    else:  # let pretrain finish (crash never fires there), die after finetune's first epoch
        class CrashInFinetune(Crash):
            def on_epoch_begin(self, epoch, logs=None):  # finetune trains a head on cached features
                if whole_model(self.model).get_layer("features_conv1").trainable is False:
                    super().on_epoch_begin(epoch, logs)
        crash = CrashInFinetune(1)
    with pytest.raises(KeyboardInterrupt):
        kerasapps.train("mnist_transfer", run_dir=run_dir, epochs=2, batch_size=32, set=TWO_BY_TWO,
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


AUGMENTED = {"augment_shift": 0.1, "augment_rotation": 10.0, "augment_flip": "horizontal", **TWO_BY_TWO}


def test_augmented_runs_repeat_with_one_seed_and_resume_exactly(tmp_path, tiny_data_dir):
    options = dict(data_dir=tiny_data_dir, verbose=0, epochs=2, batch_size=32, set=AUGMENTED)
    first = kerasapps.train("mnist_transfer", run_dir=tmp_path / "a", **options)
    second = kerasapps.train("mnist_transfer", run_dir=tmp_path / "b", **options)
    with pytest.raises(KeyboardInterrupt):
        kerasapps.train("mnist_transfer", run_dir=tmp_path / "c", callbacks=[Crash(1)], **options)
    kerasapps.train("mnist_transfer", run_dir=tmp_path / "c", resume=True, data_dir=tiny_data_dir, verbose=0)
    a, b = (_weights(run.run_dir / "model.keras") for run in (first, second))
    c = _weights(tmp_path / "c" / "model.keras")
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)  # same seed, same augmented batches: the same model
        np.testing.assert_array_equal(x, z)  # and a resumed run too, bit for bit


def test_a_missing_checkpoint_resumes_from_the_newest_present(uninterrupted, tmp_path, tiny_data_dir, caplog):
    """state.json records 2 pretrain epochs but epoch-002.keras is gone: resume from epoch-001, not from 0."""
    import logging

    run_dir = tmp_path / "run"
    options = dict(data_dir=tiny_data_dir, verbose=0)

    class CrashAtFinetune(Crash):
        def on_epoch_begin(self, epoch, logs=None):
            if whole_model(self.model).get_layer("features_conv1").trainable is False:
                super().on_epoch_begin(epoch, logs)

    with pytest.raises(KeyboardInterrupt):
        kerasapps.train("mnist_transfer", run_dir=run_dir, epochs=2, batch_size=32, set=TWO_BY_TWO,
                        callbacks=[CrashAtFinetune(0)], **options)
    # pretrain finished (its stage model is saved): make it look as if the kill came before that, after epoch 2
    state = (run_dir / "state.json").read_text().replace('"done": true', '"done": false', 1)
    (run_dir / "state.json").write_text(state)
    for leftover in (run_dir / "checkpoints" / "pretrain").glob("epoch-002.*"):
        leftover.unlink()
    partial = run_dir / "checkpoints" / "pretrain" / ".epoch-002.keras.partial-x1y2.keras"
    partial.write_bytes(b"half-written")
    with caplog.at_level(logging.WARNING, logger="kerasapps"):
        kerasapps.train("mnist_transfer", run_dir=run_dir, resume=True, **options)
    assert "checkpoints/pretrain/epoch-002.keras is missing; resuming from epoch-001.keras" in caplog.text
    assert not partial.exists()
    for x, y in zip(uninterrupted, _weights(run_dir / "model.keras")):
        np.testing.assert_array_equal(x, y)


def test_a_second_writer_is_refused_and_resume_reads_the_recorded_data_dir(tmp_path, tiny_data_dir):
    from kerasapps.core.errors import UsageError
    from kerasapps.training import rundir

    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        kerasapps.train("mlp_mnist", run_dir=run_dir, data_dir=tiny_data_dir, epochs=2, set={"units": 8},
                        callbacks=[Crash(1)], verbose=0)
    with rundir.lock(run_dir):  # another process still training in it
        with pytest.raises(UsageError, match="is in use by kerasapps process"):
            kerasapps.train("mlp_mnist", run_dir=run_dir, resume=True, verbose=0)
    # no data_dir and no $KERASAPPS_DATA_DIR: the resume reads the data directory the run recorded
    result = kerasapps.train("mlp_mnist", run_dir=run_dir, resume=True, verbose=0)
    assert result.metrics["stages"]["train"]["epochs"] == 2


def test_early_stopping_keeps_its_best_epoch_across_a_resume(tmp_path, tiny_data_dir):
    """The best epoch (0: nothing later improves by min_delta) comes before the kill; both runs restore it."""
    stopping = {"units": 16, "early_stopping": True, "early_stopping_monitor": "val_loss",
                "early_stopping_patience": 5, "early_stopping_min_delta": 100.0}
    options = dict(data_dir=tiny_data_dir, verbose=0, epochs=3, set=stopping)
    whole = kerasapps.train("mlp_mnist", run_dir=tmp_path / "whole", **options)
    with pytest.raises(KeyboardInterrupt):
        kerasapps.train("mlp_mnist", run_dir=tmp_path / "killed", callbacks=[Crash(2)], **options)
    resumed = kerasapps.train("mlp_mnist", run_dir=tmp_path / "killed", resume=True, verbose=0)
    for result in (whole, resumed):
        assert result.metrics["stages"]["train"]["early_stopping"]["best_epoch"] == 0
    for x, y in zip(_weights(tmp_path / "whole" / "model.keras"), _weights(tmp_path / "killed" / "model.keras")):
        np.testing.assert_array_equal(x, y)  # the export takes epoch 0's weights in both
