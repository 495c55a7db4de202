"""``kerasapps predict`` reads what the signature takes: text files for the text exports (one review or prompt
per file), images and .npy arrays for image exports, images of any size batched by size."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import kerasapps
from kerasapps.cli.main import cli
from kerasapps.core.errors import UsageError
from kerasapps.savedmodel.inputs import InputSpec, load_inputs


def _export(recipe, data_dir, folder: Path, **options) -> Path:
    run = kerasapps.train(recipe, run_dir=folder / "run", data_dir=data_dir, smoke=True, verbose=0, **options)
    return kerasapps.export(run.run_dir, out=folder / "models")


def _reviews(folder: Path, texts) -> list[str]:
    paths = []
    for i, text in enumerate(texts):
        path = folder / f"review-{i}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


def test_imdb_export_reads_one_review_per_text_file(tiny_data_dir, tmp_path):
    export = _export("imdb_sentiment", tiny_data_dir, tmp_path, set={"units": 8, "embedding_dim": 8, "max_tokens": 100})
    files = _reviews(tmp_path, ["A wonderful, superb film; I loved it.", "Boring and awful.\nTruly terrible.",
                                "caf\u00e9 \u2014 na\u00efve, \u2028 a separator inside"])
    rows = kerasapps.predict(export, files)
    assert [row["input"] for row in rows] == files
    assert all(0.0 <= row["probability"] <= 1.0 and row["class_ids"] in (0, 1) for row in rows)
    assert all(row["classes"] == ("positive" if row["class_ids"] else "negative") for row in rows)
    printed = CliRunner().invoke(cli, ["predict", str(export.parent), *files])
    assert printed.exit_code == 0, printed.stderr
    lines = printed.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == files
    for line, row in zip(lines, rows):  # the class name, and the probability of that class
        p = row["probability"] if row["class_ids"] else 1 - row["probability"]
        assert line.endswith(f": class {row['classes']} (p={p:.4f})"), line
    from_run = kerasapps.predict(tmp_path / "run", files[:1])
    assert from_run[0]["probability"] == pytest.approx(rows[0]["probability"], abs=1e-6)


def test_a_text_file_that_is_not_utf8_is_one_line(tiny_data_dir, tmp_path):
    export = _export("imdb_sentiment", tiny_data_dir, tmp_path, set={"units": 8, "embedding_dim": 8, "max_tokens": 100})
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\u00e9".encode("latin-1"))
    result = CliRunner().invoke(cli, ["predict", str(export), str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "cannot read text file" in result.stderr and "UTF-8" in result.stderr


def test_char_lm_export_continues_a_prompt_file(tiny_data_dir, tmp_path):
    export = _export("char_lm", tiny_data_dir, tmp_path, set={"seq_len": 16, "units": 8, "layers": 1})
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("ROMEO:", encoding="utf-8")
    (row,) = kerasapps.predict(export, [str(prompt)])
    assert row["text"].startswith("ROMEO:") and len(row["generated"]) == 200


def test_images_of_any_size_are_batched_by_size_and_returned_in_order(tmp_path):
    sizes = [(40, 30), (64, 64), (40, 30)]
    paths = []
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(np.full((h, w, 3), 50 * i, np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    groups = load_inputs(paths, InputSpec("images", (None, None, None, 3), "uint8"))
    assert sorted((batch.shape, positions) for batch, _, positions in groups) == [
        ((1, 64, 64, 3), [1]), ((2, 30, 40, 3), [0, 2])]
    assert all(batch.dtype == np.uint8 for batch, _, _ in groups)


def test_real_reviews_and_shakespeare_export_reload_and_predict(real_data_dir, tmp_path):
    """The real IMDB vocabulary (it holds U+0085 and other line separators) survives export and reload."""
    import tensorflow as tf

    export = _export("imdb_sentiment", real_data_dir, tmp_path / "imdb")
    with gzip.open(real_data_dir / "imdb" / "imdb_test.jsonl.gz", "rt", encoding="utf-8") as handle:
        texts = [json.loads(next(handle))["text"] for _ in range(3)]
    files = _reviews(tmp_path, texts)
    rows = kerasapps.predict(export, files)
    assert [row["input"] for row in rows] == files and all(0 <= row["probability"] <= 1 for row in rows)
    serve = tf.saved_model.load(str(export)).signatures["serving_default"]
    assert serve(text=tf.constant(["\u0085 a line\u2028separator"]))["probability"].shape == (1,)

    lm = _export("char_lm", real_data_dir, tmp_path / "lm")
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("KING HENRY:", encoding="utf-8")
    (row,) = kerasapps.predict(lm, [str(prompt)])
    assert row["text"].startswith("KING HENRY:") and len(row["generated"]) == 200


def test_a_huge_image_is_refused_by_its_size_before_it_is_decoded(tmp_path):
    """A 10,000 x 10,000 PNG: the header says its size; the pixels are never decoded (here: never written)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path = tmp_path / "huge.png"  # a valid header with a truncated body: decoding would fail, the size check does not
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 10_000, 10_000, 8, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(UsageError, match=r"huge.png is 10000x10000 pixels, more than predict reads"):
        load_inputs([str(path)], InputSpec("images", (None, None, None, 3), "uint8"))


def test_a_model_trained_on_larger_photos_answers_for_them_as_evaluate_scored_them(recipe_data_dir, tmp_path):
    """resnet20_cifar10 takes 32x32; trained on a folder of 64x64 Flickr8k photos (real in CI), predict reads the
    same files as training and evaluation did (TensorFlow's decoding and resize), so its answers score what
    the run's test metrics say, for the run directory and for its export alike."""
    photos = np.load(recipe_data_dir / "flickr8k_subset" / "images_64.npz")["images"][:48]
    labels = ["bright" if image.mean() > photos.mean() else "dark" for image in photos]
    cut = len(photos) * 2 // 3  # 32 of the real subset's first 48; the generated subset has 20 photos
    for split, part in (("train", slice(0, cut)), ("test", slice(cut, len(photos)))):
        for i in range(len(photos))[part]:
            folder = tmp_path / "photos" / split / labels[i]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(photos[i]).save(folder / f"{i:03d}.png")
    run = kerasapps.train("resnet20_cifar10", data=str(tmp_path / "photos"), run_dir=tmp_path / "run", epochs=1,
                          batch_size=16, set={"width": 4}, verbose=0)
    files = sorted((tmp_path / "photos" / "test").rglob("*.png"))
    export = kerasapps.export(run.run_dir, out=tmp_path / "models")
    for model in (run.run_dir, export):
        rows = kerasapps.predict(model, files)
        accuracy = np.mean([row["classes"] == path.parent.name for row, path in zip(rows, files)])
        assert accuracy == pytest.approx(run.metrics["test"]["accuracy"], abs=1e-6)
    with pytest.raises(UsageError, match="the model takes arrays of uint8"):  # arrays are tensors: no resizing
        np.save(tmp_path / "big.npy", photos[:2])
        kerasapps.predict(export, [tmp_path / "big.npy"])
