"""``--data tfds:NAME[/CONFIG][:VERSION]``: any TFDS data set, as an image or text classifier's splits.

The inputs and labels are the builder's supervised keys, or ``image_key`` / ``text_key`` and
``label_key``; the class names are the label feature's names. Its splits ``train``, ``validation``
(or ``val``) and ``test`` are used as they are; a missing test or validation split is carved from
train. TFDS streams its records in one order, so each example is decoded once, converted to the
recipe's input, and written under the cache directory (images; texts are kept in memory): every
epoch then reads them in its own seeded order, and a resumed run repeats the uninterrupted one. A
data set that is not prepared is downloaded by TFDS; offline that is a one-line error.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from kerasapps.core.errors import DataError
from kerasapps.core.recipe import Splits
from kerasapps.data.files import Examples, Reader, cache_dir
from kerasapps.data.images import fit_images
from kerasapps.data.splits import split_off

log = logging.getLogger("kerasapps")
SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "val", "valid"), "test": ("test",)}


def read_tfds(name: str, reader: Reader, hp) -> Splits:
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise DataError(f"--data tfds:{name} needs tensorflow-datasets ({exc})") from None
    try:
        builder = tfds.builder(name)
    except Exception as exc:  # DatasetNotFoundError, or a malformed NAME/CONFIG:VERSION
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise DataError(f"--data tfds:{name}: {first}") from None
    if not builder.is_prepared():
        try:
            builder.download_and_prepare()
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise DataError(f"--data tfds:{name} is not prepared in {builder.data_dir} and TFDS could not download "
                            f"it ({first}); offline, give a local source instead: a folder of class folders or a "
                            "table") from None
    input_key, label_key = _keys(builder, reader, hp, name)
    label = builder.info.features[label_key]
    if not hasattr(label, "names"):
        raise DataError(f"--data tfds:{name}: the label feature {label_key!r} is {type(label).__name__}, not a "
                        "ClassLabel with class names")
    names = [str(n) for n in label.names]
    available = list(builder.info.splits)
    splits = {}
    for split, aliases in SPLIT_NAMES.items():
        found = next((a for a in aliases if a in available), None)
        if found is not None:
            splits[split] = _read_split(builder, found, input_key, label_key, reader, name)
    if "train" not in splits:
        raise DataError(f"--data tfds:{name} has no train split (it has {', '.join(available)})")
    result = Splits(splits, meta={"class_names": names, "source": f"tfds:{name}"})
    if "test" not in result:
        result["train"], result["test"] = split_off(result["train"], hp.test_split, hp.seed, salt=104729)
    return result


def _keys(builder, reader: Reader, hp, name: str) -> tuple[str, str]:
    supervised = builder.info.supervised_keys or (None, None)
    input_key = (hp.image_key if reader.kind == "image" else hp.text_key) or supervised[0]
    label_key = hp.label_key or supervised[1]
    features = list(builder.info.features)
    what = "image_key" if reader.kind == "image" else "text_key"
    for key, option in ((input_key, what), (label_key, "label_key")):
        if key is None or key not in features:
            raise DataError(f"--data tfds:{name}: no supervised keys to use and no --set {option}; its features: "
                            f"{', '.join(features)}")
    return input_key, label_key


def _read_split(builder, split: str, input_key: str, label_key: str, reader: Reader, name: str):
    """(inputs, labels) of one split: images written once to the cache as raw files, texts in memory."""
    import tensorflow as tf

    dataset = builder.as_dataset(split=split, shuffle_files=False)
    labels = []
    if reader.kind == "text":
        texts = []
        for example in dataset:
            texts.append(example[input_key].numpy().decode("utf-8", "replace"))
            labels.append(int(example[label_key]))
        return np.array(texts, dtype=object), np.array(labels, np.int64)
    key = hashlib.sha256(repr((builder.info.full_name, str(builder.data_dir), split, input_key, reader.shape)).encode())
    folder = cache_dir() / "tfds" / key.hexdigest()[:24]
    done = folder / "labels.npy"
    if done.is_file():
        labels = np.load(done)
        paths = np.array([str(folder / f"{i:07d}.raw") for i in range(len(labels))])
        return Examples(paths, Reader("raw", reader.shape)), labels
    folder.mkdir(parents=True, exist_ok=True)
    log.info("--data tfds:%s: decoding the %s split once into %s", name, split, folder)
    conform = tf.function(lambda image: fit_images(image, reader.shape, reader.square))
    paths = []
    for index, example in enumerate(dataset):
        target = folder / f"{index:07d}.raw"
        Path(f"{target}.partial").write_bytes(conform(example[input_key]).numpy().tobytes())
        os.replace(f"{target}.partial", target)
        paths.append(str(target))
        labels.append(int(example[label_key]))
    labels = np.array(labels, np.int64)
    np.save(done, labels)
    return Examples(np.array(paths), Reader("raw", reader.shape)), labels
