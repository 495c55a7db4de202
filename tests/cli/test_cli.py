"""The CLI's contract: lazy imports, one-line errors with exit codes 2 / 1, and the main job end to end."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kerasapps.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


def assert_one_line_error(result, code, *fragments):
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


COMMANDS = [[], ["list"], ["info"], ["train"], ["evaluate"], ["export"], ["predict"], ["generate"], ["serve"],
            ["tune"], ["diagnose"], ["diagnose", "init"], ["diagnose", "overfit"], ["diagnose", "lr"],
            ["diagnose", "filters"], ["diagnose", "features"]]


def _run_without_tensorflow(*argument_lists):
    """Run the CLI in a fresh interpreter for each argument list; (exit code, stderr) and whether TF/Keras loaded."""
    code = textwrap.dedent("""
        import json, sys
        from kerasapps.cli.main import cli
        results = []
        for args in json.loads(sys.argv[1]):
            try:
                cli.main(args)
            except SystemExit as exc:
                results.append(exc.code)
        print(json.dumps([results, "tensorflow" in sys.modules, "keras" in sys.modules]))
    """)
    out = subprocess.run([sys.executable, "-c", code, json.dumps(list(argument_lists))], capture_output=True,
                         text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_help_and_list_do_not_import_tensorflow():
    (codes, tensorflow, keras), _ = _run_without_tensorflow(*[[*command, "--help"] for command in COMMANDS],
                                                            ["list"], ["list", "--json"])
    assert codes == [0] * (len(COMMANDS) + 2)
    assert (tensorflow, keras) == (False, False)


def test_every_option_default_is_the_python_api_default():
    """Each command is a thin call of its API function: the same options, with the same defaults."""
    import inspect

    import kerasapps
    from kerasapps.cli.main import cli

    commands = {"train": "train", "evaluate": "evaluate", "export": "export", "predict": "predict",
                "generate": "generate", "serve": "serve", "tune": "tune", "diagnose init": "diagnose_init",
                "diagnose overfit": "diagnose_overfit", "diagnose lr": "diagnose_lr",
                "diagnose filters": "diagnose_filters", "diagnose features": "diagnose_features"}
    renamed = {"assignments": "set", "input_path": "input", "space_file": "space", "args": None, "as_json": None}
    for path, function in commands.items():
        command = cli
        for word in path.split():
            command = command.commands[word]
        parameters = inspect.signature(getattr(kerasapps, function)).parameters
        for option in command.params:
            name = renamed.get(option.name, option.name)
            unset = option.default is None or type(option.default).__name__ == "Sentinel"  # click 8.3's UNSET
            if name is None or unset or isinstance(option, click.Argument):
                continue
            assert name in parameters, (path, name)
            default = tuple(option.default) if isinstance(option.default, (list, tuple)) else option.default
            assert parameters[name].default == default, (path, name, option.default, parameters[name].default)


def test_list_and_info():
    listing = invoke("list")
    assert listing.exit_code == 0 and "mnist_transfer" in listing.stdout
    info = invoke("info", "mnist_transfer")
    assert info.exit_code == 0
    assert "600,165" in info.stdout and "features_conv1" in info.stdout and "learning_rate" in info.stdout


def test_unknown_recipe_suggests_close_names():
    assert_one_line_error(invoke("train", "mnist_transfr"), 2, "unknown recipe 'mnist_transfr'",
                          "did you mean mnist_transfer")


@pytest.mark.parametrize("assignment, fragment", [
    ("learning_rat=0.1", "unknown key 'learning_rat'"),
    ("epochs=many", "'epochs' expects int or auto, got 'many'"),
])
def test_bad_set_is_a_usage_error(assignment, fragment, tiny_data_dir):
    result = invoke("train", "mnist_transfer", "--smoke", "--data-dir", tiny_data_dir, "--set", assignment)
    assert_one_line_error(result, 2, fragment)


def test_missing_data_file_fails_at_once_naming_the_file(tmp_path):
    result = invoke("train", "mnist_transfer", "--data-dir", tmp_path, "--run-dir", tmp_path / "run")
    assert_one_line_error(result, 2, "data file not found", "mnist/mnist.npz")
    assert not (tmp_path / "run").exists()  # nothing written


def test_corrupt_npz(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "mnist.npz").write_bytes(b"garbage")
    assert_one_line_error(invoke("train", "mnist_transfer", "--data-dir", tmp_path), 2, "not a valid .npz")


def test_click_usage_errors_are_one_line():
    assert_one_line_error(invoke("train"), 2, "Missing argument 'NAME'")
    assert_one_line_error(invoke("export", "x", "--version", "0"), 2, "--version")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, tiny_data_dir):
    run = tmp_path_factory.mktemp("cli") / "run"
    result = invoke("train", "mnist_transfer", "--smoke", "--data-dir", tiny_data_dir, "--run-dir", run)
    assert result.exit_code == 0, result.stderr
    return run


def test_run_directory_contents(smoke_run):
    for name in ("config.yaml", "manifest.json", "state.json", "metrics.json", "model.keras",
                 "training_curves.png", "logs/pretrain.csv", "logs/finetune.csv",
                 "checkpoints/pretrain/epoch-001.keras", "stages/pretrain.keras"):
        assert (smoke_run / name).is_file(), name
    assert list((smoke_run / "tensorboard" / "pretrain").rglob("events.out.tfevents.*"))
    import csv

    for stage, peak in (("pretrain", 2e-3), ("finetune", 2e-3)):  # the rate each epoch trained at, not the
        rates = [float(row["lr"]) for row in csv.DictReader(open(smoke_run / "logs" / f"{stage}.csv"))]
        assert rates[0] == pytest.approx(peak) and all(rate > 0 for rate in rates)  # cosine's final zero


def test_evaluate_export_predict(smoke_run, tmp_path, tiny_data_dir):
    evaluation = invoke("evaluate", smoke_run, "--data-dir", tiny_data_dir)
    assert evaluation.exit_code == 0 and "accuracy" in evaluation.stdout
    assert (smoke_run / "evaluation-test.json").is_file()

    out = tmp_path / "models"
    assert invoke("export", smoke_run, "--out", out).exit_code == 0
    assert (out / "mnist_transfer" / "1" / "saved_model.pb").is_file()
    assert invoke("export", smoke_run, "--out", out).exit_code == 0  # next version by default
    assert (out / "mnist_transfer" / "2" / "saved_model.pb").is_file()
    assert_one_line_error(invoke("export", smoke_run, "--out", out, "--version", 1), 2, "already exists", "--force")
    assert invoke("export", smoke_run, "--out", out, "--version", 1, "--force").exit_code == 0
    assert not [p for p in (out / "mnist_transfer").iterdir() if p.name.startswith(".")]  # no leftovers

    digits = np.load(tiny_data_dir / "mnist" / "mnist.npz")["x_test"][:3]
    np.save(tmp_path / "batch.npy", digits)
    Image.fromarray(digits[0]).save(tmp_path / "digit.png")
    predicted = invoke("predict", out / "mnist_transfer", tmp_path / "digit.png", tmp_path / "batch.npy")
    assert predicted.exit_code == 0, predicted.stderr
    knows, *lines = predicted.stdout.strip().splitlines()
    assert knows == "this model knows the digits 5-9 only"  # a digit 0-4 still gets one of 5-9
    assert len(lines) == 4 and all("class" in line for line in lines)
    assert {line.split("class ")[1].split()[0] for line in lines} <= {"5", "6", "7", "8", "9"}
    from_run = invoke("predict", smoke_run, tmp_path / "digit.png")
    assert from_run.exit_code == 0
    assert from_run.stdout.strip().splitlines() == [knows, lines[0]]

    np.save(tmp_path / "wrong.npy", np.zeros((2, 32, 32), np.uint8))
    assert_one_line_error(invoke("predict", out / "mnist_transfer", tmp_path / "wrong.npy"), 2,
                          "has shape [2, 32, 32]", "[N, 28, 28]")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "big.png")  # read as training reads files:
    resized = invoke("predict", out / "mnist_transfer", tmp_path / "big.png")  # resized to 28x28
    assert resized.exit_code == 0 and "big.png: class" in resized.stdout, resized.stderr
    assert_one_line_error(invoke("predict", out / "mnist_transfer", tmp_path / "nope.png"), 2, "not found")


def test_run_dir_in_use_and_resume_errors(smoke_run, tiny_data_dir):
    assert_one_line_error(invoke("train", "mnist_transfer", "--smoke", "--data-dir", tiny_data_dir,
                                 "--run-dir", smoke_run), 2, "is not empty", "--resume")
    assert_one_line_error(invoke("train", "mnist_transfer", "--resume", "--run-dir", smoke_run), 2,
                          "already completed", "--overwrite")
    assert_one_line_error(invoke("export", smoke_run.parent / "nothing"), 2, "not a kerasapps run directory")


def test_overwrite_replaces_a_finished_run_and_nothing_else(smoke_run, tiny_data_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    (run / "left-from-the-old-run.txt").write_text("old")
    train = ("train", "mnist_transfer", "--smoke", "--data-dir", tiny_data_dir, "--run-dir", run)
    assert_one_line_error(invoke(*train, "--overwrite", "--set", "learning_rate=-1"), 2, "learning_rate")
    assert (run / "left-from-the-old-run.txt").is_file()  # a new run refused before it starts leaves the old one
    again = invoke(*train, "--overwrite")
    assert again.exit_code == 0, again.stderr
    assert not (run / "left-from-the-old-run.txt").exists() and (run / "model.keras").is_file()
    assert json.loads((run / "state.json").read_text())["status"] == "completed"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing moved aside is left behind

    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert_one_line_error(invoke("train", "mnist_transfer", "--smoke", "--data-dir", tiny_data_dir,
                                 "--run-dir", other, "--overwrite"), 2, "not a kerasapps run directory")
    assert (other / "keep.txt").read_text() == "mine"
    assert_one_line_error(invoke(*train, "--overwrite", "--resume"), 2, "--resume", "--overwrite")

    # the README's first command passes --overwrite before any run exists: a new or empty folder just trains
    for fresh in (tmp_path / "runs" / "first", other.with_name("empty")):
        if fresh.name == "empty":
            fresh.mkdir()
        first = invoke("train", "mnist_transfer", "--smoke", "--data-dir", tiny_data_dir, "--run-dir", fresh,
                       "--overwrite")
        assert first.exit_code == 0, first.stderr
        assert json.loads((fresh / "state.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_console_script_keeps_stderr_clean(tmp_path):
    """The installed script: TensorFlow's start-up chatter is hidden, the error is one line."""
    script = str(Path(sys.executable).parent / "kerasapps")
    result = subprocess.run([script, "train", "nope"], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "Traceback" not in result.stderr and "cuda" not in result.stderr.lower()


def test_shell_completion_completes_recipe_names():
    script = str(Path(sys.executable).parent / "kerasapps")
    env = {**__import__("os").environ, "_KERASAPPS_COMPLETE": "bash_complete", "COMP_WORDS": "kerasapps train mnist_t",
           "COMP_CWORD": "2"}
    done = subprocess.run([script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["plain,mnist_transfer"]
