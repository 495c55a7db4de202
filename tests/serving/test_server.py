"""Tests for kerasapps.serving: TF Serving's REST API over tiny SavedModels built here."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx2")  # what starlette.testclient uses
uvicorn = pytest.importorskip("uvicorn")

from serving_helpers import images, live_server, reference, write_atomically, write_image_model, write_text_model  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from kerasapps.serving import server  # noqa: E402
from kerasapps.serving.servable import Servable  # noqa: E402

# -- exports, written the way our exporter writes them: temp folder, then rename ------

def export_image_model(model_dir, version, seed):
    write_atomically(write_image_model, model_dir, version, seed)


def export_text_model(model_dir, version):
    write_atomically(write_text_model, model_dir, version)


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    base = root / "models"
    export_image_model(base / "mnist", 1, seed=1)
    export_image_model(base / "mnist", 2, seed=2)
    export_text_model(base / "text", 1)
    # Half-written exports: a temp folder with a full model, a digit folder without
    # saved_model.pb. Neither may ever be served.
    shutil.copytree(base / "mnist" / "1", base / "mnist" / ".tmp-99")
    os.makedirs(base / "mnist" / "7" / "variables")
    # A valid model outside the base, reachable only through symlinks.
    export_image_model(root / "outside" / "secret", 1, seed=3)
    os.symlink(root / "outside" / "secret", base / "escape")
    os.symlink(root / "outside" / "secret" / "1", base / "mnist" / "9")
    return base


@pytest.fixture(scope="module")
def client(model_base):
    with TestClient(server.create_app(str(model_base), poll_interval_s=0)) as c:
        yield c


@pytest.fixture(scope="module")
def all_versions(model_base, tmp_path_factory):
    """The same models through a TF Serving model config whose policy serves every version of mnist."""
    config = tmp_path_factory.mktemp("config") / "models.config"
    config.write_text(f"""model_config_list {{
        config {{ name: "mnist" base_path: "{model_base / 'mnist'}" model_version_policy {{ all {{}} }} }}
        config {{ name: "text" base_path: "{model_base / 'text'}" }} }}""")
    with TestClient(server.create_app(None, model_config_file=str(config), poll_interval_s=0)) as c:
        yield c


# -- status and metadata ------------------------------------------------------------

def test_status_serves_latest_complete_version(client, all_versions):
    r = client.get("/v1/models/mnist")
    assert r.status_code == 200
    ok = {"error_code": "OK", "error_message": ""}
    assert r.json() == {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": ok}]}
    assert client.get("/v1/models/mnist/versions/1").status_code == 404  # TF Serving's default: newest only
    r = all_versions.get("/v1/models/mnist/versions/1")
    assert r.json()["model_version_status"][0]["version"] == "1"
    assert r.json()["model_version_status"][0]["state"] == "AVAILABLE"
    for c in (client, all_versions):
        for version in (7, 9, 99):  # no saved_model.pb / symlink out of the base / temp folder
            r = c.get(f"/v1/models/mnist/versions/{version}")
            assert r.status_code == 404 and "error" in r.json()


def test_metadata_matches_tf_serving_shape(client, all_versions):
    r = client.get("/v1/models/mnist/metadata")
    assert r.status_code == 200
    meta = r.json()
    assert meta["model_spec"] == {"name": "mnist", "signature_name": "", "version": "2"}
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    default = sigs["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    images_info = default["inputs"]["images"]
    assert images_info["dtype"] == "DT_UINT8"
    assert images_info["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}, {"size": "28", "name": ""},
                {"size": "28", "name": ""}], "unknown_rank": False}
    assert default["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"
    assert default["outputs"]["classes"]["dtype"] == "DT_INT64"
    assert set(sigs) >= {"serving_default", "classes_only"}
    r = all_versions.get("/v1/models/mnist/versions/1/metadata")
    assert r.json()["model_spec"]["version"] == "1"


# -- predict --------------------------------------------------------------------------

def test_predict_row_format_matches_in_process_call(client, model_base):
    x = images(3)
    r = client.post("/v1/models/mnist:predict", json={"instances": x.tolist()})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    expected = reference(model_base, "mnist", 2, {"images": x})
    assert len(predictions) == 3 and set(predictions[0]) == {"probabilities", "classes"}
    got = np.array([p["probabilities"] for p in predictions], np.float32)
    np.testing.assert_array_equal(got, expected["probabilities"])  # float32 round-trips
    assert [p["classes"] for p in predictions] == expected["classes"].tolist()
    # named objects give the same answer
    r = client.post("/v1/models/mnist:predict",
                    json={"instances": [{"images": im} for im in x.tolist()]})
    assert r.json()["predictions"] == predictions


def test_predict_columnar_versions_and_signatures(client, all_versions, model_base):
    x = images(2, seed=1)
    r = all_versions.post("/v1/models/mnist/versions/1:predict", json={"inputs": {"images": x.tolist()}})
    outputs = r.json()["outputs"]
    expected = reference(model_base, "mnist", 1, {"images": x})
    np.testing.assert_array_equal(np.array(outputs["probabilities"], np.float32),
                                  expected["probabilities"])
    v2 = client.post("/v1/models/mnist:predict", json={"inputs": x.tolist()}).json()["outputs"]
    assert v2["probabilities"] != outputs["probabilities"]  # version 2 has other weights
    # a single-output signature: predictions is a plain list of values
    r = client.post("/v1/models/mnist:predict",
                    json={"signature_name": "classes_only", "instances": x.tolist()})
    assert r.json() == {"predictions": expected_classes(model_base, x)}


def expected_classes(model_base, x):
    return reference(model_base, "mnist", 2, {"images": x}, "classes_only")["classes"].tolist()


def test_b64_strings_in_and_out(client):
    raw = b"\x00\xffbytes"
    r = client.post("/v1/models/text:predict",
                    json={"instances": [{"b64": base64.b64encode(raw).decode()}, "hello"]})
    assert r.status_code == 200, r.text
    p = r.json()["predictions"]
    assert p[0]["length"] == len(raw) and p[1]["length"] == 5
    assert base64.b64decode(p[0]["upper_bytes"]["b64"]) == b"\x00\xffBYTES"
    assert p[1]["upper_bytes"] == {"b64": base64.b64encode(b"HELLO").decode()}
    r = client.post("/v1/models/text:predict", json={"inputs": {"text": ["ab", {"b64": "Yw=="}]}})
    assert r.json()["outputs"]["length"] == [2, 1]


# -- errors ---------------------------------------------------------------------------

GOOD = {"instances": images(1).tolist()}
ERROR_CASES = [
    ("post", "/v1/models/mnist:predict", b"{not json", 400),
    ("post", "/v1/models/mnist:predict", b"", 400),
    ("post", "/v1/models/mnist:predict", b"[1, 2]", 400),
    ("post", "/v1/models/mnist:predict", {"instances": []}, 400),
    ("post", "/v1/models/mnist:predict", {"nothing": 1}, 400),
    ("post", "/v1/models/mnist:predict", {"instances": [[1]], "inputs": [[1]]}, 400),
    ("post", "/v1/models/mnist:predict", {"instances": [[[256] * 28] * 28]}, 400),
    ("post", "/v1/models/mnist:predict", {"instances": [[[-1] * 28] * 28]}, 400),
    ("post", "/v1/models/mnist:predict", {"instances": [[[0.5] * 28] * 28]}, 400),
    ("post", "/v1/models/mnist:predict", {"instances": [[["a"] * 28] * 28]}, 400),
    ("post", "/v1/models/mnist:predict", {"instances": [[[0] * 27] * 28]}, 400),
    ("post", "/v1/models/mnist:predict", {"instances": [[[0] * 28] * 28, [[0] * 28]]}, 400),
    ("post", "/v1/models/mnist:predict", {"instances": [{"wrong": 1}]}, 400),
    ("post", "/v1/models/mnist:predict", {"signature_name": "nope", **GOOD}, 400),
    ("post", "/v1/models/mnist:predict", {"signature_name": 3, **GOOD}, 400),
    ("post", "/v1/models/text:predict", {"instances": [{"b64": "!!!"}]}, 400),
    ("post", "/v1/models/text:predict", {"instances": [1, 2]}, 400),
    ("post", "/v1/models/nosuch:predict", GOOD, 404),
    ("post", "/v1/models/mnist/versions/5:predict", GOOD, 404),
    ("post", "/v1/models/mnist/versions/x1:predict", GOOD, 400),
    ("post", "/v1/models/mnist:classify", {"examples": [{}]}, 400),  # a predict signature: the wrong kind
    ("post", "/v1/models/mnist:regress", {"examples": [{}]}, 400),
    ("post", "/v1/models/mnist/versions/1:predict", GOOD, 404),  # older versions are not served by default
    ("get", "/v1/models/nosuch", None, 404),
    ("get", "/v1/models/nosuch/metadata", None, 404),
    ("get", "/v1/models/mnist/versions/3", None, 404),
    ("get", "/v1/models/mnist/labels/stable", None, 400),  # TF Serving: an unknown label is a bad request
    ("get", "/v1/models", None, 400),
    ("get", "/v1/bogus", None, 400),
    ("put", "/v1/models/mnist", None, 400),
    ("get", "/", None, 404),
]


@pytest.mark.parametrize("method,path,payload,status", ERROR_CASES)
def test_errors_have_tf_serving_shape(client, method, path, payload, status):
    kwargs = {}
    if isinstance(payload, bytes):
        kwargs["content"] = payload
    elif payload is not None:
        kwargs["json"] = payload
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]


def test_payload_limits_and_recovery(model_base):
    app = server.create_app(str(model_base), max_request_bytes=10_000, poll_interval_s=0)
    with TestClient(app) as c:
        big = {"instances": images(4).tolist()}  # ~ 16 kB of JSON
        r = c.post("/v1/models/mnist:predict", json=big)  # Content-Length check
        assert r.status_code == 413 and "error" in r.json()
        data = json.dumps(big).encode()
        chunks = (data[i:i + 4096] for i in range(0, len(data), 4096))
        r = c.post("/v1/models/mnist:predict", content=chunks)  # chunked: streamed count
        assert r.status_code == 413 and "error" in r.json()
        r = c.post("/v1/models/mnist:predict", json=GOOD)  # still serving
        assert r.status_code == 200 and len(r.json()["predictions"]) == 1


def test_still_correct_after_bad_requests(client, model_base):
    for method, path, payload, _ in ERROR_CASES[:18]:
        client.request(method.upper(), path, **(
            {"content": payload} if isinstance(payload, bytes) else {"json": payload}))
    x = images(2, seed=5)
    r = client.post("/v1/models/mnist:predict", json={"instances": x.tolist()})
    assert [p["classes"] for p in r.json()["predictions"]] == expected_classes(model_base, x)


# -- versions on disk -----------------------------------------------------------------

def test_new_version_without_restart_and_unload(model_base, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(model_base / "mnist" / "1", base / "m" / "1")
    app = server.create_app(str(base), poll_interval_s=0)
    with TestClient(app) as c:
        assert c.get("/v1/models/m/metadata").json()["model_spec"]["version"] == "1"
        os.makedirs(base / "m" / "3")  # a version folder still being written
        assert c.get("/v1/models/m/metadata").json()["model_spec"]["version"] == "1"
        shutil.rmtree(base / "m" / "3")
        shutil.copytree(model_base / "mnist" / "2", base / "m" / ".tmp-abc")
        os.rename(base / "m" / ".tmp-abc", base / "m" / "3")  # atomic publish
        assert c.get("/v1/models/m/metadata").json()["model_spec"]["version"] == "3"
        status = c.get("/v1/models/m").json()["model_version_status"]
        assert [s["version"] for s in status] == ["3"]  # TF Serving's default policy: the newest only
        assert app.state.repository.loaded_versions() == {"m": [3]}  # 1 unloaded once 3 was available
        shutil.rmtree(base / "m" / "3")
        assert c.get("/v1/models/m/metadata").json()["model_spec"]["version"] == "1"
        assert app.state.repository.loaded_versions() == {"m": [1]}
        assert c.get("/v1/models/m/versions/3").status_code == 404
        os.makedirs(base / "m" / "4")  # a corrupt export: the last good version stays served
        (base / "m" / "4" / "saved_model.pb").write_bytes(b"not a protobuf")
        assert c.post("/v1/models/m:predict", json=GOOD).status_code == 200
        status = c.get("/v1/models/m").json()["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [("4", "END"), ("1", "AVAILABLE")]
        assert status[0]["status"]["error_code"] != "OK" and status[0]["status"]["error_message"]
        assert c.get("/v1/models/m/versions/4/metadata").status_code == 404


def test_background_poll_preloads_and_unloads(model_base, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(model_base / "mnist" / "1", base / "m" / "1")
    app = server.create_app(str(base), poll_interval_s=0.5)
    repository = app.state.repository

    def eventually(condition, seconds=15.0):
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, repository.loaded_versions()
            time.sleep(0.1)

    with TestClient(app) as c:
        assert c.get("/v1/models/m").status_code == 200
        shutil.copytree(model_base / "mnist" / "2", base / "m" / ".tmp-x")
        os.rename(base / "m" / ".tmp-x", base / "m" / "2")
        eventually(lambda: repository.loaded_versions() == {"m": [2]})  # no request needed; 1 unloaded after
        shutil.rmtree(base / "m" / "1")
        assert c.get("/v1/models/m/metadata").json()["model_spec"]["version"] == "2"


# -- a real uvicorn on an ephemeral loopback port ---------------------------------------

@contextlib.contextmanager
def running(app):
    with live_server(app) as (url, _):
        yield int(url.rsplit(":", 1)[1])


def raw_request(port, method, path, body=b""):
    """Send the path bytes exactly as given (no client-side normalisation)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: "
                  f"{len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1") + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


TRAVERSALS = [
    "/v1/models/../outside/secret", "/v1/models/..", "/v1/models/.", "/v1/models/../metadata",
    "/v1/models/%2e%2e", "/v1/models/%2E%2E/metadata", "/v1/models/%2e%2e%2foutside%2fsecret",
    "/v1/models/..%2F..%2Foutside%2Fsecret", "/v1/models/%252e%252e",
    "/v1/models/%252e%252e%252foutside", "/v1/models/%2Ftmp", "/v1/models//etc/passwd",
    "/v1/models/%2Fetc%2Fpasswd", "/v1/models/escape", "/v1/models/escape/versions/1",
    "/v1/models/mnist/versions/9", "/v1/models/mnist/versions/..",
    "/v1/models/mnist/versions/%2e%2e", "/v1/models/mnist/versions/1%2F..%2F..%2Fescape",
    "/v1/models/mnist%00", "/v1/models/%c0%ae%c0%ae",
]


def test_path_traversal_never_leaves_the_base(model_base, monkeypatch):
    opened, real_load = [], tf.saved_model.load
    monkeypatch.setattr(tf.saved_model, "load",
                        lambda p, *a, **k: opened.append(p) or real_load(p, *a, **k))
    app = server.create_app(str(model_base), poll_interval_s=0)
    outside = str(model_base.parent / "outside")
    good = json.dumps(GOOD).encode()
    with running(app) as port:
        for path in TRAVERSALS:
            for method, suffix, body in (("GET", "", b""), ("POST", ":predict", good)):
                status, payload = raw_request(port, method, path + suffix, body)
                assert status in (400, 404), (method, path, status, payload)
                assert "error" in json.loads(payload), payload
        status, payload = raw_request(port, "POST", "/v1/models/mnist:predict", good)
        assert status == 200 and len(json.loads(payload)["predictions"]) == 1
    assert opened and not any(os.path.realpath(p).startswith(outside) for p in opened)


def test_concurrent_calls_overlap_and_time_out(model_base, monkeypatch):
    real_run = Servable.run

    def slow_run(self, signature_name, inputs, cancellation=None):
        time.sleep(0.4)
        return real_run(self, signature_name, inputs, cancellation)

    monkeypatch.setattr(Servable, "run", slow_run)
    app = server.create_app(str(model_base), request_timeout_s=1.5, poll_interval_s=0)
    with TestClient(app) as c:
        c.get("/v1/models/mnist")  # load first
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(
                lambda _: c.post("/v1/models/mnist:predict", json=GOOD).status_code, range(4)))
        assert codes == [200] * 4 and time.monotonic() - started < 1.4  # not 4 x 0.4 s
        monkeypatch.setattr(Servable, "run", lambda *a: time.sleep(2.0))
        r = c.post("/v1/models/mnist:predict", json=GOOD)
        assert r.status_code == 504 and "error" in r.json()
        monkeypatch.setattr(Servable, "run", real_run)
        assert c.post("/v1/models/mnist:predict", json=GOOD).status_code == 200


def test_batching_gives_the_same_answers(model_base, monkeypatch):
    real_run = Servable.run
    monkeypatch.setattr(Servable, "run",  # a model slow enough for requests to pile up
                        lambda *a: time.sleep(0.05) or real_run(*a))
    requests = [images(1 + i % 3, seed=100 + i).tolist() for i in range(24)]
    answers = {}
    for batching in (False, True):
        app = server.create_app(str(model_base), batching=batching, max_batch_size=8,
                                 batch_timeout_ms=20, poll_interval_s=0)
        with running(app) as port, httpx.Client(timeout=30) as http:
            base_url = f"http://127.0.0.1:{port}/v1/models/mnist"
            assert http.get(base_url).status_code == 200
            with ThreadPoolExecutor(12) as pool:
                answers[batching] = list(pool.map(
                    lambda x, u=base_url: http.post(u + ":predict", json={"instances": x}).json(),
                    requests))
        if batching:
            stats = app.state.server.batcher.stats
            assert stats.requests == 24 and stats.batches < 16 and stats.largest > 3
    for off, on in zip(answers[False], answers[True], strict=True):
        off, on = off["predictions"], on["predictions"]
        assert [p["classes"] for p in off] == [p["classes"] for p in on]
        np.testing.assert_allclose([p["probabilities"] for p in on],
                                   [p["probabilities"] for p in off], rtol=1e-5, atol=1e-7)


def test_defaults_are_safe():
    import inspect

    params = inspect.signature(server.serve).parameters
    assert params["host"].default == "127.0.0.1" and params["port"].default == 8501
    with pytest.raises(ValueError):
        server.create_app(".", max_batch_size=0)
    with pytest.raises(ValueError):
        server.create_app(".", request_timeout_s=0)
