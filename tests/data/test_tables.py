"""Tables are read record by record as their formats define them: a JSON Lines record ends at a newline only, and
a CSV record at a newline outside quotes. Real reviews hold U+0085 (95 of 3,000 IMDB reviews) and U+2028, which
``str.splitlines`` also takes for line ends."""

from __future__ import annotations

import csv
import json

import numpy as np

from kerasapps.data.tables import read_table

TEXTS = ["a film\u0085 that works", "line one\u2028line two", "plain", 'with "quotes", a comma\nand a newline']


def test_json_lines_records_end_at_newlines_only(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text("\r\n".join(json.dumps({"text": t, "label": "pos"}, ensure_ascii=False) for t in TEXTS) + "\n",
                    encoding="utf-8")
    assert read_table(path) == {"text": TEXTS, "label": ["pos"] * len(TEXTS)}


def test_csv_fields_keep_their_separators_and_quoted_newlines(tmp_path):
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows([[t, "neg"] for t in TEXTS])
    assert read_table(path) == {"text": TEXTS, "label": ["neg"] * len(TEXTS)}


def test_a_column_constant_in_training_is_centred_not_blown_up():
    """scikit-learn's digits: pixel_3_0 is 0 in every training row of a split and 1 in a test row; divided by a
    variance of ~0 it became 1e7 and the test loss 902. Centred only, it stays a unit away."""
    from sklearn.datasets import load_digits

    from kerasapps.recipes.tabular import describe_columns

    digits = load_digits()
    rows = np.flatnonzero(digits.data[:, 24] == 0)[:1000]  # a training split where pixel 3_0 happens to be 0
    assert set(digits.data[:, 24]) != {0.0}  # it is not blank in every image
    train = {f"pixel_{i}": list(digits.data[rows, i]) for i in (24, 36)}
    train["label"] = list(digits.target[rows])
    by_name = {c["name"]: c for c in describe_columns(train, "label")}
    assert by_name["pixel_24"]["variance"] == 1.0 and by_name["pixel_24"]["mean"] == 0.0
    assert by_name["pixel_36"]["variance"] > 1.0  # a varying column keeps its own variance
