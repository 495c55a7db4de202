"""Samples/s of one worker against two MultiWorkerMirroredStrategy workers on 127.0.0.1, on this machine.

    python benchmarks/distribution.py [--epochs 3] [--steps 30] [--batch-size 64]

Both runs train ``mlp_mnist`` on generated MNIST-shaped data with the same global batch (two workers
take half each) and the same custom multi-worker loop, so the ratio isolates what a second worker process
buys on this host. Two workers on one machine share its cores: on a 2-core machine expect no speed-up
(the benchmark reports honestly what it measures, with ``os.cpu_count()``); real gains need separate
machines or devices. Samples/s is what the run records in ``metrics.json`` (time inside ``fit``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run(workers: int, folder: Path, data: Path, args) -> float:
    ports, run_dir = free_ports(workers), folder / f"workers-{workers}"
    procs = []
    try:
        for index in range(workers):
            config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                      "task": {"type": "worker", "index": index}}
            env = {**os.environ, "TF_CONFIG": json.dumps(config), "TF_CPP_MIN_LOG_LEVEL": "2"}
            procs.append(subprocess.Popen(
                [str(Path(sys.executable).with_name("kerasapps")), "train", "mlp_mnist", "--strategy", "multi_worker",
                 "--data-dir", str(data), "--run-dir", str(run_dir), "--epochs", str(args.epochs),
                 "--steps-per-epoch", str(args.steps), "--batch-size", str(args.batch_size // workers),
                 ],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True))
        for proc in procs:
            _, err = proc.communicate(timeout=args.timeout)
            if proc.returncode:
                raise SystemExit(f"worker failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return json.loads((run_dir / "metrics.json").read_text())["stages"]["train"]["samples_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch (split over the workers)")
    parser.add_argument("--timeout", type=int, default=300)
    args = parser.parse_args()
    from conftest import make_tiny_mnist

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_tiny_mnist(folder / "data", n_train=args.steps * args.batch_size, n_test=200)
        one = run(1, folder, folder / "data", args)
        two = run(2, folder, folder / "data", args)
    print(f"cpu cores: {os.cpu_count()}  global batch {args.batch_size}, {args.epochs} epochs x {args.steps} steps")
    print(f"1 worker : {one:10.1f} samples/s")
    print(f"2 workers: {two:10.1f} samples/s")
    print(f"ratio 2/1: {two / one:.2f}")


if __name__ == "__main__":
    main()
