"""The main job against the classic script: ``kerasapps train mnist_transfer`` at its defaults against
``mnist_transfer_cnn.py`` ported literally (batch 128, Adadelta at 1.0, 5 + 5 epochs, numpy arrays into
``fit``; ``benchmarks/classic_mnist_transfer_cnn.py``), and against the same-optimiser plain Keras job
(the recipe's model, optimiser, schedule, batch sizes, epochs and split, numpy arrays into ``fit``).

Each job is a whole process (``import tensorflow`` included), the jobs alternating in each round; the
table gives medians over rounds of the wall time, each stage's samples/s and test accuracy, and the
wall-time ratio against the classic script.

    python benchmarks/mnist_transfer.py --data-dir ../shared/data [--rounds 3] [--seeds 1234]
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

HERE = Path(__file__).resolve().parent


def plain_keras_job(data_dir: Path, seed: int) -> dict:
    """The recipe's model, optimiser, schedule, batch sizes and split, as numpy arrays into fit."""
    from kerasapps.core.quiet_import import import_tensorflow

    import_tensorflow()
    import keras
    import numpy as np

    from kerasapps.core.registry import get_recipe
    from kerasapps.data.splits import carve_validation
    from kerasapps.recipes.mnist_transfer import mnist_transfer_cnn
    from kerasapps.training import precision

    recipe = get_recipe("mnist_transfer")
    hp = recipe.default_hparams()
    arrays = np.load(data_dir / "mnist" / "mnist.npz")
    train, val = carve_validation((arrays["x_train"], arrays["y_train"].astype("int64")), hp.validation_split, seed)
    test = (arrays["x_test"], arrays["y_test"].astype("int64"))

    def digits(split, low):
        x, y = split
        keep = (y >= low) & (y <= low + 4)
        return (x[keep].astype("float32")[..., None] / 255.0), y[keep] - low

    keras.utils.set_random_seed(seed)
    policy = precision.resolve(hp.precision)  # the recipe's compute dtype on this machine, as kerasapps trains
    keras.config.set_dtype_policy(policy)
    model = mnist_transfer_cnn()
    out = {}
    for stage, low in zip(recipe.stages, (0, 5)):
        stage_hp = stage.hparams(hp)
        x, y = digits(train, low)
        if stage.freeze:
            for layer in model.layers:
                layer.trainable = not layer.name.startswith(tuple(stage.freeze))
        steps = stage_hp.epochs * int(np.ceil(len(x) / stage_hp.batch_size))
        schedule = keras.optimizers.schedules.CosineDecay(stage_hp.learning_rate, steps)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        started = time.perf_counter()
        model.fit(x, y, batch_size=stage_hp.batch_size, epochs=stage_hp.epochs, validation_data=digits(val, low),
                  verbose=0)
        seconds = time.perf_counter() - started
        accuracy = model.evaluate(*digits(test, low), verbose=0)[1]
        out[stage.name] = {"seconds": seconds, "samples_per_second": stage_hp.epochs * len(x) / seconds,
                           "accuracy": float(accuracy), "precision": policy}
    return out


def run_process(command: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:3])}... failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return wall, done.stdout


def job(name: str, data_dir: Path, seed: int, tmp: Path) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if name == "classic script":
        wall, out = run_process([sys.executable, str(HERE / "classic_mnist_transfer_cnn.py"), str(data_dir)], env)
        stages = json.loads(out.strip().splitlines()[-1])
    elif name == "plain keras, recipe's settings":
        wall, out = run_process([sys.executable, __file__, "--data-dir", str(data_dir), "--seed", str(seed),
                                 "--child"], env)
        stages = json.loads(out.strip().splitlines()[-1])
    else:
        run_dir = tmp / f"run-{seed}-{time.monotonic_ns()}"
        kerasapps = Path(sys.executable).with_name("kerasapps")
        wall, _ = run_process([str(kerasapps), "train", "mnist_transfer", "--data-dir", str(data_dir),
                               "--run-dir", str(run_dir), "--seed", str(seed)], env)
        metrics = json.loads((run_dir / "metrics.json").read_text())["stages"]
        stages = {s: {"seconds": m["seconds"], "samples_per_second": m["samples_per_second"],
                      "accuracy": m["test"]["accuracy"], "precision": m.get("precision", "float32")}
                  for s, m in metrics.items()}
    return {"wall": wall, **stages}


JOBS = ("classic script", "kerasapps train mnist_transfer", "plain keras, recipe's settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the job order alternates between rounds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234],
                        help="kerasapps/plain seeds, one per round in turn (the classic script is unseeded)")
    parser.add_argument("--seed", type=int, default=1234, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=JOBS)
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    if args.child:
        print(json.dumps(plain_keras_job(data_dir, args.seed)))
        return

    results = {name: [] for name in args.jobs}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            seed = args.seeds[round_ % len(args.seeds)]
            order = list(args.jobs) if round_ % 2 == 0 else list(reversed(args.jobs))
            for name in order:
                result = job(name, data_dir, seed, Path(tmp))
                results[name].append(result)
                print(f"round {round_ + 1} (seed {seed}) {name}: {result['wall']:.1f} s, " + ", ".join(
                    f"{s} {r['samples_per_second']:.0f} samples/s acc {r['accuracy']:.4f}"
                    for s, r in result.items() if s != "wall"), flush=True)

    def median(name, *keys):
        values = [r[keys[0]] if len(keys) == 1 else r[keys[0]][keys[1]] for r in results[name]]
        return statistics.median(values)

    def spread(name, stage):
        values = [r[stage]["accuracy"] for r in results[name]]
        return f"{min(values):.4f}-{max(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"

    baseline = median(args.jobs[0], "wall")
    print(f"\n{args.rounds} round(s), whole processes, medians (accuracy: min-max over rounds)\n")
    print(f"| job | compute dtype | wall s | wall / {args.jobs[0]} | pretrain samples/s | finetune samples/s | "
          "test accuracy 0-4 | test accuracy 5-9 |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for name in args.jobs:
        dtype = results[name][0]["pretrain"].get("precision", "float32")
        print(f"| {name} | {dtype} | {median(name, 'wall'):.1f} | {median(name, 'wall') / baseline:.2f}x | "
              f"{median(name, 'pretrain', 'samples_per_second'):.0f} | "
              f"{median(name, 'finetune', 'samples_per_second'):.0f} | {spread(name, 'pretrain')} | "
              f"{spread(name, 'finetune')} |")


if __name__ == "__main__":
    main()
