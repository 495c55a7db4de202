"""Training from a folder of image files against the same images as in-memory arrays, and memory as files grow.

    python benchmarks/data_sources.py --data-dir ../shared/data [--files 6000] [--epochs 5] [--rounds 3]

MNIST's training digits are written as PNG files in ``train/`` class folders: ``--files`` of them, and ten times
as many (the first digits repeated with a one-pixel shift, so every file is distinct), with a tenth as many test
digits in ``test/``; the baseline reads the same digits as arrays (a data directory of the built-in layout), so
both train and validate on the same number of examples. ``lenet5_mnist`` (a fast model:
the worst case for a file pipeline) trains in a fresh process per setting, the settings in turn for each round:

* throughput: images/s inside ``fit`` (the run's ``samples_per_second``) on ``--files`` files with ``cache``
  none, disk (decoded once before training, then read back; the round's second run finds the cache warm) and
  memory, each as a ratio to the built-in in-memory arrays (the same digits, the same steps) measured in the
  same round, and each process's wall time (the scan, the decoding into a cache and the import included);
* memory: the peak resident memory of a process that trains one epoch over all ``--files`` files and one over
  ten times as many (cache none and disk), and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import json, resource, sys
import kerasapps
data, run_dir, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
data_dir = settings.pop("data_dir", None)
run = kerasapps.train("lenet5_mnist", data=data or None, data_dir=data_dir, run_dir=run_dir, verbose=0, **settings)
stage = run.metrics["stages"]["train"]
print(json.dumps({"samples_per_second": stage["samples_per_second"],
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_digits(data_dir: Path, folder: Path, count: int) -> Path:
    """``count`` training digits and a tenth as many test digits as PNG files in ``train/`` and ``test/`` class
    folders, and the same digits as arrays in ``FOLDER-arrays/mnist/mnist.npz`` (a data directory for the built-in
    set)."""
    from PIL import Image

    arrays = np.load(data_dir / "mnist" / "mnist.npz")
    written = {}
    for split, n in (("train", count), ("test", max(1, count // 10))):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        images, labels = [], []
        for i in range(n):
            image, label = x[i % len(x)], int(y[i % len(x)])
            if i // len(x):
                image = np.roll(image, i // len(x), axis=1)
            target = folder / split / str(label)
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target / f"{i:06d}.png")
            images.append(image)
            labels.append(label)
        written[f"x_{split}"], written[f"y_{split}"] = np.stack(images), np.array(labels, np.uint8)
    arrays_dir = folder.with_name(folder.name + "-arrays") / "mnist"
    arrays_dir.mkdir(parents=True)
    np.savez(arrays_dir / "mnist.npz", **written)
    return folder


def child(data: str, run_dir: Path, cache_dir: Path, **settings) -> dict:
    env = {**os.environ, "KERASAPPS_CACHE_DIR": str(cache_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, data, str(run_dir), json.dumps(settings)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"a benchmark run failed: {out.stderr.strip().splitlines()[-1]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--files", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = write_digits(args.data_dir, tmp / "small", args.files)
        large = write_digits(args.data_dir, tmp / "large", 10 * args.files)
        steps = args.files // 128
        common = {"epochs": args.epochs, "batch_size": 128, "steps_per_epoch": steps}
        settings = [("files, cache=none", "none"), ("files, cache=disk (first run: decodes before training)", "disk"),
                    ("files, cache=disk (warm)", "disk"), ("files, cache=memory", "memory")]
        base, base_seconds = [], []
        ratios, seconds = {label: [] for label, _ in settings}, {label: [] for label, _ in settings}
        for round_ in range(args.rounds):
            cache = tmp / f"cache-{round_}"  # each round starts with no decoded files
            run = child("", tmp / f"memory-{round_}", cache, data_dir=str(small.with_name("small-arrays")), **common)
            base.append(run["samples_per_second"])
            base_seconds.append(run["seconds"])
            for index, (label, mode) in enumerate(settings):
                run = child(str(small), tmp / f"run-{round_}-{index}", cache, set={"cache": mode}, **common)
                ratios[label].append(run["samples_per_second"] / base[-1])
                seconds[label].append(run["seconds"])
        print(f"lenet5_mnist, batch 128, {steps} steps x {args.epochs} epochs, {args.rounds} round(s); "
              "images/s inside fit")
        print("| source | images/s (median) | ratio to in-memory arrays, per round | median ratio | "
              "whole process s (median) |")
        print("|---|---:|---|---:|---:|")
        print(f"| in-memory arrays (built-in) | {statistics.median(base):.0f} | 1 | 1.000 | "
              f"{statistics.median(base_seconds):.1f} |")
        for label, values in ratios.items():
            per_round = ", ".join(f"{r:.3f}" for r in values)
            images = statistics.median(r * b for r, b in zip(values, base))
            print(f"| {label} | {images:.0f} | {per_round} | {statistics.median(values):.3f} | "
                  f"{statistics.median(seconds[label]):.1f} |")
        print()
        print(f"Peak resident memory, one epoch over every file (batch 128, {args.files} and {10 * args.files} files):")
        print()
        print("| cache | MiB at N | MiB at 10 N | ratio |")
        print("|---|---:|---:|---:|")
        for mode in ("none", "disk"):
            peaks = [child(str(folder), tmp / f"peak-{mode}-{i}", tmp / f"peak-cache-{mode}",
                           epochs=1, batch_size=128, set={"cache": mode})["peak_rss_mib"]
                     for i, folder in enumerate((small, large))]
            print(f"| {mode} | {peaks[0]:.0f} | {peaks[1]:.0f} | {peaks[1] / peaks[0]:.3f} |")


if __name__ == "__main__":
    main()
