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
    text = kerasapps.train("imdb_sentiment", run_dir=root / "text", data_dir=tiny_data_dir, smoke=True, verbose=0,
                           set={"units": 8, "embedding_dim": 8, "max_tokens": 100})
    kerasapps.export(text.run_dir, out=root / "models")
    lm = kerasapps.train("char_lm", run_dir=root / "lm", data_dir=tiny_data_dir, smoke=True, verbose=0,
                         set={"units": 16, "layers": 1, "seq_len": 16})
    kerasapps.export(lm.run_dir, out=root / "models")
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


def test_predict_url_sends_images_and_text_files_without_tensorflow(served_export, tiny_data_dir):
    """The client side needs neither TensorFlow nor Keras: a fresh interpreter predicts and never loads them."""
    import subprocess
    import sys
    import textwrap

    root, url = served_export
    np.save(root / "two.npy", np.load(tiny_data_dir / "mnist" / "mnist.npz")["x_test"][:2])
    (root / "review.txt").write_text("A wonderful film, I loved it.", encoding="utf-8")
    code = textwrap.dedent("""
        import sys
        from kerasapps.cli.main import cli
        for args in (sys.argv[1:3], sys.argv[3:5]):
            try:
                cli.main(["predict", "--json", "--url", *args])
            except SystemExit as exc:
                assert exc.code == 0, exc.code
        print("tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code, url, str(root / "two.npy"),
                          url.replace("mnist_transfer", "imdb_sentiment"), str(root / "review.txt")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    decoder, text = json.JSONDecoder(), out.stdout
    images, end = decoder.raw_decode(text)
    review, end = decoder.raw_decode(text, end + 1)
    assert text[end:].strip() == "False False"  # neither TensorFlow nor Keras was imported
    assert [row["input"] for row in images] == [f"{root / 'two.npy'}[0]", f"{root / 'two.npy'}[1]"]
    assert review[0]["input"] == str(root / "review.txt") and 0 <= review[0]["probability"] <= 1


def test_generation_past_its_documented_maximum_is_a_quick_400(served_export):
    """Ten million characters would keep a worker busy for hours: the signature refuses before any step.

    The bounds only have to tell a refusal (or five steps) from hours of work, so a loaded runner meets them.
    """
    import time
    import urllib.error

    from kerasapps.recipes.char_lm import MAX_GENERATE_LENGTH

    root, url = served_export
    lm = url.replace("mnist_transfer", "char_lm") + ":predict"

    def generate(length, prompts=("a",)):
        body = {"signature_name": "generate",
                "inputs": {"prompt": list(prompts), "length": length, "temperature": 0.0, "seed": 1}}
        request = urllib.request.Request(lm, data=json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    started = time.monotonic()
    status, body = generate(10_000_000)
    assert status == 400 and f"length must be <= {MAX_GENERATE_LENGTH}" in body["error"], body
    status, body = generate(MAX_GENERATE_LENGTH, prompts=["a"] * 101)  # each within, all together past
    assert status == 400 and "prompts x length" in body["error"], body
    assert time.monotonic() - started < 60.0
    started = time.monotonic()
    status, body = generate(5)
    assert status == 200 and len(body["outputs"]["generated"][0]) == 5
    assert time.monotonic() - started < 60.0
