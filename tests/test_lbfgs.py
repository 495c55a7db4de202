"""Full-batch L-BFGS (SciPy's L-BFGS-B) on a convex problem: lower loss than a fixed budget of gradient steps."""

import keras
import numpy as np
import pytest

from kerasapps.lbfgs import minimize


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
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", kernel_regularizer=keras.regularizers.L2(1.0))(inputs))
    result = minimize(model, x, y, "sparse_categorical_crossentropy", max_iterations=30)
    kernel = model.layers[-1].kernel.numpy()
    assert result.loss == pytest.approx(full_batch_loss(model, x, y) + float((kernel ** 2).sum()), rel=1e-4)
    assert np.abs(kernel).max() < 0.5  # a strong penalty keeps the weights small
    with pytest.raises(ValueError, match="max_iterations must be >= 1"):
        minimize(model, x, y, "sparse_categorical_crossentropy", max_iterations=0)
