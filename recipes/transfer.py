"""Transfer learning onto your own images: a canon backbone with pretrained weights, a new head on its frozen
features, then its top blocks fine-tuned at a lower rate.

``image_transfer`` takes any image source (``--data PHOTOS/``, a table of image paths, ``tfds:NAME``;
without one, the CIFAR-10 subset) and any canon image factory as ``backbone``. The model is

    images uint8 [N, H, W, C], any size -> central square resized to image_size and rounded, as training reads
    the files (the export's signature: kerasapps.data.images.fit_images) -> ``resize`` (the model's own layer:
    nothing left to do at that size)
    -> ``standardize`` (the preprocessing the weights expect, inside the model and so inside the export)
    -> ``backbone`` (the factory without its top, global average pooling)
    -> ``head_dropout`` -> ``predictions`` (one unit per class of the data, softmax)

Stage ``head`` freezes the backbone (its batch normalisation then runs in inference mode) and trains the new
head at ``learning_rate``; its input is the backbone's pooled output, the same every epoch, so the stage
computes it once per image and trains the head on it (``cache_features``; :mod:`kerasapps.training.features`).
Stage ``finetune`` unfreezes the top ``finetune_blocks`` blocks of the backbone (``all``: every block; 0 skips
the stage) and trains them with the head at ``finetune_learning_rate``; batch normalisation stays frozen, as
Keras's transfer-learning guide advises, so the small batches of a small data set do not disturb its
statistics. ``kerasapps info image_transfer`` lists each backbone's blocks.

Without pretrained ``weights`` there is nothing to transfer, and a head on a frozen random backbone learns
little: stage ``scratch`` then trains the whole network from its random initialisation instead
(``untrained_backbone=train``; ``refuse`` makes it a one-line error; ``frozen`` is the old behaviour, which run
directories written before the key existed keep).

``weights``: none (random initialisation), ``imagenet`` (keras.applications' weight files, downloaded and
cached by Keras: VGG-16/19 and ResNet-50/101/152, whose layers ours match), a ``.weights.h5`` / ``.h5`` file
for the backbone, or a ``.keras`` model or finished run directory, whose layers are copied by name (a
``resnet20_cifar10`` run into a ``resnet20`` backbone). ``preprocessing=auto`` follows the weights: ImageNet
weights get keras.applications' ``caffe`` preprocessing (BGR, ImageNet means), a CIFAR-10 run's weights that
run's per-channel standardisation, anything else pixels scaled to [0, 1].
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kerasapps.core.errors import ConfigError, DataError, KerasappsError
from kerasapps.core.hparams import HParam
from kerasapps.core.lazy import lazy_import
from kerasapps.core.recipe import Recipe, Splits, Stage, classes_in
from kerasapps.data.builtin import load_cifar10
from kerasapps.recipes import resnet
from kerasapps.recipes.alexnet import alexnet
from kerasapps.recipes.cifar import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from kerasapps.recipes.googlenet import googlenet
from kerasapps.recipes.lenet import lenet5
from kerasapps.recipes.vgg import vgg16, vgg19
from kerasapps.recipes.zfnet import zfnet
from kerasapps.savedmodel.signatures import ImageClassifier

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes
log = logging.getLogger("kerasapps")

NAME = "image_transfer"
PREPROCESSINGS = ("auto", "scale", "caffe", "torch", "tf", "cifar10")
UNTRAINED = ("train", "refuse", "frozen")  # untrained_backbone: what a run without pretrained weights does


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A canon image factory as a backbone: its default input side and channels, and whether
    ``weights="imagenet"`` loads keras.applications' files into it."""

    factory: Callable
    size: int = 128
    channels: int = 3
    imagenet: bool = False


BACKBONES = {
    "lenet5": Backbone(lenet5, 32, 1),
    "alexnet": Backbone(alexnet),
    "zfnet": Backbone(zfnet),
    "vgg16": Backbone(vgg16, imagenet=True),
    "vgg19": Backbone(vgg19, imagenet=True),
    "googlenet": Backbone(googlenet),
    "resnet18": Backbone(resnet.resnet18),
    "resnet34": Backbone(resnet.resnet34),
    "resnet50": Backbone(resnet.resnet50, imagenet=True),
    "resnet101": Backbone(resnet.resnet101, imagenet=True),
    "resnet152": Backbone(resnet.resnet152, imagenet=True),
    **{f"resnet{depth}": Backbone(getattr(resnet, f"resnet{depth}"), 32) for depth in (20, 32, 44, 56, 110)},
}
_BLOCK = re.compile(r"^(conv\d+_block\d+|block\d+|inception_\d+[a-z])_")


# ----------------------------------------------------------------------------- blocks
def block_of(layer_name: str) -> str | None:
    """The block a backbone layer belongs to (``conv4_block6``, ``block5``, ``inception_4e``), or None (the stem)."""
    match = _BLOCK.match(layer_name)
    return match.group(1) if match else None


def backbone_blocks(backbone) -> list[str]:
    """The blocks of ``backbone`` with weights, bottom to top; layers before the first block are the ``stem``."""
    blocks: list[str] = []
    for layer in backbone.layers:
        if not layer.weights:
            continue
        block = block_of(layer.name) or (blocks[-1] if blocks else "stem")
        if not blocks or blocks[-1] != block:
            blocks.append(block)
    return blocks


def finetune_count(hp, blocks: int) -> int:
    """How many top blocks ``finetune_blocks`` unfreezes out of ``blocks``; a bad value is one line."""
    value = str(hp.finetune_blocks).strip().lower()
    if value == "all":
        return blocks
    if not value.isdigit():
        raise ConfigError(f"finetune_blocks must be a whole number or 'all'; got {hp.finetune_blocks!r}")
    count = int(value)
    if count > blocks:
        raise ConfigError(f"finetune_blocks={count}, but backbone {hp.backbone} has {blocks} blocks "
                          f"(finetune_blocks=all unfreezes them all)")
    return count


def frozen_in_finetune(hp, model) -> list[str]:
    """the backbone below its top finetune_blocks blocks, and all its batch normalisation"""
    backbone = model.get_layer("backbone")
    blocks = backbone_blocks(backbone)
    trained = set(blocks[len(blocks) - finetune_count(hp, len(blocks)):])
    frozen, block = [], "stem"
    for layer in backbone.layers:
        block = block_of(layer.name) or block
        if layer.weights and (block not in trained or isinstance(layer, keras.layers.BatchNormalization)):
            frozen.append(layer.name)
    return frozen


# ----------------------------------------------------------------------------- weights
def _run_recipe(path: Path) -> str | None:
    config = path / "config.yaml"
    if not config.is_file():
        return None
    import yaml

    return (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("recipe")


def preprocessing_for(hp) -> str:
    """The ``preprocessing`` in effect: as given, or (``auto``) what the ``weights`` were trained with."""
    if hp.preprocessing != "auto":
        return hp.preprocessing
    if hp.weights == "imagenet":
        return "caffe"  # keras.applications' VGG and ResNet v1 weights
    if hp.weights and Path(hp.weights).is_dir() and str(_run_recipe(Path(hp.weights)) or "").endswith("_cifar10"):
        return "cifar10"
    return "scale"


def standardization(hp, channels: int):
    from kerasapps.models.layers import ImageStandardization

    mode = preprocessing_for(hp)
    if mode == "cifar10":
        if channels == 3:
            mean, std = CIFAR10_MEAN, CIFAR10_STD
        else:
            mean, std = (np.mean(CIFAR10_MEAN),), (np.mean(CIFAR10_STD),)
        return ImageStandardization(mean=mean, std=std, name="standardize")
    return ImageStandardization.named(mode, channels, name="standardize")


def make_backbone(hp, spec: Backbone, size: int):
    """The factory without its top (global average pooling), with ``weights`` loaded; errors are one line."""
    from kerasapps.models.weights import apply_weights, copy_weights_by_name

    shape = (size, size, spec.channels)
    weights = hp.weights
    kwargs = {"include_top": False, "input_shape": shape, "pooling": "avg"}
    try:
        if weights == "imagenet":
            if not spec.imagenet:
                raise ConfigError(f"weights=imagenet: keras.applications has no ImageNet weights for {hp.backbone} "
                                  f"(it has them for {', '.join(n for n, b in BACKBONES.items() if b.imagenet)})")
            try:
                model = spec.factory(weights="imagenet", **kwargs)
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed download surfaces as many exception types
                text = " ".join(str(exc).split()) or type(exc).__name__
                url = re.search(r"https?://\S+?\.h5", text)
                reason = re.sub(r"[\[\]()]", "", text.rsplit(" -- ", 1)[-1] if " -- " in text else text[:120]).strip()
                raise DataError(f"weights=imagenet: cannot download keras.applications' ImageNet weights for "
                                f"{hp.backbone} ({reason}); offline, fetch "
                                f"{url.group(0) if url else 'the _notop .h5 weight file'} elsewhere and pass "
                                "--set weights=PATH_TO_IT") from None
        else:
            model = spec.factory(**kwargs)
            if weights:
                path = Path(weights).expanduser()
                if path.is_dir() or path.suffix == ".keras":
                    from kerasapps.training.checkpoints import load_model

                    file = path / "model.keras" if path.is_dir() else path
                    if not file.is_file():
                        raise ConfigError(f"weights={weights}: neither a .keras file nor a finished run directory")
                    copied = copy_weights_by_name(load_model(file, compile=False), model)
                    weighted = sum(1 for layer in model.layers if layer.weights)
                    if copied == 0:
                        raise ConfigError(f"weights={weights}: no layer of it has a name in backbone {hp.backbone}")
                    log.info("weights: %d of the backbone's %d layers with weights copied by name from %s",
                             copied, weighted, file)
                else:
                    apply_weights(model, str(path), None)
    except KerasappsError:
        raise
    except ValueError as exc:
        raise ConfigError(f"backbone {hp.backbone} at {size}x{size}: {exc}") from None
    return model


# ----------------------------------------------------------------------------- model and data
def image_size(hp) -> int:
    return hp.image_size or BACKBONES[hp.backbone].size


def build_transfer(hp, meta):
    spec = BACKBONES[hp.backbone]
    size = image_size(hp)
    backbone = make_backbone(hp, spec, size)
    backbone.name = "backbone"
    images = keras.Input(shape=(None, None, spec.channels), name="images")
    x = keras.layers.Resizing(size, size, crop_to_aspect_ratio=True, antialias=True, name="resize")(images)
    x = standardization(hp, spec.channels)(x)
    x = backbone(x)
    x = keras.layers.Dropout(hp.dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes_in(meta, len(CIFAR10_CLASSES)), activation="softmax",
                                 name="predictions")(x)
    model = keras.Model(images, outputs, name=f"{NAME}_{hp.backbone}")
    frozen_in_finetune(hp, model)  # finetune_blocks checked now, before a run writes anything
    return model


def load_transfer(hp, ctx):
    """Without --data: the CIFAR-10 subset (grey for a one-channel backbone), with its class names."""
    splits = load_cifar10(hp, ctx)
    if BACKBONES[hp.backbone].channels == 1:
        splits = {name: (np.round(x @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None], y)
                  for name, (x, y) in splits.items()}
    return Splits(splits, meta={"class_names": list(CIFAR10_CLASSES)})


def preprocess(images):
    """uint8 images -> float32 (the model resizes and standardises them itself)."""
    return keras.ops.cast(images, "float32")


class TransferSignature(ImageClassifier):
    """``images`` uint8 [N, H, W, C] of any size -> ``probabilities``, ``class_ids``, ``classes`` (the data's)."""

    def __init__(self, channels: int = 3, class_names=CIFAR10_CLASSES, read_size=(128, 128)):
        super().__init__(None, None, channels, class_names=class_names, read_size=read_size, square=True)

    def configure(self, hp):
        spec = BACKBONES[hp.backbone]
        return TransferSignature(spec.channels, self.class_names, (image_size(hp),) * 2)

    def for_data(self, record):
        names = record.get("class_names")
        return TransferSignature(self.channels, names, self.read_size) if names else self


def transfers(hp) -> bool:
    """Whether the run transfers pretrained features (stages head and finetune) rather than training the whole
    network from scratch (stage scratch): it has ``weights``, or asks for the old frozen random backbone."""
    return bool(hp.weights) or hp.untrained_backbone == "frozen"


def check_weights(hp, splits) -> None:
    """``untrained_backbone=refuse`` without ``weights``: one line, before the run writes anything."""
    if not hp.weights and hp.untrained_backbone == "refuse":
        raise ConfigError("image_transfer: no pretrained weights (weights is none) and untrained_backbone=refuse; "
                          "pass --set weights=imagenet, a weight file or a run directory, or "
                          "--set untrained_backbone=train to train the whole network from scratch")


def _describe_backbones() -> str:
    return ", ".join(f"{name} ({spec.size}x{spec.size}x{spec.channels}{', imagenet' if spec.imagenet else ''})"
                     for name, spec in BACKBONES.items())


IMAGE_TRANSFER = Recipe(
    name=NAME,
    summary="Transfer learning: a canon backbone (pretrained weights), a new head on its frozen features, then "
            "its top blocks fine-tuned",
    build_model=build_transfer,
    load_data=load_transfer,
    hparams={
        "backbone": HParam("resnet20", str, "the canon image factory under the new head: " + _describe_backbones(),
                           choices=tuple(BACKBONES)),
        "weights": HParam(None, str, "the backbone's starting weights: imagenet, a .weights.h5/.h5 file, a .keras "
                          "model or a run directory (layers matched by name); none: random", optional=True),
        "image_size": HParam(None, int, "side images are resized to (default: the backbone's, listed above)",
                             optional=True, minimum=8),
        "preprocessing": HParam("auto", str, "pixel standardisation inside the model (auto: what the weights "
                                "expect)", choices=PREPROCESSINGS),
        "dropout": HParam(0.2, float, "dropout before the new head", minimum=0.0, maximum=0.9),
        "finetune_blocks": HParam("2", str, "top backbone blocks trained in stage finetune (all: every block; "
                                  "0: no finetune stage). Blocks: a ResNet's stem and residual blocks (resnet20: "
                                  "10, resnet50: 17), VGG's 5, GoogLeNet's stem and 9 inception modules, "
                                  "AlexNet's and ZFNet's 5, LeNet-5's 3"),
        "finetune_learning_rate": HParam(1e-4, float, "learning rate of stage finetune (a tenth of the head's "
                                         "default)", minimum=0.0),
        "augment_head": HParam(False, bool, "apply the image augmentation in stage head too: the frozen backbone "
                               "then runs on every image every epoch instead of once (cache_features)", legacy=True),
        "untrained_backbone": HParam("train", str, "without pretrained weights: train the whole network from its "
                                     "random initialisation in one stage (train), or refuse to start (refuse); "
                                     "frozen, a head on the frozen random backbone, is what runs written before "
                                     "this key did, and learns little", choices=UNTRAINED, legacy="frozen"),
    },
    # chosen on the validation split of a photo folder (Flickr8k, dog / people, a quarter dogs; 3 seeds) from
    # scratch: the docs give the settings tried. The epochs give the CIFAR-10 subset its former 5. The balanced
    # sampler (validation balanced accuracy 0.7342, accuracy 0.7087) replaced balanced loss weights (0.7237, 0.6517).
    defaults={"optimizer": "adam", "learning_rate": 1e-3, "epochs": "auto", "auto_examples": 18_000,
              "batch_size": 32, "lr_schedule": "cosine", "class_weight": "sampler", "augment_flip": "horizontal",
              "augment_shift": 0.125, "label_smoothing": 0.1, "ema": 0.99},
    stages=(
        Stage("head", "freeze the backbone; train the new head on its features (computed once)",
              freeze=("backbone",), when=transfers, augments=lambda hp: hp.augment_head),
        Stage("finetune", "unfreeze the top finetune_blocks blocks; train them with the head at "
              "finetune_learning_rate", freeze=frozen_in_finetune,
              overrides={"learning_rate": "finetune_learning_rate"},
              when=lambda hp: transfers(hp) and str(hp.finetune_blocks).strip() != "0"),
        Stage("scratch", "without pretrained weights: train the whole network from its random initialisation",
              trains_on="the whole network from random weights: no pretrained weights were given",
              when=lambda hp: not transfers(hp)),
    ),
    check_data=check_weights,
    preprocess=preprocess,
    serving=TransferSignature(),
    augmentable=True,
    task="image_classification",
    data="your own images (--data); without them the CIFAR-10 subset (cifar10_subset/cifar10_subset.npz in the "
         "data directory, else TFDS 'cifar10')",
    reference="Yosinski et al. 2014 (How transferable are features?); Keras's transfer-learning guide; "
              "CS231n's transfer-learning notes",
)

RECIPES = [IMAGE_TRANSFER]
