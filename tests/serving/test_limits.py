"""No request can exhaust the server: cancelled model calls, bounded calls in flight, bounded values.

Each test runs a real server on 127.0.0.1 and checks, after the abuse, that a good request is answered
within a second and that the capacity (model-call slots, resident memory) came back.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("uvicorn")

from kerasapps.serving.server import create_app  # noqa: E402


def export_spinner(model_dir, version=1):
    """'serving_default': x float [None, 4] -> y = 2x (quick); 'spin': steps int32 -> a loop of that many
    64x64 matmuls (about 10 us each: 10**9 steps would run for hours); 'check': x must be >= 0."""
    weights = tf.Variable(tf.eye(64) * 0.5)
    archive = keras.export.ExportArchive()
    archive.track(weights)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def double(x):
        return {"y": 2.0 * x}

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="steps")])
    def spin(steps):
        def body(i, acc):
            return i + 1, tf.tanh(acc @ weights + 0.1)

        _, acc = tf.while_loop(lambda i, acc: i < steps, body, [tf.constant(0), tf.zeros([64, 64])])
        return {"total": tf.reduce_sum(acc)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def check(x):
        with tf.control_dependencies([tf.debugging.assert_non_negative(x, message="x must be >= 0")]):
            return {"y": tf.sqrt(x)}

    archive.add_endpoint("serving_default", double)
    archive.add_endpoint("spin", spin)
    archive.add_endpoint("check", check)
    os.makedirs(model_dir, exist_ok=True)
    archive.write_out(os.path.join(model_dir, str(version)), verbose=False)


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("limits") / "models"
    export_spinner(base / "spinner")
    return base


def post(url, body, timeout=10.0, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def good_request(base_url):
    started = time.monotonic()
    status, body = post(f"{base_url}/v1/models/spinner:predict", {"instances": [[1, 2, 3, 4]]}, timeout=5)
    elapsed = time.monotonic() - started
    assert status == 200 and body == {"predictions": [[2.0, 4.0, 6.0, 8.0]]}, body
    return elapsed


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


SPIN_FOREVER = {"signature_name": "spin", "inputs": {"steps": 10**9}}


def test_a_timed_out_model_call_is_cancelled_and_its_capacity_comes_back(model_base, serving):
    app = create_app(str(model_base), poll_interval_s=0, request_timeout_s=1.0, max_in_flight=2, max_queued=0)
    server = app.state.server
    with serving(app) as (url, _):
        good_request(url)
        started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:  # both slots taken by calls that would run for hours
            answers = list(pool.map(lambda _: post(f"{url}/v1/models/spinner:predict", SPIN_FOREVER), range(2)))
        assert all(status == 504 for status, _ in answers), answers
        assert "Deadline exceeded" in answers[0][1]["error"]
        assert time.monotonic() - started < 3.0
        # The TensorFlow calls themselves stopped: both slots are free again, not still spinning.
        assert wait_until(lambda: server.slots.running == 0, 1.0), server.slots.running
        assert good_request(url) < 1.0


def test_calls_past_the_queue_get_503_and_the_server_stays_responsive(model_base, serving):
    app = create_app(str(model_base), poll_interval_s=0, request_timeout_s=1.5, max_in_flight=1, max_queued=1)
    with serving(app) as (url, _):
        good_request(url)
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(post, f"{url}/v1/models/spinner:predict", SPIN_FOREVER) for _ in range(6)]
            time.sleep(0.3)
            # Status and metadata run on their own threads: a busy model never makes them wait.
            started = time.monotonic()
            with urllib.request.urlopen(f"{url}/v1/models/spinner", timeout=5) as response:
                assert response.status == 200
            assert time.monotonic() - started < 1.0
            answers = [f.result() for f in futures]
        statuses = sorted(status for status, _ in answers)
        assert statuses.count(503) == 4 and statuses.count(504) == 2, statuses
        busy = next(body for status, body in answers if status == 503)
        assert "busy" in busy["error"] and "max_queued 1" in busy["error"]
        assert good_request(url) < 1.0


def test_values_are_counted_before_they_are_allocated(model_base, serving):
    app = create_app(str(model_base), poll_interval_s=0, max_request_elements=1000)
    with serving(app) as (url, _):
        good_request(url)
        before = rss_mb()
        rows = [[0.5, 1.5, 2.5, 3.5]] * 300  # 1,200 values: over the limit of 1,000
        status, body = post(f"{url}/v1/models/spinner:predict", {"instances": rows})
        assert status == 400 and "1000" in body["error"], body
        huge = b'{"instances": [' + b",".join([b"[0,0,0,0]"] * 200_000) + b"]}"  # 800k values in 2 MB
        status, body = post(f"{url}/v1/models/spinner:predict", huge)
        assert status == 400 and "1000" in body["error"], body
        assert good_request(url) < 1.0
        assert rss_mb() - before < 50


def test_an_op_failure_is_a_400_with_the_ops_own_message(model_base, serving):
    app = create_app(str(model_base), poll_interval_s=0)
    with serving(app) as (url, _):
        status, body = post(f"{url}/v1/models/spinner:predict", {"signature_name": "check", "instances": [1.0, -4.0]})
        assert status == 400, body
        assert "x must be >= 0" in body["error"], body
        assert not body["error"].startswith("Graph execution error")
        status, body = post(f"{url}/v1/models/spinner:predict", {"signature_name": "check", "instances": [4.0]})
        assert (status, body) == (200, {"predictions": [2.0]})


def test_cancelling_one_call_leaves_a_concurrent_call_running(model_base, serving):
    """Cancellation is per call: a timeout in one thread must never stop another thread's call."""
    from kerasapps.serving.errors import ServingError
    from kerasapps.serving.servable import Cancellation, Servable

    servable = Servable.load("spinner", 1, str(model_base / "spinner" / "1"), ())
    results = {}

    def run(key, steps, cancellation):
        try:
            results[key] = servable.run("spin", {"steps": np.int32(steps)}, cancellation)
        except ServingError as exc:
            results[key] = exc.status

    doomed, survivor = Cancellation(), Cancellation()
    threads = [threading.Thread(target=run, args=("doomed", 10**9, doomed)),
               threading.Thread(target=run, args=("survivor", 100_000, survivor))]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    doomed.cancel()
    for thread in threads:
        thread.join(timeout=30)
    assert results["doomed"] == 504
    assert isinstance(results["survivor"], dict) and np.isfinite(results["survivor"]["total"])


def test_gzip_bodies_are_decoded_and_a_zip_bomb_is_refused_without_expanding(model_base, serving):
    import gzip

    app = create_app(str(model_base), poll_interval_s=0, max_request_bytes=100_000)
    with serving(app) as (url, _):
        body = gzip.compress(json.dumps({"instances": [[1, 2, 3, 4]] * 50}).encode())
        status, answer = post(f"{url}/v1/models/spinner:predict", body, headers={"Content-Encoding": "gzip"})
        assert status == 200 and answer["predictions"][0] == [2.0, 4.0, 6.0, 8.0] and len(answer["predictions"]) == 50
        before = rss_mb()
        bomb = gzip.compress(b" " * 50_000_000)  # 50 MB of spaces in about 50 KB: within the body limit
        assert len(bomb) < 100_000
        status, answer = post(f"{url}/v1/models/spinner:predict", bomb, headers={"Content-Encoding": "gzip"})
        assert status == 413 and "100000" in answer["error"], answer
        assert rss_mb() - before < 50
        status, answer = post(f"{url}/v1/models/spinner:predict", b"{}", headers={"Content-Encoding": "br"})
        assert status == 415 and "br" in answer["error"]
        assert good_request(url) < 1.0


def test_error_bodies_are_utf8_json_and_short_whatever_the_request_held(model_base, serving):
    app = create_app(str(model_base), poll_interval_s=0)
    with serving(app) as (url, _):
        body = b'{"signature_name": "\\udc80' + b"x" * 1_000_000 + b'", "instances": [[1, 2, 3, 4]]}'
        request = urllib.request.Request(f"{url}/v1/models/spinner:predict", data=body)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        raw = caught.value.read()
        assert caught.value.code == 400
        assert caught.value.headers["Content-Type"].startswith("application/json")
        message = json.loads(raw.decode("utf-8", errors="strict"))["error"]
        assert "not found" in message and len(raw) < 3000
