"""Training throughput in float32 against mixed_bfloat16 (the ``precision`` hyper-parameter).

Each factory trains (Adam, batch ``--batch-size``) on one fixed batch already in memory, under
each policy in turn, alternating the order every round; the table gives the median images/s of
each policy and the ratio mixed_bfloat16 / float32, and the first line says what
``precision=auto`` resolves to on this machine (bfloat16 only on a CPU with AMX-BF16 and no GPU).

    python benchmarks/precision.py [--only mnist_transfer_cnn lenet5 resnet20] [--rounds 5] [--steps 60]
"""

from __future__ import annotations

import argparse
import statistics
import time

from kerasapps.core.quiet_import import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasapps.recipes as zoo  # noqa: E402
from kerasapps.recipes.mnist_transfer import mnist_transfer_cnn  # noqa: E402
from kerasapps.training import precision  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")
SHAPES = {"mnist_transfer_cnn": ((28, 28, 1), 5), "lenet5": ((32, 32, 1), 10), "resnet20": ((32, 32, 3), 10)}


def images_per_second(name: str, policy: str, batch_size: int, steps: int) -> float:
    shape, classes = SHAPES[name]
    with precision.building(policy):
        factory = mnist_transfer_cnn if name == "mnist_transfer_cnn" else getattr(zoo, name)
        model = factory(input_shape=shape, classes=classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch_size, *shape), dtype=np.float32))
    y = tf.constant(rng.integers(0, classes, batch_size))
    for _ in range(5):  # trace and warm up
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    print(f"CPU with AMX-BF16: {precision.cpu_has_amx_bf16()}; precision=auto trains in "
          f"{precision.resolve('auto')} here\n")
    print(f"| model | float32 images/s | mixed_bfloat16 images/s | mixed / float32 (median of {args.rounds}) |")
    print("|---|---:|---:|---:|")
    for name in args.only:
        rates = {policy: [] for policy in POLICIES}
        ratios = []
        for round_ in range(args.rounds):
            order = POLICIES if round_ % 2 == 0 else tuple(reversed(POLICIES))
            measured = {policy: images_per_second(name, policy, args.batch_size, args.steps) for policy in order}
            for policy, rate in measured.items():
                rates[policy].append(rate)
            ratios.append(measured["mixed_bfloat16"] / measured["float32"])
        print(f"| {name} | {statistics.median(rates['float32']):.0f} | "
              f"{statistics.median(rates['mixed_bfloat16']):.0f} | {statistics.median(ratios):.2f}x |", flush=True)


if __name__ == "__main__":
    main()
