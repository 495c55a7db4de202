"""Image captioning on Flickr8k: a CNN encoder and an RNN decoder with the image vector injected.

After Vinyals, Toshev, Bengio & Erhan, "Show and Tell: A Neural Image Caption Generator"
(CVPR 2015) and Karpathy & Fei-Fei, "Deep Visual-Semantic Alignments for Generating Image
Descriptions" (CVPR 2015), whose RNN is (CS231n's captioning model):

    image -> [CONV-POOL] x n -> FC -> v;   h_t = tanh(W_xh x_t + W_hh h_{t-1} + W_ih v);   y_t = W_hy h_t

and the next input x_{t+1} is the word chosen from y_t. ``cell=rnn, inject=every_step`` is
exactly that model (v is concatenated to every word embedding, so the SimpleRNN's input
kernel holds both W_xh and W_ih). ``cell=lstm|gru`` swap the recurrence; ``inject=init_state``
feeds v once, as the initial state (``init_h = tanh(W v)``, plus ``init_c`` for the LSTM),
as Show and Tell does.

Layers (stable names): ``image`` -> ``encoder_block{i}_conv{j}`` / ``encoder_block{i}_pool`` ->
``encoder_gap`` -> ``image_vector`` (v), ``caption`` (token strings) -> ``word_lookup`` ->
``word_embedding`` -> [``image_repeat``, ``decoder_input``] -> ``decoder`` -> ``decoder_dropout``
-> ``logits`` (one per vocabulary id; id 0 is padding, 1 the unknown word).

Data, captions and images: :mod:`kerasapps.recipes.captioning_data`. Training is teacher forcing:
inputs ``(image, caption_in)``, targets ``caption_out`` (caption_in shifted by one), padding
ignored by the loss (``ignore_class=0``).

Decoding (greedy, beam search, temperature sampling) is in :mod:`kerasapps.recipes.captioning_decode`;
BLEU and the baselines in :mod:`kerasapps.recipes.captioning_eval`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from kerasapps.core.errors import UsageError
from kerasapps.core.hparams import HParam
from kerasapps.core.lazy import lazy_import
from kerasapps.core.recipe import Recipe, Serving
from kerasapps.data.images import decode_images
from kerasapps.models.blocks import conv_block
from kerasapps.recipes.captioning_data import (
    PAD,
    UNK,
    VOCABULARIES,
    load_captioning,
    lookup_vocabulary,
    prepare_images,
    preprocess,
    weights_path,
)
from kerasapps.savedmodel.signatures import BYTES_INPUT, BYTES_SIGNATURE

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes
log = logging.getLogger("kerasapps")

NAME = "captioning_flickr8k"
CELLS = ("rnn", "gru", "lstm")
INJECT = ("init_state", "every_step")
ENCODERS = ("conv", "resnet20")
DEFAULT_WORDS = ["a", "dog", "man", "in", "the", "on", "is", "with", "of", "and"]  # `kerasapps info` only


# ----------------------------------------------------------------------------- model

def captioner(vocabulary: Sequence[str], *, image_size=64, max_length=20, filters=(16, 32, 64, 128), convs=1,
              embedding_dim=128, units=256, cell="lstm", inject="init_state", dropout=0.3, batch_norm=True,
              encoder="conv", encoder_weights=None, freeze_encoder=False, name="captioner"):
    """(image float32 [N, S, S, 3] in [0, 1], caption token strings [N, T]) -> logits [N, T, V + 4].

    ``vocabulary``: words in id order (ids 4..; 0 pad, 1 unknown, 2 <start>, 3 <end>).
    The encoder is [CONV-POOL] x len(filters) (``convs`` 3x3 convolutions per block, batch
    norm), global average pooling and FC ``image_vector`` (``units``, ReLU). With the
    defaults and the subset's 1,130-word vocabulary (min count 3): 1,093,598 parameters.

    ``encoder="resnet20"`` takes the CNN canon's CIFAR ResNet-20 instead (a nested model named
    ``encoder``, after a fixed CIFAR-10 standardisation), trained jointly, or initialised from
    ``encoder_weights`` (a ``.keras`` file or run directory of e.g. ``resnet20_cifar10``; layers
    matched by name) and, with ``freeze_encoder``, kept frozen.
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
    if inject not in INJECT:
        raise ValueError(f"inject must be one of {', '.join(INJECT)}; got {inject!r}")
    table = lookup_vocabulary(vocabulary)
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}; got {encoder!r}")
    image = keras.Input(shape=(image_size, image_size, 3), name="image")
    caption = keras.Input(shape=(max_length,), dtype="string", name="caption")
    if encoder == "conv":
        x = image
        for i, width in enumerate(filters, start=1):
            for j in range(1, convs + 1):
                x = conv_block(x, width, 3, name=f"encoder_block{i}_conv{j}", batch_norm=batch_norm)
            x = keras.layers.MaxPooling2D(2, name=f"encoder_block{i}_pool")(x)
        x = keras.layers.GlobalAveragePooling2D(name="encoder_gap")(x)
    else:  # the CNN canon's CIFAR ResNet-20, fed the CIFAR standardisation its recipe trains with
        from kerasapps.recipes.cifar import CIFAR10_MEAN, CIFAR10_STD
        from kerasapps.recipes.resnet import resnet20

        x = keras.layers.Normalization(mean=list(CIFAR10_MEAN), variance=[s * s for s in CIFAR10_STD],
                                       name="encoder_standardise")(image)
        net = resnet20(include_top=False, input_shape=(image_size, image_size, 3), pooling="avg", name="encoder")
        if encoder_weights:
            copy_weights_by_name(encoder_weights, net)
        net.trainable = not freeze_encoder  # frozen: batch norm also runs in inference mode
        x = net(x)
    x = keras.layers.Dropout(dropout, name="encoder_dropout")(x)
    v = keras.layers.Dense(units, activation="relu", name="image_vector")(x)

    ids = keras.layers.StringLookup(vocabulary=table[2:], mask_token=PAD, oov_token=UNK, num_oov_indices=1,
                                    name="word_lookup")(caption)
    words = keras.layers.Embedding(len(table), embedding_dim, name="word_embedding")(ids)
    layer = {"rnn": keras.layers.SimpleRNN, "gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[cell]
    rnn = layer(units, return_sequences=True, dropout=dropout, name="decoder")
    if inject == "every_step":
        repeated = keras.layers.RepeatVector(max_length, name="image_repeat")(v)
        h = rnn(keras.layers.Concatenate(name="decoder_input")([words, repeated]))
    else:
        state = [keras.layers.Dense(units, activation="tanh", name="init_h")(v)]
        if cell == "lstm":
            state.append(keras.layers.Dense(units, name="init_c")(v))
        h = rnn(words, initial_state=state)
    h = keras.layers.Dropout(dropout, name="decoder_dropout")(h)
    logits = keras.layers.Dense(len(table), name="logits")(h)
    return keras.Model([image, caption], logits, name=name)


def copy_weights_by_name(source, target) -> int:
    """Copy weights from a saved model (``.keras`` file or kerasapps run directory) into ``target``'s layers
    of the same name and weight shapes; returns how many layers were copied (an error when none)."""
    from kerasapps.models.weights import copy_weights_by_name as copy
    from kerasapps.training.checkpoints import load_model

    path = weights_path(source)
    try:
        saved = load_model(path, compile=False)
    except Exception as exc:  # a corrupt or foreign file: one line, not a traceback
        raise UsageError(f"encoder_weights: cannot load {path}: {str(exc).splitlines()[0][:200]}") from None
    try:
        copied = copy(saved, target)
    except ValueError as exc:
        raise UsageError(f"encoder_weights: {exc} ({path})") from None
    if not copied:
        raise UsageError(f"encoder_weights: no layer of {path} matches the {target.name} encoder by name")
    log.info("%s: copied the weights of %d encoder layers from %s", NAME, copied, path)
    return copied


def build_captioning(hp, meta):
    words = meta.get("words")
    if words is None:
        log.info("%s: no captions loaded; using a 10-word placeholder vocabulary (architecture only)", NAME)
        words = DEFAULT_WORDS
    filters = tuple(hp.base_filters * 2 ** i for i in range(hp.conv_blocks))
    return captioner(words, image_size=hp.image_size, max_length=hp.max_length, filters=filters,
                     convs=hp.convs_per_block, embedding_dim=hp.embedding_dim, units=hp.units, cell=hp.cell,
                     inject=hp.inject, dropout=hp.dropout, encoder=hp.encoder, encoder_weights=hp.encoder_weights,
                     freeze_encoder=hp.freeze_encoder, name=NAME)


def word_accuracy(y_true, y_pred):
    """Next-word accuracy over real words and <end> (padding, id 0, ignored).

    A plain function, not registered with Keras (registering would import Keras when the registry
    lists the recipes): loading a compiled model names it through the recipe's metrics.
    """
    ops = keras.ops

    y_true = ops.cast(y_true, "int32")
    mask = ops.cast(ops.not_equal(y_true, 0), "float32")
    hits = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32") * mask
    return ops.sum(hits) / ops.maximum(ops.sum(mask), 1.0)


# ----------------------------------------------------------------------------- serving

class CaptionGenerator(Serving):
    """``images`` (uint8 [N, H, W, 3], any size) -> ``captions`` (string [N]), by beam search.

    The ``sample`` signature adds ``temperature`` (float32; 0 is greedy) and ``seed`` (int64); ``serving_bytes``
    takes ``image_bytes`` (string [N], JPEG/PNG/BMP/GIF files' bytes), decoded and fitted inside as training read
    the files, and captions them as ``serving_default`` does.
    """

    input_name = "images"
    square = True  # an image is read as its central square, as training read the files

    def __init__(self, beam_width: int = 5, length_penalty: float = 0.5,  # chosen on the dev images
                 image_size: int = 64):
        self.beam_width, self.length_penalty, self.image_size = beam_width, length_penalty, image_size

    @property
    def read_shape(self) -> tuple:
        """The size training read image files to (the encoder's input)."""
        return (self.image_size, self.image_size, 3)

    def configure(self, hp):
        return CaptionGenerator(self.beam_width, self.length_penalty, hp.image_size)

    def fixed_size(self):
        """Formats without the resize take images already fitted to ``read_shape`` (:meth:`numeric_outputs`)."""
        return self

    def input_signature(self) -> list:
        import tensorflow as tf

        return [tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")]

    def outputs(self, model, preprocess, raw) -> dict:
        from kerasapps.recipes.captioning_decode import Decoder

        decoder = Decoder(model)
        images = prepare_images(raw, decoder.image_size)
        return {"captions": decoder.beam(images, self.beam_width, length_penalty=self.length_penalty)}

    def numeric_outputs(self, model, preprocess, raw) -> tuple[dict, dict]:
        """ONNX and LiteRT: images fitted to ``read_shape`` -> ``caption_ids`` (int32 [N, max_length]) by the same
        beam search; the predict side makes ``captions`` of them with the vocabulary, as the SavedModel does."""
        from kerasapps.recipes.captioning_decode import Decoder

        decoder = Decoder(model)
        ids = decoder.beam_ids(preprocess(raw), self.beam_width, length_penalty=self.length_penalty)
        return {"caption_ids": ids}, {"captions": {"ids": "caption_ids", "vocabulary": decoder.words,
                                                   "end": decoder.end, "skip_below": 2}}

    def extra_endpoints(self, model, preprocess) -> dict:
        import tensorflow as tf

        from kerasapps.recipes.captioning_decode import Decoder

        decoder = Decoder(model)

        def sample(images, temperature, seed):
            return {"captions": decoder.sample(prepare_images(images, decoder.image_size), temperature, seed)}

        def serve_bytes(image_bytes):
            shape = (decoder.image_size, decoder.image_size, 3)
            images = prepare_images(decode_images(image_bytes, shape, square=True), decoder.image_size)
            return {"captions": decoder.beam(images, self.beam_width, length_penalty=self.length_penalty)}

        signature = [tf.TensorSpec((None, None, None, 3), tf.uint8, name="images"),
                     tf.TensorSpec((), tf.float32, name="temperature"), tf.TensorSpec((), tf.int64, name="seed")]
        return {"sample": tf.function(sample, input_signature=signature),
                BYTES_SIGNATURE: tf.function(serve_bytes, input_signature=[
                    tf.TensorSpec((None,), tf.string, name=BYTES_INPUT)])}

    def describe(self) -> str:
        return (f"images: uint8 [N, H, W, 3] (any size; central square resized inside) -> captions: string [N] "
                f"(beam search, width {self.beam_width}, length penalty {self.length_penalty:g}); "
                f"signature 'sample' adds temperature float32, seed int64; '{BYTES_SIGNATURE}' takes {BYTES_INPUT}: "
                "string [N] (JPEG, PNG, BMP or GIF files' bytes)")


EXAMPLES_SHOWN = 5


def caption_scores(model, hp, data, split, meta, metrics) -> dict:
    """``evaluate``'s addition: corpus BLEU-1..4 (nltk, Papineni et al. 2002) of the export's captions (beam 5,
    length penalty 0.5) for the split's images, against all their reference captions, with a few examples."""
    from kerasapps.data.files import materialize
    from kerasapps.recipes.captioning_decode import caption
    from kerasapps.recipes.captioning_eval import corpus_bleu

    groups = (meta.get("references") or {}).get(split)
    if not groups:
        return {}
    images = data[0][0]
    first = np.asarray(groups["first"])
    kept = first < len(data[1])  # a smoke run keeps the first rows only
    first, references = first[kept], [r for r, k in zip(groups["captions"], kept) if k]
    if not len(first):
        return {}
    pixels = np.asarray(materialize(images[first])).astype(np.float32) / 255.0
    captions = caption(model, pixels)
    sources = [str(p) for p in images.paths[first]] if hasattr(images, "paths") else [f"{split}[{i}]" for i in first]
    return {"captions": {"decoding": "beam 5, length penalty 0.5, as the export decodes", "images": len(first),
                         **corpus_bleu(captions, references),
                         "examples": [{"source": s, "caption": c, "references": r} for s, c, r in
                                      list(zip(sources, captions, references))[:EXAMPLES_SHOWN]]}}


CAPTIONING = Recipe(
    name=NAME,
    summary="Image captioning: CNN encoder + RNN/LSTM/GRU decoder with the image vector injected; exports captions",
    build_model=build_captioning,
    load_data=load_captioning,
    hparams={
        "image_size": HParam(64, int, "image side the encoder sees (the export resizes any image to it)", minimum=16),
        "max_length": HParam(20, int, "decoder steps: <start> + up to max_length-1 words (longer captions cut)",
                             minimum=2),
        "min_word_count": HParam(3, int, "words seen fewer times in the training captions become [UNK]", minimum=1),
        "max_words": HParam(None, int, "cap on the vocabulary size (most frequent words)", optional=True, minimum=1),
        "vocabulary": HParam("train", str, "captions the vocabulary comes from: the subset's training images, or "
                             "all 6,000 official Flickr8k training images (never dev or test)", choices=VOCABULARIES),
        "encoder": HParam("conv", str, "image encoder: a small [CONV-POOL] x n, or the canon's CIFAR ResNet-20",
                          choices=ENCODERS),
        "encoder_weights": HParam(None, str, "initialise the encoder from this .keras file or run directory "
                                  "(e.g. a resnet20_cifar10 run; layers matched by name)", optional=True),
        "freeze_encoder": HParam(False, bool, "keep the encoder's weights (and batch-norm statistics) fixed"),
        "conv_blocks": HParam(4, int, "encoder [CONV-POOL] blocks (encoder=conv)", minimum=1),
        "base_filters": HParam(16, int, "filters of the first block (doubling per block)", minimum=1),
        "convs_per_block": HParam(1, int, "3x3 convolutions per encoder block", minimum=1),
        "embedding_dim": HParam(128, int, "word embedding size", minimum=1),
        "units": HParam(256, int, "image vector and recurrent state size", minimum=1),
        "cell": HParam("lstm", str, "decoder recurrence: rnn is Karpathy & Fei-Fei's tanh RNN", choices=CELLS),
        "inject": HParam("init_state", str, "how v enters the decoder: initial state, or concatenated to every "
                         "step's input (Karpathy & Fei-Fei's W_ih v)", choices=INJECT),
        "dropout": HParam(0.3, float, "dropout on the image vector, decoder input and decoder output",
                          minimum=0.0, maximum=0.9),
        "caption_column": HParam("caption", str, "--data table: the column of captions (one row per caption)"),
    },
    # Issue 26, on the 113 dev images over 3 seeds: 30 epochs against 15, validation word accuracy 0.3527 against
    # 0.3419 and BLEU-4 0.0907 against 0.0799 (label smoothing 0.1 and EMA 0.99 at 15 epochs: level, 1 seed). The
    # 30 epochs are the subset's 3,765 training captions x 30 as a number of examples: a table of captions of
    # another size gets as many steps (at most 100 epochs)
    defaults={"optimizer": "adam", "learning_rate": 2e-3, "lr_schedule": "cosine", "epochs": "auto",
              "auto_examples": 112_950, "max_epochs": 100, "batch_size": 64, "clipnorm": 5.0,
              "augment_flip": "horizontal"},
    preprocess=preprocess,
    loss={"class_name": "SparseCategoricalCrossentropy",  # a Keras config: declaring the recipe imports no Keras
          "config": {"from_logits": True, "ignore_class": 0}},
    metrics=(word_accuracy,),
    serving=CaptionGenerator(),
    augmentable=True,
    task="captioned_images",
    evaluation=caption_scores,
    data="your own table of image paths and captions (--data captions.csv), or flickr8k_subset (images_64.npz, "
         "captions.json: official split 753/113/125 images x 5 captions) in the "
         "data directory, else TFDS 'coco_captions'",
    reference="Vinyals et al. 2015 (Show and Tell); Karpathy & Fei-Fei 2015; loss in nats per word",
)

RECIPES = [CAPTIONING]
