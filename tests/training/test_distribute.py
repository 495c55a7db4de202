"""Distribution: strategy choice and refusals, mirrored == single device, 2 workers on 127.0.0.1 with kill + resume.

Everything that needs a fresh TensorFlow runtime (logical CPU devices, collective ops) runs in a
subprocess with a timeout, and every process started here is killed in ``finally``.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kerasapps.core.errors import RunError, UsageError
from kerasapps.training import distribute

KERASAPPS = [str(Path(sys.executable).with_name("kerasapps"))]
TINY = ["--set", "units=32", "--batch-size", "16"]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "KERASAPPS_DATA_DIR")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def test_unknown_and_parameter_server_strategies_are_refused_in_one_line():
    with pytest.raises(UsageError, match="must be one of auto, default"):
        distribute.get_strategy("horovod")
    with pytest.raises(UsageError) as refused:
        distribute.get_strategy("parameter_server")
    assert "\n" not in str(refused.value) and "not supported" in str(refused.value)


def test_tpu_without_a_tpu_exits_1_with_one_line(tiny_data_dir, tmp_path):
    with pytest.raises(RunError, match="no TPU found"):
        distribute.get_strategy("tpu")
    done = subprocess.run(KERASAPPS + ["train", "mlp_mnist", "--strategy", "tpu", "--data-dir", tiny_data_dir,
                                       "--run-dir", tmp_path / "run"],
                          capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--strategy tpu: no TPU found" in errors[0], done.stderr
    assert not (tmp_path / "run").exists()


MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import kerasapps
    data, out = sys.argv[1], sys.argv[2]
    hp = {"epochs": 3, "seed": 3}
    kerasapps.train("mlp_mnist", run_dir=out + "/single", data_dir=data, set=["units=32"],
                    **hp, batch_size=32, verbose=0)
    kerasapps.train("mlp_mnist", run_dir=out + "/mirrored", data_dir=data, set=["units=32"],
                    **hp, batch_size=16, strategy="mirrored", verbose=0)
""")


def test_mirrored_over_two_logical_cpus_matches_single_device(tiny_data_dir, tmp_path):
    """Per-replica batch 16 on 2 replicas == batch 32 on one device: losses agree to 1e-4 (relative)."""
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    done = subprocess.run([sys.executable, str(script), str(tiny_data_dir), str(tmp_path)], capture_output=True,
                          text=True, timeout=150, env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    strategy = json.loads((tmp_path / "mirrored" / "manifest.json").read_text())["strategy"]
    assert strategy["name"] == "mirrored" and strategy["replicas"] == 2 and len(strategy["devices"]) == 2
    single = _csv(tmp_path / "single" / "logs" / "train.csv")
    mirrored = _csv(tmp_path / "mirrored" / "logs" / "train.csv")
    assert len(single) == len(mirrored) == 3
    for a, b in zip(single, mirrored):
        for key in ("loss", "val_loss", "accuracy"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-4, abs=1e-6), (key, a, b)
    assert float(single[-1]["loss"]) < float(single[0]["loss"])  # it learned, so the comparison means something


def _launch(ports, run_dir, data_dir, logs, extra):
    procs = []
    for index in range(len(ports)):
        config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        handle = open(logs / f"worker{index}-{time.monotonic_ns()}.log", "w")
        procs.append(subprocess.Popen(
            KERASAPPS + ["train", "mlp_mnist", "--strategy", "multi_worker", "--data-dir", str(data_dir),
                         "--run-dir", str(run_dir), *extra],
            stdout=handle, stderr=subprocess.STDOUT, env=_env(TF_CONFIG=json.dumps(config)),
            start_new_session=True))
        handle.close()
    return procs


def _kill(procs):
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_two_workers_train_and_resume_after_a_worker_is_killed(tiny_data_dir, tmp_path):
    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    epochs = 6
    options = ["--epochs", str(epochs), "--steps-per-epoch", "8", "--backup-steps", "2", *TINY]
    procs = []
    try:
        procs = _launch(_free_ports(2), run_dir, tiny_data_dir, logs, options)
        backup = run_dir / "backup" / "train" / "checkpoint"
        deadline = time.monotonic() + 90
        while not backup.is_file() and time.monotonic() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.05)
        assert backup.is_file(), "no backup appeared: " + "".join(p.read_text()[-1500:] for p in logs.iterdir())
        os.killpg(procs[1].pid, signal.SIGKILL)  # a worker dies mid-run; the job is then restarted as a whole
        procs[1].wait(timeout=10)
        _kill(procs)
        state = json.loads((run_dir / "state.json").read_text())
        assert state["status"] == "running"

        procs = _launch(_free_ports(2), run_dir, tiny_data_dir, logs, ["--resume"])
        codes = [p.wait(timeout=120) for p in procs]
        outputs = {p.name: p.read_text() for p in logs.iterdir()}
        assert codes == [0, 0], outputs
    finally:
        _kill(procs)
    restored = [text for text in outputs.values() if "restored backup" in text and "run directory:" in text]
    assert len(restored) == 2, outputs  # both restarted workers restored from the chief's backup
    rows = _csv(run_dir / "logs" / "train.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    strategy = json.loads((run_dir / "manifest.json").read_text())["strategy"]
    assert strategy["name"] == "multi_worker" and strategy["replicas"] == 2 and strategy["workers"] == 2
    assert json.loads((run_dir / "state.json").read_text())["status"] == "completed"
    assert (run_dir / "model.keras").is_file() and not (run_dir / "backup").exists()
    tests = {line for text in outputs.values() for line in text.splitlines() if line.startswith("test:")}
    assert len(tests) == 1, tests  # both workers report the same global test metrics


SHARDED = textwrap.dedent("""
    import dataclasses, json, os, sys
    import numpy as np
    import tensorflow as tf
    import kerasapps
    from kerasapps.core.recipe import Splits
    from kerasapps.data.files import Examples, Reader

    folder, run_dir, trace = sys.argv[1], sys.argv[2], sys.argv[3]

    @dataclasses.dataclass(frozen=True)
    class TracingReader(Reader):  # a user's reader: notes every file it opens in this worker's trace
        trace: str = ""

        def read(self, path):
            def note(value):
                with open(self.trace, "a") as handle:
                    handle.write(value.numpy().decode() + "\\n")
                return value
            path = tf.py_function(note, [path], tf.string)
            path.set_shape([])
            return super().read(path)

    def load(hp, ctx):
        listing = json.load(open(os.path.join(folder, "files.json")))
        paths = np.array([os.path.join(folder, name) for name, _ in listing])
        labels = np.array([label for _, label in listing], np.int64)
        train = Examples(paths[:-32], TracingReader("image", (28, 28), trace=trace))
        test = Examples(paths[-32:], Reader("image", (28, 28)))  # read by every worker: not traced
        return Splits({"train": (train, labels[:-32]), "test": (test, labels[-32:])}, meta={"num_classes": 10})

    recipe = dataclasses.replace(kerasapps.get_recipe("mlp_mnist"), name="mlp_traced", load_data=load)
    kerasapps.train(recipe, run_dir=run_dir, epochs=2, batch_size=8, seed=5, strategy="multi_worker", verbose=0,
                    set={"units": 16, "validation_split": 0.0, "early_stopping": False})
""")


def test_two_workers_read_disjoint_files_that_make_each_global_batch(tiny_data_dir, tmp_path):
    """Each worker opens only its half of every global batch: the two traces are disjoint within an epoch and
    are exactly the halves of the epoch orders a single device would read."""
    import numpy as np
    from PIL import Image

    from kerasapps.data.pipelines import epoch_order

    digits = np.load(tiny_data_dir / "mnist" / "mnist.npz")
    folder = tmp_path / "digits"
    folder.mkdir()
    listing = []
    for i in range(32 + 100):  # 100 training files: 6 whole global batches of 16 per epoch, 4 left out
        Image.fromarray(digits["x_train"][i]).save(folder / f"{i:03d}.png")
        listing.append([f"{i:03d}.png", int(digits["y_train"][i])])
    (folder / "files.json").write_text(json.dumps(listing))
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED)
    ports, procs = _free_ports(2), []
    try:
        for index in range(2):
            config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                      "task": {"type": "worker", "index": index}}
            procs.append(subprocess.Popen([sys.executable, str(script), str(folder), str(tmp_path / "run"),
                                           str(tmp_path / f"trace{index}.txt")], stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True, env=_env(TF_CONFIG=json.dumps(config)),
                                          start_new_session=True))
        outputs = [proc.communicate(timeout=150)[0] for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0], outputs
    finally:
        _kill(procs)
    reads = [(tmp_path / f"trace{i}.txt").read_text().split() for i in range(2)]
    names = [Path(path).name for path in (folder / name for name, _ in listing[:100])]
    expected = [[], []]
    for epoch in range(2):
        order = epoch_order(100, 5, 0, epoch, 96).reshape(6, 16)
        for worker in range(2):
            expected[worker] += [names[i] for i in order[:, worker * 8:(worker + 1) * 8].reshape(-1)]
        assert not set(expected[0][-48:]) & set(expected[1][-48:])  # disjoint within the epoch
    assert sorted(Path(p).name for p in reads[0]) == sorted(expected[0])
    assert sorted(Path(p).name for p in reads[1]) == sorted(expected[1])
    rows = _csv(tmp_path / "run" / "logs" / "train.csv")
    assert len(rows) == 2 and all(np.isfinite(float(r["loss"])) for r in rows)


def test_two_workers_train_with_the_practice_keys_and_agree(tiny_data_dir, tmp_path):
    """EMA (validation swaps it in through the custom loop's test hooks, the end leaves it in the model), class
    weights, label smoothing, AdamW and early stopping in the multi-worker loop: both workers finish with the same
    global test metrics and the chief saves the averaged weights."""
    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    keys = ["--set", "ema=0.9", "--set", "class_weight=balanced", "--set", "label_smoothing=0.1", "--set",
            "optimizer=adamw", "--set", "early_stopping=true"]
    procs = []
    try:
        procs = _launch(_free_ports(2), run_dir, tiny_data_dir, logs, ["--epochs", "2", "--steps-per-epoch", "4",
                                                                       *TINY, *keys])
        codes = [p.wait(timeout=150) for p in procs]
        outputs = {p.name: p.read_text() for p in logs.iterdir()}
        assert codes == [0, 0], outputs
    finally:
        _kill(procs)
    tests = {line for text in outputs.values() for line in text.splitlines() if line.startswith("test:")}
    assert len(tests) == 1, tests
    metrics = json.loads((run_dir / "metrics.json").read_text())["stages"]["train"]
    assert metrics["early_stopping"]["best_epoch"] is not None


def test_gradient_accumulation_under_a_replicated_strategy_is_one_line(tiny_data_dir, tmp_path):
    done = subprocess.run(KERASAPPS + ["train", "mlp_mnist", "--strategy", "mirrored", "--smoke", "--data-dir",
                                       str(tiny_data_dir), "--run-dir", str(tmp_path / "run"), "--set",
                                       "gradient_accumulation=2"], capture_output=True, text=True, timeout=120,
                          env=_env())
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "keras-team/keras#20582" in lines[0]
    assert not (tmp_path / "run").exists()
