"""Folders of files with one subfolder per class, the layout ``keras.utils.image_dataset_from_directory``
reads (images) and the original IMDB release uses (``aclImdb/train/pos/*.txt``).

``ROOT/CLASS/FILE``, or ``ROOT/train/CLASS/FILE`` with optional ``validation/`` and ``test/`` beside it.
Without them, the test and validation splits are carved from the files by a seeded permutation
(``test_split``, ``validation_split``). The class names are the training split's folder names,
sorted; they set the model's head and come back from its export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasapps.core.errors import DataError
from kerasapps.core.progress import progress
from kerasapps.core.recipe import Splits
from kerasapps.data.files import IMAGE_SUFFIXES, TEXT_SUFFIXES, Examples, Reader, check_images, check_texts, files_in
from kerasapps.data.splits import class_names, split_off

SPLIT_FOLDERS = ("train", "validation", "test")


def class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def holds(root: Path) -> str:
    """What a folder of class folders holds: "images", "text files", or a description of what it has."""
    root = Path(root)
    split_roots = [root / name for name in SPLIT_FOLDERS if (root / name).is_dir()] or [root]
    suffixes = {path.suffix.lower() for base in split_roots for folder in class_folders(base)
                for path in folder.rglob("*") if path.is_file() and not path.name.startswith(".")}
    if suffixes & set(IMAGE_SUFFIXES):
        return "images"
    if suffixes & set(TEXT_SUFFIXES):
        return "text files"
    return f"files ending {', '.join(sorted(suffixes))}" if suffixes else "no files in class folders"


def read_folder(root: Path, reader: Reader, hp) -> Splits:
    """The splits of an image (``reader.kind == "image"``) or text folder; ``hp`` gives the seed, the split
    fractions and ``bad_files``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--data {root}: no such directory")
    suffixes, check = (IMAGE_SUFFIXES, check_images) if reader.kind == "image" else (TEXT_SUFFIXES, check_texts)
    present = [name for name in SPLIT_FOLDERS if (root / name).is_dir()]
    if present and "train" not in present:
        raise DataError(f"--data {root} has {', '.join(present)}/ but no train/ folder of classes")
    scanned = {name: _scan(root / name, suffixes, check, hp.bad_files) for name in present} if present else {
        "train": _scan(root, suffixes, check, hp.bad_files)}
    names = class_names({split: list(classes) for split, classes in scanned.items()}, root, "class folder(s)")
    splits = Splits({split: _examples(classes, names, reader) for split, classes in scanned.items()},
                    meta={"class_names": names, "source": str(root)})
    if "test" not in splits:
        splits["train"], splits["test"] = split_off(splits["train"], hp.test_split, hp.seed, salt=104729)
        if splits["test"] is None:
            raise DataError(f"--data {root} has no test/ folder and test_split {hp.test_split} holds out no files")
    return splits


def _scan(folder: Path, suffixes, check, bad_files: str) -> dict[str, list[Path]]:
    classes = class_folders(folder)
    if not classes:
        raise DataError(f"--data: {folder} holds no class folders (expected {folder}/CLASS/FILE)")
    listed = {}
    for path in classes:
        listed[path] = files_in(path, suffixes)
        if not listed[path]:
            kind = "images (.png, .jpg, .jpeg, .bmp, .gif)" if suffixes == IMAGE_SUFFIXES else "text files (.txt)"
            raise DataError(f"--data: class folder {path} holds no {kind}")
    found = {}
    total = sum(map(len, listed.values()))
    with progress(f"checking {total} files in {folder}", total=total) as bar:  # a bar on a terminal only
        for path, files in listed.items():
            found[path.name] = check(files, bad_files, bar)
            if not found[path.name]:
                raise DataError(f"--data: class folder {path} holds no readable files")
    return found


def _examples(classes: dict[str, list[Path]], names: list[str], reader: Reader):
    paths = [str(path) for name in names if name in classes for path in classes[name]]
    labels = [names.index(name) for name in names if name in classes for _ in classes[name]]
    return Examples(np.array(paths), reader), np.array(labels, np.int64)
