"""Throughput and accuracy: the two-stage MNIST transfer job as a plain Keras script vs through kerasapps.

Both run the same model, optimiser (Adam, cosine decay), the recipe's default batch size
and per-stage learning rates, epochs and the same train/validation split, one after the other, alternating, in one process. The
plain script feeds numpy arrays to ``model.fit`` as the original example does.

    python benchmarks/mnist_transfer.py --data-dir ../shared/data              # full 5 + 5 epochs, 1 round
    python benchmarks/mnist_transfer.py --data-dir ../shared/data --epochs 1 --rounds 3   # throughput only
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kerasapps.core.quiet_import import import_tensorflow

import_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasapps  # noqa: E402
from kerasapps.core.registry import get_recipe  # noqa: E402
from kerasapps.data.splits import carve_validation  # noqa: E402
from kerasapps.recipes.mnist_transfer import mnist_transfer_cnn  # noqa: E402

_HP = get_recipe("mnist_transfer").default_hparams()
BATCH = _HP.batch_size
LEARNING_RATES = {"pretrain": _HP.learning_rate, "finetune": _HP.finetune_learning_rate}


def plain_keras_job(data_dir: Path, epochs: int, seed: int) -> dict:
    """The classic script, ported: numpy arrays into fit, freeze, recompile, fit again."""
    arrays = np.load(data_dir / "mnist" / "mnist.npz")
    train, val = carve_validation((arrays["x_train"], arrays["y_train"].astype("int64")), 0.1, seed)
    test = (arrays["x_test"], arrays["y_test"].astype("int64"))

    def digits(split, low):
        x, y = split
        keep = (y >= low) & (y <= low + 4)
        return (x[keep].astype("float32")[..., None] / 255.0), y[keep] - low

    keras.utils.set_random_seed(seed)
    model = mnist_transfer_cnn()
    out = {}
    for stage, low in (("pretrain", 0), ("finetune", 5)):
        x, y = digits(train, low)
        if stage == "finetune":
            for layer in model.layers:
                if layer.name.startswith("features_"):
                    layer.trainable = False
        steps = epochs * int(np.ceil(len(x) / BATCH))
        model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LEARNING_RATES[stage], steps)),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
        started = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=epochs, validation_data=digits(val, low), verbose=0)
        seconds = time.perf_counter() - started
        accuracy = model.evaluate(*digits(test, low), verbose=0)[1]
        out[stage] = {"seconds": seconds, "samples_per_second": epochs * len(x) / seconds, "accuracy": accuracy}
    return out


def kerasapps_job(data_dir: Path, epochs: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = kerasapps.train("mnist_transfer", run_dir=Path(tmp) / "run", data_dir=data_dir,
                              epochs=epochs, seed=seed, batch_size=BATCH, verbose=0)
    return {stage: {"seconds": m["seconds"], "samples_per_second": m["samples_per_second"],
                    "accuracy": m["test"]["accuracy"]} for stage, m in run.metrics["stages"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per stage (5 as the original)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating plain/kerasapps rounds")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    results = {"plain keras": [], "kerasapps": []}
    started = time.perf_counter()
    for round_ in range(args.rounds):
        order = [("plain keras", plain_keras_job), ("kerasapps", kerasapps_job)]
        if round_ % 2:
            order.reverse()
        for name, job in order:
            t0 = time.perf_counter()
            result = job(args.data_dir, args.epochs, args.seed)
            result["wall"] = time.perf_counter() - t0
            results[name].append(result)
            print(f"round {round_ + 1} {name}: " + ", ".join(
                f"{s} {r['samples_per_second']:.0f} samples/s acc {r['accuracy']:.4f}"
                for s, r in result.items() if s != "wall"), flush=True)

    def median(name, stage, key):
        return statistics.median(r[stage][key] for r in results[name])

    print(f"\n{args.rounds} round(s), {args.epochs} + {args.epochs} epochs, batch {BATCH}, "
          f"total {time.perf_counter() - started:.0f} s\n")
    print("| job | stage | samples/s (median) | test accuracy (median) | wall s (median) |")
    print("|---|---|---|---|---|")
    for name in results:
        for stage in ("pretrain", "finetune"):
            print(f"| {name} | {stage} | {median(name, stage, 'samples_per_second'):.0f} | "
                  f"{median(name, stage, 'accuracy'):.4f} | {statistics.median(r['wall'] for r in results[name]):.0f} |")
    for stage in ("pretrain", "finetune"):
        ratio = median("kerasapps", stage, "samples_per_second") / median("plain keras", stage, "samples_per_second")
        print(f"{stage}: kerasapps / plain keras throughput = {ratio:.2f}x")


if __name__ == "__main__":
    main()
