"""``evaluate`` shows what a model does class by class, and answers for every example as its export does.

On real data for every kind of source (an image folder of JPEG photos of several sizes, a text folder, a table,
a built-in set): a short run is evaluated, exported, and its export asked about the same test split; every
example must get the same class (probabilities within 1e-4), so what ``evaluate`` reports is what users get.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from user_data import photo_folder, sklearn_tables, write_table

import kerasapps
from kerasapps.cli.main import cli

pytestmark = [pytest.mark.realdata]
TOLERANCE = 1e-4


def _rows(run_dir: Path, split: str = "test") -> list[dict]:
    with (run_dir / f"predictions-{split}.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _most_probable(answer: dict) -> float:
    return max(answer["probabilities"])


def _of_answer(answer: dict) -> float:  # a binary text classifier returns the probability of "pos"
    return answer["probability"] if answer["classes"] == "pos" else 1 - answer["probability"]


def _agree(rows: list[dict], answers: list[dict], confidence=_most_probable) -> None:
    """The export's ``answers`` give every example of ``rows`` (evaluate's) the same class and probability."""
    assert len(answers) == len(rows)
    differ = [(r["source"], r["predicted"], a["classes"]) for r, a in zip(rows, answers)
              if r["predicted"] != a["classes"]]
    assert not differ, differ[:5]
    np.testing.assert_allclose([confidence(a) for a in answers], [float(r["probability"]) for r in rows],
                               atol=TOLERANCE)


@pytest.mark.slow
def test_an_image_folder_of_odd_jpegs_evaluates_as_its_export_answers(real_data_dir, tmp_path):
    photos = photo_folder(real_data_dir, tmp_path / "photos", odd=True)
    run = kerasapps.train("image_transfer", data=str(photos), run_dir=tmp_path / "run", verbose=0, epochs=2)
    result = kerasapps.evaluate(run.run_dir)
    classes = result["classes"]
    tested = {label: sorted((photos / "test" / label).glob("*.jpg")) for label in ("dog", "people")}
    assert classes["class_names"] == ["dog", "people"]
    assert [row["support"] for row in classes["per_class"]] == [len(tested["dog"]), len(tested["people"])]
    assert np.sum(classes["confusion_matrix"]) == result["examples"] == sum(map(len, tested.values()))
    assert {"roc_auc", "pr_auc"} <= set(classes) and classes["majority_class"]["class"] == "people"
    rows = _rows(run.run_dir)
    assert sorted(r["source"] for r in rows) == sorted(str(p) for p in tested["dog"] + tested["people"])
    recall = np.mean([r["predicted"] == "dog" for r in rows if r["true"] == "dog"])
    assert classes["per_class"][0]["recall"] == pytest.approx(recall)
    assert classes["accuracy"] == pytest.approx(result["metrics"]["accuracy"], abs=1e-6)
    sources = [r["source"] for r in rows]
    export = kerasapps.export(run.run_dir, out=tmp_path / "models")
    for model in (export, run.run_dir):  # the export and the run directory, from the same files
        _agree(rows, kerasapps.predict(model, sources))
    whole = Path(sources[0]).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[:len(whole) // 3])  # a truncated photo: one line naming it
    printed = CliRunner().invoke(cli, ["predict", str(export), str(tmp_path / "cut.jpg")])
    assert printed.exit_code == 2 and printed.stderr.strip().splitlines() == [
        f"error: cannot decode image {tmp_path / 'cut.jpg'}: "
        "jpeg::Uncompress failed. Invalid JPEG data or crop window."]
    mistakes = result["classes"]["worst_mistakes"]
    assert all(m["true"] != m["predicted"] and m["source"] in sources for m in mistakes)
    assert [m["probability"] for m in mistakes] == sorted((m["probability"] for m in mistakes), reverse=True)
    with Image.open(run.run_dir / "mistakes-test.png") as picture:
        assert picture.format == "PNG"


def _review_folder(data_dir: Path, root: Path, per_class: int = 150) -> Path:
    counts = {0: 0, 1: 0}
    with gzip.open(data_dir / "imdb" / "imdb_train.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if counts[row["label"]] < per_class:
                folder = root / ("pos" if row["label"] else "neg")
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{sum(counts.values()):04d}.txt").write_text(row["text"], encoding="utf-8")
                counts[row["label"]] += 1
            if min(counts.values()) >= per_class:
                return root
    return root


def test_a_text_folder_evaluates_as_its_export_answers(real_data_dir, tmp_path):
    reviews = _review_folder(real_data_dir, tmp_path / "reviews")
    run = kerasapps.train("imdb_sentiment", data=str(reviews), run_dir=tmp_path / "run", verbose=0, epochs=2)
    result = kerasapps.evaluate(run.run_dir)
    assert result["classes"]["class_names"] == ["neg", "pos"] and "roc_auc" in result["classes"]
    rows = _rows(run.run_dir)
    assert len(rows) == result["examples"] > 20 and all(Path(r["source"]).suffix == ".txt" for r in rows)
    export = kerasapps.export(run.run_dir, out=tmp_path / "models")
    _agree(rows, kerasapps.predict(export, [r["source"] for r in rows]), _of_answer)
    assert all(m.get("text") for m in result["classes"]["worst_mistakes"])  # the gallery shows each review's start
    printed = CliRunner().invoke(cli, ["evaluate", str(run.run_dir)])
    assert printed.exit_code == 0, printed.output
    assert any(line.startswith("pos ") for line in printed.stdout.splitlines()) and "ROC AUC" in printed.stdout


def test_tables_evaluate_as_their_export_answers(tmp_path):
    wine, diabetes = sklearn_tables(tmp_path)
    for table, objective in ((wine, "classification"), (diabetes, "regression")):
        with table.open(newline="") as handle:
            lines = list(csv.reader(handle))
        order = np.random.default_rng(0).permutation(len(lines) - 1) + 1
        folder = tmp_path / objective
        folder.mkdir()
        write_table(folder / "train.csv", lines[0], [lines[i] for i in order[:-40]])
        test = write_table(folder / "test.csv", lines[0], [lines[i] for i in order[-40:]])
        run = kerasapps.train("mlp_tabular", data=str(folder / "train.csv"), run_dir=tmp_path / f"run-{objective}",
                              verbose=0, epochs=20, set={"objective": objective})
        result = kerasapps.evaluate(run.run_dir)
        rows = _rows(run.run_dir)
        answers = kerasapps.predict(kerasapps.export(run.run_dir, out=tmp_path / f"models-{objective}"), [test])
        if objective == "regression":
            regression = result["regression"]
            assert regression["mae"] == pytest.approx(result["metrics"]["mean_absolute_error"], rel=1e-5)
            assert regression["mae"] < regression["training_mean"]["mae"]
            np.testing.assert_allclose([a["prediction"] for a in answers], [float(r["predicted"]) for r in rows],
                                       rtol=TOLERANCE)
        else:
            assert result["classes"]["class_names"] == ["class_0", "class_1", "class_2"]
            _agree(rows, answers)


def test_a_builtin_set_evaluates_as_its_export_answers(real_data_dir, tmp_path):
    import tensorflow as tf

    run = kerasapps.train("mlp_mnist", data_dir=real_data_dir, run_dir=tmp_path / "run", verbose=0, epochs=1)
    result = kerasapps.evaluate(run.run_dir)
    assert result["examples"] == 10000 and len(result["classes"]["per_class"]) == 10
    assert [r["support"] for r in result["classes"]["per_class"]] == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                                      974, 1009]  # MNIST's test digits
    rows = _rows(run.run_dir)
    images = np.load(real_data_dir / "mnist" / "mnist.npz")["x_test"]
    serve = tf.saved_model.load(str(kerasapps.export(run.run_dir, out=tmp_path / "models")))
    out = serve.signatures["serving_default"](images=tf.constant(images))
    answers = [{"classes": c.decode(), "probabilities": p.tolist()}
               for c, p in zip(out["classes"].numpy(), out["probabilities"].numpy())]
    _agree(rows, answers)


def test_training_says_when_a_classifier_does_no_better_than_its_majority_class(tmp_path):
    """Real wine measurements with a label unrelated to them, 19 rows in 20 "common": the model can only answer
    "common", and the last lines say so; the real cultivars get no warning."""
    wine, _ = sklearn_tables(tmp_path)
    with wine.open(newline="") as handle:
        lines = list(csv.reader(handle))
    rows = [line[:-1] + ["rare" if i % 20 == 0 else "common"] for i, line in enumerate(lines[1:])]
    table = write_table(tmp_path / "noise.csv", lines[0], rows)
    printed = CliRunner().invoke(cli, ["train", "mlp_tabular", "--data", str(table), "--run-dir",
                                       str(tmp_path / "noise"), "--epochs", "5"])
    assert printed.exit_code == 0, printed.output
    assert "validation: accuracy" in printed.stdout and "(always answering 'common': " in printed.stdout
    assert "WARNING: this classifier does no better than always answering 'common' on the validation split" \
        in printed.stdout
    assert re.search(r"^test: accuracy [0-9.]+, loss [0-9.]+, balanced_accuracy [0-9.]+$", printed.stdout, re.M)
    printed = CliRunner().invoke(cli, ["train", "mlp_tabular", "--data", str(wine), "--run-dir",
                                       str(tmp_path / "wine"), "--epochs", "20"])
    assert printed.exit_code == 0 and "validation: accuracy" in printed.stdout and "WARNING" not in printed.stdout
