"""Our own export through our own server: `kerasapps predict --url` equals predicting on the export."""

import json
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest
from click.testing import CliRunner

import kerasapps
from kerasapps.cli.main import cli


@pytest.fixture(scope="module")
def served_export(tmp_path_factory, tiny_data_dir):
    import uvicorn

    from kerasapps.serving.server import create_app

    root = tmp_path_factory.mktemp("served")
    run = kerasapps.train("mnist_transfer", run_dir=root / "run", data_dir=tiny_data_dir, smoke=True, verbose=0)
    kerasapps.export(run.run_dir, out=root / "models")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(root / "models"), host="127.0.0.1", port=port,
                                           log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield root, f"http://127.0.0.1:{port}/v1/models/mnist_transfer"
    server.should_exit = True
    thread.join(timeout=10)


def test_predict_url_matches_the_export(served_export, tiny_data_dir):
    root, url = served_export
    images = np.load(tiny_data_dir / "mnist" / "mnist.npz")["x_test"][:4]
    np.save(root / "four.npy", images)
    runner = CliRunner()
    remote = runner.invoke(cli, ["predict", "--json", "--url", url, str(root / "four.npy")])
    local = runner.invoke(cli, ["predict", "--json", str(root / "models" / "mnist_transfer"), str(root / "four.npy")])
    assert remote.exit_code == 0, remote.stderr
    remote_rows, local_rows = json.loads(remote.stdout), json.loads(local.stdout)
    assert [r["classes"] for r in remote_rows] == [r["classes"] for r in local_rows]
    np.testing.assert_allclose([r["probabilities"] for r in remote_rows],
                               [r["probabilities"] for r in local_rows], rtol=1e-6)


def test_status_and_unknown_model(served_export):
    _, url = served_export
    with urllib.request.urlopen(url) as response:
        status = json.loads(response.read())
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    result = CliRunner().invoke(cli, ["predict", "--url", url.replace("mnist_transfer", "nope"), "x.npy"])
    assert result.exit_code == 2 and "404" in result.stderr
