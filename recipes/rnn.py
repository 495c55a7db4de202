"""Stacked recurrent networks (simple RNN, LSTM, GRU) and the ``mnist_rows`` recipe.

The cells:

- ``simple``: the Elman network (Elman, "Finding Structure in Time", Cognitive Science 1990).
- ``lstm``: long short-term memory (Hochreiter & Schmidhuber, "Long Short-Term Memory",
  Neural Computation 9(8), 1997) with the forget gate of Gers, Schmidhuber & Cummins
  (2000); its bias starts at 1 (``unit_forget_bias=True``), as Jozefowicz, Zaremba &
  Sutskever (ICML 2015) recommend, so the cell remembers by default early in training.
- ``gru``: the gated recurrent unit (Cho et al., "Learning Phrase Representations using
  RNN Encoder-Decoder for Statistical Machine Translation", EMNLP 2014), in Keras's
  cuDNN-compatible form (``reset_after=True``).

:func:`rnn_stack` applies the recurrent layers to a tensor inside a functional graph
(layers ``rnn1``, ``rnn2``, ...), so recipes can put an embedding or text vectorizer in
front and keep flat, stable layer names; :func:`stacked_rnn` wraps it into a complete
model over float sequences ``[N, T, F]`` ending in a ``predictions`` layer. Bidirectional
layers (Schuster & Paliwal 1997) concatenate the forward and backward outputs.

``mnist_rows`` reads each MNIST image as 28 time steps of 28 pixels, the classic
"RNN on MNIST" exercise (keras examples ``mnist_irnn.py``, ``mnist_hierarchical_rnn.py``).
"""

from __future__ import annotations

from kerasapps.core.hparams import HParam
from kerasapps.core.lazy import lazy_import
from kerasapps.core.recipe import Recipe, classes_in
from kerasapps.recipes.mnist_transfer import MNIST_EPOCHS
from kerasapps.savedmodel.signatures import ImageClassifier

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes

CELLS = ("simple", "lstm", "gru")


def _check(cell, units, layers, dropout, recurrent_dropout):
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
    if not isinstance(units, int) or units < 1:
        raise ValueError(f"units must be a positive integer; got {units!r}")
    if not isinstance(layers, int) or layers < 1:
        raise ValueError(f"layers must be a positive integer; got {layers!r}")
    for key, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{key} must be in [0, 1); got {value!r}")


def recurrent_layer(cell: str, units: int, *, return_sequences: bool, dropout: float = 0.0,
                    recurrent_dropout: float = 0.0, name: str | None = None):
    """One Keras recurrent layer of type ``cell`` (``simple``, ``lstm`` or ``gru``); LSTM forget bias 1."""
    _check(cell, units, 1, dropout, recurrent_dropout)
    options = dict(return_sequences=return_sequences, dropout=dropout, recurrent_dropout=recurrent_dropout,
                   name=name)
    if cell == "lstm":
        return keras.layers.LSTM(units, unit_forget_bias=True, **options)
    if cell == "gru":
        return keras.layers.GRU(units, reset_after=True, **options)
    return keras.layers.SimpleRNN(units, **options)


def rnn_stack(x, *, cell: str = "lstm", units: int = 128, layers: int = 1, bidirectional: bool = False,
              dropout: float = 0.0, recurrent_dropout: float = 0.0, return_sequences: bool = False):
    """Apply ``layers`` recurrent layers named ``rnn1``..``rnnK`` to the sequence tensor ``x``.

    Every layer but the last returns sequences; the last returns them only when
    ``return_sequences`` (a per-step head, e.g. a language model), else its final output.
    ``dropout`` and ``recurrent_dropout`` are the Keras per-layer input and recurrent
    dropout (Gal & Ghahramani 2016). A Keras mask on ``x`` (``Embedding(mask_zero=True)``)
    is respected. Bidirectional layers are named ``rnnK`` too, wrapping ``forward_rnnK``
    and ``backward_rnnK``.
    """
    _check(cell, units, layers, dropout, recurrent_dropout)
    for i in range(1, layers + 1):
        sequences = return_sequences or i < layers
        layer = recurrent_layer(cell, units, return_sequences=sequences, dropout=dropout,
                                recurrent_dropout=recurrent_dropout, name=f"rnn{i}")
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"rnn{i}")
        x = layer(x)
    return x


def stacked_rnn(*, input_shape=(None, 28), cell: str = "lstm", units: int = 128, layers: int = 1,
                bidirectional: bool = False, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                return_sequences: bool = False, include_top: bool = True, classes: int = 10,
                classifier_activation: str | None = "softmax", name: str = "stacked_rnn"):
    """A stacked recurrent classifier over float sequences ``[N, T, F]`` (``input_shape=(T, F)``).

    Layers: ``sequence`` (input), ``rnn1``..``rnnK``, ``predictions`` (Dense ``classes``
    with ``classifier_activation``; applied at every step when ``return_sequences``).
    With ``include_top=False`` the model ends at ``rnnK``. Parameters of one LSTM layer:
    ``4 * units * (F + units + 1)`` (doubled when bidirectional); GRU (reset_after)
    ``3 * units * (F + units + 2)``; simple ``units * (F + units + 1)``. At the defaults
    (one LSTM of 128 over 28 features, 10 classes) it has 81,674 parameters.
    """
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ValueError(f"classes must be a positive integer; got {classes!r}")
    if len(tuple(input_shape)) != 2:
        raise ValueError(f"input_shape must be (timesteps, features); got {input_shape!r}")
    inputs = keras.Input(shape=tuple(input_shape), name="sequence")
    x = rnn_stack(inputs, cell=cell, units=units, layers=layers, bidirectional=bidirectional, dropout=dropout,
                  recurrent_dropout=recurrent_dropout, return_sequences=return_sequences)
    if include_top:
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return keras.Model(inputs, x, name=name)


# ----------------------------------------------------------------------------- mnist_rows

def preprocess_rows(images):
    """uint8 [N, 28, 28] -> float32 [N, 28, 28] in [0, 1]: 28 time steps of 28 pixels (one row each)."""
    x = keras.ops.cast(images, "float32") / 255.0
    if len(x.shape) == 4:
        x = keras.ops.squeeze(x, -1)
    return x


def load_mnist_rows(hp, ctx):
    from kerasapps.data.builtin import load_mnist

    return load_mnist(hp, ctx)


def build_mnist_rows(hp, meta):
    return stacked_rnn(input_shape=(28, 28), cell=hp.cell, units=hp.units, layers=hp.layers,
                       bidirectional=hp.bidirectional, dropout=hp.dropout, recurrent_dropout=hp.recurrent_dropout,
                       classes=classes_in(meta, 10), name=f"mnist_rows_{hp.cell}")


RNN_HPARAMS = {
    "cell": HParam("lstm", str, "recurrent cell", choices=CELLS),
    "units": HParam(128, int, "units per recurrent layer", minimum=1),
    "layers": HParam(1, int, "stacked recurrent layers", minimum=1),
    "bidirectional": HParam(False, bool, "bidirectional layers (forward and backward outputs concatenated)"),
    "dropout": HParam(0.0, float, "input dropout of each recurrent layer", minimum=0.0, maximum=0.9),
    "recurrent_dropout": HParam(0.0, float, "recurrent-state dropout (slower: disables the fused kernel)",
                                minimum=0.0, maximum=0.9),
}

MNIST_ROWS = Recipe(
    name="mnist_rows",
    summary="MNIST read row by row: 28 steps x 28 pixels through a stacked LSTM/GRU/simple RNN",
    build_model=build_mnist_rows,
    load_data=load_mnist_rows,
    hparams=RNN_HPARAMS,
    # 5 epochs at lr 1e-3 reached 97.70% with the LSTM; the target is 98.5%. Issue 26, on validation
    # splits over 3 seeds: epochs follow the data as for the other MNIST recipes (on 4,500 PNG digits 0.9660
    # against 0.9460 at a fixed 10 epochs), and label smoothing (0.9713 there; on MNIST 0.9886 against 0.9891,
    # within a seed's spread); on MNIST itself the rule gives the same 10 epochs
    defaults={"optimizer": "adam", "learning_rate": 2e-3, "lr_schedule": "cosine", "batch_size": 128,
              "clipnorm": 1.0, "label_smoothing": "auto", **MNIST_EPOCHS},
    preprocess=preprocess_rows,
    serving=ImageClassifier(28, 28),
    task="image_classification",
    data="MNIST (mnist/mnist.npz in the data directory, else TFDS 'mnist'); validation carved from train",
    reference="keras examples mnist_irnn.py / mnist_hierarchical_rnn.py; Hochreiter & Schmidhuber 1997; "
              "Cho et al. 2014",
)

RECIPES = [MNIST_ROWS]
