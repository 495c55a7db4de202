"""The one door for ``--data``: a registered source kind is recognised, read and refused where it does not fit,
and every recipe task refuses the kinds it does not take in one line, before reading anything."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerasapps.core.errors import DataError
from kerasapps.core.recipe import DataContext
from kerasapps.core.registry import REGISTRY
from kerasapps.data import sources
from kerasapps.data.builtin import load_npz
from kerasapps.data.sources import SourceKind, load_splits, register_source_kind


def _digits_archive(data_dir: Path, path: Path) -> Path:
    """300 training and 100 test digits of MNIST (real where the data sets are) in one .npz of the user's."""
    arrays = load_npz(data_dir / "mnist" / "mnist.npz", ["x_train", "y_train", "x_test", "y_test"])
    np.savez(path, images=arrays["x_train"][:300], labels=arrays["y_train"][:300],
             test_images=arrays["x_test"][:100], test_labels=arrays["y_test"][:100])
    return path


def _read_archive(source, reader, hp):
    archive = np.load(source)
    return {"train": (archive["images"], archive["labels"].astype(np.int64)),
            "test": (archive["test_images"], archive["test_labels"].astype(np.int64))}


@pytest.fixture
def own_registry(monkeypatch):
    """The registry as it is, restored after the test."""
    monkeypatch.setattr(sources, "SOURCE_KINDS", list(sources.SOURCE_KINDS))
    monkeypatch.setattr(sources, "ACCEPTS", dict(sources.ACCEPTS))


def test_a_registered_kind_is_read_for_the_tasks_it_serves_and_refused_by_the_others(recipe_data_dir, tmp_path,
                                                                                        own_registry):
    archive = _digits_archive(recipe_data_dir, tmp_path / "digits.npz")
    register_source_kind(SourceKind("npz", lambda source: source.endswith(".npz"),
                                    lambda source: "a NumPy archive", _read_archive),
                         before="table", tasks=("image_classification",))
    assert sources.kind_of(str(archive)).name == "npz"
    recipe = REGISTRY.get("mlp_mnist")
    splits = load_splits(recipe, recipe.resolve(), DataContext(None, source=str(archive)))
    assert len(splits["train"][1]) + len(splits["validation"][1]) == 300  # validation carved from train
    assert len(splits["test"][1]) == 100 and splits["test"][0].shape[1:] == (28, 28)
    tabular = REGISTRY.get("mlp_tabular")
    with pytest.raises(DataError, match=r"recipe 'mlp_tabular' takes a \.csv or \.jsonl table; --data .*digits\.npz "
                                        r"is a NumPy archive$"):
        load_splits(tabular, tabular.resolve(), DataContext(None, source=str(archive)))


def test_each_task_refuses_the_kinds_it_does_not_take_in_one_line(tmp_path):
    photos = tmp_path / "photos"
    for label in ("cat", "dog"):
        (photos / label).mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(photos / label / "a.png")
    table = tmp_path / "reviews.csv"
    table.write_text("text,label\ngood,1\nbad,0\n")
    cases = [("mlp_tabular", photos, "takes a .csv or .jsonl table; --data {} is images in class folders"),
             ("char_lm", table, "takes a text file (or a folder of them); --data {} is a CSV table"),
             ("imdb_sentiment", photos, "takes text files in class folders (or a table or TFDS set of texts and "
                                        "labels); --data {} holds images"),
             ("mlp_mnist", tmp_path / "nowhere", "takes images in class folders (or a table or TFDS set of images "
                                                 "and labels); --data {} is nothing (no such file or directory)")]
    for name, source, message in cases:
        recipe = REGISTRY.get(name)
        with pytest.raises(DataError) as error:
            load_splits(recipe, recipe.resolve(), DataContext(None, source=str(source)))
        assert str(error.value) == f"recipe {name!r} " + message.format(source), name
    assert [kind.name for kind in sources.SOURCE_KINDS] == ["tfds", "folder", "table", "file"]
