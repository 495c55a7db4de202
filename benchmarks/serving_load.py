"""Load test for kerasapps.serving, REST and gRPC, against in-process calls of the same signature.

Starts ``kerasapps.serving.serve`` in a subprocess on free 127.0.0.1 ports (REST and ``grpc_port``), once
with dynamic batching off and once on, and sends one-instance predict requests from 1, 8 and 32
concurrent client threads: REST through keep-alive ``http.client`` connections (the lightest client the
standard library has), gRPC through TensorFlow Serving's own ``PredictionServiceStub`` (one channel per
client). The baseline is the same SavedModel signature called in this process from the same number of
threads, measured in the same run. Each cell is the median over ``--rounds`` rounds; the servers' answers
are checked against the in-process answer first, failed requests (any non-200 / non-OK) are counted,
and the server's RSS is read from /proc before and after the load. Every level is bounded by
``--requests`` and ``--level-seconds``; the script stops by itself.

    python benchmarks/serving_load.py --synthetic           # builds a tiny model
    python benchmarks/serving_load.py --model-base saved_models --model mnist_transfer

The targets it checks (issue 19): at one client, REST p50 at most 1.5x and gRPC p50 at most 1.3x the
in-process p50; at 32 clients with batching on, throughput at least 0.6x the in-process throughput.
Client threads and the server share this machine's cores, so on a small box the clients take CPU from
the server: treat the ratios as an upper bound of the serving overhead.
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

TARGETS = {"rest_p50": 1.5, "grpc_p50": 1.3, "batched_rps": 0.6}


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


def same_answer(got, expected: np.ndarray) -> None:
    """A served value against the in-process one (strings exactly, numbers to float32 round-off)."""
    expected = np.asarray(expected)
    if expected.dtype == object or expected.dtype.kind in "SU":
        text = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])
        assert np.array_equal(text(np.asarray(got, dtype=object)), text(expected)), (got, expected)
    else:
        np.testing.assert_allclose(np.asarray(got, dtype=float), expected.astype(float), rtol=1e-5, atol=1e-6)


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


def run_clients(concurrency: int, total: int, seconds: float, make_call) -> tuple[dict, int]:
    """``total`` calls from ``concurrency`` threads, each with its own ``make_call()`` (a connection);
    returns ({n, rps, p50, p99}, failures)."""
    lock = threading.Lock()
    issued, failures, latencies = [0], [0], []
    stop_at = time.perf_counter() + seconds
    ready = threading.Barrier(concurrency + 1)

    def worker():
        call, close = make_call()
        mine, failed = [], 0
        ready.wait()
        while True:
            with lock:
                if issued[0] >= total or time.perf_counter() > stop_at:
                    break
                issued[0] += 1
            started = time.perf_counter()
            try:
                ok = call()
            except Exception:
                ok = False
                close()
                call, close = make_call()  # reconnect
            if ok:
                mine.append(time.perf_counter() - started)
            else:
                failed += 1
        close()
        with lock:
            latencies.extend(mine)
            failures[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    ready.wait()  # connections are open: time only the calls
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    stats = {"n": len(lat), "rps": len(lat) / elapsed if elapsed else 0.0,
             "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
             "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan")}
    return stats, failures[0]


def rest_client(port: int, path: str, body: bytes):
    headers = {"Content-Type": "application/json"}

    def make():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def call():
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status == 200

        return call, conn.close

    return make


def grpc_client(port: int, request):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    def make():
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def call():
            return bool(stub.Predict(request, timeout=60).outputs)

        return call, channel.close

    return make


def start_server(model_base: str, model: str, port: int, grpc_port: int, batching: bool, args):
    code = ("import logging; logging.basicConfig(level=logging.WARNING)\n"
            "from kerasapps.serving.server import serve\n"
            f"serve({model_base!r}, port={port}, grpc_port={grpc_port}, log_level='warning', access_log=False, "
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


def check_answers(port: int, grpc_port: int, model: str, body: bytes, request, expected: dict) -> None:
    """Both protocols compute what the in-process call computes, before anything is timed."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", f"/v1/models/{model}:predict", body=body, headers={"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())["predictions"][0]
    conn.close()
    got = answer if len(expected) > 1 else {next(iter(expected)): answer}
    for key, value in expected.items():
        same_answer(got[key], value[0])
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    for key, value in expected.items():
        same_answer(tf.make_ndarray(response.outputs[key]), value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-base", default="saved_models")
    parser.add_argument("--model", default="mnist_transfer")
    parser.add_argument("--synthetic", action="store_true",
                        help="build a tiny 28x28 uint8 classifier into a temp dir and serve it")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=400, help="requests per level")
    parser.add_argument("--level-seconds", type=float, default=15.0, help="time cap per level")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each cell is their median")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-ms", type=float, default=2.0)
    parser.add_argument("--start-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    tmp = None
    model_base = args.model_base
    if args.synthetic:
        tmp = tempfile.TemporaryDirectory(prefix="serving_load_")
        model_base = tmp.name
        build_synthetic(model_base, args.model)
    version_dir = latest_version_dir(model_base, args.model)
    if version_dir is None:
        raise SystemExit(f"No export of {args.model!r} under {model_base!r}; export one or pass --synthetic")

    fn = tf.saved_model.load(version_dir).signatures["serving_default"]
    instance = sample_instance(fn.structured_input_signature[1], np.random.default_rng(0))
    body = json.dumps({"instances": [{k: to_json_value(v) for k, v in instance.items()}]}).encode()
    tensors = {k: tf.constant(v[None]) for k, v in instance.items()}
    expected = {k: v.numpy() for k, v in fn(**tensors).items()}
    request = predict_pb2.PredictRequest()
    request.model_spec.name = args.model
    for key, value in instance.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value[None]))

    def in_process():
        return (lambda: fn(**tensors) is not None), (lambda: None)

    cells: dict[tuple, list] = {}  # (mode, clients) -> [(stats, failed)] over rounds
    memory = {}
    path = f"/v1/models/{args.model}:predict"
    for round_index in range(args.rounds):
        for concurrency in args.concurrency:  # the baseline, in each round beside the servers
            cells.setdefault(("in-process", concurrency), []).append(
                run_clients(concurrency, args.requests, args.level_seconds, in_process))
        for batching in ((False, True) if round_index % 2 == 0 else (True, False)):  # neither always goes first
            suffix = ", batching on" if batching else ""
            port, grpc_port = free_port(), free_port()
            proc = start_server(os.path.abspath(model_base), args.model, port, grpc_port, batching, args)
            try:
                check_answers(port, grpc_port, args.model, body, request, expected)
                run_clients(4, 40, 10, rest_client(port, path, body))  # warm-up
                run_clients(4, 40, 10, grpc_client(grpc_port, request))
                before = rss_mib(proc.pid)
                for concurrency in args.concurrency:
                    for mode, make in ((f"REST{suffix}", rest_client(port, path, body)),
                                       (f"gRPC{suffix}", grpc_client(grpc_port, request))):
                        cells.setdefault((mode, concurrency), []).append(
                            run_clients(concurrency, args.requests, args.level_seconds, make))
                memory.setdefault(suffix or ", batching off", []).append((before, rss_mib(proc.pid)))
            finally:
                stop_server(proc)
    if tmp is not None:
        tmp.cleanup()

    def median(mode, concurrency, key):
        return float(np.median([stats[key] for stats, _ in cells[(mode, concurrency)]]))

    print(f"\nkerasapps.serving load test: model {args.model!r}, one instance per request, {os.cpu_count()} CPUs, "
          f"max_batch_size={args.max_batch_size}, batch_timeout_ms={args.batch_timeout_ms:g}, "
          f"medians of {args.rounds} rounds\n")
    print("| mode | clients | requests | failed | req/s | p50 ms | p99 ms | req/s vs in-process | p50 vs in-process |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    modes = ["in-process", "REST", "gRPC", "REST, batching on", "gRPC, batching on"]
    for mode in modes:
        for concurrency in args.concurrency:
            rps, p50 = median(mode, concurrency, "rps"), median(mode, concurrency, "p50")
            base_rps, base_p50 = median("in-process", concurrency, "rps"), median("in-process", concurrency, "p50")
            n = sum(stats["n"] for stats, _ in cells[(mode, concurrency)])
            failed = sum(f for _, f in cells[(mode, concurrency)])
            print(f"| {mode} | {concurrency} | {n} | {failed} | {rps:.0f} | {p50:.2f} "
                  f"| {median(mode, concurrency, 'p99'):.2f} | {rps / base_rps:.2f}x | {p50 / base_p50:.2f}x |")
    print()
    lowest, highest = min(args.concurrency), max(args.concurrency)
    ratios = {
        "rest_p50": median("REST", lowest, "p50") / median("in-process", lowest, "p50"),
        "grpc_p50": median("gRPC", lowest, "p50") / median("in-process", lowest, "p50"),
        "batched_rps": min(median("REST, batching on", highest, "rps"),
                           median("gRPC, batching on", highest, "rps")) / median("in-process", highest, "rps"),
    }
    labels = {"rest_p50": f"REST p50 at {lowest} client(s) vs in-process: at most",
              "grpc_p50": f"gRPC p50 at {lowest} client(s) vs in-process: at most",
              "batched_rps": f"throughput at {highest} clients, batching on (lower of REST, gRPC) vs in-process: "
                             "at least"}
    for key, ratio in ratios.items():
        met = ratio <= TARGETS[key] if key.endswith("p50") else ratio >= TARGETS[key]
        print(f"- {labels[key]} {TARGETS[key]}x: {ratio:.2f}x ({'met' if met else 'missed'})")
    for mode, readings in memory.items():
        print(f"- server RSS{mode}: " + ", ".join(f"{a:.0f} -> {b:.0f} MiB" for a, b in readings))
    total_failed = sum(f for runs in cells.values() for _, f in runs)
    print(f"- failed requests: {total_failed}")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
