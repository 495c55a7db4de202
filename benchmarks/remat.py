"""Recomputation (remat=True) against the plain model: peak resident memory and training step time.

ResNet-50 (random weights, 10 classes) on random images, one ``train_on_batch`` step at a time.
Each setting runs in its own subprocess so that peak memory (``resource.getrusage`` ru_maxrss,
the process's high-water mark) is not shared; the first step (tracing) is timed apart from the
median of the next ``--steps``. The baseline RSS after building the model is reported too, so the
difference (peak - built) is the first step's memory (tracing included). Where Linux allows it
(``/proc/self/clear_refs``), the high-water mark is then reset and the steady steps' own peak
(VmHWM) reported as "steady MiB": the memory a training step holds once traced.

    python benchmarks/remat.py --batch-size 16 --image-size 128 --steps 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def child(remat: bool, batch_size: int, image_size: int, steps: int) -> dict:
    import resource

    from kerasapps.core.quiet_import import import_tensorflow

    import_tensorflow()
    import keras
    import numpy as np

    from kerasapps.recipes.resnet import resnet50

    keras.utils.set_random_seed(0)
    model = resnet50(input_shape=(image_size, image_size, 3), classes=10, remat=remat)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch_size, image_size, image_size, 3)).astype("float32")
    y = rng.integers(0, 10, batch_size)
    built_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    started = time.perf_counter()
    first_loss = float(model.train_on_batch(x, y))
    first = time.perf_counter() - started
    steady_mib = None
    try:  # Linux: reset the high-water mark, so that the steady steps' own peak is measured apart from tracing
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        resettable = True
    except OSError:
        resettable = False
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        loss = float(model.train_on_batch(x, y))
        times.append(time.perf_counter() - started)
    if resettable:
        with open("/proc/self/status") as handle:
            steady_mib = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")) / 1024
    return {"remat": remat, "steady_peak_rss_mib": None if steady_mib is None else round(steady_mib, 1),
            "batch_size": batch_size, "image_size": image_size, "params": model.count_params(),
            "built_rss_mib": round(built_mib, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "first_step_s": round(first, 2), "median_step_s": round(float(np.median(times)), 3),
            "first_loss": first_loss, "last_loss": loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", choices=["plain", "remat"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "remat", args.batch_size, args.image_size, args.steps)))
        return
    rows = []
    for setting in ("plain", "remat"):
        out = subprocess.run([sys.executable, __file__, "--child", setting, "--batch-size", str(args.batch_size),
                              "--image-size", str(args.image_size), "--steps", str(args.steps)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"ResNet-50, batch {args.batch_size} of {args.image_size}x{args.image_size}x3, "
          f"{rows[0]['params']:,} parameters, median of {args.steps} steps after the first")
    print(f"  {'setting':<8} {'built MiB':>10} {'peak MiB':>10} {'step MiB':>10} {'steady MiB':>11} {'first s':>8} "
          f"{'step s':>8}")
    for row in rows:
        print(f"  {('remat' if row['remat'] else 'plain'):<8} {row['built_rss_mib']:>10.0f} "
              f"{row['peak_rss_mib']:>10.0f} "
              f"{row['peak_rss_mib'] - row['built_rss_mib']:>10.0f} "
              f"{row['steady_peak_rss_mib'] or float('nan'):>11.0f} "
              f"{row['first_step_s']:>8.2f} "
              f"{row['median_step_s']:>8.3f}")
    plain, remat = rows
    step_memory = (remat['peak_rss_mib'] - remat['built_rss_mib']) / (plain['peak_rss_mib'] - plain['built_rss_mib'])
    steady = ""
    if plain["steady_peak_rss_mib"] and remat["steady_peak_rss_mib"]:
        steady_ratio = ((remat['steady_peak_rss_mib'] - remat['built_rss_mib'])
                        / (plain['steady_peak_rss_mib'] - plain['built_rss_mib']))
        steady = f", steady peak {steady_ratio:.2f} (above built)"
    print(f"  remat/plain: peak RSS {remat['peak_rss_mib'] / plain['peak_rss_mib']:.2f}, "
          f"step memory {step_memory:.2f}, "
          f"step time {remat['median_step_s'] / plain['median_step_s']:.2f}"
          + steady)


if __name__ == "__main__":
    main()
