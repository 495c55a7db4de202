"""Training practice switched on from config for a real recipe, end to end."""

import csv

import keras
import numpy as np
import pytest

import kerasapps
from kerasapps.core.errors import ConfigError

TINY = {"epochs": 3, "batch_size": 32, "steps_per_epoch": 4}


def _train(tmp_path, data_dir, *overrides, flags=TINY):
    both_stages = [f"finetune_epochs={flags['epochs']}", f"finetune_batch_size={flags['batch_size']}"]
    return kerasapps.train("mnist_transfer", run_dir=tmp_path / "run", data_dir=data_dir, verbose=0,
                           set=[*both_stages, *overrides], **flags)


def _column(path, key):
    with open(path, newline="") as handle:
        return [float(row[key]) for row in csv.DictReader(handle)]


def test_step_decay_from_config_follows_its_formula(tmp_path, tiny_data_dir):
    run = _train(tmp_path, tiny_data_dir, "lr_schedule=step", "learning_rate=0.01", "finetune_learning_rate=0.01",
                 "lr_drop=0.5", "lr_every_epochs=2")
    for stage in ("pretrain", "finetune"):
        lrs = _column(run.run_dir / "logs" / f"{stage}.csv", "lr")
        np.testing.assert_allclose(lrs, [0.01 * 0.5 ** (e // 2) for e in range(3)], rtol=1e-6)


def test_exponential_decay_from_config(tmp_path, tiny_data_dir):
    run = _train(tmp_path, tiny_data_dir, "lr_schedule=exponential", "learning_rate=0.01", "lr_rate=0.5",
                 "lr_every_epochs=2")
    lrs = _column(run.run_dir / "logs" / "pretrain.csv", "lr")
    np.testing.assert_allclose(lrs, [0.01 * 0.5 ** (e / 2) for e in range(3)], rtol=1e-6)


@pytest.mark.parametrize("schedule, expected", [("cosine", [0.001, 0.0055, 0.01]), ("constant", [0.001, 0.0055, 0.01])])
def test_warmup_rises_linearly_then_follows_the_schedule(tmp_path, tiny_data_dir, schedule, expected):
    # 4 steps per epoch, warm-up over 2 epochs from 0.001; each epoch logs the rate it starts at: 0.001, 0.0055
    # after epoch 1, the full rate after epoch 2, where the cosine (or the constant rate) starts
    run = _train(tmp_path, tiny_data_dir, f"lr_schedule={schedule}", "learning_rate=0.01", "warmup_epochs=2")
    np.testing.assert_allclose(_column(run.run_dir / "logs" / "pretrain.csv", "lr"), expected, atol=1e-7)


def test_warmup_longer_than_the_stage_is_cut_to_it(tmp_path, tiny_data_dir, caplog):
    # 12 steps, a 20-step warm-up: the rate rises linearly over all 12 (epochs start at steps 0, 4 and 8)
    run = _train(tmp_path, tiny_data_dir, "learning_rate=0.01", "warmup_epochs=5")
    np.testing.assert_allclose(_column(run.run_dir / "logs" / "pretrain.csv", "lr"), [0.001, 0.004, 0.007],
                               atol=1e-7)
    assert "covers the whole 12-step stage" in caplog.text


def test_warmup_schedule_values():
    from kerasapps.training.optimizers import build_optimizer

    hp = kerasapps.get_recipe("resnet56_cifar10").resolve(flags={"epochs": 30})
    assert hp.warmup_epochs == 2.0 and hp.learning_rate == 0.05  # the deep CIFAR nets warm up by default
    schedule = build_optimizer(hp, steps_per_epoch=10)._learning_rate
    rates = [float(schedule(step)) for step in (0, 10, 20, 160, 300)]
    np.testing.assert_allclose(rates, [0.005, 0.0275, 0.05, 0.025, 0.0], atol=1e-6)
    assert not kerasapps.get_recipe("resnet20_cifar10").resolve().warmup_epochs


def test_max_norm_and_weight_penalty_from_config(tmp_path, tiny_data_dir, monkeypatch):
    from kerasapps.models.walk import kernel_layers
    from kerasapps.training import stage

    penalties = []  # per stage: the l2 factors on the kernels, the penalty in the loss, l2 * sum of squares
    apply = stage.apply_weight_penalties

    def recording(model, hp):
        count = apply(model, hp)
        kernels = [layer.kernel for layer in kernel_layers(model, trainable_only=True)]
        penalties.append(([kernel.regularizer.l2 for kernel in kernels], float(sum(model.losses)),
                          sum(0.001 * float((kernel.numpy() ** 2).sum()) for kernel in kernels)))
        return count

    monkeypatch.setattr(stage, "apply_weight_penalties", recording)
    run = _train(tmp_path, tiny_data_dir, "max_norm=0.5", "l2=0.001", "optimizer=sgd", "learning_rate=0.5")
    assert len(penalties) == 2  # both stages train with the penalty
    for factors, in_loss, expected in penalties:
        assert factors and factors == pytest.approx([0.001] * len(factors))  # the configured l2 on every kernel
        np.testing.assert_allclose(in_loss, expected, rtol=1e-4)  # and in the loss
    model = keras.saving.load_model(run.run_dir / "model.keras", compile=False)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            kernel = layer.kernel.numpy()
            norms = np.sqrt((kernel.reshape(-1, kernel.shape[-1]) ** 2).sum(axis=0))
            assert norms.max() <= 0.5 + 1e-6, layer.name


def test_weight_penalty_adds_to_the_loss(tiny_data_dir):
    from kerasapps.recipes.mnist_transfer import MNIST_TRANSFER
    from kerasapps.training.regularizers import apply_weight_penalties

    hp = MNIST_TRANSFER.resolve(overrides=["l1=0.001", "l2=0.01"])
    model = MNIST_TRANSFER.build(hp)
    assert apply_weight_penalties(model, hp) == 4
    kernels = [layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")]
    expected = sum(0.001 * np.abs(k).sum() + 0.01 * (k ** 2).sum() for k in kernels)
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-4)


def test_early_stopping_records_the_best_epoch(tmp_path, tiny_data_dir):
    run = _train(tmp_path, tiny_data_dir, "early_stopping=true", "early_stopping_patience=1",
                 "early_stopping_monitor=loss", "early_stopping_min_delta=100", flags={**TINY, "epochs": 4})
    summary = run.metrics["stages"]["pretrain"]["early_stopping"]
    assert summary["best_epoch"] == 0 and summary["stopped_early"] and summary["stopped_epoch"] == 1


def test_elastic_augmentation_trains(tmp_path, tiny_data_dir, monkeypatch):
    from kerasapps.training import stage

    steps = []  # the augmentation each stage trained with
    augmentation = stage.augmentation
    monkeypatch.setattr(stage, "augmentation", lambda hp, recipe: steps.append(augmentation(hp, recipe)) or steps[-1])
    run = _train(tmp_path, tiny_data_dir, "elastic_alpha=34", "augment_rotation=10", flags={**TINY, "epochs": 1})
    assert (run.run_dir / "model.keras").is_file()
    assert steps and all(step is not None and step.geometry is not None for step in steps)
    digits = np.zeros((2, 28, 28, 1), "float32")
    digits[:, 8:20, 12:16] = 1.0  # a bar, which an elastic distortion and a rotation bend and turn
    moved = np.asarray(steps[0].geometry(digits, np.array([0, 1], "int32")))
    assert moved.shape == digits.shape and np.abs(moved - digits).max() > 0.1


def test_bad_practice_values_are_config_errors(tmp_path, tiny_data_dir):
    with pytest.raises(ConfigError, match="lr_schedule"):
        _train(tmp_path, tiny_data_dir, "lr_schedule=warmup")
    with pytest.raises(ConfigError, match="no validation split"):
        _train(tmp_path, tiny_data_dir, "early_stopping=true", "validation_split=0")
    with pytest.raises(ConfigError, match="warmup_epochs works with lr_schedule constant or cosine, not 'step'"):
        _train(tmp_path, tiny_data_dir, "lr_schedule=step", "warmup_epochs=1")
    assert not (tmp_path / "run").exists()
