"""kerasapps recipes at their defaults on "a user's own data", beside the simplest baselines a user would try first.

    python benchmarks/own_data.py [--sets photos reviews breast_cancer ...] [--seeds 1 2 3] [--data-dir DIR]
                                  [--json FILE]

The sets (``benchmarks/own_data_sets.py`` writes the derived ones into a temporary folder; photos and reviews
split with seed 0, each table once per seed, split by it):

* ``photos``: the Flickr8k subset as a photo folder, ``dog`` (a caption says dog/dogs/puppy) or else ``people``
  (a caption names a person), official split (train+none, dev as validation, test); about a quarter dogs;
* ``reviews``: 3,000 IMDB training reviews and 1,000 test reviews (``train.jsonl``/``test.jsonl``, neg/pos);
* ``breast_cancer``, ``wine``, ``digits`` and ``diabetes`` (regression): scikit-learn's bundled tables, a
  stratified 80/20 ``train.csv``/``test.csv`` drawn with each seed (a test split of 36-114 rows is one draw's
  luck: the seeds average over three);
* ``cifar10_subset`` (4,000/1,000), ``mnist`` (60,000/10,000), ``imdb`` (25,000/25,000): the built-in sets.

Jobs, each a whole process (its imports in its wall time): ``kerasapps train`` at the recipe's defaults (only
``--seed``, ``--run-dir``, ``--data`` or ``--data-dir``, and ``objective=regression`` for diabetes), then, in a
process of its own that the wall time leaves out, its answers on the test split from the run's serving function,
the export's (``kerasapps.predict``), checked against the run's own test accuracy; the majority class (the
training mean for regression); scikit-learn (images: logistic regression on standardised pixels, 16x16 grey and
32x32 in colour, MNIST at its 28x28; text: TF-IDF word 1-2-grams + logistic regression, Wang & Manning 2012;
tables: logistic regression, ridge, histogram gradient boosting); and a plain Keras model of about 30 lines as a
user writes it (a small CNN on pixels/255; fastText-style, Joulin et al. 2017: 1-2-gram ``TextVectorization``,
averaged embeddings; an MLP on normalised columns), Adam and early stopping with the best weights restored. The
majority class and scikit-learn fit on train + validation; the Keras models hold the validation split (or a
seeded 10% of train) out for early stopping, as kerasapps does. Every job, the deterministic scikit-learn ones
included, runs once per seed; kerasapps and baseline jobs alternate within a seed round.

Each set gets a markdown table (means over seeds, accuracy min-max, median wall time, the gap to the best
baseline on balanced accuracy or MAE) and PASS/MISS lines for the targets: image and text sets, kerasapps beats
the best baseline on balanced accuracy; tables, within 0.5 point of the best scikit-learn accuracy (regression:
an MAE at most 2% above the best scikit-learn MAE) in at most 30 s; ``resnet20_cifar10`` on ``cifar10_subset``
at least 70% in at most 20 minutes; ``imdb_sentiment`` on ``imdb`` at least 90%.

Rough durations per seed on 2 CPU cores: the four tables about 2 minutes together, ``reviews`` about 2,
``photos`` about 7. Slow, left out of a quick run with ``--sets``: ``cifar10_subset`` about 18 minutes per seed
(``resnet20_cifar10`` trains 100 epochs in about 17), ``mnist`` about 20 (the CNN and the logistic regression on 60,000
digits), ``imdb`` (the recipe trains in about 1.5 minutes at its defaults since issue 26; the whole set per seed,
with the baselines and the 25,000 test answers, not yet timed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import own_data_sets as sets  # noqa: E402

BASELINES = {  # job id -> what the table calls it, per kind of set
    "image": {"majority": "majority class", "logreg16": "sklearn logreg, 16x16 grey",
              "logreg32": "sklearn logreg, 32x32 (MNIST: 28x28)", "keras": "keras small CNN"},
    "text": {"majority": "majority class", "tfidf": "sklearn TF-IDF 1-2-grams + logreg",
             "keras": "keras fastText-style"},
    "table": {"majority": "majority class", "logreg": "sklearn logreg", "ridge": "sklearn ridge",
              "hgb": "sklearn hist gradient boosting", "keras": "keras MLP"},
    "regression": {"majority": "training mean", "ridge": "sklearn ridge", "hgb": "sklearn hist gradient boosting",
                   "keras": "keras MLP"},
}
TABLE_TOLERANCE, TABLE_SECONDS, MAE_TOLERANCE = 0.005, 30.0, 1.02
CIFAR_TARGET, CIFAR_SECONDS, IMDB_TARGET = 0.70, 1200.0, 0.90
MAX_ITER = 5000  # logistic regression's iterations: enough to converge on every set here (checked per run)


# ---------------------------------------------------------------------------------------------- the baselines


def majority(job, data, kind, seed):
    _, y = sets.fit_split(data)
    if kind == "regression":
        return [float(np.mean(y))] * len(data.splits["test"][1]), {}
    values, counts = np.unique(y, return_counts=True)
    return [str(values[np.argmax(counts)])] * len(data.splits["test"][1]), {}


def sklearn_baseline(job, data, kind, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = sets.fit_split(data)
    x_test = data.splits["test"][0]
    if job.startswith("logreg") and kind == "image":
        grey = job == "logreg16" or x.ndim == 3  # 32x32 keeps the colour of colour images
        side = 16 if job == "logreg16" else min(32, x.shape[1])
        x, x_test = sets.pixels(x, side, grey), sets.pixels(x_test, side, grey)
    models = {
        "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER)),
        "ridge": lambda: make_pipeline(StandardScaler(), Ridge() if kind == "regression" else RidgeClassifier()),
        "hgb": lambda: (HistGradientBoostingRegressor if kind == "regression" else HistGradientBoostingClassifier)(
            random_state=seed),
        "tfidf": lambda: make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                                       LogisticRegression(C=8.0, max_iter=MAX_ITER)),
    }
    model = models["logreg" if job.startswith("logreg") else job]()
    model.fit(x, y)
    final = model[-1] if hasattr(model, "steps") else model
    info = {} if getattr(final, "n_iter_", None) is None else {"iterations": int(np.max(final.n_iter_))}
    if isinstance(final, LogisticRegression):
        info["converged"] = info["iterations"] < MAX_ITER
    predictions = model.predict(x_test)
    return [float(p) for p in predictions] if kind == "regression" else [str(p) for p in predictions], info


def keras_small_cnn(x, classes):
    import keras

    return keras.Sequential([
        keras.Input(x.shape[1:]),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(128, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dropout(0.5),
        keras.layers.Dense(128, activation="relu"), keras.layers.Dense(classes, activation="softmax"),
    ]), {"epochs": 100, "batch_size": 64, "patience": 5}


def keras_fasttext(x, classes):
    import keras

    return keras.Sequential([
        keras.Input(x.shape[1:], dtype="int64"),
        keras.layers.Embedding(20_000, 64, mask_zero=True),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(classes, activation="softmax"),
    ]), {"epochs": 50, "batch_size": 32, "patience": 3}


def keras_mlp(x, outputs, normalise):
    import keras

    return keras.Sequential([
        keras.Input(x.shape[1:]), normalise,
        keras.layers.Dense(64, activation="relu"), keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(outputs, activation=None if outputs == 1 else "softmax"),
    ]), {"epochs": 1000, "batch_size": 32, "patience": 20}


def keras_baseline(job, data, kind, seed):
    """The plain Keras model a user would write first, trained with early stopping on the held-out split."""
    import keras

    keras.utils.set_random_seed(seed)
    (x, y), (x_val, y_val) = sets.held_out(data, seed)
    x_test = data.splits["test"][0]
    classes = sorted(set(y)) if kind != "regression" else None
    if kind == "image":
        x, x_val, x_test = (a.astype("float32")[..., None] / 255 if a.ndim == 3 else a.astype("float32") / 255
                            for a in (x, x_val, x_test))
        model, fit = keras_small_cnn(x, len(classes))
    elif kind == "text":
        vectorize = keras.layers.TextVectorization(max_tokens=20_000, ngrams=2, output_sequence_length=500)
        vectorize.adapt(np.array(x, dtype=object), batch_size=256)
        x, x_val, x_test = (np.asarray(vectorize(np.array(t, dtype=object))) for t in (x, x_val, x_test))
        model, fit = keras_fasttext(x, len(classes))
    else:
        normalise = keras.layers.Normalization()
        normalise.adapt(x)
        model, fit = keras_mlp(x, 1 if classes is None else len(classes), normalise)
    if classes is not None:
        y, y_val = (np.array([classes.index(v) for v in t]) for t in (y, y_val))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse" if classes is None
                  else "sparse_categorical_crossentropy")
    stop = keras.callbacks.EarlyStopping(patience=fit["patience"], restore_best_weights=True)
    history = model.fit(x, y, validation_data=(x_val, y_val), epochs=fit["epochs"], batch_size=fit["batch_size"],
                        callbacks=[stop], verbose=0)
    scores = model.predict(x_test, batch_size=256, verbose=0)
    predictions = [float(v) for v in scores[:, 0]] if classes is None else [classes[i] for i in scores.argmax(-1)]
    return predictions, {"epochs": len(history.history["loss"])}


def kerasapps_predictions(name, data, run_dir, work, seed):
    """The run's answers on the test split through its serving function (what its export answers)."""
    import kerasapps
    from kerasapps.savedmodel.predict import load_signature

    files = sets.test_inputs(name, work, seed)
    if files is not None:
        rows = kerasapps.predict(run_dir, files)
        return [r["prediction"] if "prediction" in r else r["classes"] for r in rows], {}
    signature = load_signature(run_dir)
    (input_name, spec), = signature.inputs.items()
    x, out = data.splits["test"][0], []
    for start in range(0, len(x), 256):
        batch = np.array(x[start:start + 256], dtype=object if spec.dtype == "string" else spec.dtype)
        answer = signature(**{input_name: batch})
        out += [str(int(i)) for i in answer["class_ids"]] if sets.SETS[name].builtin \
            else [c.decode("utf-8") for c in answer["classes"]]
    return out, {}


def one(args) -> None:
    """A hidden child: one baseline (or the predictions of a kerasapps run), one JSON line on stdout."""
    kind = sets.SETS[args.set_name].kind
    data = sets.load(args.set_name, args.data_dir, args.work, args.seed)
    if args.one == "predict":
        predictions, info = kerasapps_predictions(args.set_name, data, args.run_dir, args.work, args.seed)
    else:
        job = {"majority": majority, "keras": keras_baseline}.get(args.one, sklearn_baseline)
        predictions, info = job(args.one, data, kind, args.seed)
    print(json.dumps({"predictions": [p[0] if isinstance(p, list) else p for p in predictions], **info}))


# ---------------------------------------------------------------------------------------------- running jobs


def run_process(command: list[str]) -> tuple[float, str | None, str]:
    """(wall seconds, the last stdout line or None if it failed, the last stderr line)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    last_error = (done.stderr.strip().splitlines() or [""])[-1]
    lines = done.stdout.strip().splitlines()
    return wall, (lines[-1] if done.returncode == 0 and lines else None), f"exit {done.returncode}: {last_error}"


def score(kind: str, truth, predictions) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, mean_absolute_error

    if kind == "regression":
        return {"mae": float(mean_absolute_error(np.asarray(truth, float), np.asarray(predictions, float)))}
    return {"accuracy": float(accuracy_score(truth, predictions)),
            "balanced_accuracy": float(balanced_accuracy_score(truth, predictions))}


def child(job: str, name: str, seed: int, paths: dict, run_dir: Path | None = None) -> tuple[float, dict | str]:
    command = [sys.executable, __file__, "--one", job, "--set-name", name, "--seed", str(seed),
               "--work", str(paths["work"]), "--data-dir", str(paths["data"])]
    wall, line, error = run_process(command + (["--run-dir", str(run_dir)] if run_dir else []))
    return wall, json.loads(line) if line else error


def kerasapps_job(recipe: str, name: str, seed: int, paths: dict, truth) -> dict:
    spec = sets.SETS[name]
    run_dir = paths["work"] / "runs" / f"{name}-{recipe}-{seed}"
    kerasapps = Path(sys.executable).with_name("kerasapps")
    command = [str(kerasapps), "train", recipe, "--seed", str(seed), "--run-dir", str(run_dir),
               *spec.data_args(paths["work"], paths["data"], seed)]
    wall, line, error = run_process(command)
    if line is None:
        return {"seed": seed, "wall": wall, "error": error, "command": " ".join(command[1:])}
    predict_wall, out = child("predict", name, seed, paths, run_dir)
    reported = json.loads((run_dir / "metrics.json").read_text()).get("test", {})
    if isinstance(out, str):  # trained, but its serving function refuses the test inputs
        accuracy = f" (kerasapps's own test accuracy {reported['accuracy']:.4f})" if "accuracy" in reported else ""
        return {"seed": seed, "wall": wall, "error": f"predict: {out}{accuracy}", "reported": reported}
    result = {"seed": seed, "wall": wall, "predict_wall": predict_wall, **score(spec.kind, truth, out["predictions"]),
              "reported": reported}
    check(f"{name} {recipe} seed {seed}", reported, result)
    return result


def check(what: str, reported: dict, result: dict) -> None:
    """Warn where the run's own test metric (metrics.json) and the score of its predictions differ: by more
    than 0.5 point of accuracy, or 0.5% of the MAE."""
    if "accuracy" in reported and abs(reported["accuracy"] - result["accuracy"]) > 0.005:
        print(f"  WARNING: {what}: kerasapps reports test accuracy {reported['accuracy']:.4f}, its predictions "
              f"score {result['accuracy']:.4f}", flush=True)
    mae = reported.get("mean_absolute_error")
    if mae is not None and abs(mae - result["mae"]) > 0.005 * result["mae"]:
        print(f"  WARNING: {what}: kerasapps reports test MAE {mae:.3f}, its predictions score {result['mae']:.3f}",
              flush=True)


def baseline_job(job: str, name: str, seed: int, paths: dict, truth) -> dict:
    wall, out = child(job, name, seed, paths)
    if isinstance(out, str):
        return {"seed": seed, "wall": wall, "error": out}
    info = {k: v for k, v in out.items() if k != "predictions"}
    return {"seed": seed, "wall": wall, **score(sets.SETS[name].kind, truth, out["predictions"]), **info}


def run_set(name: str, seeds: list[int], paths: dict) -> dict:
    """Every job of one set, once per seed; kerasapps and baseline jobs alternate, reversed every other round."""
    spec = sets.SETS[name]
    jobs = [("kerasapps", recipe) for recipe in spec.recipes]
    baselines = [("baseline", job) for job in BASELINES[spec.kind]]
    order = [j for pair in itertools.zip_longest(jobs, baselines) for j in pair if j]
    results = {label(spec, kind, job): [] for kind, job in order}
    truth = None
    for round_, seed in enumerate(seeds):
        if truth is None or spec.resampled:  # a table's test split changes with the seed; the others are read once
            truth = sets.load(name, paths["data"], paths["work"], seed).splits["test"][1]
        for kind, job in order if round_ % 2 == 0 else order[::-1]:
            run = (kerasapps_job if kind == "kerasapps" else baseline_job)(job, name, seed, paths, truth)
            if "error" in run:  # the work folder is a temporary one: no machine paths in the tables
                run["error"] = run["error"].replace(str(paths["work"]), "WORK")
            results[label(spec, kind, job)].append(run)
            print(f"  [{name}] seed {seed} {label(spec, kind, job)}: {describe(run)}", flush=True)
    return results


def label(spec, kind: str, job: str) -> str:
    return f"kerasapps {job}" if kind == "kerasapps" else BASELINES[spec.kind][job]


def describe(run: dict) -> str:
    if "error" in run:
        return f"FAILED ({run['error']})"
    metric = f"MAE {run['mae']:.2f}" if "mae" in run else \
        f"accuracy {run['accuracy']:.4f}, balanced {run['balanced_accuracy']:.4f}"
    note = ", DID NOT CONVERGE" if run.get("converged") is False else ""
    return f"{metric}, {run['wall']:.1f} s{note}"


# ---------------------------------------------------------------------------------------------- the report


def summarise(runs: list[dict]) -> dict | None:
    good = [r for r in runs if "error" not in r]
    if not good:
        return None
    out = {"wall": statistics.median(r["wall"] for r in good), "n": len(good)}
    for key in ("accuracy", "balanced_accuracy", "mae"):
        if key in good[0]:
            values = [r[key] for r in good]
            out[key], out[key + "_range"] = statistics.mean(values), (min(values), max(values))
    return out


def best(summary: dict, names, key: str) -> str | None:
    candidates = [n for n in names if summary.get(n)]
    if not candidates:
        return None
    return (min if key == "mae" else max)(candidates, key=lambda n: summary[n][key])


def report(name: str, results: dict) -> list[str]:
    """The set's table and its PASS/MISS lines; returns the MISS lines."""
    spec = sets.SETS[name]
    summary = {job: summarise(runs) for job, runs in results.items()}
    regression = spec.kind == "regression"
    key = "mae" if regression else "balanced_accuracy"
    baselines = [j for j in results if not j.startswith("kerasapps")]
    top = best(summary, baselines, key)
    print(f"\n### {name}\n")
    if regression:
        print(f"| job | MAE (min-max) | wall s | MAE - best baseline ({top}) |\n|---|---|---:|---:|")
    else:
        print(f"| job | accuracy % (min-max) | balanced accuracy % | wall s | balanced - best baseline ({top}), "
              "points |\n|---|---|---:|---:|---:|")
    for job, s in summary.items():
        mark = " (best baseline)" if job == top else ""
        if s is None:
            errors = "; ".join(sorted({r["error"] for r in results[job]}))
            print(f"| {job} | failed: {errors} | | | |")
        elif regression:
            low, high = s["mae_range"]
            print(f"| {job}{mark} | {s['mae']:.2f} ({low:.2f}-{high:.2f}) | {s['wall']:.1f} | "
                  f"{s['mae'] - summary[top]['mae']:+.2f} |")
        else:
            low, high = s["accuracy_range"]
            print(f"| {job}{mark} | {100 * s['accuracy']:.1f} ({100 * low:.1f}-{100 * high:.1f}) | "
                  f"{100 * s['balanced_accuracy']:.1f} | {s['wall']:.1f} | "
                  f"{100 * (s['balanced_accuracy'] - summary[top]['balanced_accuracy']):+.1f} |")
    print()
    lines = targets(name, summary, top, baselines)
    for line in lines:
        print(line)
    return [line for line in lines if line.startswith("MISS")]


def targets(name: str, summary: dict, top: str, baselines: list[str]) -> list[str]:
    spec, lines = sets.SETS[name], []
    key = "mae" if spec.kind == "regression" else "balanced_accuracy"
    for job in (j for j in summary if j.startswith("kerasapps")):
        s = summary[job]
        if s is None or top is None:
            lines.append(f"MISS {name}: {job} failed")
            continue
        if spec.kind in ("image", "text"):
            gap = s["balanced_accuracy"] - summary[top]["balanced_accuracy"]
            lines.append(f"{'PASS' if gap > 0 else 'MISS'} {name}: {job} beats the best baseline ({top}) on balanced "
                         f"accuracy: {100 * s['balanced_accuracy']:.1f}%, {100 * gap:+.1f} points")
        else:
            lines.append(table_target(name, job, summary, baselines))
            gap = s[key] - summary[top][key]
            beats = gap < 0 if key == "mae" else gap > 0
            lines.append(f"     {name}: {job} {'beats' if beats else 'does not beat'} the best baseline ({top}): "
                         f"{'MAE' if key == 'mae' else 'balanced accuracy'} {gap * (1 if key == 'mae' else 100):+.2f}"
                         f"{'' if key == 'mae' else ' points'}")
        if name == "cifar10_subset":
            ok = s["accuracy"] >= CIFAR_TARGET and s["wall"] <= CIFAR_SECONDS
            lines.append(f"{'PASS' if ok else 'MISS'} {name}: {job} at least {CIFAR_TARGET:.0%} in at most "
                         f"{CIFAR_SECONDS / 60:.0f} min: {100 * s['accuracy']:.1f}% "
                         f"({100 * (s['accuracy'] - CIFAR_TARGET):+.1f} points) in {s['wall'] / 60:.1f} min")
        if name == "imdb":
            ok = s["accuracy"] >= IMDB_TARGET
            lines.append(f"{'PASS' if ok else 'MISS'} {name}: {job} at least {IMDB_TARGET:.0%}: "
                         f"{100 * s['accuracy']:.1f}% ({100 * (s['accuracy'] - IMDB_TARGET):+.1f} points)")
    return lines


def table_target(name: str, job: str, summary: dict, baselines: list[str]) -> str:
    s, regression = summary[job], sets.SETS[name].kind == "regression"
    sk = best(summary, [b for b in baselines if b.startswith("sklearn")], "mae" if regression else "accuracy")
    if sk is None:
        return f"MISS {name}: {job}: no scikit-learn baseline finished"
    if regression:
        ratio = s["mae"] / summary[sk]["mae"]
        good = ratio <= MAE_TOLERANCE
        what = f"MAE {s['mae']:.2f}, {100 * (ratio - 1):+.1f}% vs {sk} {summary[sk]['mae']:.2f} (at most " \
               f"{100 * (MAE_TOLERANCE - 1):.0f}% above)"
    else:
        gap = s["accuracy"] - summary[sk]["accuracy"]
        good = gap >= -TABLE_TOLERANCE
        what = f"accuracy {100 * s['accuracy']:.1f}%, {100 * gap:+.1f} points vs {sk} " \
               f"{100 * summary[sk]['accuracy']:.1f}% (at most {100 * TABLE_TOLERANCE:.1f} below)"
    fast = s["wall"] <= TABLE_SECONDS
    missed = [part for part, ok in (("MAE" if regression else "accuracy", good), ("wall time", fast)) if not ok]
    return f"{'MISS' if missed else 'PASS'} {name}: {job}: {what}; {s['wall']:.1f} s (at most " \
           f"{TABLE_SECONDS:.0f} s)" + (f"; missed on {' and '.join(missed)}" if missed else "")


def default_data_dir() -> Path:
    env = os.environ.get("KERASAPPS_DATA_DIR")
    return Path(env) if env else HERE.parent.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(sets.SETS), choices=list(sets.SETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the built-in data sets (default: $KERASAPPS_DATA_DIR, else ../shared/data)")
    parser.add_argument("--json", type=Path, help="write every run's raw results here")
    for hidden in ("--one", "--set-name", "--work", "--run-dir"):
        parser.add_argument(hidden, help=argparse.SUPPRESS, type=Path if hidden in ("--work", "--run-dir") else str)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data_dir = (args.data_dir or default_data_dir()).resolve()
    if args.one:
        one(args)
        return
    everything, misses = {}, []
    with tempfile.TemporaryDirectory(prefix="own-data-") as tmp:
        paths = {"work": Path(tmp), "data": args.data_dir}
        for name in args.sets:
            print(sets.build(name, args.data_dir, paths["work"], args.seeds), flush=True)
        for name in args.sets:
            everything[name] = run_set(name, args.seeds, paths)
    print(f"\nkerasapps at its defaults against baselines; seeds {' '.join(map(str, args.seeds))}; means over seeds, "
          "wall time median (whole process)")
    for name, results in everything.items():
        misses += report(name, results)
    print(f"\n{len(misses)} target(s) missed" + "".join(f"\n  {line}" for line in misses))
    if args.json:
        args.json.write_text(json.dumps({"seeds": args.seeds, "sets": everything}, indent=1) + "\n")


if __name__ == "__main__":
    main()
