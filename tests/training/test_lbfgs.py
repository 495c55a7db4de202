"""Full-batch L-BFGS (SciPy's L-BFGS-B) on a convex problem: lower loss than a fixed budget of gradient steps."""

import keras
import numpy as np
import pytest

from kerasapps.training.lbfgs import minimize


def logistic_regression(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((20,))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(inputs))


def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 20)).astype("float32")
    w = rng.normal(size=(20, 3))
    y = np.argmax(x @ w + rng.gumbel(size=(600, 3)), axis=1)  # a noisy softmax-linear problem: minimum > 0
    return x, y


def full_batch_loss(model, x, y):
    return float(keras.losses.sparse_categorical_crossentropy(y, model(x)).numpy().mean())


def test_lbfgs_beats_the_same_number_of_gradient_steps_on_a_convex_problem():
    x, y = problem()
    model = logistic_regression()
    start = full_batch_loss(model, x, y)
    result = minimize(model, x, y, "sparse_categorical_crossentropy", max_iterations=50)
    assert result.loss == pytest.approx(full_batch_loss(model, x, y), rel=1e-4)  # the weights were assigned
    assert result.iterations <= 50 and len(result.history) == result.iterations
    assert [h[1] for h in result.history] == sorted((h[1] for h in result.history), reverse=True)

    baseline = logistic_regression()
    baseline.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    baseline.fit(x, y, batch_size=len(x), epochs=result.evaluations, verbose=0, shuffle=False)
    assert result.loss < full_batch_loss(baseline, x, y) < start


def test_regularisation_losses_count_and_bad_input_is_refused():
    x, y = problem()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((20,))
    dense = keras.layers.Dense(3, activation="softmax", kernel_regularizer=keras.regularizers.L2(1.0))
    model = keras.Model(inputs, dense(inputs))
    result = minimize(model, x, y, "sparse_categorical_crossentropy", max_iterations=30)
    kernel = model.layers[-1].kernel.numpy()
    assert result.loss == pytest.approx(full_batch_loss(model, x, y) + float((kernel ** 2).sum()), rel=1e-4)
    assert np.abs(kernel).max() < 0.5  # a strong penalty keeps the weights small
    with pytest.raises(ValueError, match="max_iterations must be >= 1"):
        minimize(model, x, y, "sparse_categorical_crossentropy", max_iterations=0)


# ------------------------------------------------------------------ optimizer=lbfgs in kerasapps.train

TINY_MLP = ["units=32", "seed=3"]


def test_train_with_lbfgs_beats_as_many_full_batch_adam_steps_and_exports(tmp_path, tiny_data_dir):
    import csv

    import kerasapps

    run = tmp_path / "lbfgs"
    result = kerasapps.train("mlp_mnist", run_dir=run, data_dir=tiny_data_dir, verbose=0,
                             set=[*TINY_MLP, "optimizer=lbfgs", "lbfgs_iterations=15"])
    stage = result.metrics["stages"]["train"]
    assert 1 <= stage["lbfgs"]["iterations"] <= 15 and stage["epochs"] == stage["lbfgs"]["iterations"]
    assert result.metrics["test"]["accuracy"] > 0.9
    with open(run / "logs" / "train.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(r["loss"]) for r in rows]
    assert [int(r["epoch"]) for r in rows] == list(range(stage["lbfgs"]["iterations"]))
    assert losses == sorted(losses, reverse=True) and losses[-1] == pytest.approx(stage["lbfgs"]["loss"], rel=1e-5)
    assert (run / "training_curves.png").is_file()
    lbfgs_train = kerasapps.evaluate(run, split="train")["metrics"]

    # the same model and data, as many full-batch Adam steps as L-BFGS evaluated the loss
    adam = kerasapps.train("mlp_mnist", run_dir=tmp_path / "adam", data_dir=tiny_data_dir, verbose=0,
                           set=[*TINY_MLP, "optimizer=adam", "learning_rate=0.01", "batch_size=540",
                                      f"epochs={stage['lbfgs']['evaluations']}"])
    assert adam.metrics["stages"]["train"]["epochs"] == stage["lbfgs"]["evaluations"]
    adam_train = kerasapps.evaluate(tmp_path / "adam", split="train")["metrics"]
    assert lbfgs_train["loss"] < adam_train["loss"]
    assert lbfgs_train["loss"] == pytest.approx(stage["lbfgs"]["loss"], abs=1e-4)  # the saved model is the minimiser

    target = kerasapps.export(run, out=tmp_path / "exports")
    data = np.load(tiny_data_dir / "mnist" / "mnist.npz")
    np.save(tmp_path / "test.npy", data["x_test"][:50])
    predicted = [row["class_ids"] for row in kerasapps.predict(target, [str(tmp_path / "test.npy")])]
    assert np.mean(np.array(predicted) == data["y_test"][:50]) > 0.9  # the export serves the L-BFGS weights


def test_lbfgs_refusals_are_one_line_and_write_nothing(tmp_path, tiny_data_dir, monkeypatch):
    import kerasapps
    from kerasapps.core.errors import ConfigError

    run = tmp_path / "refused"
    cases = [("lenet5_mnist", ["optimizer=lbfgs", "augment_shift=0.1"], {}, "cannot take augmentation"),
             ("mlp_mnist", ["optimizer=lbfgs"], {"strategy": "mirrored"}, "--strategy mirrored is not supported")]
    for name, overrides, options, message in cases:
        with pytest.raises(ConfigError, match=message):
            kerasapps.train(name, run_dir=run, data_dir=tiny_data_dir, set=overrides, **options)
    from kerasapps.training import lbfgs

    monkeypatch.setattr(lbfgs, "MAX_EXAMPLES", 100)
    with pytest.raises(ConfigError, match="at most 100 examples; stage 'train' of 'mlp_mnist' has 540"):
        kerasapps.train("mlp_mnist", run_dir=run, data_dir=tiny_data_dir, set=["optimizer=lbfgs"])
    assert not run.exists()
    with pytest.raises(ConfigError, match="only `kerasapps train` drives it"):
        kerasapps.diagnose_lr("mlp_mnist", data_dir=tiny_data_dir, set=["optimizer=lbfgs"], steps=10)
