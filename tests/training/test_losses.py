"""The loss key: values against hand-computed ones, from_logits, one-hot targets and clear refusals."""

import csv

import keras
import numpy as np
import pytest

import kerasapps
from kerasapps.core.errors import ConfigError
from kerasapps.core.registry import get_recipe
from kerasapps.core.schema import LOSSES
from kerasapps.training.losses import choose_loss

Y = np.array([0, 2])
PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], "float32")


def head(activation, units=3):
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(units, activation=activation, name="predictions")(inputs))


def loss_value(name, activation, y, y_pred):
    recipe = get_recipe("mlp_mnist")
    hp = recipe.resolve(overrides=[f"loss={name}", "label_smoothing=0"])  # the formulas below are unsmoothed
    choice = choose_loss(recipe, hp, head(activation, y_pred.shape[-1]))
    target = choice.targets(y) if choice.targets else y
    return float(choice.loss(target, y_pred))


def test_losses_equal_their_formulas_on_fixed_inputs():
    one_hot = np.eye(3)[Y]
    expected_ce = -np.mean(np.log([0.7, 0.6]))
    assert loss_value("sparse_categorical_crossentropy", "softmax", Y, PROBS) == pytest.approx(expected_ce, rel=1e-5)
    assert loss_value("categorical_crossentropy", "softmax", Y, PROBS) == pytest.approx(expected_ce, rel=1e-5)
    assert loss_value("mean_squared_error", "softmax", Y, PROBS) == pytest.approx(
        np.mean((one_hot - PROBS) ** 2), rel=1e-5)
    assert loss_value("mean_absolute_error", "softmax", Y, PROBS) == pytest.approx(
        np.mean(np.abs(one_hot - PROBS)), rel=1e-5)
    scores = np.array([[2.0, -1.0, 0.5], [0.0, 0.3, -2.0]], "float32")
    signed = 2 * one_hot - 1
    assert loss_value("hinge", None, Y, scores) == pytest.approx(np.mean(np.maximum(0, 1 - signed * scores)), rel=1e-5)
    assert loss_value("squared_hinge", None, Y, scores) == pytest.approx(
        np.mean(np.maximum(0, 1 - signed * scores) ** 2), rel=1e-5)
    assert loss_value("mean_squared_logarithmic_error", "softmax", Y, PROBS) == pytest.approx(
        np.mean((np.log1p(one_hot) - np.log1p(PROBS)) ** 2), rel=1e-5)


def test_logits_heads_use_the_stable_form():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 2000.0]], "float32")  # softmax of these underflows
    value = loss_value("sparse_categorical_crossentropy", None, Y, logits)
    assert np.isfinite(value) and value == pytest.approx(0.0, abs=1e-5)
    binary = loss_value("binary_crossentropy", None, np.array([1, 0]), np.array([[500.0], [-500.0]], "float32"))
    assert binary == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
def test_hinge_losses_score_a_softmax_or_sigmoid_head_by_the_logits_behind_it(name):
    """The same loss as on a logits head with those logits (a softmax's up to a constant, which it centres)."""
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 0.3, -2.0]], "float32")
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    centred = logits - logits.mean(axis=-1, keepdims=True)
    assert loss_value(name, "softmax", Y, probs) == pytest.approx(loss_value(name, None, Y, centred), rel=1e-4)
    binary_logits = np.array([[1.5], [-0.5]], "float32")
    assert loss_value(name, "sigmoid", np.array([1, 0]), 1 / (1 + np.exp(-binary_logits))) == pytest.approx(
        loss_value(name, None, np.array([1, 0]), binary_logits), rel=1e-4)


def test_a_hinge_run_trains_a_softmax_classifier_and_reloads(tiny_data_dir, tmp_path):
    run = kerasapps.train("mlp_mnist", run_dir=tmp_path / "run", data_dir=tiny_data_dir, verbose=0,
                          set=["loss=squared_hinge", "learning_rate=0.003"], epochs=3)
    losses = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / "run" / "logs" / "train.csv"))]
    assert losses[-1] < losses[0] and run.metrics["test"]["accuracy"] > 0.5
    assert kerasapps.evaluate(run.run_dir)["metrics"]["loss"] == pytest.approx(run.metrics["test"]["loss"], rel=1e-5)


@pytest.mark.parametrize("name, activation, units, message", [
    ("binary_crossentropy", "softmax", 3, "outputs compete"),
    ("sparse_categorical_crossentropy", "sigmoid", 1, "use binary_crossentropy"),
    ("mean_absolute_percentage_error", "softmax", 3, "divides by the target"),
    ("mean_squared_logarithmic_error", None, 3, "undefined for logits"),
])
def test_losses_that_do_not_fit_the_head_are_refused(name, activation, units, message):
    recipe = get_recipe("mlp_mnist")
    with pytest.raises(ConfigError, match=message):
        choose_loss(recipe, recipe.resolve(overrides=[f"loss={name}"]), head(activation, units))


def test_info_lists_the_losses_and_a_run_trains_with_one(tiny_data_dir, tmp_path):
    spec = next(h for h in kerasapps.info("mlp_mnist", build=False)["hparams"] if h["key"] == "loss")
    assert spec["choices"] == list(LOSSES) and spec["default"] == "auto"
    run = kerasapps.train("mlp_mnist", run_dir=tmp_path / "run", data_dir=tiny_data_dir, verbose=0,
                          set=["loss=categorical_crossentropy"], epochs=2)
    losses = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / "run" / "logs" / "train.csv"))]
    assert losses[1] < losses[0] and run.metrics["test"]["accuracy"] > 0.5
    assert kerasapps.evaluate(run.run_dir)["metrics"]["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    with pytest.raises(ConfigError, match="divides by the target"):
        kerasapps.train("mlp_mnist", run_dir=tmp_path / "bad", data_dir=tiny_data_dir, verbose=0,
                        set=["loss=mean_absolute_percentage_error"])
    assert not (tmp_path / "bad").exists()


def test_mean_absolute_percentage_error_trains_a_regression_on_a_real_table(tmp_path):
    """scikit-learn's diabetes table (442 patients, 10 features; a real data set shipped with the library)."""
    from sklearn.datasets import load_diabetes

    from kerasapps.core.recipe import Recipe

    def load(hp, ctx):
        x, y = load_diabetes(return_X_y=True)
        x, y = x.astype("float32"), y.astype("float32")
        return {"train": (x[:350], y[:350]), "test": (x[350:], y[350:])}

    def build(hp, meta):
        inputs = keras.Input((10,))
        hidden = keras.layers.Dense(32, activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(1, name="predictions")(hidden))

    recipe = Recipe(name="diabetes_regression", summary="s", build_model=build, load_data=load,
                    loss="mean_squared_error", metrics=("mean_absolute_error",))
    run = kerasapps.train(recipe, run_dir=tmp_path / "run", verbose=0, epochs=30,
                          set={"loss": "mean_absolute_percentage_error", "learning_rate": 0.05, "batch_size": 32})
    losses = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / "run" / "logs" / "train.csv"))]
    assert losses[-1] < 0.5 * losses[0] and 0 < run.metrics["test"]["loss"] < 60  # percent
    with pytest.raises(ConfigError, match="is a regression"):
        kerasapps.train(recipe, run_dir=tmp_path / "bad", verbose=0, set={"loss": "hinge"})
