"""Where a run's data comes from: the recipe's built-in set, or the user's own (``--data SOURCE``).

SOURCE is one of

* a directory with one subfolder per class: images (PNG, JPEG, BMP, GIF) or text files (``.txt``),
  optionally inside ``train/``, ``validation/`` and ``test/`` (:mod:`kerasapps.data.folders`);
* a ``.csv`` or ``.jsonl`` table (or ``train.csv`` beside ``validation.csv`` / ``test.csv``) with an
  image or text column and a label column (:mod:`kerasapps.data.tables`);
* ``tfds:NAME[/CONFIG][:VERSION]``, any TFDS data set (:mod:`kerasapps.data.tfds_source`).

What fits depends on what the recipe takes (``Recipe.task``): image and text classifiers read folders,
tables and TFDS here; a text corpus, a table of features or captioned images are read by the recipe's
own ``load_data``, which finds the source in ``ctx.source``. A source that does not fit is one line
naming what the recipe takes and what the source holds. :func:`load_splits` is the one way every
command gets a recipe's data: ``train`` and ``evaluate`` with the test split, ``tune`` and ``diagnose``
without it (they never read it).
"""

from __future__ import annotations

from pathlib import Path

from kerasapps.core.errors import DataError
from kerasapps.core.recipe import Splits, meta_of
from kerasapps.data.files import Reader, cached
from kerasapps.data.splits import carve_validation, smoke_slice

TAKES = {"image_classification": "images in class folders (or a table or TFDS set of images and labels)",
         "text_classification": "text files in class folders (or a table or TFDS set of texts and labels)",
         "text_corpus": "a text file (or a folder of them)", "tabular": "a .csv or .jsonl table",
         "captioned_images": "a table of image paths and captions"}
READ_HERE = ("image_classification", "text_classification")


def load_splits(recipe, hp, ctx, *, test: bool = True) -> Splits:
    """The recipe's splits and their meta, with a validation split carved from train when it has none.

    ``test=False`` leaves the test split out. With ``ctx.smoke`` every split is cut to a small slice
    (:data:`kerasapps.data.splits.SMOKE_SIZES`).
    """
    if ctx.source and not recipe.task:
        raise DataError(f"recipe {recipe.name!r} trains on its built-in data only ({recipe.data}); it takes no --data")
    if ctx.source and recipe.task in READ_HERE:
        loaded = load_source(ctx.source, recipe, hp)
    else:
        loaded = recipe.load_data(hp, ctx)
    for required in ("train", "test") if test else ("train",):
        if required not in loaded:
            raise DataError(f"recipe {recipe.name!r} returned no '{required}' split (got {', '.join(loaded)})")
    splits = Splits({name: split for name, split in loaded.items() if test or name != "test"}, meta=meta_of(loaded))
    if recipe.check_data is not None:
        recipe.check_data(hp, splits)
    if splits.get("validation") is None:
        splits["train"], splits["validation"] = carve_validation(splits["train"], hp.validation_split, hp.seed)
    if ctx.smoke:
        splits = Splits({k: (smoke_slice(v, k) if v is not None else None) for k, v in splits.items()},
                        meta=splits.meta)
    splits = Splits({name: _cached(split, hp.cache) for name, split in splits.items()}, meta=splits.meta)
    if ctx.source and recipe.task == "text_classification":  # a text classifier adapts its vocabulary on these
        splits.meta["vocabulary_texts"] = training_texts(splits["train"][0])
        splits.meta["vocabulary_labels"] = splits["train"][1]  # in the texts' order (NBSVM's ratios need them)
    return splits


def training_texts(x):
    """The training texts a vocabulary is adapted on: the array itself, or a ``tf.data`` stream of the files."""
    from kerasapps.data.files import Examples

    if not isinstance(x, Examples):
        return x
    import tensorflow as tf

    texts = tf.data.Dataset.from_tensor_slices(x.paths).map(x.reader.read, num_parallel_calls=tf.data.AUTOTUNE)
    return texts.batch(256)


def _cached(split, mode: str):
    if split is None:
        return None
    x, y = split
    from kerasapps.data.files import Examples

    return (cached(x, mode), y) if isinstance(x, Examples) else split


def read_corpus(source: str) -> str:
    """A text corpus (``text_corpus`` recipes): a UTF-8 file, or a folder's ``.txt`` files joined in sorted order."""
    from kerasapps.data.files import TEXT_SUFFIXES, check_texts, files_in

    path = Path(source).expanduser()
    files = files_in(path, TEXT_SUFFIXES) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise DataError(f"--data {source}: {'no .txt files in the folder' if path.is_dir() else 'no such file'}")
    check_texts(files, "error")
    return "\n".join(file.read_text(encoding="utf-8") for file in files)


def reader_for(recipe, hp=None) -> Reader:
    """How a file becomes the raw input the recipe's export takes: an image of its size (for an export of any
    size, the size the run's hyper-parameters read files to), or a text."""
    if recipe.serving is None:
        raise DataError(f"recipe {recipe.name!r} declares no serving signature, so no input a file could become")
    serving = recipe.serving.configure(hp) if hp is not None else recipe.serving
    spec = serving.input_signature()[0]
    if spec.dtype.name == "string":
        return Reader("text")
    shape = tuple(getattr(serving, "read_shape", None) or spec.shape.as_list()[1:])
    if spec.dtype.name != "uint8" or len(shape) not in (2, 3) or None in shape:
        raise DataError(f"recipe {recipe.name!r} takes {spec.dtype.name} input {list(spec.shape)}, not fixed-size "
                        "images or texts a file could become")
    return Reader("image", shape, square=bool(getattr(serving, "square", False)))


def describe(source: str) -> str:
    """What ``source`` holds, in words (for the one-line error when it does not fit)."""
    from kerasapps.data.folders import holds

    if source.startswith("tfds:"):
        return f"the TFDS data set {source[5:]}"
    path = Path(source)
    if path.is_dir():
        return f"{holds(path)} in class folders"
    if path.suffix.lower() in (".csv", ".jsonl"):
        return f"a {path.suffix.lower()[1:].upper()} table"
    return "a file" if path.is_file() else "nothing (no such file or directory)"


def load_source(source: str, recipe, hp) -> Splits:
    """The splits of ``source`` for an image or text classifier (see the module docstring)."""
    from kerasapps.data.folders import holds, read_folder

    reader = reader_for(recipe, hp)
    wanted = "images" if reader.kind == "image" else "text files"
    if source.startswith("tfds:"):
        from kerasapps.data.tfds_source import read_tfds

        return read_tfds(source[5:], reader, hp)
    path = Path(source).expanduser()
    if path.is_dir():
        found = holds(path)
        if found != wanted:
            raise DataError(f"recipe {recipe.name!r} takes {TAKES[recipe.task]}; --data {source} holds {found}")
        return read_folder(path, reader, hp)
    if path.suffix.lower() in (".csv", ".jsonl"):
        from kerasapps.data.tables import read_labelled_table

        return read_labelled_table(path, reader, hp)
    raise DataError(f"recipe {recipe.name!r} takes {TAKES[recipe.task]}; --data {source} is {describe(source)}")
