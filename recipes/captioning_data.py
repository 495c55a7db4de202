"""The captioning recipe's data: Flickr8k captions as tokens and ids, the images, and the splits.

Data: ``flickr8k_subset`` (images_64.npz + captions.json; the official split gives 753
train / 113 dev / 125 test images, each with 5 captions: one training pair per caption) or,
with no data directory, TFDS ``coco_captions``. Captions are lower-cased, split on spaces,
stripped of punctuation, and framed by ``<start>`` / ``<end>``. The vocabulary is built
from the training captions only (``vocabulary=flickr8k_train`` widens it to the 6,000
official training images' captions in ``all_8091_captions.json.gz``, never dev or test).

``--data captions.csv`` (or ``.jsonl``; ``train.csv`` beside ``validation.csv`` / ``test.csv``) trains on
the user's own captioned images: an ``image`` column of paths (relative to the table) and a ``caption``
column (``image_column``, ``caption_column``), one row per caption, an image on as many rows as it has
captions. Missing splits are carved by image, never by caption (``test_split``, ``validation_split``),
so no image's captions reach two splits. The images are streamed from their files (central square,
resized to ``image_size``), and the vocabulary comes from the training captions.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerasapps.core.errors import DataError, UsageError
from kerasapps.core.recipe import DATA_DIR_ENV, Splits
from kerasapps.data.builtin import load_npz
from kerasapps.data.files import Examples, Reader, check_images
from kerasapps.data.images import fit_images
from kerasapps.data.sources import own_data
from kerasapps.data.tables import SUFFIXES as TABLE_SUFFIXES
from kerasapps.data.tables import column, read_table, split_files

PAD, UNK, START, END = "", "[UNK]", "<start>", "<end>"
VOCABULARIES = ("train", "flickr8k_train")
_PUNCTUATION = ".,;:!?\"'()[]{}`"


# ----------------------------------------------------------------------------- text

def tokenize(text: str) -> list[str]:
    """Lower-cased words; punctuation-only tokens dropped, punctuation stripped from word ends."""
    words = (token.strip(_PUNCTUATION) for token in str(text).lower().split())
    return [w for w in words if w]


def detokenize(tokens: Sequence[str]) -> str:
    """Words up to the first ``<end>``, without special tokens, joined by spaces."""
    out = []
    for token in tokens:
        token = token.decode("utf-8") if isinstance(token, bytes) else str(token)
        if token == END:
            break
        if token not in (PAD, START, UNK):
            out.append(token)
    return " ".join(out)


def build_vocabulary(captions: Sequence[str], min_count: int = 1, max_words: int | None = None) -> list[str]:
    """Words of ``captions`` seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
    counts = Counter(w for caption in captions for w in tokenize(caption))
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return words[:max_words] if max_words else words


def lookup_vocabulary(words: Sequence[str]) -> list[str]:
    """The ``word_lookup`` table in id order: pad (0), unknown (1), <start>, <end>, words."""
    return [PAD, UNK, START, END] + [w for w in words if w not in (PAD, UNK, START, END)]


def frame(captions: Sequence[str], max_length: int) -> tuple[np.ndarray, list[list[str]]]:
    """caption_in token strings [N, max_length] (``<start>`` + words, padded with ""), and target tokens."""
    rows_in, rows_out = [], []
    for caption in captions:
        words = tokenize(caption)[:max_length - 1]
        rows_in.append([START] + words + [PAD] * (max_length - 1 - len(words)))
        rows_out.append(words + [END] + [PAD] * (max_length - 1 - len(words)))
    return np.array(rows_in, dtype=object).reshape(-1, max_length), rows_out


def token_ids(rows: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> np.ndarray:
    index = {w: i for i, w in enumerate(lookup_vocabulary(vocabulary))}
    return np.array([[index.get(t, 1) for t in row] for row in rows], dtype=np.int32)


# ----------------------------------------------------------------------------- data

def read_subset(ctx) -> tuple[np.ndarray, list[dict]]:
    """Images uint8 [1000, 64, 64, 3] and the captions.json entries (same order)."""
    images = load_npz(ctx.require("flickr8k_subset/images_64.npz", "see flickr8k_subset/PROVENANCE.md"),
                        ["images"])["images"]
    path = ctx.require("flickr8k_subset/captions.json")
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))["images"]
    except (ValueError, KeyError, OSError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(entries) != len(images) or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"{path} has {len(entries)} entries for {len(images)} images of shape {images.shape[1:]}")
    return images, entries


def _tfds_coco(image_size: int) -> tuple[np.ndarray, list[dict]]:  # pragma: no cover - needs the network
    try:
        import tensorflow_datasets as tfds

        entries, images = [], []
        for split, name in (("train", "train"), ("val", "dev"), ("test", "test")):
            for example in tfds.as_numpy(tfds.load("coco_captions", split=split)):
                images.append(resize_uint8(example["image"][None], image_size)[0])
                texts = [t.decode("utf-8") for t in example["captions"]["text"][:5]]
                entries.append({"flickr8k_split": name, "captions": texts})
        return np.stack(images), entries
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(f"TFDS could not load 'coco_captions' ({first}); set --data-dir or ${DATA_DIR_ENV} "
                        "to a folder holding flickr8k_subset/") from None


def split_images(images: np.ndarray, entries: list[dict], split: str) -> tuple[np.ndarray, list[list[str]]]:
    """The images of one official split ("train", "dev", "test") and their reference captions."""
    index = [i for i, e in enumerate(entries) if e.get("flickr8k_split") == split]
    return images[index], [list(entries[i]["captions"]) for i in index]


def training_words(hp, ctx, train_captions: Sequence[str]) -> list[str]:
    texts = list(train_captions)
    if hp.vocabulary == "flickr8k_train":
        path = ctx.require("flickr8k_subset/all_8091_captions.json.gz")
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            everything = json.load(handle)["images"]
        texts = [c for e in everything if e.get("flickr8k_split") == "train" for c in e["captions"]]
    return build_vocabulary(texts, hp.min_word_count, hp.max_words)


def load_captioning(hp, ctx):
    """x: (images uint8 [N, S, S, 3], caption_in token strings [N, T]); y: caption_out ids [N, T].
    One row per caption."""
    # Refused here, before train writes anything: a bad encoder_weights path, or options the conv encoder lacks.
    if hp.encoder == "conv" and (hp.encoder_weights or hp.freeze_encoder):
        raise UsageError("encoder_weights and freeze_encoder need encoder=resnet20 "
                         "(the conv encoder is always trained jointly)")
    if hp.encoder_weights:
        weights_path(hp.encoder_weights)
    source = own_data(ctx)  # a table of image paths and captions (load_splits refused any other kind)
    if source is not None:
        if hp.vocabulary != "train":
            raise UsageError(f"vocabulary={hp.vocabulary} reads Flickr8k's own captions; with --data the vocabulary "
                             "comes from the table's training captions (vocabulary=train)")
        return _splits(hp, read_captioned_images(hp, source.path), meta={"source": source.text})
    if ctx.data_dir is not None:
        images, entries = read_subset(ctx)
    else:
        images, entries = _tfds_coco(hp.image_size)
    if images.shape[1:3] != (hp.image_size, hp.image_size):
        images = resize_uint8(images, hp.image_size)
    parts = {name: split_images(images, entries, name) for name in ("train", "dev", "test")}
    if len(parts["train"][0]) == 0 or len(parts["test"][0]) == 0:
        raise DataError("the caption data has no 'train' or no 'test' images (flickr8k_split)")
    words = training_words(hp, ctx, [c for refs in parts["train"][1] for c in refs])
    return _splits(hp, {"train": parts["train"], "validation": parts["dev"], "test": parts["test"]}, words=words)


def _splits(hp, parts: dict, words=None, meta=None) -> Splits:
    """One (images, caption_in) -> caption_out row per caption of each split's images."""
    words = words or build_vocabulary([c for refs in parts["train"][1] for c in refs], hp.min_word_count,
                                      hp.max_words)

    def pairs(split):
        imgs, refs = split
        counts = [len(r) for r in refs]
        caption_in, rows_out = frame([c for r in refs for c in r], hp.max_length)
        return (imgs[np.repeat(np.arange(len(refs)), counts)], caption_in), token_ids(rows_out, words)

    validation = parts.get("validation")
    # each image's first row and its reference captions, per split: what BLEU scores a split's captions against
    references = {name: {"first": np.cumsum([0] + [len(r) for r in refs[:-1]]).tolist(), "captions": refs}
                  for name, (_, refs) in parts.items() if len(refs)}
    return Splits(train=pairs(parts["train"]), test=pairs(parts["test"]),
                  validation=pairs(validation) if validation is not None and len(validation[1]) else None,
                  meta={"words": words, "references": references, **(meta or {})})


def read_captioned_images(hp, source) -> dict[str, tuple[Examples, list[list[str]]]]:
    """A table of image paths and captions -> per split (the images as files, their reference captions)."""
    path = Path(source).expanduser()
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"the captioning recipe takes a .csv or .jsonl table of image paths and captions (columns "
                        f"{hp.image_column!r}, {hp.caption_column!r}); --data {source} is not one")
    reader = Reader("image", (hp.image_size, hp.image_size, 3), square=True)
    parts = {}
    for split, file in split_files(path).items():
        table = read_table(file)
        captions: dict[Path, list[str]] = {}
        for image, caption in zip(column(table, hp.image_column, file, "image"),
                                  column(table, hp.caption_column, file, "caption")):
            image = Path(str(image))
            captions.setdefault(image if image.is_absolute() else file.parent / image, []).append(str(caption))
        missing = [str(p) for p in captions if not p.is_file()]
        if missing:
            raise DataError(f"--data {file}: {len(missing)} image file(s) not found: {', '.join(missing[:3])}")
        good = check_images(list(captions), hp.bad_files)
        parts[split] = (Examples(np.array([str(p) for p in good]), reader), [captions[p] for p in good])
    for split, fraction, salt in (("test", hp.test_split, 104729), ("validation", hp.validation_split, 7919)):
        if split not in parts:
            images, refs = parts["train"]
            order = np.random.default_rng([hp.seed, salt]).permutation(len(refs))
            held = int(round(len(refs) * fraction))
            if held == 0 or held == len(refs):
                continue
            kept, out = np.sort(order[held:]), np.sort(order[:held])
            parts["train"], parts[split] = ((images[kept], [refs[i] for i in kept]),
                                            (images[out], [refs[i] for i in out]))
    if "test" not in parts:
        raise DataError(f"--data {source}: {len(parts['train'][1])} image(s) are too few to hold out a test split "
                        f"(test_split {hp.test_split})")
    return parts


def resize_uint8(images, size: int) -> np.ndarray:
    """uint8 [N, H, W, 3] (numpy or tensor) -> their central squares at ``size`` x ``size``, as files are read."""
    import tensorflow as tf

    return fit_images(tf.convert_to_tensor(images, tf.uint8), (size, size, 3), square=True).numpy()


def prepare_images(raw, size: int):
    """uint8 [N, H, W, 3] of any size -> float32 [N, size, size, 3] in [0, 1]: fitted as training reads image
    files (central square, antialiased resize, rounded to uint8: :func:`kerasapps.data.images.fit_images`)."""
    import tensorflow as tf

    return tf.cast(fit_images(raw, (size, size, 3), square=True), tf.float32) / 255.0


def preprocess(batch):
    """Training batches (images, caption_in): images uint8 -> float32 in [0, 1]; serving: images only."""
    import tensorflow as tf

    if isinstance(batch, (tuple, list)):
        images, caption = batch
        return tf.cast(images, tf.float32) / 255.0, caption
    return tf.cast(batch, tf.float32) / 255.0


def weights_path(source) -> Path:
    """The ``.keras`` file behind ``encoder_weights`` (a file, or a finished run directory's model.keras)."""
    path = Path(source)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise UsageError(f"encoder_weights: {source} is neither a .keras file nor a finished run directory")
    return path
