"""Load test for kerasapps.serving over loopback, against an in-process baseline.

Starts ``kerasapps.serving.serve`` in a subprocess on a free 127.0.0.1 port (once with
dynamic batching off, once on), sends single-instance ``:predict`` requests from 1, 8
and 32 concurrent client threads (keep-alive ``http.client`` connections, the lightest
client the standard library has), and compares throughput and p50/p99 latency with
calling the same SavedModel signature in this process at the same concurrency, measured
in the same run. Counts failed requests (any non-200 or transport error) and reads the
server's RSS from /proc before and after the load. Every level is bounded by
``--requests`` and ``--level-seconds``; the script stops by itself.

    python benchmarks/serving_load.py --synthetic           # builds a tiny model
    python benchmarks/serving_load.py --model-base saved_models --model mnist_transfer

Client threads and the server share this machine's cores, so on a small box the client
takes CPU from the server: treat ratios as an upper bound of the serving overhead.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_synthetic(model_base: str, name: str) -> None:
    """The tests' tiny model: uint8 [None, 28, 28] 'images' -> probabilities, classes."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28), name="pixels")
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(128, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8, name="images")])
    def serve(images):
        probabilities = model(tf.cast(images, tf.float32) / 255.0)
        return {"probabilities": probabilities, "classes": tf.argmax(probabilities, axis=-1)}

    archive.add_endpoint("serving_default", serve)
    model_dir = os.path.join(model_base, name)
    os.makedirs(model_dir, exist_ok=True)
    archive.write_out(os.path.join(model_dir, ".tmp-1"), verbose=False)
    os.rename(os.path.join(model_dir, ".tmp-1"), os.path.join(model_dir, "1"))


def latest_version_dir(model_base: str, name: str) -> str | None:
    model_dir = os.path.join(model_base, name)
    if not os.path.isdir(model_dir):
        return None
    versions = [int(d) for d in os.listdir(model_dir) if d.isdigit()
                and os.path.isfile(os.path.join(model_dir, d, "saved_model.pb"))]
    return os.path.join(model_dir, str(max(versions))) if versions else None


def sample_instance(specs: dict, rng) -> dict:
    """One random instance per input, from the signature's TensorSpecs."""
    import tensorflow as tf

    instance = {}
    for name, spec in specs.items():
        dims = spec.shape.as_list()[1:]
        if any(d is None for d in dims):
            raise SystemExit(f"Input {name!r} has unknown non-batch dims {spec.shape}; "
                             "this benchmark needs fixed ones")
        if spec.dtype == tf.string:
            instance[name] = np.full(dims, b"the quick brown fox", dtype=object)
        elif spec.dtype.is_integer:
            high = min(256, spec.dtype.max + 1)
            instance[name] = rng.integers(0, high, dims).astype(spec.dtype.as_numpy_dtype)
        elif spec.dtype.is_bool:
            instance[name] = rng.integers(0, 2, dims).astype(bool)
        else:
            instance[name] = rng.random(dims).astype(spec.dtype.as_numpy_dtype)
    return instance


def to_json_value(array: np.ndarray):
    if array.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array).tolist()
    return array.tolist()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def summarize(latencies: list[float], elapsed: float) -> dict:
    lat = np.array(latencies) * 1000
    return {"n": len(lat), "rps": len(lat) / elapsed if elapsed else 0.0,
            "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan")}


def run_clients(concurrency: int, total: int, seconds: float, one_call) -> tuple[dict, int]:
    """``total`` calls of ``one_call(state)`` from ``concurrency`` threads; (stats, failures)."""
    lock = threading.Lock()
    issued = [0]
    latencies: list[float] = []
    failures = [0]
    stop_at = time.perf_counter() + seconds

    def worker():
        state = {}
        mine = []
        while True:
            with lock:
                if issued[0] >= total or time.perf_counter() > stop_at:
                    break
                issued[0] += 1
            started = time.perf_counter()
            try:
                ok = one_call(state)
            except Exception:
                ok = False
                state.clear()  # reconnect next time
            if ok:
                mine.append(time.perf_counter() - started)
            else:
                with lock:
                    failures[0] += 1
        with lock:
            latencies.extend(mine)
        conn = state.get("conn")
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summarize(latencies, time.perf_counter() - started), failures[0]


def http_call(port: int, path: str, body: bytes):
    headers = {"Content-Type": "application/json"}

    def call(state):
        conn = state.get("conn")
        if conn is None:
            conn = state["conn"] = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status == 200

    return call


def start_server(model_base: str, model: str, port: int, batching: bool, args):
    code = ("import logging; logging.basicConfig(level=logging.WARNING)\n"
            "from kerasapps.serving.server import serve\n"
            f"serve({model_base!r}, port={port}, log_level='warning', access_log=False, "
            f"batching={batching}, max_batch_size={args.max_batch_size}, "
            f"batch_timeout_ms={args.batch_timeout_ms})\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", f"/v1/models/{model}")  # loads the model
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("server did not become ready in time")


def stop_server(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-base", default="saved_models")
    parser.add_argument("--model", default="mnist_transfer")
    parser.add_argument("--synthetic", action="store_true",
                        help="build a tiny 28x28 uint8 classifier into a temp dir and serve it")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=400, help="requests per level")
    parser.add_argument("--level-seconds", type=float, default=15.0, help="time cap per level")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-ms", type=float, default=5.0)
    parser.add_argument("--start-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    import tensorflow as tf

    tmp = None
    model_base = args.model_base
    if args.synthetic:
        tmp = tempfile.TemporaryDirectory(prefix="serving_load_")
        model_base = tmp.name
        build_synthetic(model_base, args.model)
    version_dir = latest_version_dir(model_base, args.model)
    if version_dir is None:
        raise SystemExit(f"No export of {args.model!r} under {model_base!r}; export one or "
                         "pass --synthetic")

    fn = tf.saved_model.load(version_dir).signatures["serving_default"]
    instance = sample_instance(fn.structured_input_signature[1], np.random.default_rng(0))
    body = json.dumps({"instances": [{k: to_json_value(v) for k, v in instance.items()}]}).encode()
    tensors = {k: tf.constant(v[None]) for k, v in instance.items()}
    expected = {k: v.numpy() for k, v in fn(**tensors).items()}

    rows = []
    for concurrency in args.concurrency:  # in-process baseline, same calls, same threads
        stats, failed = run_clients(concurrency, args.requests, args.level_seconds,
                                    lambda state: fn(**tensors) is not None)
        rows.append(("in-process", concurrency, stats, failed))
    baseline = {c: s for _, c, s, _ in rows}

    memory = {}
    path = f"/v1/models/{args.model}:predict"
    for batching in (False, True):
        mode = "batching on" if batching else "batching off"
        port = free_port()
        proc = start_server(os.path.abspath(model_base), args.model, port, batching, args)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            answer = json.loads(conn.getresponse().read())["predictions"][0]
            conn.close()
            got = answer if len(expected) > 1 else {next(iter(expected)): answer}
            for key, value in expected.items():  # sanity: the server computes the same
                np.testing.assert_allclose(np.array(got[key], dtype=float),
                                           value[0].astype(float), rtol=1e-5, atol=1e-6)
            run_clients(4, 40, 10, http_call(port, path, body))  # warm-up
            before = rss_mib(proc.pid)
            for concurrency in args.concurrency:
                stats, failed = run_clients(concurrency, args.requests, args.level_seconds,
                                            http_call(port, path, body))
                rows.append((mode, concurrency, stats, failed))
            memory[mode] = (before, rss_mib(proc.pid))
        finally:
            stop_server(proc)
    if tmp is not None:
        tmp.cleanup()

    print(f"\nkerasapps.serving load test: model {args.model!r} ({version_dir}), one instance "
          f"per request, {os.cpu_count()} CPUs, max_batch_size={args.max_batch_size}, "
          f"batch_timeout_ms={args.batch_timeout_ms:g}\n")
    print("| mode | clients | requests | failed | req/s | p50 ms | p99 ms "
          "| req/s vs in-process | p50 vs in-process |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode, concurrency, stats, failed in rows:
        base = baseline[concurrency]
        print(f"| {mode} | {concurrency} | {stats['n']} | {failed} | {stats['rps']:.0f} "
              f"| {stats['p50']:.2f} | {stats['p99']:.2f} | {stats['rps'] / base['rps']:.2f}x "
              f"| {stats['p50'] / base['p50']:.1f}x |")
    print()
    for mode, (before, after) in memory.items():
        print(f"- server RSS, {mode}: {before:.0f} MiB before load, {after:.0f} MiB after")
    total_failed = sum(failed for *_, failed in rows)
    print(f"- failed requests: {total_failed}")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
