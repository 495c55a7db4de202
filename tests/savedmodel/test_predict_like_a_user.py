"""``kerasapps predict`` on what users have: folders of images (recursively), texts on the command line, the
predictions written to a .csv or .jsonl file, and a reader that leaves early (``| head -1``)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from user_data import live_server

import kerasapps
from kerasapps.cli.main import cli
from kerasapps.core.errors import UsageError
from kerasapps.savedmodel.collect import files_in_folder, predict_in_chunks
from kerasapps.savedmodel.predictions import write_predictions


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def mnist(tmp_path_factory, recipe_data_dir):
    """An mlp_mnist smoke export, and a folder of MNIST test digits as PNG files in class subfolders (real MNIST
    where the data directory is set), with a hidden file and a stray non-image among them."""
    folder = tmp_path_factory.mktemp("mnist")
    run = kerasapps.train("mlp_mnist", run_dir=folder / "run", data_dir=recipe_data_dir, smoke=True, verbose=0)
    export = kerasapps.export(run.run_dir, out=folder / "models")
    data = np.load(recipe_data_dir / "mnist" / "mnist.npz")
    photos = folder / "photos"
    for i, (image, label) in enumerate(zip(data["x_test"][:30], data["y_test"][:30])):
        (photos / "test" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(photos / "test" / str(label) / f"{i:03d}.png")
    (photos / ".hidden.png").write_bytes(b"not an image")
    (photos / "test" / "notes.md").write_text("not read")
    return export, photos


def test_a_folder_is_its_images_recursively_and_out_writes_a_row_each(mnist, tmp_path):
    export, photos = mnist
    files = files_in_folder(photos, (".png",))
    assert len(files) == 30 and files == sorted(files) and not any("hidden" in f for f in files)
    one_by_one = {f: kerasapps.predict(export, [f])[0]["classes"] for f in files}
    for suffix in ("csv", "jsonl"):
        out = tmp_path / f"predictions.{suffix}"
        result = CliRunner().invoke(cli, ["predict", str(export), str(photos), "--out", str(out), "--top-k", "2"])
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == f"wrote 30 predictions to {out}"
        if suffix == "csv":
            with out.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        else:
            rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == 30 and [row["input"] for row in rows] == files
        assert {row["input"]: row["class"] for row in rows} == one_by_one
        for row in rows:
            top = row["top_k"].split()
            assert len(top) == 2 and float(top[0].split(":")[1]) == pytest.approx(float(row["probability"]), abs=1e-4)
            assert top[0].split(":")[0] == row["class"] and 0 <= float(row["probability"]) <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv", "predictions.jsonl"]  # no temp left


def test_chunks_give_the_same_rows_in_order(mnist):
    export, photos = mnist
    files = files_in_folder(photos, (".png",))
    seen = []

    def run(part):
        seen.append(len(part))
        return kerasapps.predict(export, part)

    rows = predict_in_chunks(run, files, chunk=8)
    assert seen == [8, 8, 8, 6] and [row["input"] for row in rows] == files


def test_one_line_errors_for_what_predict_cannot_read(mnist, tmp_path):
    export, _ = mnist
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no images here")
    _one_line_error(CliRunner().invoke(cli, ["predict", str(export), str(empty)]), str(empty), "no images", ".png")
    _one_line_error(CliRunner().invoke(cli, ["predict", str(export), str(empty), "--out", "p.xlsx"]),
                    "p.xlsx", ".csv or .jsonl")
    _one_line_error(CliRunner().invoke(cli, ["predict", str(export), "--text", "a fine film"]),
                    "--text is for text models", "uint8")
    table = tmp_path / "paths.csv"
    table.write_text("path\nx.png\n")
    _one_line_error(CliRunner().invoke(cli, ["predict", str(export), str(table)]), "paths.csv: a table")
    with pytest.raises(UsageError, match="top_k"):
        kerasapps.predict(export, [str(table)], top_k=0)


def test_a_closed_pipe_ends_quietly(mnist, tmp_path):
    """3,000 rows (far more than a pipe holds) into ``head -1``: exit 0 and no traceback."""
    export, _ = mnist
    np.save(tmp_path / "many.npy", np.zeros((3000, 28, 28), np.uint8))
    many = tmp_path / "many.npy"
    command = f"set -o pipefail; '{sys.executable}' -m kerasapps.cli.main predict '{export}' '{many}' | head -1"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1 and "many.npy[0]: class" in done.stdout
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_texts_on_the_command_line(tiny_data_dir, tmp_path):
    run = kerasapps.train("imdb_sentiment", run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True, verbose=0,
                          set={"units": 8, "embedding_dim": 8, "max_tokens": 100})
    export = kerasapps.export(run.run_dir, out=tmp_path / "models")
    texts = ["A wonderful, superb film; I loved it.", "Boring and awful."]
    rows = kerasapps.predict(export, text=texts)
    assert [row["input"] for row in rows] == ["text 1", "text 2"]
    review = tmp_path / "review.txt"
    review.write_text(texts[0], encoding="utf-8")
    (from_file,) = kerasapps.predict(export, [review])
    assert rows[0]["probability"] == pytest.approx(from_file["probability"], abs=1e-6)
    printed = CliRunner().invoke(cli, ["predict", str(export), "--text", texts[0], "--text", texts[1]])
    assert printed.exit_code == 0, printed.stderr
    assert [line.split(":")[0] for line in printed.stdout.strip().splitlines()] == ["text 1", "text 2"]
    out = tmp_path / "texts.jsonl"
    assert CliRunner().invoke(cli, ["predict", str(export), "--text", texts[1], "--out", str(out)]).exit_code == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["input"] == "text 1" and row["class"] == rows[1]["classes"] and len(row["top_k"].split()) == 2
    # the class that was not predicted is named as the export names it (not by its index)
    names = json.loads((export / "assets.extra" / "kerasapps.json").read_text())["class_names"]
    assert sorted(pair.rsplit(":", 1)[0] for pair in row["top_k"].split()) == sorted(names) != ["0", "1"]


def test_out_rows_for_tables_and_regressions(tmp_path):
    rows = [{"input": "wine.csv[0]", "probabilities": [0.1, 0.7, 0.2], "class_ids": 1, "classes": "b"},
            {"input": "wine.csv[1]", "probabilities": [0.6, 0.3, 0.1], "class_ids": 0, "classes": "a"}]
    write_predictions(rows, tmp_path / "p.csv", top_k=3)
    with (tmp_path / "p.csv").open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [row["input"] for row in written] == ["wine.csv:1", "wine.csv:2"]
    assert written[0]["top_k"] == "b:0.7000 2:0.2000 a:0.1000" and written[0]["probability"] == "0.7"
    write_predictions(rows, tmp_path / "named.csv", top_k=3, class_names=["a", "b", "c"])  # as the export says
    with (tmp_path / "named.csv").open(newline="") as handle:
        assert next(csv.DictReader(handle))["top_k"] == "b:0.7000 c:0.2000 a:0.1000"
    write_predictions([{"input": "d.csv[0]", "predictions": [151.5]}], tmp_path / "r.jsonl")
    assert json.loads((tmp_path / "r.jsonl").read_text()) == {"input": "d.csv:1", "prediction": 151.5}


def test_a_folder_through_a_server(mnist, tmp_path):
    """``--url``: the same folder expansion and --out rows as the export on this machine gives."""
    from kerasapps.serving.server import create_app

    export, photos = mnist
    with live_server(create_app(export.parent.parent)) as (base, _):
        url = f"{base}/v1/models/mlp_mnist"
        out = tmp_path / "remote.csv"
        result = CliRunner().invoke(cli, ["predict", "--url", url, str(photos), "--out", str(out)])
        assert result.exit_code == 0, result.stderr
        with out.open(newline="") as handle:
            remote = list(csv.DictReader(handle))
        local = kerasapps.predict(export, [photos])
        assert [(row["input"], row["class"]) for row in remote] == [(row["input"], row["classes"]) for row in local]
        _one_line_error(CliRunner().invoke(cli, ["predict", "--url", url, "--text", "hello"]),
                        "--text is for text models")


@pytest.mark.slow  # trains and exports several runs (the full suite runs it)
def test_every_row_of_a_table_is_a_row_of_out(real_tables, tmp_path):
    """mlp_tabular on scikit-learn's wine (classes) and diabetes (a regression): a row per table row."""
    for name, settings in (("wine", {}), ("diabetes", {"objective": "regression"})):
        table = real_tables[name]
        run = kerasapps.train("mlp_tabular", data=str(table), run_dir=tmp_path / name, smoke=True, verbose=0,
                              set=settings)
        export = kerasapps.export(run.run_dir, out=tmp_path / "models", name=name)  # two signatures: two names
        out = tmp_path / f"{name}.jsonl"
        rows = kerasapps.predict(export, [table], out=out)
        written = [json.loads(line) for line in out.read_text().splitlines()]
        count = len(table.read_text().strip().splitlines()) - 1
        assert len(rows) == len(written) == count
        assert [row["input"] for row in written] == [f"{table}:{i}" for i in range(1, count + 1)]
        if name == "wine":
            assert all(row["class"] == source["classes"] for row, source in zip(written, rows))
        else:
            assert all(isinstance(row["prediction"], float) for row in written), written[0]
