"""captioning_flickr8k: corpus BLEU-1..4 on the 125 test images against two baselines measured in the same run.

Trains the recipe (or reuses --run-dir when it holds a finished run), then captions the
official test images of flickr8k_subset with greedy decoding and beam search, and scores
them with nltk's corpus BLEU against all 5 references per image. The decoding setting
(beam width x length penalty) is chosen on the 113 dev images; the test score of that
one setting is the headline, beside:

- constant: the one training caption with the best corpus BLEU-4 on the *training* images'
  references, output for every test image;
- nearest neighbour: the consensus caption of the training image closest to the test image
  in the trained encoder's feature space (cosine similarity of the image vectors v).

Usage::

    python benchmarks/captioning.py --data-dir ../shared/data --run-dir runs/captioning \
        [--epochs 15] [--set cell=gru --set inject=every_step ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--run-dir", default="runs/captioning_bench")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--beam-widths", default="1,3,5")
    parser.add_argument("--length-penalties", default="0,0.5,1",
                        help="comma-separated length penalties tried with each beam width (chosen on dev)")
    parser.add_argument("--examples", type=int, default=5)
    args = parser.parse_args(argv)

    import kerasapps
    from kerasapps.core.recipe import DataContext
    from kerasapps.recipes import captioning, captioning_data
    from kerasapps.recipes.captioning_decode import Decoder, caption, encode
    from kerasapps.recipes.captioning_eval import (
        best_constant_caption,
        corpus_bleu,
        nearest_neighbour_captions,
    )
    from kerasapps.training.checkpoints import load_model
    from kerasapps.training.rundir import open_run

    run_dir = Path(args.run_dir)
    started = time.perf_counter()
    if not (run_dir / "model.keras").is_file():
        kerasapps.train(captioning.NAME, run_dir=run_dir, data_dir=args.data_dir, set=args.overrides,
                        epochs=args.epochs, verbose=2)
    train_seconds = time.perf_counter() - started
    _, hp, _ = open_run(run_dir)
    model = load_model(run_dir / "model.keras", compile=False)

    images, entries = captioning_data.read_subset(DataContext(Path(args.data_dir).resolve()))
    if images.shape[1] != hp.image_size:
        images = captioning_data.resize_uint8(images, hp.image_size)
    train_images, train_refs = captioning_data.split_images(images, entries, "train")
    test_images, test_refs = captioning_data.split_images(images, entries, "test")
    test_x = test_images.astype(np.float32) / 255.0

    dev_images, dev_refs = captioning_data.split_images(images, entries, "dev")
    dev_x = dev_images.astype(np.float32) / 255.0

    # Decoding (beam width, length penalty) is chosen on the dev images; test is scored once per setting
    # and the headline row is the dev-chosen one, never the best on test.
    rows, outputs, dev_scores = [], {}, {}
    decoder = Decoder(model)  # one decoder: each setting is traced once for dev and test
    for width in [int(w) for w in args.beam_widths.split(",")]:
        for penalty in [float(p) for p in args.length_penalties.split(",")] if width > 1 else [0.0]:
            name = "greedy" if width == 1 else f"beam {width}, length penalty {penalty:g}"
            options = dict(method="greedy" if width == 1 else "beam", beam_width=width, length_penalty=penalty)
            if len(dev_refs):
                dev_scores[name] = corpus_bleu(caption(decoder, dev_x, **options), dev_refs)["bleu4"]
            t = time.perf_counter()
            hyps = caption(decoder, test_x, **options)
            rows.append((f"model, {name}", corpus_bleu(hyps, test_refs), time.perf_counter() - t))
            outputs[name] = hyps
    chosen = max(dev_scores, key=dev_scores.get) if dev_scores else next(iter(outputs))
    t = time.perf_counter()
    constant, train_bleu4 = best_constant_caption(train_refs)
    rows.append((f"constant caption (train BLEU-4 {train_bleu4:.3f})", corpus_bleu([constant] * len(test_refs),
                                                                                 test_refs), time.perf_counter() - t))
    t = time.perf_counter()
    neighbours = nearest_neighbour_captions(encode(model, train_images.astype(np.float32) / 255.0), train_refs,
                                            encode(model, test_x))
    rows.append(("nearest neighbour (encoder features)", corpus_bleu(neighbours, test_refs), time.perf_counter() - t))
    outputs["nearest neighbour"] = neighbours

    print(f"\ncaptioning_flickr8k: {len(test_refs)} test images x 5 references, corpus BLEU (nltk), "
          f"cell={hp.cell} inject={hp.inject} epochs={hp.epochs}; training {train_seconds:.0f} s")
    print("| method | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | seconds |\n|---|---|---|---|---|---|")
    for name, scores, seconds in rows:
        print(f"| {name} | " + " | ".join(f"{100 * scores[f'bleu{n}']:.1f}" for n in range(1, 5))
              + f" | {seconds:.1f} |")
    picked = next(r for r in rows if r[0] == f"model, {chosen}")
    baseline = max(r[1]["bleu4"] for r in rows if not r[0].startswith("model"))
    print(f"\ndecoding chosen on the {len(dev_refs)} dev images: {chosen} (dev BLEU-4 "
          f"{100 * dev_scores.get(chosen, float('nan')):.1f})")
    print(f"model ({chosen}) test BLEU-4 {100 * picked[1]['bleu4']:.1f} vs best baseline {100 * baseline:.1f}: "
          f"{'above' if picked[1]['bleu4'] > baseline else 'NOT above'} both baselines")
    print(f"constant caption: {constant!r}\n")
    names = [chosen, "nearest neighbour"]
    for i in range(min(args.examples, len(test_refs))):
        print(f"test image {i} ({[e for e in entries if e.get('flickr8k_split') == 'test'][i]['filename']}):")
        for n in names:
            print(f"  {n:>18}: {outputs[n][i]}")
        print(f"  {'reference':>18}: {' '.join(captioning_data.tokenize(test_refs[i][0]))}")


if __name__ == "__main__":
    main()
