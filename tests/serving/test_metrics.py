"""Tests for kerasapps.serving.metrics: ``monitoring`` serves Prometheus metrics at TF Serving's path, scraped
here while REST and gRPC requests run."""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
grpc = pytest.importorskip("grpc")
pytest.importorskip("tensorflow_serving")
pytest.importorskip("starlette")
pytest.importorskip("httpx2")  # what starlette.testclient uses
pytest.importorskip("prometheus_client")

from click.testing import CliRunner  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from serving_helpers import export_constant, write_spin_model  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from kerasapps.cli.main import cli  # noqa: E402
from kerasapps.serving import server  # noqa: E402
from kerasapps.serving.metrics import LATENCY_BUCKETS_US, PATH  # noqa: E402

COUNT = ":tensorflow:serving:request_count_total"
LATENCY = ":tensorflow:serving:request_latency"
IN_FLIGHT, QUEUED = "kerasapps_serving_model_calls_in_flight", "kerasapps_serving_model_calls_queued"
LOAD_FAILURES = "kerasapps_serving_model_load_failures_total"
TIMEOUT = 60



@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("metrics") / "models"
    export_constant(base / "m" / "1", 1.0)
    write_spin_model(base / "spin" / "1")
    return base


def scrape(client) -> list[tuple[str, dict, float]]:
    """Every sample at the metrics path: (name, labels, value)."""
    response = client.get(PATH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(response.text)
            for s in family.samples]


def value(samples, name: str, **labels) -> float | None:
    """The value of the one sample ``name`` with exactly these labels (None: no such series)."""
    found = [v for n, sample_labels, v in samples if n == name and sample_labels == labels]
    assert len(found) <= 1
    return found[0] if found else None


def labels_of(model="m", version="1", api="Predict", entrypoint="REST") -> dict:
    return {"model_name": model, "version": version, "API": api, "entrypoint": entrypoint}


def grpc_predict(port: int, inputs: dict):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    for key, array in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            stub.Predict(request, timeout=TIMEOUT)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK


def test_rest_and_grpc_requests_by_model_version_api_and_status(model_base):
    app = server.create_app(str(model_base), poll_interval_s=0, grpc_port=0, monitoring=True)
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post("/v1/models/m:predict", json={"instances": [1.0, 2.0]}).status_code == 200
        assert client.post("/v1/models/m:predict", json={"instances": ["a", "b"]}).status_code == 400
        assert client.post("/v1/models/nope:predict", json={"instances": [1.0]}).status_code == 404
        assert client.get("/v1/models/m").status_code == 200
        assert client.get("/v1/models/m/metadata").status_code == 200
        assert grpc_predict(app.state.grpc_port, {"x": [1.0, 2.0]}) == grpc.StatusCode.OK
        assert grpc_predict(app.state.grpc_port, {"wrong": [1.0]}) == grpc.StatusCode.INVALID_ARGUMENT
        samples = scrape(client)

    counts = [  # (labels, status, requests)
        (labels_of(), "200", 3),
        (labels_of(), "400", 1),
        (labels_of(model="", version=""), "404", 1),  # a name the server does not know is no series
        (labels_of(version="", api="GetModelStatus"), "200", 1),
        (labels_of(api="GetModelMetadata"), "200", 1),
        (labels_of(entrypoint="GRPC"), "OK", 1),
        (labels_of(entrypoint="GRPC"), "INVALID_ARGUMENT", 1),
    ]
    for labels, status, expected in counts:
        assert value(samples, COUNT, **labels, status=status) == expected, (labels, status)
    assert sum(v for n, _, v in samples if n == COUNT) == sum(expected for *_, expected in counts)
    # The latency histogram (microseconds, TF Serving's buckets): one observation per request, by label set.
    by_labels: dict[tuple, int] = {}
    for labels, _, expected in counts:
        key = tuple(sorted(labels.items()))
        by_labels[key] = by_labels.get(key, 0) + expected
    for key, expected in by_labels.items():
        labels = dict(key)
        assert value(samples, LATENCY + "_count", **labels) == expected, labels
        assert value(samples, LATENCY + "_bucket", **labels, le="+Inf") == expected
        assert 0 < value(samples, LATENCY + "_sum", **labels) < TIMEOUT * 1e6 * expected
    buckets = {s_labels["le"] for n, s_labels, _ in samples if n == LATENCY + "_bucket"}
    assert len(buckets) == len(LATENCY_BUCKETS_US) + 1 and "10.0" in buckets
    # Nothing runs or waits at rest.
    assert value(samples, IN_FLIGHT) == 0 and value(samples, QUEUED) == 0


@pytest.mark.slow  # in the full suite; the fast subset stays under 5 minutes
def test_in_flight_and_queued_calls_while_a_slow_call_runs(model_base):
    app = server.create_app(str(model_base), poll_interval_s=0, monitoring=True, max_in_flight=1,
                            request_timeout_s=6.0)
    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        assert client.post("/v1/models/spin:predict", json={"inputs": {"n": 10}}).status_code == 200  # loaded
        slow = [pool.submit(client.post, "/v1/models/spin:predict", json={"inputs": {"n": 10**9}})
                for _ in range(2)]
        deadline = time.monotonic() + 5.5
        seen = (0, 0)
        while time.monotonic() < deadline and seen != (1, 1):
            samples = scrape(client)
            seen = (value(samples, IN_FLIGHT), value(samples, QUEUED))
            time.sleep(0.05)
        assert seen == (1, 1)  # one model call runs, the other waits for its slot
        assert [future.result().status_code for future in slow] == [504, 504]
        deadline = time.monotonic() + 15
        while (value(samples := scrape(client), IN_FLIGHT), value(samples, QUEUED)) != (0, 0):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert value(samples, COUNT, **labels_of(model="spin"), status="504") == 2


def test_load_failures_are_counted(model_base, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(model_base / "m" / "1", base / "b" / "1")
    os.makedirs(base / "b" / "2")  # a corrupt export
    (base / "b" / "2" / "saved_model.pb").write_bytes(b"not a protobuf")
    app = server.create_app(str(base), poll_interval_s=0, monitoring=True)
    with TestClient(app) as client:
        assert value(scrape(client), LOAD_FAILURES, model_name="b", version="2") is None
        assert client.post("/v1/models/b:predict", json={"instances": [1.0]}).status_code == 200  # 1 answers
        assert client.post("/v1/models/b/versions/2:predict", json={"instances": [1.0]}).status_code == 404
        samples = scrape(client)
    assert value(samples, LOAD_FAILURES, model_name="b", version="2") >= 1
    assert value(samples, LOAD_FAILURES, model_name="b", version="1") is None
    assert value(samples, COUNT, **labels_of(model="b"), status="200") == 1
    assert value(samples, COUNT, **labels_of(model="b", version=""), status="404") == 1


def test_without_monitoring_the_path_is_404(model_base):
    app = server.create_app(str(model_base), poll_interval_s=0)
    assert app.state.server.metrics is None
    with TestClient(app) as client:
        assert client.get(PATH).status_code == 404
        assert client.post("/v1/models/m:predict", json={"instances": [1.0]}).status_code == 200


def test_several_apps_count_apart(model_base):
    first = server.create_app(str(model_base), poll_interval_s=0, monitoring=True)
    second = server.create_app(str(model_base), poll_interval_s=0, monitoring=True)
    with TestClient(first) as a, TestClient(second) as b:
        assert a.post("/v1/models/m:predict", json={"instances": [1.0]}).status_code == 200
        assert value(scrape(a), COUNT, **labels_of(), status="200") == 1
        assert value(scrape(b), COUNT, **labels_of(), status="200") is None


def test_serve_help_lists_monitoring():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "--monitoring" in result.output
