"""`kerasapps serve` as a user starts it: REST and gRPC from one command, a model config file, bad options."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from click.testing import CliRunner

from kerasapps.cli.main import cli


def test_bad_serving_options_are_one_line(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { name: 'x' } }")
    result = runner.invoke(cli, ["serve", "--model-config-file", str(bad)])
    assert result.exit_code == 2 and "base_path is missing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(cli, ["serve", "--model-base", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = runner.invoke(cli, ["serve", "--max-header-bytes", "10"])
    assert result.exit_code == 2 and "max-header-bytes" in result.stderr


@pytest.mark.slow
def test_serve_answers_rest_and_grpc_from_a_model_config(tmp_path, port_pair, constant_export):
    grpc = pytest.importorskip("grpc")
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    constant_export(tmp_path / "models" / "m" / "1", 1)
    constant_export(tmp_path / "models" / "m" / "2", 2)
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "m" base_path: "models/m" '
                      'version_labels { key: "stable" value: 2 } } }')
    port, grpc_port = port_pair
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-m", "kerasapps.cli.main", "serve", "--model-config-file", str(config),
                             "--port", str(port), "--grpc-port", str(grpc_port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/m/labels/stable", timeout=5) as r:
                    status = json.loads(r.read())
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer within 60 s"
                time.sleep(0.3)
        assert status["model_version_status"][0]["version"] == "2"
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = "m"
            answer = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
        assert [(v.version, v.state) for v in answer.model_version_status] == [
            (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert f"grpc://127.0.0.1:{grpc_port}" in out
