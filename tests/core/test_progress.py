"""Progress of long work: bars on a terminal (a pseudo-terminal here), not one byte more anywhere else."""

import io
import os
import pty
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import kerasapps
from kerasapps.cli.main import cli
from kerasapps.core.progress import keras_verbosity, on_terminal, progress

SCAN = textwrap.dedent("""
    import sys, types
    from pathlib import Path
    from kerasapps.cli.main import _setup_logging
    from kerasapps.core.quiet_import import import_tensorflow
    from kerasapps.data.files import Reader
    from kerasapps.data.folders import read_folder

    _setup_logging(False)  # the command line's: warnings on stderr, TensorFlow's own logging off
    import_tensorflow()
    hp = types.SimpleNamespace(bad_files="skip", seed=0, test_split=0.25)
    splits = read_folder(Path(sys.argv[1]), Reader("image", (8, 8)), hp)
    print(len(splits["train"][1]) + len(splits["test"][1]))
""")
EVALUATE_AND_EXPORT = textwrap.dedent("""
    import sys
    import kerasapps

    print(kerasapps.evaluate(sys.argv[1])["examples"], flush=True)
    kerasapps.export(sys.argv[1], out=sys.argv[2])
""")


def run_python(code, *args, terminal=("stdout", "stderr")):
    """Run ``code`` in a fresh interpreter with the streams named in ``terminal`` on pseudo-terminals and the
    others on pipes; (stdout bytes, stderr bytes)."""
    streams, readers, captured = {}, [], {}
    for name in ("stdout", "stderr"):
        if name not in terminal:
            streams[name] = subprocess.PIPE
            continue
        master, slave = pty.openpty()
        streams[name], captured[name] = slave, bytearray()

        def read(master=master, into=captured[name]):
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed its end
                    break
                if not chunk:
                    break
                into += chunk
            os.close(master)

        readers.append(threading.Thread(target=read, daemon=True))
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "200"}
    child = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, **streams)
    for name in terminal:
        os.close(streams[name])
    for reader in readers:
        reader.start()
    piped = dict(zip(("stdout", "stderr"), child.communicate(timeout=300)))
    for reader in readers:
        reader.join(timeout=30)
    assert child.returncode == 0, (piped, captured)
    return tuple(bytes(captured[name]) if name in captured else piped[name] for name in ("stdout", "stderr"))


def test_the_decision_follows_the_stream(monkeypatch, capsys):
    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as terminal:
        assert on_terminal(terminal) and not on_terminal(io.StringIO())
        monkeypatch.setattr(sys, "stdout", terminal)
        assert keras_verbosity("auto") == 1 and keras_verbosity(2) == 2
        monkeypatch.setattr(sys, "stdout", io.StringIO())
        assert keras_verbosity("auto") == 0 and keras_verbosity(1) == 1
    os.close(master)
    monkeypatch.undo()
    with progress("counting", total=3) as bar:  # stderr is pytest's capture here, not a terminal
        for _ in range(3):
            bar.advance()
    assert not bar.shown and capsys.readouterr() == ("", "")


@pytest.mark.slow  # in the full suite; the fast subset stays under 5 minutes
def test_a_folder_scan_draws_a_bar_on_a_terminal_and_nothing_on_a_pipe(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(tmp_path / "pets" / name / f"{i}.png")
    (tmp_path / "pets" / "dog" / "broken.png").write_bytes(b"not a picture")
    warning = f"warning: skipping 1 file(s) that are not decodable PNG, JPEG, BMP or GIF images (or are truncated): " \
              f"{tmp_path / 'pets' / 'dog' / 'broken.png'}".encode()
    out, err = run_python(SCAN, tmp_path / "pets", terminal=("stderr",))
    assert out == b"12\n"
    assert f"checking 13 files in {tmp_path / 'pets'}".encode() in err and b"13/13" in err
    assert re.search(rb"[\r\n](\x1b\[[0-9;?]*[A-Za-z])*" + re.escape(warning), err)  # on its own line, not the bar's
    assert run_python(SCAN, tmp_path / "pets", terminal=()) == (b"12\n", warning + b"\n")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_data_dir):
    folder = tmp_path_factory.mktemp("progress") / "run"
    kerasapps.train("mlp_mnist", run_dir=folder, data_dir=tiny_data_dir, smoke=True, verbose=0, set={"units": 16})
    return folder


def test_evaluate_and_export_write_no_progress_off_a_terminal(run_dir, tmp_path):
    runner = CliRunner()
    evaluated = runner.invoke(cli, ["evaluate", str(run_dir)], catch_exceptions=False)
    assert evaluated.exit_code == 0 and evaluated.stderr == ""
    assert "━" not in evaluated.stdout and "/step" not in evaluated.stdout and "\r" not in evaluated.stdout  # no bar
    assert evaluated.stdout.startswith("mlp_mnist test (128 examples): ")
    assert "class  precision  recall      f1  support" in evaluated.stdout  # the table of classes follows
    exported = runner.invoke(cli, ["export", str(run_dir), "--out", str(tmp_path / "piped")], catch_exceptions=False)
    assert exported.exit_code == 0 and exported.stderr == ""
    assert exported.stdout == f"exported {tmp_path / 'piped' / 'mlp_mnist' / '1'}\n"


@pytest.mark.slow  # in the full suite; the fast subset stays under 5 minutes
def test_evaluate_and_export_show_progress_on_a_terminal(run_dir, tmp_path):
    out, err = run_python(EVALUATE_AND_EXPORT, run_dir, tmp_path / "terminal")
    assert b"/step" in out and "━".encode() in out  # Keras's own bar, on stdout
    assert b"128\r\n" in out
    assert b"exporting mlp_mnist: " in err  # the export's stages, on stderr
    assert (tmp_path / "terminal" / "mlp_mnist" / "1" / "saved_model.pb").is_file()
