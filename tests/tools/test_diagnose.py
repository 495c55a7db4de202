"""`kerasapps diagnose`: initialisation statistics, the overfit check and the learning-rate range test."""

import json

import pytest
from click.testing import CliRunner

from kerasapps.cli.main import cli
from kerasapps.tools.initialization import init_histogram_figure, init_statistics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL_MLP = ["--set", "units=64"]


def invoke(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


def run_json(*args, code=0):
    result = invoke(*args, "--json")
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def assert_one_line_error(result, code, *fragments):
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def stds(stats):
    return [row["std"] for row in stats["layers"]]


def test_init_tanh_small_collapses_relu_he_keeps_its_spread(tmp_path):
    tanh = run_json("diagnose", "init", "--activation", "tanh", "--init", "small", "--png", tmp_path / "tanh.png")
    assert [row["layer"] for row in tanh["layers"]] == [1, 2, 3, 4, 5]
    assert {"mean", "std", "saturated_fraction", "dead_fraction"} <= set(tanh["layers"][0])
    s = stds(tanh)
    assert s[0] / s[-1] > 10 and all(a > b for a, b in zip(s, s[1:]))  # collapses layer over layer
    assert (tmp_path / "tanh.png").read_bytes()[:8] == PNG_MAGIC

    relu = run_json("diagnose", "init", "--activation", "relu", "--init", "he", "--png", tmp_path / "relu.png")
    s = stds(relu)
    assert max(s) / min(s) < 3
    assert all(0.3 < row["zero_fraction"] < 0.7 for row in relu["layers"])  # half the units off, not dead


def test_init_histograms_have_labelled_axes_and_a_title():
    from kerasapps.training.curves import pyplot

    plt = pyplot()
    stats = init_statistics("relu", "he", layers=3, units=20, examples=500, keep_activations=True)
    fig = init_histogram_figure(stats, plt)
    try:
        axes = fig.get_axes()
        assert len(axes) == 3
        assert all(ax.get_xlabel() == "relu output" and ax.get_title().startswith(f"layer {i}")
                   for i, ax in enumerate(axes, 1))
        assert axes[0].get_ylabel() == "fraction of the 500 x 20 values"
        assert fig.get_suptitle() == "Activations layer by layer: relu, he init, input N(0, 1) [500 x 20]"
        heights = [patch.get_height() for patch in axes[0].patches]
        assert sum(heights) == pytest.approx(1.0)  # what the y label says: fractions of all values
    finally:
        plt.close(fig)


def test_init_sigmoid_saturates_with_normal_and_bunches_with_small():
    normal = init_statistics("sigmoid", "normal", examples=2000)
    assert all(row["saturated_fraction"] > 0.3 for row in normal["layers"])  # piled up at 0 and 1
    small = init_statistics("sigmoid", "small", examples=2000)
    for row in small["layers"]:
        assert abs(row["mean"] - 0.5) < 0.01 and row["std"] < 0.05 and row["saturated_fraction"] == 0.0


def test_overfit_passes_on_a_capable_recipe(tiny_data_dir):
    result = run_json("diagnose", "overfit", "mlp_mnist", "--examples", 100, "--batch-size", 32,
                      "--max-epochs", 40, "--data-dir", tiny_data_dir, *SMALL_MLP)
    assert result["passed"] and result["final_accuracy"] == 1.0 and result["examples"] == 100
    assert result["epochs"] < 40 and result["cause"] is None


def test_overfit_fails_on_a_crippled_recipe_with_one_line_cause(tiny_data_dir):
    result = invoke("diagnose", "overfit", "mlp_mnist", "--max-epochs", 5, "--batch-size", 50,
                    "--data-dir", tiny_data_dir, "--set", "learning_rate=0", *SMALL_MLP)
    assert result.exit_code == 1, result.output
    assert "does NOT overfit" in result.stdout
    cause = [line for line in result.stdout.splitlines() if line.startswith("likely cause:")]
    assert len(cause) == 1 and "did not fall" in cause[0] and "learning_rate=0" in cause[0]
    as_json = run_json("diagnose", "overfit", "mlp_mnist", "--max-epochs", 5, "--batch-size", 50,
                       "--data-dir", tiny_data_dir, "--set", "learning_rate=0", *SMALL_MLP, code=1)
    assert not as_json["passed"] and "did not fall" in as_json["cause"]


def test_lr_range_test_suggests_a_sane_rate_for_mlp_mnist(tmp_path, tiny_data_dir):
    png = tmp_path / "lr.png"
    result = run_json("diagnose", "lr", "mlp_mnist", "--steps", 80, "--batch-size", 32, "--png", png,
                      "--data-dir", tiny_data_dir, *SMALL_MLP)
    assert 1e-4 <= result["suggested_lr"] <= 1.0
    assert result["lr"] == sorted(result["lr"]) and len(result["lr"]) == len(result["loss"]) == result["steps"]
    if result["divergence_lr"] is not None:
        assert result["divergence_lr"] > result["min_loss_lr"]
    assert png.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("args, code, fragment", [
    (["diagnose", "init", "--layers", "0"], 2, "--layers"),
    (["diagnose", "init", "--activation", "softsign"], 2, "--activation"),
    (["diagnose", "lr", "mlp_mnist", "--min-lr", "1", "--max-lr", "0.1"], 2, "--min-lr < --max-lr"),
    (["diagnose", "overfit", "mlp_mnist", "--set", "learning_rat=0.1"], 2, "unknown key 'learning_rat'"),
    (["diagnose", "overfit", "mlp_mnst"], 2, "unknown recipe"),
])
def test_bad_input_is_a_one_line_error(args, code, fragment, tiny_data_dir):
    if args[1] != "init":
        args = [*args, "--data-dir", str(tiny_data_dir)]
    assert_one_line_error(invoke(*args), code, fragment)


def test_monitor_from_config_writes_json_and_tensorboard(tmp_path, tiny_data_dir):
    import kerasapps

    run = kerasapps.train("mlp_mnist", run_dir=tmp_path / "run", data_dir=tiny_data_dir, verbose=0,
                          set=["monitor=true", "monitor_every_steps=2", "monitor_probe_size=32",
                                     "units=32", "learning_rate=0.5", "optimizer=sgd"],
                          epochs=1, batch_size=32, steps_per_epoch=4)
    data = json.loads((run.run_dir / "monitors.json").read_text())
    steps = [r["step"] for r in data["records"]]
    assert steps == [2, 4]
    first = data["records"][0]
    assert set(first["layers"]) == {"dense1", "dense2", "predictions"}
    for values in first["layers"].values():
        assert values["update_ratio"] > 0 and values["weight_norm"] > 0 and values["grad_norm"] > 0
    assert set(first["activations"]) == {"act1", "act2"}
    assert all(0 <= a["dead_fraction"] <= 1 and a["kind"] == "relu" for a in first["activations"].values())
    # sgd at lr 0.5 moves the weights by far more than 1e-2 of their norm: every layer is flagged
    assert data["warnings"]["train"] == ["dense1", "dense2", "predictions"]
    assert list((run.run_dir / "tensorboard" / "train" / "monitors").glob("events.out.tfevents.*"))


def test_monitor_sees_dead_relus_and_saturated_sigmoids():
    import keras
    import numpy as np

    from kerasapps.training.monitors import TrainingMonitor

    inputs = keras.Input((8,))
    dead = keras.layers.Dense(16, activation="relu", bias_initializer=keras.initializers.Constant(-100.0),
                              name="dead")(inputs)
    sat = keras.layers.Dense(16, activation="sigmoid", kernel_initializer=keras.initializers.RandomNormal(0, 50),
                             name="sat")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax", name="out")(keras.layers.Concatenate()([dead, sat]))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).normal(size=(32, 8)).astype("float32"), np.zeros(32, "int64")
    monitor = TrainingMonitor(every_steps=1, probe=(x, y))
    model.fit(x, y, batch_size=16, epochs=1, callbacks=[monitor], verbose=0)
    stats = monitor.records[0]["activations"]
    assert stats["dead"]["dead_fraction"] == 1.0
    assert stats["sat"]["saturated_fraction"] > 0.8
