"""The sequence recipes' targets and the vanishing-gradient claim (Bengio et al. 1994; Hochreiter &
Schmidhuber 1997), measured.

    python benchmarks/sequences.py gradient-flow --out docs/gradient_flow.png
        norm of d(loss at the last step) / d(input at step t) for t = 1..100, SimpleRNN vs LSTM vs GRU
        (random weights, Glorot/orthogonal initialisation as Keras builds them, 32 random sequences)
    python benchmarks/sequences.py cells --data-dir ../shared/data --epochs 2
        mnist_rows with each cell type (SimpleRNN, LSTM, GRU): test accuracy and seconds per epoch
    python benchmarks/sequences.py char-lm --data-dir ../shared/data --minutes 30
        char_lm trained for a wall-clock budget: validation nats/char against time (target <= 1.60)
    python benchmarks/sequences.py imdb --data-dir ../shared/data --epochs 3
        imdb_sentiment test accuracy (target >= 0.87)

Each prints a markdown table; docs/benchmarks.md quotes them with these commands.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kerasapps.core.quiet_import import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasapps  # noqa: E402
from kerasapps.recipes.rnn import stacked_rnn  # noqa: E402
from kerasapps.training.curves import pyplot, save_figure  # noqa: E402


def gradient_flow(args) -> None:
    steps, features, units = 100, 8, 64
    x = tf.constant(np.random.default_rng(0).normal(size=(32, steps, features)).astype("float32"))
    rows = {}
    for cell in ("simple", "lstm", "gru"):
        keras.utils.set_random_seed(0)
        model = stacked_rnn(input_shape=(steps, features), cell=cell, units=units, include_top=False,
                            name=f"flow_{cell}")
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(model(x)[:, -1] ** 2) if len(model.output.shape) == 3 else \
                tf.reduce_sum(model(x) ** 2)
        grad = tape.gradient(loss, x)  # [N, T, F]
        rows[cell] = tf.reduce_mean(tf.norm(grad, axis=-1), axis=0).numpy()
    print("| cell | gradient norm at t=100 | relative at t=90 | t=75 | t=50 | t=1 |")
    print("|---|---|---|---|---|---|")
    for cell, norms in rows.items():
        rel = norms / norms[-1]
        print(f"| {cell} | {norms[-1]:.3g} | {rel[89]:.2g} | {rel[74]:.2g} | {rel[49]:.2g} | {rel[0]:.2g} |")
    if args.out:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7, 4))
        for cell, norms in rows.items():
            ax.semilogy(np.arange(1, steps + 1), norms, label={"simple": "SimpleRNN"}.get(cell, cell.upper()))
        ax.set_xlabel("input time step t (loss at step 100)")
        ax.set_ylabel("mean |d loss / d x_t|")
        ax.set_title(f"Gradient reaching each step, {units} units, random init")
        ax.legend()
        fig.tight_layout()
        print(f"\nwrote {save_figure(fig, plt, args.out, dpi=100)}")


def _run(name, data_dir, overrides=(), flags=None, callbacks=()):
    tmp = tempfile.mkdtemp()
    started = time.perf_counter()
    run = kerasapps.train(name, run_dir=Path(tmp) / "run", data_dir=data_dir, set=list(overrides),
                          **(flags or {}), verbose=0, callbacks=list(callbacks))
    return run, time.perf_counter() - started


def cells(args) -> None:
    print("| mnist_rows cell | test accuracy | seconds per epoch | epochs |")
    print("|---|---|---|---|")
    for cell in ("simple", "lstm", "gru"):
        run, _ = _run("mnist_rows", args.data_dir, [f"cell={cell}"], {"epochs": args.epochs})
        stage = run.metrics["stages"]["train"]
        print(f"| {cell} | {stage['test']['accuracy']:.4f} | {stage['seconds'] / args.epochs:.0f} | {args.epochs} |",
              flush=True)


class _Budget(keras.callbacks.Callback):
    """Stops training after ``seconds`` of wall-clock and records (elapsed, val_loss) per epoch."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.curve = seconds, []

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self.started
        self.curve.append((elapsed, float(logs.get("val_loss", float("nan")))))
        print(f"  {elapsed / 60:5.1f} min  epoch {epoch + 1}  val {self.curve[-1][1]:.3f} nats/char", flush=True)
        if elapsed > self.seconds:
            self.model.stop_training = True


def plot_curve(curve, out) -> None:
    """Validation nats/char against minutes of training, with the 1.60 target."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([t / 60 for t, _ in curve], [v for _, v in curve], marker="o")
    ax.axhline(1.60, color="grey", linestyle="--", label="target 1.60")
    ax.set_xlabel("minutes of training (2-core CPU)")
    ax.set_ylabel("validation nats/char")
    ax.set_title("char_lm on Tiny Shakespeare")
    ax.legend()
    fig.tight_layout()
    print(f"wrote {save_figure(fig, plt, out, dpi=100)}")


def char_lm(args) -> None:
    budget = _Budget(args.minutes * 60)
    # The cosine schedule spans --epochs; the budget stops training early if the epochs overrun it.
    run, seconds = _run("char_lm", args.data_dir, args.set, {"epochs": args.epochs}, [budget])
    if args.out:
        plot_curve(budget.curve, args.out)
    best = min(v for _, v in budget.curve)
    print(f"\n| char_lm | best validation nats/char | minutes | epochs |\n|---|---|---|---|\n"
          f"| {' '.join(args.set) or 'defaults'} | {best:.3f} | {seconds / 60:.1f} | {len(budget.curve)} |")


def imdb(args) -> None:
    run, seconds = _run("imdb_sentiment", args.data_dir, args.set, {"epochs": args.epochs})
    print(f"| imdb_sentiment | test accuracy | minutes | epochs |\n|---|---|---|---|\n"
          f"| {' '.join(args.set) or 'defaults'} | {run.metrics['test']['accuracy']:.4f} | {seconds / 60:.1f} | "
          f"{args.epochs} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    flow = sub.add_parser("gradient-flow")
    flow.add_argument("--out", default=None, help="PNG path for the figure")
    for name in ("cells", "char-lm", "imdb"):
        p = sub.add_parser(name)
        p.add_argument("--data-dir", type=Path, required=True)
        p.add_argument("--epochs", type=int, default=20 if name == "char-lm" else 2)
        p.add_argument("--minutes", type=float, default=30.0)
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--out", default=None, help="char-lm: PNG of validation loss against time")
    args = parser.parse_args()
    {"gradient-flow": gradient_flow, "cells": cells, "char-lm": char_lm, "imdb": imdb}[args.command](args)


if __name__ == "__main__":
    main()
