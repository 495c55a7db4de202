"""Where a run's data comes from: the recipe's built-in set, or the user's own (``--data SOURCE``).

Every kind of SOURCE is one :class:`SourceKind` in :data:`SOURCE_KINDS`, which says how the kind is
recognised, how it is described in an error, and (for image and text classifiers) how it is read:

* ``tfds``: ``tfds:NAME[/CONFIG][:VERSION]``, any TFDS data set (:mod:`kerasapps.data.tfds_source`);
* ``folder``: a directory with one subfolder per class: images (PNG, JPEG, BMP, GIF) or text files
  (``.txt``), optionally inside ``train/``, ``validation/`` and ``test/`` (:mod:`kerasapps.data.folders`);
  for a text corpus, a folder of ``.txt`` files;
* ``table``: a ``.csv`` or ``.jsonl`` table (or ``train.csv`` beside ``validation.csv`` / ``test.csv``)
  (:mod:`kerasapps.data.tables`, whose ``SUFFIXES`` are the kind's);
* ``file``: any other file (a text corpus).

What fits depends on what the recipe takes (``Recipe.task``, :data:`ACCEPTS`); a source that does not fit
is one line naming what the recipe takes and what the source holds, before the recipe reads anything.
Image and text classifiers are read here; a text corpus, a table of features or captioned images are read
by the recipe's own ``load_data``, which asks :func:`own_data` for the source (never ``ctx.source``). A new
kind is one :func:`register_source_kind` call. :func:`load_splits` is the one way every command gets a
recipe's data: ``train`` and ``evaluate`` with the test split, ``tune`` and ``diagnose`` without it (they
never read it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from kerasapps.core.errors import DataError
from kerasapps.core.recipe import Splits, meta_of
from kerasapps.data.files import Reader, cached
from kerasapps.data.splits import carve_validation, smoke_slice
from kerasapps.data.tables import SUFFIXES as TABLE_SUFFIXES

TAKES = {"image_classification": "images in class folders (or a table or TFDS set of images and labels)",
         "text_classification": "text files in class folders (or a table or TFDS set of texts and labels)",
         "text_corpus": "a text file (or a folder of them)", "tabular": "a .csv or .jsonl table",
         "captioned_images": "a table of image paths and captions"}
READ_HERE = ("image_classification", "text_classification")


@dataclasses.dataclass(frozen=True)
class SourceKind:
    """One kind of ``--data SOURCE``.

    ``recognises(source)`` says whether a SOURCE is of this kind (kinds are asked in :data:`SOURCE_KINDS`'
    order); ``describe(source)`` says what it holds, in words, for errors; ``read(source, reader, hp)``, where
    the kind holds labelled examples, gives an image or text classifier's splits (``reader`` turns a file into
    the model's input, :func:`reader_for`); ``holds(source)``, where a source of the kind can hold either,
    says "images" or "text files" (or what else), checked against the classifier's need before reading.
    """

    name: str
    recognises: Callable[[str], bool]
    describe: Callable[[str], str]
    read: Callable[[str, Reader, object], Splits] | None = None
    holds: Callable[[str], str] | None = None


@dataclasses.dataclass(frozen=True)
class Source:
    """The user's ``--data``: its kind's name and the SOURCE as given (``path`` for the file kinds)."""

    kind: str
    text: str

    @property
    def path(self) -> Path:
        return Path(self.text).expanduser()


def _tfds(source: str) -> bool:
    return source.startswith("tfds:")


def _read_tfds(source: str, reader: Reader, hp) -> Splits:
    from kerasapps.data.tfds_source import read_tfds

    return read_tfds(source[len("tfds:"):], reader, hp)


def _folder_holds(source: str) -> str:
    from kerasapps.data.folders import holds

    return holds(Path(source).expanduser())


def _read_folder(source: str, reader: Reader, hp) -> Splits:
    from kerasapps.data.folders import read_folder

    return read_folder(Path(source).expanduser(), reader, hp)


def _read_table(source: str, reader: Reader, hp) -> Splits:
    from kerasapps.data.tables import read_labelled_table

    return read_labelled_table(Path(source).expanduser(), reader, hp)


SOURCE_KINDS: list[SourceKind] = [
    SourceKind("tfds", _tfds, lambda source: f"the TFDS data set {source[len('tfds:'):]}", _read_tfds),
    SourceKind("folder", lambda source: Path(source).expanduser().is_dir(),
               lambda source: f"{_folder_holds(source)} in class folders", _read_folder, _folder_holds),
    SourceKind("table", lambda source: Path(source).suffix.lower() in TABLE_SUFFIXES,
               lambda source: f"a {Path(source).suffix.lower()[1:].upper()} table", _read_table),
    SourceKind("file", lambda source: Path(source).expanduser().is_file(), lambda source: "a file"),
]
# which kinds each recipe task reads (image and text classifiers here, the others in their recipe's load_data)
ACCEPTS = {"image_classification": ("tfds", "folder", "table"), "text_classification": ("tfds", "folder", "table"),
           "text_corpus": ("folder", "file"), "tabular": ("table",), "captioned_images": ("table",)}
WANTS = {"image_classification": "images", "text_classification": "text files"}  # what a classifier's source holds


def register_source_kind(kind: SourceKind, *, before: str | None = None, tasks: tuple[str, ...] = ()) -> None:
    """Add a kind of ``--data`` SOURCE (asked before the kind named ``before``, else last) that the recipe
    ``tasks`` accept; a kind of the same name is replaced."""
    SOURCE_KINDS[:] = [known for known in SOURCE_KINDS if known.name != kind.name]
    names = [known.name for known in SOURCE_KINDS]
    SOURCE_KINDS.insert(names.index(before) if before in names else len(names), kind)
    for task in tasks:
        ACCEPTS[task] = (*ACCEPTS.get(task, ()), kind.name)


def kind_of(source: str) -> SourceKind | None:
    """The first kind in :data:`SOURCE_KINDS` that recognises ``source``, or None."""
    return next((kind for kind in SOURCE_KINDS if kind.recognises(source)), None)


def describe(source: str) -> str:
    """What ``source`` holds, in words (for the one-line error when it does not fit)."""
    kind = kind_of(source)
    return kind.describe(source) if kind else "nothing (no such file or directory)"


def own_data(ctx) -> Source | None:
    """The user's ``--data`` as a :class:`Source`, or None when the recipe reads its built-in set. A recipe's
    ``load_data`` asks this; :func:`load_splits` has already refused a source of a kind the recipe does not take."""
    if not ctx.source:
        return None
    kind = kind_of(ctx.source)
    return Source(kind.name if kind else "none", ctx.source)


def check_fits(source: str, recipe) -> SourceKind:
    """The kind of ``source``, or one line naming what ``recipe`` takes and what the source is."""
    if not recipe.task:
        raise DataError(f"recipe {recipe.name!r} trains on its built-in data only ({recipe.data}); it takes no --data")
    kind = kind_of(source)
    if kind is None or kind.name not in ACCEPTS.get(recipe.task, ()):
        raise DataError(f"recipe {recipe.name!r} takes {TAKES.get(recipe.task, recipe.task)}; --data {source} is "
                        f"{describe(source)}")
    found = kind.holds(source) if kind.holds is not None and recipe.task in WANTS else None  # scans the files
    if found is not None and found != WANTS[recipe.task]:
        raise DataError(f"recipe {recipe.name!r} takes {TAKES[recipe.task]}; --data {source} holds {found}")
    return kind


def load_splits(recipe, hp, ctx, *, test: bool = True) -> Splits:
    """The recipe's splits and their meta, with a validation split carved from train when it has none.

    ``test=False`` leaves the test split out. With ``ctx.smoke`` every split is cut to a small slice
    (:data:`kerasapps.data.splits.SMOKE_SIZES`).
    """
    kind = check_fits(ctx.source, recipe) if ctx.source else None
    if kind is not None and recipe.task in READ_HERE:  # image and text classifiers: read here
        loaded = kind.read(ctx.source, reader_for(recipe, hp), hp)
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
