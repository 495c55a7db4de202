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


COMMANDS = [[], ["list"], ["info"], ["train"], ["evaluate"], ["report"], ["export"], ["predict"], ["generate"],
            ["serve"], ["tune"], ["diagnose"], ["diagnose", "init"], ["diagnose", "overfit"], ["diagnose", "lr"],
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


# each command and its API function; what only one face has: --json (the API returns the data), and the
# Python-only parameters (callbacks, verbose, build)
API_OF = {"info": "info", "train": "train", "evaluate": "evaluate", "report": "report", "export": "export",
          "predict": "predict", "generate": "generate", "serve": "serve", "tune": "tune",
          "diagnose init": "diagnose_init", "diagnose overfit": "diagnose_overfit", "diagnose lr": "diagnose_lr",
          "diagnose filters": "diagnose_filters", "diagnose features": "diagnose_features"}
CLI_ONLY = {"as_json"}
PYTHON_ONLY = {"callbacks", "verbose", "build"}
ARGUMENTS = {"name": ["recipe", "name"], "run_dir": ["run_dir"], "run_dirs": ["run_dirs"], "model": ["model"],
             "args": ["model", "inputs"]}  # a command's arguments: the API function's first parameters


def _command(path: str) -> click.Command:
    command = cli
    for word in path.split():
        command = command.commands[word]
    return command


def _cli_default(option: click.Option):
    """A click option's default as the API's: "required", click 8.3's UNSET as None, a list as a tuple."""
    if option.required:
        return "required"
    if type(option.default).__name__ == "Sentinel":
        return None
    return tuple(option.default) if isinstance(option.default, list) else option.default


def _undeclared(options: dict, cls) -> list[str]:
    """Where the command line's options depart from their declaration in ``cls``: names, defaults, flags, help."""
    from kerasapps.core.options import options_of, required

    declared = {field.name: (field, spec) for field, spec in options_of(cls)}
    problems = [f"{name}: not declared in {cls.__name__}" for name in options.keys() - declared.keys()]
    problems += [f"{name}: declared but not on the command line" for name in declared.keys() - options.keys()]
    for name in declared.keys() & options.keys():
        field, spec = declared[name]
        if _cli_default(options[name]) != ("required" if required(field) else field.default):
            problems.append(f"{name}: the command line's default is not the declared {field.default!r}")
        if (options[name].help or "") != spec.help or spec.flags(name).split("/")[0] not in options[name].opts:
            problems.append(f"{name}: the command line's flag or help is not the declared one")
    return problems


def drift(command: click.Command, function) -> list[str]:
    """Where a command and its API function disagree: an option one has and the other lacks, a different default
    (None included), a required option that is not required in the other; and, for a function declared from an
    options dataclass (``function.options``), where the command line departs from the dataclass."""
    import inspect

    parameters = dict(inspect.signature(function).parameters)
    problems = []
    for argument in [p for p in command.params if isinstance(p, click.Argument)]:
        names = [name for name in ARGUMENTS.get(argument.name, [argument.name]) if name in parameters]
        problems += [] if names else [f"argument {argument.name}: not a parameter of the API"]
        for name in names:
            parameters.pop(name)
    options = {p.name: p for p in command.params if isinstance(p, click.Option) and p.name not in CLI_ONLY}
    api = {name: p for name, p in parameters.items() if name not in PYTHON_ONLY}
    problems += [f"{name}: not in the API" for name in options.keys() - api.keys()]
    problems += [f"{name}: not on the command line" for name in api.keys() - options.keys()]
    for name in options.keys() & api.keys():
        api_default = "required" if api[name].default is api[name].empty else api[name].default
        if _cli_default(options[name]) != api_default:
            problems.append(f"{name}: default {_cli_default(options[name])!r} on the command line, {api_default!r} "
                            "in the API")
    if hasattr(function, "options"):
        problems += _undeclared(options, function.options)
    return sorted(problems)


@pytest.mark.parametrize("path", list(API_OF))
def test_every_option_is_the_same_on_the_command_line_in_the_api_and_where_it_is_declared(path):
    """Each command is a thin call of its API function: the same options (None defaults included), the same
    defaults, and, but for ``info`` (its one option is --json), both follow the command's options dataclass."""
    import kerasapps

    function = getattr(kerasapps, API_OF[path])
    assert drift(_command(path), function) == []
    assert hasattr(function, "options") == (path != "info")


def test_the_parity_check_finds_drift():
    """An option the API lacks, a default that differs (None too), a flag not in the declaration: each is found."""
    import kerasapps

    export = _command("export")
    drifted = click.Command("export", params=[*export.params, click.Option(["--dry-run"], is_flag=True)])
    assert drift(drifted, kerasapps.export) == ["dry_run: not declared in ExportOptions", "dry_run: not in the API"]

    def export_elsewhere(run_dir, *, version=1, out=None, force=False, name=None, format="saved_model",
                         quantize="none"):
        """A hand-written export whose version defaults to 1 where the command's is None."""

    assert drift(export, export_elsewhere) == ["version: default None on the command line, 1 in the API"]
    serve = _command("serve")
    renamed = [click.Option(["--poll-wait", "poll_interval_s"], default=2.0) if p.name == "poll_interval_s" else p
               for p in serve.params]
    assert drift(click.Command("serve", params=renamed), kerasapps.serve) == [
        "poll_interval_s: the command line's flag or help is not the declared one"]


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


@pytest.mark.slow  # in the full suite; the fast subset stays under 5 minutes
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
