"""Tables as users have them: missing cells written every way people write them are numeric missing values,
imputed inside the model and taken as NaN by the export; a column of numbers with a few stray words is refused in
one line, never turned categorical; ``categorical_columns`` / ``numeric_columns`` override the inference.

The table is made from the real MNIST digits (each digit pooled to 7x7 ink levels: 49 numeric columns), so the
model has something real to learn (the tiny generated digits where the real data is absent)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import kerasapps
from kerasapps.cli.main import cli
from kerasapps.core.errors import DataError
from kerasapps.data.tables import MISSING

MARKERS = ["", "NA", "n/a", "nan", "null", "?", "-", "N/A", "NaN", "NULL"]
HOLED = ("p17", "p24", "p31")  # central pixels: every digit inks some of them


def _digit_table(data_dir: Path, folder: Path, rows: int = 2000, test_rows: int = 400, holes: float = 0.1) -> dict:
    """``train.csv`` / ``test.csv`` of pooled digits; a ``holes`` share of the cells of the ``HOLED`` columns are
    missing, written with each marker in turn. Returns the count of missing cells per column in training."""
    arrays = np.load(data_dir / "mnist" / "mnist.npz")
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    header = [f"p{i}" for i in range(49)] + ["label"]
    counts = {}
    for split, n, key in (("train", rows, "train"), ("test", test_rows, "test")):
        n = min(n, len(arrays[f"y_{key}"]))
        pooled = arrays[f"x_{key}"][:n].reshape(n, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(n, 49)
        table = [[f"{v:.1f}" for v in row] + [str(label)] for row, label in zip(pooled, arrays[f"y_{key}"][:n])]
        for name in HOLED:
            column = header.index(name)
            holed = rng.choice(n, int(holes * n), replace=False)
            for k, i in enumerate(holed):
                table[i][column] = MARKERS[k % len(MARKERS)]
            if split == "train":
                counts[name] = len(holed)
        with (folder / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(table)
    return counts


def test_every_marker_is_a_missing_value():
    assert {m.strip().lower() for m in MARKERS} <= set(MISSING)


@pytest.mark.realdata
def test_missing_cells_are_imputed_inside_the_model_and_the_export_takes_them(real_data_dir, tmp_path, caplog):
    holes = _digit_table(real_data_dir, tmp_path / "digits")
    with caplog.at_level(logging.INFO, logger="kerasapps"):
        run = kerasapps.train("mlp_tabular", data=str(tmp_path / "digits" / "train.csv"), run_dir=tmp_path / "run",
                              verbose=0, epochs=15)
    columns = {c["name"]: c for c in json.loads((run.run_dir / "data.json").read_text())["columns"]}
    assert all(c["kind"] == "numeric" for c in columns.values())  # before: each holed column one-hot, 100s of values
    for name, count in holes.items():
        assert columns[name]["missing"] == count
        assert f"column '{name}': {count} of its 2000 training cells missing, filled with the median" in caplog.text
    assert "table columns: 49 numeric, 0 categorical" in caplog.text
    assert run.metrics["test"]["accuracy"] > 0.7  # ten digits from 49 ink levels; chance is 0.1
    result = kerasapps.evaluate(run.run_dir)
    answers = kerasapps.predict(kerasapps.export(run.run_dir, out=tmp_path / "models"),
                                [tmp_path / "digits" / "test.csv"])
    assert len(answers) == result["examples"] == 400
    assert all(np.isfinite(a["probabilities"]).all() for a in answers)
    with (run.run_dir / "predictions-test.csv").open(newline="") as handle:
        assert [a["classes"] for a in answers] == [row["predicted"] for row in csv.DictReader(handle)]
    printed = CliRunner().invoke(cli, ["predict", str(tmp_path / "models" / "mlp_tabular"),
                                       str(tmp_path / "digits" / "test.csv")])
    assert printed.exit_code == 0 and len(printed.stdout.splitlines()) == 400, printed.output
    _served_with_nan(tmp_path / "models", tmp_path / "digits" / "test.csv", answers)


def _served_with_nan(model_base: Path, table: Path, answers: list[dict]) -> None:
    """Over REST, a missing cell is JSON's ``NaN`` token (TF Serving's convention): the server answers every row
    with the class the export gave the table's own markers."""
    from starlette.testclient import TestClient

    from kerasapps.serving.server import create_app

    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:50]
    holed = [i for i, row in enumerate(rows) if any(row[name].strip().lower() in MISSING for name in HOLED)]
    assert holed, "the first rows of the test table have missing cells"
    cells = ["NaN" if value.strip().lower() in MISSING else value
             for row in rows for name, value in row.items() if name != "label"]
    body = "[" + ", ".join("{" + ", ".join(f'"{name}": {cell}' for name, cell in zip(rows[0], cells[49 * i:][:49]))
                           + "}" for i in range(len(rows))) + "]"
    with TestClient(create_app(str(model_base), poll_interval_s=0)) as client:
        reply = client.post("/v1/models/mlp_tabular:predict", content=f'{{"instances": {body}}}')
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    assert [p["classes"] for p in predictions] == [a["classes"] for a in answers[:50]]


def _with_stray_words(folder: Path, column: str, words: list[str]) -> Path:
    with (folder / "train.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    index = rows[0].index(column)
    for k, word in enumerate(words):
        rows[1 + 7 * k][index] = word
    with (folder / "train.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return folder / "train.csv"


def test_a_numeric_column_with_stray_words_is_refused_in_one_line(recipe_data_dir, tmp_path):
    _digit_table(recipe_data_dir, tmp_path / "digits", rows=300, test_rows=10)
    table = _with_stray_words(tmp_path / "digits", "p40", ["unknown", "see notes", "unknown"])
    result = CliRunner().invoke(cli, ["train", "mlp_tabular", "--data", str(table), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: column 'p40' holds numbers in 297 of its 300 filled cells")
    assert "3 other value(s): 'unknown', 'see notes'" in lines[0] and "categorical_columns=p40" in lines[0]
    assert not (tmp_path / "r").exists()
    run = kerasapps.train("mlp_tabular", data=str(table), run_dir=tmp_path / "cat", verbose=0, epochs=1,
                          set={"categorical_columns": "p40"})
    kinds = {c["name"]: c["kind"] for c in json.loads((run.run_dir / "data.json").read_text())["columns"]}
    assert kinds["p40"] == "categorical" and kinds["p39"] == "numeric"


def test_numeric_columns_reads_numbers_or_refuses_the_words(recipe_data_dir, tmp_path):
    _digit_table(recipe_data_dir, tmp_path / "digits", rows=60, test_rows=10)
    table = _with_stray_words(tmp_path / "digits", "p3", ["low", "high"] * 4)  # 8 of 60: categorical by inference
    recipe = kerasapps.get_recipe("mlp_tabular")
    from kerasapps.core.recipe import DataContext
    from kerasapps.data.sources import load_splits

    inferred = load_splits(recipe, recipe.resolve(), DataContext(None, source=str(table))).meta["columns"]
    assert {c["name"]: c["kind"] for c in inferred}["p3"] == "categorical"
    with pytest.raises(DataError, match="column 'p3' is named in numeric_columns but 8 other value"):
        load_splits(recipe, recipe.resolve(overrides={"numeric_columns": "p3"}), DataContext(None, source=str(table)))
    with pytest.raises(DataError, match="name 'nope', not feature columns"):
        load_splits(recipe, recipe.resolve(overrides={"categorical_columns": "nope"}),
                    DataContext(None, source=str(table)))
