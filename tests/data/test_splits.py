import numpy as np
import pytest

from kerasapps.core.errors import DataError
from kerasapps.core.recipe import DATA_DIR_ENV, DataContext
from kerasapps.data.builtin import load_npz
from kerasapps.data.pipelines import training_dataset
from kerasapps.data.splits import carve_validation


def test_data_dir_from_option_or_environment(tmp_path, monkeypatch):
    assert DataContext.from_option(None).data_dir is None
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert DataContext.from_option(None).data_dir == tmp_path
    with pytest.raises(DataError, match="does not exist"):
        DataContext.from_option(tmp_path / "nope")


def test_missing_file_names_the_file_and_the_remedy(tmp_path):
    with pytest.raises(DataError) as info:
        DataContext(tmp_path).require("mnist/mnist.npz")
    assert str(tmp_path / "mnist" / "mnist.npz") in str(info.value)
    assert "KERASAPPS_DATA_DIR" in str(info.value)


def test_corrupt_and_incomplete_npz(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(DataError, match="not a valid .npz file"):
        load_npz(corrupt, ["x_train"])
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=np.zeros(3))
    with pytest.raises(DataError, match="lacks arrays y_train"):
        load_npz(partial, ["x_train", "y_train"])


def test_validation_carving_is_seeded_and_disjoint():
    x = np.arange(100)
    train, val = carve_validation((x, x), 0.2, seed=3)
    again_train, again_val = carve_validation((x, x), 0.2, seed=3)
    assert len(val[0]) == 20 and len(train[0]) == 80
    assert np.array_equal(val[0], again_val[0])
    assert not set(train[0]) & set(val[0])
    assert not np.array_equal(val[0], carve_validation((x, x), 0.2, seed=4)[1][0])


def _batches(ds):
    return [b[1].numpy().tolist() for b in ds]


def test_training_pipeline_resumes_with_the_same_batches():
    x = np.arange(50, dtype=np.float32)[:, None]
    y = np.arange(50)
    common = dict(batch_size=8, seed=1, stage_index=0, epochs=3, steps_per_epoch=None)
    full, steps = training_dataset((x, y), first_epoch=0, **common)
    resumed, _ = training_dataset((x, y), first_epoch=1, **common)
    full_batches = _batches(full)
    assert steps == 7 and len(full_batches) == 21
    assert full_batches[steps:] == _batches(resumed)
    epoch0 = sorted(v for batch in full_batches[:steps] for v in batch)
    assert epoch0 == list(range(50))  # every example once per epoch
    assert full_batches[:steps] != full_batches[steps:2 * steps]  # reshuffled each epoch


def test_steps_per_epoch_caps_each_epoch():
    x = np.arange(50, dtype=np.float32)
    ds, steps = training_dataset((x, x), batch_size=8, seed=1, stage_index=0, first_epoch=0, epochs=2,
                                   steps_per_epoch=3)
    assert steps == 3 and [len(b) for b in _batches(ds)] == [8] * 6


def test_worker_shards_split_every_global_batch_and_two_replicas_split_each_shard():
    """A multi-worker epoch: worker 0's and worker 1's parts of each step, side by side, are the batch one device
    trains on; a worker's part comes as one batch per local replica; a partial last batch is refused."""
    x, y = np.arange(40, dtype=np.float32).reshape(20, 2), np.arange(20)
    common = dict(batch_size=8, seed=3, stage_index=1, first_epoch=0, epochs=2, steps_per_epoch=2)
    whole = [b.numpy() for b, _ in training_dataset((x, y), **common)[0]]
    parts = [[b.numpy() for b, _ in training_dataset((x, y), shard=(w, 2), **common)[0]] for w in range(2)]
    assert len(whole) == len(parts[0]) == len(parts[1]) == 4
    for step, batch in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([parts[0][step], parts[1][step]]), batch)
    replicas = [b.numpy() for b, _ in training_dataset((x, y), shard=(1, 2), replica_batch=2, **common)[0]]
    np.testing.assert_array_equal(np.concatenate(replicas[:2]), parts[1][0])
    with pytest.raises(ValueError, match="whole global batches"):
        training_dataset((x, y), shard=(0, 2), **{**common, "steps_per_epoch": None})  # 20 = 2 x 8 + 4
