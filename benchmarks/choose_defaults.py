"""Choose a recipe's defaults on the validation split: named settings x seeds, each a whole `kerasapps train`,
scored on the run's validation split (never its test split), the mean over seeds printed per setting.

    python benchmarks/choose_defaults.py imdb_sentiment --data-dir ../shared/data \\
        --setting base= --setting smooth=label_smoothing=0.1 --setting long=epochs=4,label_smoothing=0.1 \\
        --seeds 1 2 3 --results sweeps/imdb.jsonl

A setting is ``NAME=key=value,key=value`` (``NAME=`` is the recipe at its defaults); ``--settings FILE`` reads
``{NAME: {key: value}}`` from YAML. ``--data SOURCE`` trains on a source of your own (a folder, a table). Each
run is its own process (its wall time includes ``import tensorflow``); the child trains, then scores the final
model (with the run's test-time augmentation) on the validation split: accuracy and balanced accuracy for
classifiers (scikit-learn), MAE for regressions, and the evaluation loss. Results go, one JSON line per run, to
``--results`` (appended: an interrupted sweep continues where it stopped, runs already there are skipped), and
the table at the end gives each setting's mean and range over the seeds. Prune with one seed and short runs;
spend the seeds on the finalists.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse_setting(text: str) -> tuple[str, dict]:
    name, _, body = text.partition("=")
    keys = dict(pair.split("=", 1) for pair in body.split(",") if pair.strip())
    return name.strip(), {key.strip(): value.strip() for key, value in keys.items()}


def score(run_dir: Path, data_dir, data) -> dict:
    """Validation metrics of a finished run's final model, as its export would answer."""
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score, mean_absolute_error

    from kerasapps.core.recipe import DataContext
    from kerasapps.data.pipelines import evaluation_dataset
    from kerasapps.data.sources import load_splits
    from kerasapps.data.splits import stage_splits
    from kerasapps.training import rundir
    from kerasapps.training.checkpoints import load_model, recipe_objects
    from kerasapps.training.tta import with_tta

    recipe, hp, saved = rundir.open_run(run_dir)
    ctx = DataContext.from_option(data_dir, False, data)
    last = [stage for stage in recipe.stages if stage.runs(hp)][-1]
    split = stage_splits(last, load_splits(recipe, hp, ctx))["validation"]
    model = with_tta(load_model(run_dir / "model.keras", custom_objects=recipe_objects(recipe), compile=False),
                     hp.tta)
    outputs = model.predict(evaluation_dataset(split, batch_size=256, preprocess=recipe.preprocess), verbose=0)
    y = np.asarray(split[1])
    if outputs.ndim == 2 and outputs.shape[1] > 1 and y.ndim == 1:  # softmax classifier
        predicted = outputs.argmax(axis=1)
    elif outputs.shape[-1] == 1 and np.issubdtype(y.dtype, np.integer):  # one sigmoid unit
        predicted = (outputs.reshape(-1) >= 0.5).astype(int)
    elif y.ndim == 1:  # regression
        return {"mae": float(mean_absolute_error(y, outputs.reshape(-1)))}
    else:
        evaluated = __import__("kerasapps").evaluate(run_dir, split="validation", data_dir=data_dir, data=data,
                                                     verbose=0)
        captions = {f"val_{k}": v for k, v in evaluated.get("captions", {}).items() if k.startswith("bleu")}
        return {**{f"val_{k}": v for k, v in evaluated["metrics"].items()}, **captions}
    return {"accuracy": float(np.mean(predicted == y)),
            "balanced_accuracy": float(balanced_accuracy_score(y, predicted))}


def child(args) -> None:
    """One run: train, score, print one JSON line (the parent times this process)."""
    import kerasapps

    run_dir = Path(args.run_dir)
    started = time.perf_counter()
    run = kerasapps.train(args.recipe, run_dir=run_dir, data_dir=args.data_dir, data=args.data, seed=args.seed,
                          set=json.loads(args.keys), verbose=0, overwrite=True)
    trained = time.perf_counter() - started
    stages = {name: {k: v for k, v in stage.items() if k in ("epochs", "epochs_rule", "early_stopping")}
              for name, stage in run.metrics["stages"].items()}
    print("RESULT " + json.dumps({"train_seconds": round(trained, 1), "stages": stages,
                                  **earlier_stages(run_dir, list(stages)[:-1]),
                                  **score(run_dir, args.data_dir, args.data)}))


def earlier_stages(run_dir: Path, names: list[str]) -> dict:
    """A multi-stage run's earlier stages (``mnist_transfer``'s pretraining): each one's validation accuracy at
    its last epoch, from its training log (``STAGE_val_accuracy``); the score above is the last stage's."""
    import csv

    out = {}
    for name in names:
        log = run_dir / "logs" / f"{name}.csv"
        if not log.is_file():
            continue
        with log.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and rows[-1].get("val_accuracy"):
            out[f"{name}_val_accuracy"] = float(rows[-1]["val_accuracy"])
    return out


def one(recipe, name, keys, seed, args, work: Path) -> dict:
    run_dir = work / f"{recipe}-{name}-{seed}"
    command = [sys.executable, __file__, "--child", recipe, "--run-dir", str(run_dir), "--seed", str(seed),
               "--keys", json.dumps(keys)]
    command += ["--data-dir", args.data_dir] if args.data_dir else []
    command += ["--data", args.data] if args.data else []
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
    if done.returncode or line is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"setting": name, "seed": seed, "error": tail[0]}
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"setting": name, "seed": seed, "keys": keys, "wall_seconds": round(wall, 1),
            **json.loads(line[len("RESULT "):])}


def table(rows: list[dict], settings: dict) -> str:
    metrics = [m for m in ("balanced_accuracy", "accuracy", "mae", "val_loss") if any(m in r for r in rows)]
    metrics += sorted({k for r in rows for k in r if k.endswith("_val_accuracy")})
    heads = [m if m.endswith("_val_accuracy") else f"val {m}" for m in metrics]
    lines = ["| setting | keys | seeds | " + " | ".join(f"{head} (mean, range)" for head in heads)
             + " | epochs | wall s (mean) |", "|---" * (5 + len(metrics)) + "|"]
    for name, keys in settings.items():
        done = [r for r in rows if r["setting"] == name and "error" not in r]
        if not done:
            failed = [r["error"] for r in rows if r["setting"] == name and "error" in r]
            lines.append(f"| {name} | {keys} | 0 | " + " | ".join("" for _ in metrics)
                         + f" | | {failed[0] if failed else 'not run'} |")
            continue
        cells = []
        for metric in metrics:
            values = [r[metric] for r in done if metric in r]
            cells.append(f"{statistics.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})" if values else "")
        epochs = sorted({str(stage["epochs"]) for r in done for stage in r["stages"].values()})
        lines.append(f"| {name} | {', '.join(f'{k}={v}' for k, v in keys.items()) or 'defaults'} | {len(done)} | "
                     + " | ".join(cells) + f" | {'/'.join(epochs)} | "
                     f"{statistics.mean(r['wall_seconds'] for r in done):.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--setting", action="append", default=[], help="NAME=key=value,key=value")
    parser.add_argument("--settings", help="YAML file {NAME: {key: value}}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--data-dir")
    parser.add_argument("--data")
    parser.add_argument("--results", help="JSON lines, appended; runs already there are not repeated")
    parser.add_argument("--work", help="where runs are written (default: a temporary folder)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--keys", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    settings = dict(parse_setting(text) for text in args.setting)
    if args.settings:
        import yaml

        loaded = yaml.safe_load(Path(args.settings).read_text())
        settings.update({name: dict(keys or {}) for name, keys in loaded.items()})
    results = Path(args.results) if args.results else None
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results and results.is_file() else []
    work = Path(args.work or tempfile.mkdtemp(prefix="choose-defaults-"))
    for seed in args.seeds:  # settings alternate within each seed: drift in machine speed hits them alike
        for name, keys in settings.items():
            if any(r["setting"] == name and r["seed"] == seed and r.get("keys", keys) == keys and "error" not in r
                   for r in rows):
                continue
            row = one(args.recipe, name, keys, seed, args, work)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if results:
                with results.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
    print(f"\n{args.recipe} on {args.data or 'its built-in data'}: validation split, seeds {args.seeds}\n")
    print(table([r for r in rows if r["setting"] in settings and r["seed"] in args.seeds], settings))


if __name__ == "__main__":
    main()
