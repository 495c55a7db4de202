"""Each export format of one trained run: file size, single-example latency and test accuracy, against the
SavedModel measured in the same run.

    python benchmarks/export_formats.py --data-dir ../shared/data [--recipe lenet5_mnist] [--epochs 2]
        [--run-dir RUN] [--calls 300]
    python benchmarks/export_formats.py --data-dir ../shared/data --photos

Trains the recipe on full MNIST (or takes a finished ``--run-dir``), exports it as a SavedModel, ONNX, and LiteRT
at each quantisation, and prints a markdown table: the export's size, the median time of one single-example call
(the SavedModel's ``serving_default``, onnxruntime, LiteRT's interpreter; the calls of all formats interleaved,
so load on the machine hits them alike) and its ratio to the SavedModel's, the test accuracy on the 10,000 test
digits and the share of them answered as the SavedModel answers.

``--photos``: the issue's photo classifier instead, ``image_transfer`` at its defaults on the real Flickr8k
photos sorted into dog/ and people/ by their captions (the own-data benchmark's folder, Flickr8k's own split),
its 123 test photos read by ``kerasapps predict`` as a user passes the folder; one call's input is a photo as
predict gives it to each format (the SavedModel fits it to the model's size inside, ONNX and LiteRT take it
fitted). Balanced accuracy beside accuracy (about one dog in four).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = [("saved_model", "none"), ("onnx", "none"), ("litert", "none"), ("litert", "float16"),
            ("litert", "int8")]


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and "assets.extra" not in f.parts) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--recipe", default="lenet5_mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--run-dir")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--photos", action="store_true", help="image_transfer on the Flickr8k photo folder")
    args = parser.parse_args()

    import kerasapps
    from kerasapps.savedmodel.export import export
    from kerasapps.savedmodel.predict import decode_like_training, load_signature

    work = Path(tempfile.mkdtemp(prefix="export-formats-"))
    if args.photos:
        from own_data_sets import build_photos, photo_files

        args.recipe = "image_transfer"
        print(build_photos(Path(args.data_dir), work / "photos"))
        run_dir = args.run_dir or kerasapps.train(args.recipe, run_dir=work / "run", data=str(work / "photos"),
                                                  verbose=0).run_dir
        inputs, y = photo_files(work / "photos" / "test")
        described = f"{len(y)} test photos"
    else:
        run_dir = args.run_dir or kerasapps.train(args.recipe, run_dir=work / "run", data_dir=args.data_dir,
                                                  epochs=args.epochs, verbose=0).run_dir
        arrays = np.load(Path(args.data_dir) / "mnist" / "mnist.npz")
        y = arrays["y_test"].astype(str)
        np.save(work / "test.npy", arrays["x_test"])
        inputs, described = [work / "test.npy"], f"{len(y):,} MNIST test digits"
    paths = {variant: export(run_dir, out=work / f"{variant[0]}_{variant[1]}", format=variant[0],
                             quantize=variant[1]) for variant in VARIANTS}
    answers = {variant: np.array([row["classes"] for row in kerasapps.predict(path, inputs)])
               for variant, path in paths.items()}
    signatures = {variant: load_signature(path) for variant, path in paths.items()}
    ones = {}
    for variant, signature in signatures.items():  # one example, as predict gives it to each format
        ((name, spec),) = signature.inputs.items()
        ones[variant] = {name: decode_like_training(inputs[0], spec.shape[1:], signature.square)[None]
                         if args.photos else np.load(inputs[0])[:1]}
    times: dict = {variant: [] for variant in VARIANTS}
    for _ in range(5):  # warm-up
        for variant, signature in signatures.items():
            signature(**ones[variant])
    for _ in range(args.calls):
        for variant, signature in signatures.items():
            start = time.perf_counter()
            signature(**ones[variant])
            times[variant].append(time.perf_counter() - start)
    base = statistics.median(times[VARIANTS[0]])
    print(f"{args.recipe}, {run_dir}: {described}, {args.calls} single-example calls each\n")
    print("| format | quantize | size (MB) | latency (ms, median) | vs SavedModel | test accuracy | "
          "balanced accuracy | same class as SavedModel |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in VARIANTS:
        latency = statistics.median(times[variant])
        print(f"| {variant[0]} | {variant[1]} | {size_mb(paths[variant]):.3f} | {latency * 1e3:.3f} | "
              f"{latency / base:.2f}x | {np.mean(answers[variant] == y):.4f} | "
              f"{balanced_accuracy(y, answers[variant]):.4f} | "
              f"{np.mean(answers[variant] == answers[VARIANTS[0]]):.4f} |")
    majority = max(set(y.tolist()), key=y.tolist().count)
    print(f"\nthe majority class ({majority}) on the same test split: accuracy {np.mean(y == majority):.4f}, "
          f"balanced accuracy {1 / len(set(y.tolist())):.4f}")


def balanced_accuracy(truth, found) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(truth, found))


if __name__ == "__main__":
    main()
