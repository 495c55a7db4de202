"""The data sets of ``benchmarks/own_data.py``: what each one is, how it is written as "a user's own data" into a
work folder, and how it is read back (as arrays, texts or feature rows) for the baselines and the scoring.

The photos and reviews are written with a fixed seed (0), whatever the benchmark's ``--seeds``, so all seeds and
all jobs see the same splits. A table is written once per seed, its stratified 80/20 split drawn with that seed:
its test split is small (36-114 rows, where one row is up to 3 points), so one fixed split measures the split's
luck more than the models; every job of a seed round sees the same split. Nothing here imports TensorFlow or
Keras.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import gzip
import json
import re
from pathlib import Path

import numpy as np

SPLIT_SEED = 0  # the photos' and reviews' sampling and splitting seed (tables: the benchmark's seed)
DOG = {"dog", "dogs", "puppy"}
PEOPLE = set("man men woman women boy boys girl girls person people child children kid kids player lady guy crowd "
             "baby".split())
FLICKR_SPLITS = {"train": "train", "dev": "validation", "test": "test", "none": "train"}
TABLES = {"breast_cancer": "load_breast_cancer", "wine": "load_wine", "digits": "load_digits",
          "diabetes": "load_diabetes"}


@dataclasses.dataclass(frozen=True)
class SetSpec:
    """One benchmark set: its kind (image, text, table, regression), the kerasapps jobs that train on it
    (recipe, arguments after ``--seed/--run-dir``) and whether it is a built-in set (``--data-dir``)."""

    name: str
    kind: str
    recipes: tuple[str, ...]
    builtin: bool = False

    @property
    def resampled(self) -> bool:
        """A table: written once per seed, split by it."""
        return self.kind in ("table", "regression")

    def folder(self, work: Path, seed: int) -> Path:
        return work / self.name / f"seed-{seed}" if self.resampled else work / self.name

    def data_args(self, work: Path, data_dir: Path, seed: int) -> list[str]:
        if self.builtin:
            return ["--data-dir", str(data_dir)]
        source = {"image": "", "text": "train.jsonl"}.get(self.kind, "train.csv")
        extra = ["--set", "objective=regression"] if self.kind == "regression" else []
        return ["--data", str(self.folder(work, seed) / source), *extra]


SETS = {spec.name: spec for spec in (
    SetSpec("photos", "image", ("image_transfer", "resnet20_cifar10")),
    SetSpec("reviews", "text", ("imdb_sentiment",)),
    SetSpec("breast_cancer", "table", ("mlp_tabular",)),
    SetSpec("wine", "table", ("mlp_tabular",)),
    SetSpec("digits", "table", ("mlp_tabular",)),
    SetSpec("diabetes", "regression", ("mlp_tabular",)),
    SetSpec("cifar10_subset", "image", ("resnet20_cifar10",), builtin=True),
    SetSpec("mnist", "image", ("lenet5_mnist",), builtin=True),
    SetSpec("imdb", "text", ("imdb_sentiment",), builtin=True),
)}


@dataclasses.dataclass
class Data:
    """A set read back: ``splits`` maps train/validation/test (validation may be missing) to (x, y); y holds
    label strings (classification) or floats (regression); x: uint8 images, a list of texts or float rows."""

    splits: dict
    columns: list | None = None  # a table's feature columns


# ----------------------------------------------------------------------------------------------- building


def build(name: str, data_dir: Path, work: Path, seeds=(SPLIT_SEED,)) -> str:
    """Write set ``name`` under ``work`` (a table once per seed; nothing for built-in sets); returns a one-line
    description."""
    spec = SETS[name]
    if spec.builtin:
        return f"{name}: the built-in set, read by kerasapps from the data directory"
    if name == "photos":
        return build_photos(data_dir, work / "photos")
    if name == "reviews":
        return build_reviews(data_dir, work / "reviews")
    described = [build_table(name, spec.folder(work, seed), seed) for seed in seeds]
    return f"{described[0]}; a split per seed ({', '.join(map(str, seeds))})"


def photo_class(captions: list[str]) -> str | None:
    words = set().union(*(re.findall(r"[a-z]+", caption.lower()) for caption in captions))
    return "dog" if words & DOG else "people" if words & PEOPLE else None


def build_photos(data_dir: Path, folder: Path) -> str:
    from PIL import Image

    source = data_dir / "flickr8k_subset"
    images = np.load(source / "images_64.npz", allow_pickle=False)["images"]
    entries = json.loads((source / "captions.json").read_text(encoding="utf-8"))["images"]
    counts = collections.Counter()
    for entry in entries:
        label = photo_class(entry["captions"])
        if label is None:
            continue
        split = FLICKR_SPLITS[entry["flickr8k_split"]]
        target = folder / split / label
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[entry["index"]]).save(target / (Path(entry["filename"]).stem + ".png"))
        counts[split, label] += 1
    parts = [f"{split} {counts[split, 'dog']} dog / {counts[split, 'people']} people "
             f"({counts[split, 'dog'] / (counts[split, 'dog'] + counts[split, 'people']):.0%} dog)"
             for split in ("train", "validation", "test")]
    return "photos (Flickr8k subset, official split): " + ", ".join(parts)


def read_imdb(data_dir: Path, split: str) -> list[dict]:
    with gzip.open(data_dir / "imdb" / f"imdb_{split}.jsonl.gz", "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def build_reviews(data_dir: Path, folder: Path, sizes=(("train", 3000), ("test", 1000))) -> str:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(SPLIT_SEED)
    parts = []
    for split, size in sizes:
        rows = read_imdb(data_dir, split)
        chosen = [rows[i] for i in sorted(rng.choice(len(rows), size, replace=False))]
        rng.shuffle(chosen)
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as out:
            for row in chosen:
                # written as a user's tool writes UTF-8 JSON Lines: 95 of these reviews hold U+0085 unescaped
                record = {"text": row["text"], "label": "pos" if row["label"] else "neg"}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        parts.append(f"{split} {size} ({sum(r['label'] for r in chosen)} pos)")
    return "reviews (IMDB sample): " + ", ".join(parts)


def build_table(name: str, folder: Path, seed: int) -> str:
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    bunch = getattr(sklearn.datasets, TABLES[name])()
    regression = SETS[name].kind == "regression"
    if regression:
        labels = [float(v) for v in bunch.target]
    elif name == "digits":
        labels = [str(v) for v in bunch.target]
    else:
        labels = [str(bunch.target_names[v]) for v in bunch.target]
    rows = np.arange(len(labels))
    train, test = train_test_split(rows, test_size=0.2, random_state=seed,
                                   stratify=None if regression else labels)
    folder.mkdir(parents=True)
    columns = [str(c) for c in bunch.feature_names]
    for split, index in (("train", train), ("test", test)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow([*columns, "label"])
            for i in index:
                writer.writerow([repr(float(v)) for v in bunch.data[i]] + [labels[i]])
    return f"{name} (scikit-learn): {len(columns)} columns, train {len(train)}, test {len(test)}"


# ----------------------------------------------------------------------------------------------- reading


def load(name: str, data_dir: Path, work: Path, seed: int) -> Data:
    """Set ``name`` (a table: seed ``seed``'s split) as arrays, texts or rows; the built-in sets straight from the
    data directory."""
    if name in ("cifar10_subset", "mnist"):
        arrays = np.load(data_dir / name / f"{name}.npz", allow_pickle=False)
        return Data({split: (arrays[f"x_{split}"], arrays[f"y_{split}"].astype(str)) for split in ("train", "test")})
    if name == "imdb":
        return Data({split: ([r["text"] for r in rows], np.array([str(r["label"]) for r in rows]))
                     for split in ("train", "test") for rows in [read_imdb(data_dir, split)]})
    if name == "photos":
        return Data({split: load_image_folder(work / "photos" / split) for split in ("train", "validation", "test")})
    if name == "reviews":
        return Data({split: load_jsonl(work / "reviews" / f"{split}.jsonl") for split in ("train", "test")})
    return load_table(name, SETS[name].folder(work, seed))


def photo_files(split_folder: Path) -> tuple[list[Path], np.ndarray]:
    """The image files of a split folder in a fixed order, and their class names."""
    files = sorted(split_folder.glob("*/*.png"))
    return files, np.array([f.parent.name for f in files])


def load_image_folder(split_folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    files, labels = photo_files(split_folder)
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]), labels


def load_jsonl(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return [r["text"] for r in rows], np.array([r["label"] for r in rows])


def load_table(name: str, folder: Path) -> Data:
    regression = SETS[name].kind == "regression"
    splits, columns = {}, None
    for split in ("train", "test"):
        with open(folder / f"{split}.csv", newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
        columns = rows[0][:-1]
        x = np.array([[float(v) for v in row[:-1]] for row in rows[1:]])
        y = np.array([float(row[-1]) if regression else row[-1] for row in rows[1:]])
        splits[split] = (x, y)
    return Data(splits, columns)


def fit_split(data) -> tuple:
    """train + validation, for the baselines that hold nothing out."""
    parts = [data.splits[s] for s in ("train", "validation") if s in data.splits]
    x = [item for part in parts for item in part[0]] if isinstance(parts[0][0], list) \
        else np.concatenate([part[0] for part in parts])
    return x, np.concatenate([part[1] for part in parts])


def held_out(data, seed):
    """(train, validation): the set's own validation split, else a seeded 10% of train."""
    x, y = data.splits["train"]
    if "validation" in data.splits:
        return (x, y), data.splits["validation"]
    order = np.random.default_rng(seed).permutation(len(y))
    cut = len(y) // 10
    take = (lambda idx: [x[i] for i in idx]) if isinstance(x, list) else (lambda idx: x[idx])
    return (take(order[cut:]), y[order[cut:]]), (take(order[:cut]), y[order[:cut]])


def pixels(images, side: int, grey: bool) -> np.ndarray:
    from PIL import Image

    rows = []
    for image in images:
        picture = Image.fromarray(image).convert("L" if grey else "RGB")
        if picture.size != (side, side):
            picture = picture.resize((side, side), Image.BILINEAR)
        rows.append(np.asarray(picture, np.float32).ravel())
    return np.stack(rows)


def test_inputs(name: str, work: Path, seed: int) -> list[Path] | None:
    """The files ``kerasapps predict`` reads for a set's test split (photos, a table), in the order of
    :func:`load`'s test split; None where the test split is given as arrays or texts instead."""
    if name == "photos":
        return photo_files(work / "photos" / "test")[0]
    if SETS[name].resampled:
        return [SETS[name].folder(work, seed) / "test.csv"]
    return None
