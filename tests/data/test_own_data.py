"""--data SOURCE: the canon trained on user-style sources built here from the real data sets (CI; the tiny
generated ones elsewhere): an image folder, a text folder, CSV tables and a TFDS builder prepared from local
files. Each is trained, exported and queried with tf.saved_model.load; the data's own labels come back."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from user_data import sklearn_tables, write_table

import kerasapps
from kerasapps.cli.main import cli
from kerasapps.core.errors import DataError

CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_cifar_folder(data_dir: Path, root: Path, classes=5, per_class=40) -> Path:
    """The CIFAR-10 images of the first ``classes`` classes as files in class folders: mostly PNG, with JPEG, BMP,
    GIF, grey and odd-sized ones among them (the pipeline converts and resizes them)."""
    arrays = np.load(data_dir / "cifar10_subset" / "cifar10_subset.npz")
    counts = dict.fromkeys(range(classes), 0)
    for index, (image, label) in enumerate(zip(arrays["x_train"], arrays["y_train"].reshape(-1))):
        label = int(label)
        if label >= classes or counts[label] >= per_class:
            continue
        counts[label] += 1
        folder = root / CIFAR[label]
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image)
        kind = counts[label] % 10
        if kind == 1:
            picture.convert("L").save(folder / f"{index}.png")
        elif kind == 2:
            picture.resize((45, 37)).save(folder / f"{index}.jpg", quality=95)
        elif kind == 3:
            picture.save(folder / f"{index}.bmp")
        elif kind == 4:
            picture.save(folder / f"{index}.gif")
        elif kind == 5:
            picture.convert("RGBA").save(folder / f"{index}.png")
        else:
            picture.save(folder / f"{index}.png")
    return root


def write_mnist_folder(data_dir: Path, root: Path, per_class=12) -> Path:
    """MNIST digits as grey PNG files, with explicit train/ and test/ splits."""
    arrays = np.load(data_dir / "mnist" / "mnist.npz")
    for split in ("train", "test"):
        for digit in range(10):
            folder = root / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(arrays[f"y_{split}"] == digit)[:per_class]:
                Image.fromarray(arrays[f"x_{split}"][i]).save(folder / f"{i}.png")
    return root


def write_review_folder(data_dir: Path, root: Path, per_class=80) -> Path:
    """IMDB reviews as text files in neg/ and pos/, the layout of the original release."""
    counts = {0: 0, 1: 0}
    with gzip.open(data_dir / "imdb" / "imdb_train.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if counts[row["label"]] >= per_class:
                if min(counts.values()) >= per_class:
                    break
                continue
            folder = root / ("pos" if row["label"] else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{sum(counts.values())}.txt").write_text(row["text"], encoding="utf-8")
            counts[row["label"]] += 1
    return root


@pytest.fixture(scope="module")
def sources(recipe_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    return {"cifar": write_cifar_folder(recipe_data_dir, root / "cifar"),
            "mnist": write_mnist_folder(recipe_data_dir, root / "mnist"),
            "reviews": write_review_folder(recipe_data_dir, root / "reviews"),
            "tables": sklearn_tables(root)}


def _serve(export: Path):
    import tensorflow as tf

    return tf.saved_model.load(str(export)).signatures["serving_default"]


def test_resnet20_on_an_image_folder_exports_the_folder_names(sources, tmp_path):
    import tensorflow as tf

    run = kerasapps.train("resnet20_cifar10", data=str(sources["cifar"]), run_dir=tmp_path / "run", verbose=0,
                          epochs=1, steps_per_epoch=3, batch_size=32, set={"width": 8})
    record = json.loads((run.run_dir / "data.json").read_text())
    assert record["class_names"] == list(CIFAR[:5]) and sum(record["examples"].values()) == 200
    serve = _serve(kerasapps.export(run.run_dir, out=tmp_path / "models"))
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((32, 32)))
                       for p in sorted((sources["cifar"] / "cat").glob("*.png"))[:4]])
    out = serve(images=tf.constant(images))
    assert out["probabilities"].shape == (4, 5)
    assert {name.decode() for name in out["classes"].numpy()} <= set(CIFAR[:5])
    assert [CIFAR[i] for i in out["class_ids"].numpy()] == [n.decode() for n in out["classes"].numpy()]
    printed = CliRunner().invoke(cli, ["predict", str(tmp_path / "models" / "resnet20_cifar10"),
                                       *map(str, sorted((sources["cifar"] / "cat").glob("*.png"))[:2])])
    assert printed.exit_code == 0, printed.stderr
    assert all(line.split(": class ")[1].split(" (")[0] in CIFAR[:5] for line in printed.stdout.splitlines())


def test_lenet5_on_a_folder_with_train_and_test_folders_learns_the_digits(sources, tmp_path):
    run = kerasapps.train("lenet5_mnist", data=str(sources["mnist"]), run_dir=tmp_path / "run", verbose=0,
                          epochs=15, batch_size=16, set={"learning_rate": 3e-3, "validation_split": 0.1})
    record = json.loads((run.run_dir / "data.json").read_text())
    assert record["examples"]["test"] == 120 and record["class_names"] == [str(d) for d in range(10)]
    assert run.metrics["test"]["accuracy"] > 0.5  # 108 training digits, chance is 0.1
    evaluation = kerasapps.evaluate(run.run_dir)  # the recorded source, read again
    assert evaluation["metrics"]["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])


def test_lenet5_on_a_table_of_image_paths(sources, tmp_path):
    """A CSV of image paths (relative to the table) and labels: the digits' names come back from the export."""
    import tensorflow as tf

    rows = [[str(path.relative_to(sources["mnist"])), f"digit {path.parent.name}"]
            for path in sorted((sources["mnist"] / "train").glob("*/*.png"))]
    table = write_table(sources["mnist"] / "digits.csv", ["image", "label"], rows)
    run = kerasapps.train("lenet5_mnist", data=str(table), run_dir=tmp_path / "run", verbose=0, epochs=1,
                          batch_size=16)
    assert json.loads((run.run_dir / "data.json").read_text())["class_names"] == [f"digit {d}" for d in range(10)]
    serve = _serve(kerasapps.export(run.run_dir, out=tmp_path / "models"))
    images = np.stack([np.asarray(Image.open(sources["mnist"] / r[0])) for r in rows[:3]])
    classes = serve(images=tf.constant(images, tf.uint8))["classes"].numpy()
    assert all(c.decode().startswith("digit ") for c in classes)


def test_char_lm_on_a_folder_of_text_files_generates_from_its_characters(recipe_data_dir, tmp_path):
    """A corpus of the user's own: Tiny Shakespeare cut into two files; the export's vocabulary is the corpus's."""
    text = (recipe_data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:60000]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(text[:30000], encoding="utf-8")
    (corpus / "b.txt").write_text(text[30000:], encoding="utf-8")
    run = kerasapps.train("char_lm", data=str(corpus), run_dir=tmp_path / "run", verbose=0, smoke=True)
    generated = kerasapps.generate(run.run_dir, "ROMEO:", length=40, seed=1)
    assert generated.startswith("ROMEO:") and set(generated) <= set(text)


def test_captioning_on_a_table_of_captioned_images(recipe_data_dir, tmp_path):
    """Flickr8k images as files (some not square) and a CSV of one row per caption: splits are carved by image,
    the vocabulary is the table's, and the export captions a new image."""
    import tensorflow as tf

    from kerasapps.core.recipe import DataContext
    from kerasapps.data.sources import load_splits

    folder = recipe_data_dir / "flickr8k_subset"
    images = np.load(folder / "images_64.npz")["images"][:40]
    entries = json.loads((folder / "captions.json").read_text(encoding="utf-8"))["images"][:40]
    (tmp_path / "photos").mkdir()
    rows = []
    for i, (image, entry) in enumerate(zip(images, entries)):
        picture = Image.fromarray(image)
        if i % 4 == 0:  # letterboxed: the central square is what the encoder sees
            picture = Image.fromarray(np.pad(image, ((0, 0), (8, 8), (0, 0))))
        picture.save(tmp_path / "photos" / f"{i}.jpg", quality=95)
        rows += [[f"photos/{i}.jpg", caption] for caption in entry["captions"]]
    table = write_table(tmp_path / "captions.csv", ["image", "caption"], rows)
    recipe = kerasapps.get_recipe("captioning_flickr8k")
    splits = load_splits(recipe, recipe.resolve(), DataContext(None, source=str(table)))
    seen = {name: set(splits[name][0][0].paths.tolist()) for name in ("train", "validation", "test")}
    assert all(seen.values()) and not (seen["train"] & seen["test"]) and not (seen["train"] & seen["validation"])
    assert sum(len(s) for s in seen.values()) == 40 and len(splits["train"][1]) == 5 * len(seen["train"])
    run = kerasapps.train("captioning_flickr8k", data=str(table), run_dir=tmp_path / "run", verbose=0, epochs=1,
                          set={"units": 32, "embedding_dim": 16, "base_filters": 8})
    assert np.isfinite(run.metrics["test"]["loss"])
    serve = _serve(kerasapps.export(run.run_dir, out=tmp_path / "models"))
    captions = serve(images=tf.constant(images[:2]))["captions"].numpy()
    assert captions.shape == (2,) and all(isinstance(c, bytes) for c in captions)


def test_a_file_source_resumes_exactly_and_caches_give_the_same_model(sources, tmp_path):
    import keras

    class Crash(keras.callbacks.Callback):  # a kill at the start of epoch 2, after epoch 1's checkpoint
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("killed")

    options = dict(data=str(sources["mnist"]), verbose=0, epochs=2, batch_size=16,
                   set={"augment_shift": 0.1, "cache": "none"})
    kerasapps.train("lenet5_mnist", run_dir=tmp_path / "whole", **options)
    with pytest.raises(KeyboardInterrupt):
        kerasapps.train("lenet5_mnist", run_dir=tmp_path / "killed", callbacks=[Crash()], **options)
    kerasapps.train("lenet5_mnist", run_dir=tmp_path / "killed", resume=True, verbose=0)
    for cache in ("memory", "disk"):
        kerasapps.train("lenet5_mnist", run_dir=tmp_path / cache,
                        **{**options, "set": {**options["set"], "cache": cache}})
    weights = {name: keras.saving.load_model(tmp_path / name / "model.keras", compile=False).get_weights()
               for name in ("whole", "killed", "memory", "disk")}
    for name in ("killed", "memory", "disk"):
        for a, b in zip(weights["whole"], weights[name]):
            np.testing.assert_array_equal(a, b)


def test_imdb_on_a_text_folder_answers_neg_or_pos(sources, tmp_path):
    import tensorflow as tf

    run = kerasapps.train("imdb_sentiment", data=str(sources["reviews"]), run_dir=tmp_path / "run", verbose=0,
                          epochs=1, set={"units": 8, "embedding_dim": 8, "max_tokens": 2000, "sequence_length": 64})
    serve = _serve(kerasapps.export(run.run_dir, out=tmp_path / "models"))
    out = serve(text=tf.constant(["A wonderful film.", "Dull and far too long."]))
    assert set(out["classes"].numpy().tolist()) <= {b"neg", b"pos"}
    assert out["probability"].shape == (2,)
    reviews = sorted((sources["reviews"] / "pos").glob("*.txt"))[:3]
    printed = CliRunner().invoke(cli, ["predict", str(tmp_path / "models" / "imdb_sentiment"), *map(str, reviews)])
    assert printed.exit_code == 0, printed.output
    for line in printed.stdout.splitlines():  # "REVIEW.txt: class pos (p=0.5312)": the folder names come back
        label, p = line.split(": class ")[1].split(" (p=")
        assert label in ("neg", "pos") and 0.5 <= float(p.rstrip(")")) <= 1.0, line


def test_mlp_tabular_classifies_wine_and_regresses_diabetes(sources, tmp_path):
    import tensorflow as tf

    from kerasapps.data.tables import input_name

    wine, diabetes = sources["tables"]
    run = kerasapps.train("mlp_tabular", data=str(wine), run_dir=tmp_path / "wine", verbose=0, epochs=40)
    assert run.metrics["test"]["accuracy"] > 0.85  # three cultivars from 13 measurements
    serve = _serve(kerasapps.export(run.run_dir, out=tmp_path / "models"))
    with open(wine, newline="") as handle:
        rows = list(csv.DictReader(handle))[:5]
    columns = {input_name(k): tf.constant([float(r[k]) for r in rows], tf.float32) for k in rows[0] if k != "label"}
    out = serve(**columns)
    assert {c.decode() for c in out["classes"].numpy()} <= {"class_0", "class_1", "class_2"}
    np.testing.assert_allclose(out["probabilities"].numpy().sum(axis=-1), 1.0, rtol=1e-5)

    regression = kerasapps.train("mlp_tabular", data=str(diabetes), run_dir=tmp_path / "diabetes", verbose=0,
                                 epochs=60, set={"objective": "regression"})
    test = regression.metrics["test"]
    assert {"mean_absolute_error", "root_mean_squared_error"} <= set(test)
    assert test["mean_absolute_error"] < 60  # the targets spread 25-346; predicting their mean gives about 64
    predicted = CliRunner().invoke(cli, ["predict", "--json", str(tmp_path / "diabetes"), str(diabetes)])
    assert predicted.exit_code == 0, predicted.stderr
    assert len(json.loads(predicted.stdout)) == 442 and "prediction" in json.loads(predicted.stdout)[0]


class _Tfds:
    """A TFDS builder prepared from local PNG files (no download), as a user would write one."""

    @staticmethod
    def define(folder: Path):
        import tensorflow_datasets as tfds

        class LocalShapes(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
                return tfds.core.DatasetInfo(
                    builder=self, supervised_keys=("image", "label"),
                    features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(32, 32, 3)),
                                                         "label": tfds.features.ClassLabel(names=list(CIFAR[:5]))}))

            def _split_generators(self, dl_manager):
                return {"train": self._generate_examples(folder)}

            def _generate_examples(self, root):
                for label, name in enumerate(CIFAR[:5]):
                    for path in sorted((root / name).glob("*.png")):
                        image = np.asarray(Image.open(path).convert("RGB").resize((32, 32)))
                        yield f"{name}/{path.name}", {"image": image, "label": label}

        return LocalShapes


def test_a_tfds_builder_prepared_from_local_files_trains(sources, tmp_path, monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setenv("KERASAPPS_CACHE_DIR", str(tmp_path / "cache"))
    builder = _Tfds.define(sources["cifar"])(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare()
    run = kerasapps.train("resnet20_cifar10", data="tfds:local_shapes", run_dir=tmp_path / "run", verbose=0,
                          epochs=1, steps_per_epoch=2, batch_size=32, set={"width": 8})
    assert json.loads((run.run_dir / "data.json").read_text())["class_names"] == list(CIFAR[:5])
    out = _serve(kerasapps.export(run.run_dir, out=tmp_path / "models"))(images=tf.zeros([1, 32, 32, 3], tf.uint8))
    assert out["classes"].numpy()[0].decode() in CIFAR[:5]


@pytest.mark.parametrize("case", ["missing", "empty_class", "one_class", "text_for_images", "bad_image", "truncated",
                                  "table_columns", "unseen_label", "builtin_only", "tfds_unknown", "two_classes"])
def test_bad_sources_are_one_line_before_anything_is_written(case, sources, recipe_data_dir, tmp_path):
    recipe, source, fragments = "resnet20_cifar10", tmp_path / "src", []
    if case == "missing":
        fragments = ["takes images in class folders", "is nothing (no such file or directory)"]
    elif case == "empty_class":
        (source / "cat").mkdir(parents=True)
        (source / "dog").mkdir()
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(source / "dog" / "a.png")
        fragments = ["class folder", "cat holds no images"]
    elif case == "one_class":
        (source / "cat").mkdir(parents=True)
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(source / "cat" / "a.png")
        fragments = ["1 class folder(s) (cat)", "at least two"]
    elif case == "text_for_images":
        source = sources["reviews"]
        fragments = ["takes images in class folders", "holds text files"]
    elif case == "bad_image":
        for name in ("cat", "dog"):
            (source / name).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((32, 32, 3), 9 * i, np.uint8)).save(source / name / f"{i}.png")
        (source / "dog" / "broken.png").write_bytes(b"not a png")
        fragments = ["1 file(s) are not decodable", "broken.png", "bad_files=skip"]
    elif case == "truncated":  # real photos as JPEG files, one cut short: its header still reads
        photos = np.load(recipe_data_dir / "flickr8k_subset" / "images_64.npz")["images"][:8]
        for i, image in enumerate(photos):
            (source / ("cat", "dog")[i % 2]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(source / ("cat", "dog")[i % 2] / f"{i}.jpg", quality=95)
        whole = (source / "dog" / "3.jpg").read_bytes()
        (source / "dog" / "3.jpg").write_bytes(whole[:len(whole) // 3])
        with Image.open(source / "dog" / "3.jpg") as picture:
            assert picture.format == "JPEG"  # what the pre-check looked at before: it passed
        fragments = ["1 file(s) are not decodable", "3.jpg", "bad_files=skip"]
    elif case == "table_columns":
        source = write_table(tmp_path / "t.csv", ["path", "label"], [["a.png", "cat"], ["b.png", "dog"]])
        fragments = ["no image column 'image'", "its columns: path, label", "--set image_column=NAME"]
    elif case == "unseen_label":
        for split, names in (("train", ("cat", "dog")), ("test", ("cat", "emu"))):
            for name in names:
                (source / split / name).mkdir(parents=True)
                Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(source / split / name / "a.png")
        fragments = ["the test split has classes training never saw: emu"]
    elif case == "builtin_only":
        recipe, source = "mnist_transfer", sources["mnist"]
        fragments = ["trains on its built-in data only", "it takes no --data"]
    elif case == "tfds_unknown":
        source = "tfds:no_such_set_anywhere"
        fragments = ["--data tfds:no_such_set_anywhere", "not found"]
    elif case == "two_classes":
        recipe, source = "imdb_sentiment", tmp_path / "three"
        for name in ("a", "b", "c"):
            (source / name).mkdir(parents=True)
            for i in range(5):
                (source / name / f"{i}.txt").write_text(f"text {name} {i}")
        fragments = ["tells two classes apart", "the data has 3: a, b, c"]
    result = CliRunner().invoke(cli, ["train", recipe, "--data", str(source), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not (tmp_path / "run").exists()


def test_a_file_that_breaks_during_training_fails_the_run_in_one_line(sources, tmp_path):
    """A file that changes on disk after the check: one line naming it, the run marked failed, and
    --overwrite --set bad_files=skip starts it again without it."""
    import shutil

    import keras

    source = shutil.copytree(sources["mnist"], tmp_path / "digits")
    victim = sorted((source / "train" / "7").glob("*.png"))[0]

    class Truncate(keras.callbacks.Callback):  # after the check, as a user's sync tool might leave a file
        def on_train_begin(self, logs=None):
            victim.write_bytes(victim.read_bytes()[:60])

    options = dict(data=str(source), run_dir=tmp_path / "run", verbose=0, epochs=2, batch_size=16)
    with pytest.raises(DataError) as raised:
        kerasapps.train("lenet5_mnist", callbacks=[Truncate()], **options)
    message = str(raised.value)
    assert str(victim) in message and "--overwrite --set bad_files=skip" in message and "\n" not in message
    assert json.loads((tmp_path / "run" / "state.json").read_text())["status"] == "failed"
    before = json.loads((tmp_path / "run" / "data.json").read_text())["examples"]
    result = CliRunner().invoke(cli, ["train", "lenet5_mnist", "--data", str(source), "--run-dir",
                                      str(tmp_path / "run"), "--epochs", "1", "--overwrite", "--set",
                                      "bad_files=skip"])
    assert result.exit_code == 0, result.output
    after = json.loads((tmp_path / "run" / "data.json").read_text())["examples"]
    assert sum(after.values()) == sum(before.values()) - 1 and after["test"] == before["test"]


def test_bad_files_skip_leaves_them_out_with_a_count(tmp_path, caplog):
    import logging

    source = tmp_path / "src"
    for name in ("cat", "dog"):
        (source / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((32, 32, 3), 20 * i, np.uint8)).save(source / name / f"{i}.png")
    (source / "dog" / "broken.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING, logger="kerasapps"):
        run = kerasapps.train("resnet20_cifar10", data=str(source), run_dir=tmp_path / "run", verbose=0, smoke=True,
                              set={"bad_files": "skip", "width": 4})
    assert "skipping 1 file(s)" in caplog.text and "broken.png" in caplog.text
    assert sum(json.loads((run.run_dir / "data.json").read_text())["examples"].values()) == 12
    with pytest.raises(DataError, match="no such file"):
        kerasapps.train("mlp_tabular", data=str(tmp_path / "none.csv"), run_dir=tmp_path / "t", verbose=0)
