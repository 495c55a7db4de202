"""MNIST transfer learning, the classic Keras example (``mnist_transfer_cnn.py``).

Stage ``pretrain`` trains the whole CNN on digits 0-4; stage ``finetune`` freezes the
convolutional features and trains the dense head on digits 5-9 (labelled 0-4 inside
the model; the export returns the digits 5-9 themselves).

The original ran Adadelta at learning rate 1.0 and batch 128 for 5 + 5 epochs (``--set optimizer=adadelta
--set learning_rate=1.0 --set finetune_learning_rate=1.0 --epochs 5 --set finetune_epochs=5 --set
finetune_batch_size=128``); ported literally it reaches about 99.6-99.7% on digits 0-4 and 99.1-99.3% on
5-9 here. The defaults are Adam with cosine decay: 4 epochs at batch 128 and peak rate 2e-3 for the whole
CNN, then 10 epochs at batch 128 and 2e-3 for the new head, which trains on the frozen features computed once
(``cache_features``), so its epochs cost a fraction of the first stage's. Both stages compute in bfloat16
where the CPU has AMX-BF16 (``precision=auto``; 1.8x the float32 throughput of the convolutions there, at the
same validation accuracy over 3 seeds); the saved and exported model is float32 (docs/benchmarks.md lists the numbers).
"""

from __future__ import annotations

from kerasapps.core.hparams import HParam
from kerasapps.core.lazy import lazy_import
from kerasapps.core.recipe import Recipe, Stage
from kerasapps.data.builtin import load_mnist
from kerasapps.savedmodel.signatures import ImageClassifier

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes

FEATURE_LAYERS = ("features_",)


def mnist_transfer_cnn(*, input_shape=(28, 28, 1), classes=5, filters=32, kernel_size=3, dense_units=128,
                       feature_dropout=0.25, head_dropout=0.5, classifier_activation="softmax",
                       name="mnist_transfer_cnn"):
    """The transfer example's CNN: features (2 conv + pool + dropout + flatten) and a dense head.

    Layers named ``features_*`` are the part frozen in stage 2. At the defaults it has
    600,165 parameters (feature part 9,568; head 590,597).
    """
    if classes < 1:
        raise ValueError(f"classes must be a positive integer; got {classes!r}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Conv2D(filters, kernel_size, activation="relu", name="features_conv1")(inputs)
    x = keras.layers.Conv2D(filters, kernel_size, activation="relu", name="features_conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="features_pool")(x)
    x = keras.layers.Dropout(feature_dropout, name="features_dropout")(x)
    x = keras.layers.Flatten(name="features_flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(head_dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def preprocess(images):
    """uint8 [N, 28, 28] (or [N, 28, 28, 1]) -> float32 [N, 28, 28, 1] in [0, 1]."""
    x = keras.ops.cast(images, "float32") / 255.0
    if len(x.shape) == 3:
        x = keras.ops.expand_dims(x, -1)
    return x


# The MNIST recipes' epochs follow the data (issue 26): as many training examples as 10 epochs of MNIST's 54,000
# training digits (so exactly 10 epochs there), up to 100 epochs on a smaller --data set, with early stopping
# (patience 10, the best weights kept). Chosen on the validation split of 4,500 MNIST digits as a PNG folder, 3
# seeds: mlp_mnist 0.9680 against 0.9587 at a fixed 10 epochs, lenet5_mnist 0.9713 against 0.9527.
MNIST_EPOCHS = {"epochs": "auto", "auto_examples": 540_000, "max_epochs": 100, "early_stopping": True,
                "early_stopping_patience": 10}


def _digits(low, high):
    def select(split):
        x, y = split
        keep = (y >= low) & (y <= high)
        return x[keep], y[keep] - low
    select.__doc__ = f"digits {low}-{high}, relabelled 0-{high - low}"
    return select


def build_model(hp, meta):
    return mnist_transfer_cnn(filters=hp.filters, dense_units=hp.dense_units,
                              feature_dropout=hp.feature_dropout, head_dropout=hp.head_dropout)


MNIST_TRANSFER = Recipe(
    name="mnist_transfer",
    summary="Classic Keras transfer example: CNN on digits 0-4, then frozen features + new head on 5-9",
    build_model=build_model,
    load_data=load_mnist,
    hparams={
        "filters": HParam(32, int, "filters in each of the two conv layers", minimum=1),
        "dense_units": HParam(128, int, "units in the head's hidden layer", minimum=1),
        "feature_dropout": HParam(0.25, float, "dropout after the pooled features", minimum=0.0, maximum=0.95),
        "head_dropout": HParam(0.5, float, "dropout in the head", minimum=0.0, maximum=0.95),
        "finetune_learning_rate": HParam(2e-3, float, "peak learning rate of stage 'finetune' (a new head "
                                         "trained from scratch on frozen features)", minimum=0.0),
        "finetune_epochs": HParam(10, int, "epochs of stage 'finetune' (--epochs sets stage 'pretrain')", minimum=1),
        "finetune_batch_size": HParam(128, int, "batch size of stage 'finetune' (the head trains on the frozen "
                                      "features computed once)", minimum=1),
        # unset by default, as before the key (both stages smooth by label_smoothing, 0): on the validation
        # splits over 3 seeds (the docs, "How the defaults were chosen"), smoothing both stages by 0.1 lifted the
        # new head (0.9932 against 0.9915) and lowered the pretraining (0.9958 against 0.9969), and smoothing the
        # head's stage alone did not lift it (0.9910)
        "finetune_label_smoothing": HParam(None, float, "label smoothing of stage 'finetune' (unset: "
                                           "label_smoothing, which sets stage 'pretrain')", minimum=0.0,
                                           maximum=0.99, legacy=None),
    },
    defaults={"optimizer": "adam", "learning_rate": 2e-3, "lr_schedule": "cosine", "epochs": 4, "batch_size": 128,
              "precision": "auto"},
    stages=(
        Stage("pretrain", "train every layer on digits 0-4", select=_digits(0, 4),
              trains_on="digits 0-4"),
        Stage("finetune", "freeze features_*; train the head on digits 5-9", select=_digits(5, 9),
              trains_on="digits 5-9", freeze=FEATURE_LAYERS,
              overrides={"learning_rate": "finetune_learning_rate", "epochs": "finetune_epochs",
                         "batch_size": "finetune_batch_size", "label_smoothing": "finetune_label_smoothing"}),
    ),
    preprocess=preprocess,
    serving=ImageClassifier(28, 28, class_ids=range(5, 10), known_classes="the digits 5-9"),
    augmentable=True,
    data="MNIST (mnist/mnist.npz in the data directory, else TFDS 'mnist'); validation carved from train",
    reference="keras-team/keras examples/mnist_transfer_cnn.py (99.8% / 99.2% reported)",
)

RECIPES = [MNIST_TRANSFER]
