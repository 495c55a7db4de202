"""A frozen stage's seconds per epoch with its features computed once (``cache_features=true``) against the
frozen layers run every batch (``false``), and the accuracy of both, in one run.

    python benchmarks/transfer.py --data-dir ../shared/data [--epochs 3] [--images 1000] [--rounds 1]

Two jobs, each mode in a fresh process, the modes alternating within a round:

* ``mnist_transfer``, stage ``finetune`` (the dense head on the frozen convolutional features, digits 5-9);
* ``image_transfer`` with a ``resnet50`` backbone at 128x128, head stage only (``finetune_blocks=0``), on a
  folder of ``--images`` CIFAR-10 subset images written as PNG files (resized to 128 by the pipeline). No
  ImageNet weights are reachable offline, so its backbone is randomly initialised: its accuracy shows the two
  modes agree, not what pretrained features reach.

Seconds per epoch are the median from the second epoch on (the first of the cached mode also holds no
feature computation: that is reported on its own), from each epoch's wall time inside ``fit``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import json, sys, time
import keras
import kerasapps

name, run_dir, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

class EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []
    def on_train_begin(self, logs=None):
        self.times.append([])
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        self.times[-1].append(time.perf_counter() - self.started)

timer = EpochTimes()
run = kerasapps.train(name, run_dir=run_dir, verbose=0, callbacks=[timer], **settings)
stages = run.metrics["stages"]
print(json.dumps({"epoch_seconds": timer.times, "stages": stages}))
"""


def child(name: str, run_dir: Path, **settings) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(run_dir), json.dumps(settings)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"a benchmark run failed: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_images(data_dir: Path, folder: Path, count: int) -> Path:
    from PIL import Image

    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    arrays = np.load(data_dir / "cifar10_subset" / "cifar10_subset.npz")
    for i in range(count):
        target = folder / classes[int(arrays["y_train"].reshape(-1)[i])]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arrays["x_train"][i]).save(target / f"{i:05d}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = write_images(args.data_dir, tmp / "photos", args.images)
        jobs = {
            "mnist_transfer, stage finetune": (
                "mnist_transfer", -1, {"data_dir": str(args.data_dir.resolve()), "epochs": args.epochs}),
            f"image_transfer resnet50 128x128, {args.images} images, stage head": (
                "image_transfer", 0, {"data": str(photos), "epochs": args.epochs,
                                      "set": {"backbone": "resnet50", "finetune_blocks": "0"}}),
        }
        rows = {label: {"true": [], "false": []} for label in jobs}
        for round_ in range(args.rounds):
            for label, (name, stage, settings) in jobs.items():
                for mode in ("false", "true") if round_ % 2 == 0 else ("true", "false"):
                    settings = {**settings, "set": {**settings.get("set", {}), "cache_features": mode}}
                    result = child(name, tmp / f"{name}-{mode}-{round_}", **settings)
                    stage_name = list(result["stages"])[stage]
                    times = result["epoch_seconds"][stage]
                    metrics = result["stages"][stage_name]
                    rows[label][mode].append({"epoch": statistics.median(times[1:] or times),
                                              "features": metrics.get("features_cached_in_seconds"),
                                              "accuracy": metrics["test"]["accuracy"]})
        print(f"seconds per epoch from the second epoch on (median), {args.epochs} epochs, "
              f"{args.rounds} round(s); 2-core CPU")
        print()
        print("| job | frozen layers every batch: s/epoch | features once: s/epoch | speed-up | "
              "features computed in s | test accuracy (every batch / once) |")
        print("|---|---:|---:|---:|---:|---|")
        for label, modes in rows.items():
            slow = statistics.median(r["epoch"] for r in modes["false"])
            fast = statistics.median(r["epoch"] for r in modes["true"])
            features = statistics.median(r["features"] for r in modes["true"] if r["features"] is not None)
            accuracy = (f"{statistics.median(r['accuracy'] for r in modes['false']):.4f} / "
                        f"{statistics.median(r['accuracy'] for r in modes['true']):.4f}")
            print(f"| {label} | {slow:.2f} | {fast:.3f} | {slow / fast:.1f}x | {features:.1f} | {accuracy} |")


if __name__ == "__main__":
    main()
