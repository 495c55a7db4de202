"""Training and inference throughput of every CNN factory, and ours against keras.applications.

Every architecture is built at one fixed input size (default 32x32, 10 classes; LeNet-5 on
32x32x1) and timed on one fixed batch already in memory (so data loading costs nothing):
training images/s over ``--steps`` SGD steps after a warm-up, inference images/s over the
same number of ``predict_on_batch`` calls. For VGG16 and ResNet50 the same run also times
keras.applications' implementation at the same configuration, alternating ours and theirs
``--rounds`` times, and prints the median ratio (ours / keras.applications; >= 0.95 is the
target: ours must not be slower).

    python benchmarks/cnn_throughput.py                       # every factory + the comparison
    python benchmarks/cnn_throughput.py --only vgg16 resnet50 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from kerasapps.core.quiet_import import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasapps.recipes as zoo  # noqa: E402

FACTORIES = ["lenet5", "alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "resnet18", "resnet34", "resnet50",
             "resnet101", "resnet152", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]
KERAS_APPLICATIONS = {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50}


def build(name: str, size: int, ours: bool = True):
    channels = 1 if name == "lenet5" else 3
    if ours:
        return getattr(zoo, name)(input_shape=(size, size, channels), classes=10)
    return KERAS_APPLICATIONS[name](weights=None, input_shape=(size, size, channels), classes=10)


def throughput(model, batch: int, steps: int, warmup: int = 3) -> tuple[float, float]:
    """(training images/s, inference images/s) on one fixed random batch.

    ``train_on_batch`` / ``predict_on_batch`` on tensors already in memory, so the time is the compiled
    step itself (``fit`` on a repeated dataset measured the same within 10% for ResNet-20 and VGG-16).
    """
    shape = (batch, *model.input_shape[1:])
    x = tf.constant(np.random.default_rng(0).random(shape, dtype=np.float32))
    y = tf.constant(np.random.default_rng(1).integers(0, 10, batch))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  jit_compile=False)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss).ravel()[0])  # the last step has finished
    train = steps * batch / (time.perf_counter() - started)
    for _ in range(warmup):
        model.predict_on_batch(x)
    started = time.perf_counter()
    for _ in range(steps):
        np.asarray(model.predict_on_batch(x))
    infer = steps * batch / (time.perf_counter() - started)
    return train, infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds for the keras.applications comparison")
    parser.add_argument("--only", nargs="*", default=None, help="factories to time (default: all)")
    args = parser.parse_args()
    names = args.only or FACTORIES

    print(f"CPU cores {os.cpu_count()}, TensorFlow {tf.__version__}, Keras {keras.__version__}, input "
          f"{args.size}x{args.size}, batch {args.batch}, {args.steps} timed steps\n")
    print("| factory | parameters | train images/s | inference images/s |")
    print("|---|---|---|---|")
    for name in names:
        model = build(name, args.size)
        train, infer = throughput(model, args.batch, args.steps)
        print(f"| {name} | {model.count_params():,} | {train:.1f} | {infer:.1f} |", flush=True)
        keras.backend.clear_session()

    compared = [n for n in names if n in KERAS_APPLICATIONS]
    if not compared:
        return
    print(f"\nours vs keras.applications, {args.rounds} alternating rounds (train images/s, median ratio):")
    for name in compared:
        rates: dict[str, list[float]] = {"ours": [], "keras.applications": []}
        for round_ in range(args.rounds):
            order = [("ours", True), ("keras.applications", False)]
            for label, ours in (order if round_ % 2 == 0 else order[::-1]):
                model = build(name, args.size, ours)
                rates[label].append(throughput(model, args.batch, args.steps)[0])
                keras.backend.clear_session()
        ratios = [a / b for a, b in zip(rates["ours"], rates["keras.applications"])]
        print(f"{name}: ours {statistics.median(rates['ours']):.1f}, keras.applications "
              f"{statistics.median(rates['keras.applications']):.1f} images/s; ratio per round "
              f"{', '.join(f'{r:.3f}' for r in ratios)}; median ratio {statistics.median(ratios):.3f}", flush=True)


if __name__ == "__main__":
    main()
