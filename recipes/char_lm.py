"""Character-level language model (char-rnn) on Tiny Shakespeare, with text generation in the export.

After Karpathy's char-rnn (2015) and Graves, "Generating Sequences With Recurrent Neural
Networks" (2013): a stack of LSTMs (Hochreiter & Schmidhuber 1997; GRU, Cho et al. 2014,
or simple RNN via ``cell``) reads ``seq_len`` characters and predicts the next character
at every position. The loss is the per-step sparse cross-entropy with natural
logarithms, so ``val_loss`` is in nats per character (divide by ln 2 for bits per char).

Data: the first 90% of ``tinyshakespeare/input.txt`` trains, the last 10% validates
(the char-rnn / nanoGPT split; the ``test`` split is that same validation text). Training
examples are consecutive windows of ``seq_len + 1`` characters (stride ``seq_len``),
each evaluated from a zero state.

Model. Characters travel as Unicode code points (int32). ``char_lookup`` (an
IntegerLookup) maps code points to ids 1..V, anything else to the OOV id 0, and holds
the vocabulary inside the model, checkpoints and the SavedModel. ``embedding``,
``rnn1``..``rnnK`` (returning sequences) and ``predictions`` (logits over V + 1 ids) follow.
The vocabulary is the training text's character set, which ``load_data`` returns as the
data's meta (``Splits.meta["vocabulary"]``, the one the targets are encoded with) and
``build_model(hp, meta)`` builds the lookup from; with no data loaded (``kerasapps info``)
it uses printable ASCII plus newline.

Generation (:func:`generation_function`, the export's signatures and :func:`generate`)
steps the recurrent cells one character at a time in a ``tf.while_loop``, sampling with
``tf.random.stateless_categorical`` seeded by ``(seed, step)``: the same prompt, length,
temperature and seed give the same text. Rules:

- an empty prompt starts from a newline (not included in the output);
- prompt characters outside the vocabulary map to the OOV id (its embedding is untrained,
  so it acts as an unknown character); generation never emits the OOV id;
- a prompt that is not valid UTF-8 is refused with an InvalidArgument error naming it
  (the Python helper raises UsageError before running the model);
- ``length`` is in characters, exactly, and must be >= 0; ``temperature`` 0 is greedy;
- the export's ``generate`` signature takes ``length`` up to ``MAX_GENERATE_LENGTH`` (10,000) and at most
  ``MAX_GENERATED_CHARACTERS`` (1,000,000) characters over all prompts of one call; a larger request is
  refused with an InvalidArgument error (a server's 400) before any step runs, so no request can keep a
  server busy for long.
"""

from __future__ import annotations

import logging
import math
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerasapps.core.errors import DataError, UsageError
from kerasapps.core.hparams import HParam
from kerasapps.core.lazy import lazy_import
from kerasapps.core.recipe import DATA_DIR_ENV, Recipe, Serving, Splits
from kerasapps.core.schema import GENERATION
from kerasapps.data.sources import own_data, read_corpus
from kerasapps.recipes.rnn import CELLS, rnn_stack

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes
log = logging.getLogger("kerasapps")
DEFAULT_VOCABULARY = sorted({ord(c) for c in string.printable if c not in "\t\r\x0b\x0c"})
NEWLINE = ord("\n")
_INVALID = 0xD800  # a surrogate: never decoded from valid UTF-8, so it marks invalid bytes
MAX_GENERATE_LENGTH = 10_000  # characters per prompt in one call of the export's 'generate' signature
MAX_GENERATED_CHARACTERS = 1_000_000  # characters over all prompts of one call


# ----------------------------------------------------------------------------- data

def read_text(path: Path) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc})") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    return text


def _tfds_text() -> str:
    try:
        import tensorflow_datasets as tfds

        splits = tfds.load("tiny_shakespeare", batch_size=-1)
        return "".join(tfds.as_numpy(splits[s])["text"][0].decode("utf-8") for s in ("train", "validation", "test"))
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(f"TFDS could not load 'tiny_shakespeare' ({first}); set --data-dir or "
                          f"${DATA_DIR_ENV} to a folder holding tinyshakespeare/input.txt") from None


def windows(codes: np.ndarray, seq_len: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``codes[i:i+seq_len]`` and targets shifted by one, for i = 0, stride, 2*stride, ..."""
    starts = np.arange(0, len(codes) - seq_len, stride)
    if len(starts) == 0:
        raise DataError(f"a text of {len(codes)} characters is too short for seq_len {seq_len}")
    index = starts[:, None] + np.arange(seq_len + 1)[None, :]
    chunks = codes[index]
    return chunks[:, :-1], chunks[:, 1:]


def load_char_lm(hp, ctx):
    """x: code points [N, seq_len] int32; y: target ids [N, seq_len] (0 = OOV) under the training vocabulary.

    The text: ``--data`` (a text file, or a folder of them read in sorted order), else Tiny Shakespeare.
    """
    source = own_data(ctx)
    if source is not None:
        text = read_corpus(source.path)
    elif ctx.data_dir is not None:
        text = read_text(ctx.require("tinyshakespeare/input.txt", "Karpathy's char-rnn input.txt"))
    else:
        text = _tfds_text()
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int32)
    cut = int(len(codes) * 0.9)
    train, validation = codes[:cut], codes[cut:]
    vocabulary = sorted(set(train.tolist()))
    ids = np.zeros(max(vocabulary) + 1, dtype=np.int32)
    ids[vocabulary] = np.arange(1, len(vocabulary) + 1)

    def split(part):
        x, y = windows(part, hp.seq_len, hp.stride or hp.seq_len)
        return x, np.where(y < len(ids), ids[np.minimum(y, len(ids) - 1)], 0).astype(np.int32)

    val = split(validation)
    return Splits(train=split(train), validation=val, test=val, meta={"vocabulary": vocabulary})


# ----------------------------------------------------------------------------- model

def char_rnn(vocabulary: Sequence[int], *, embedding_dim=64, cell="lstm", units=256, layers=2, dropout=0.0,
             recurrent_dropout=0.0, name="char_rnn"):
    """Code points [N, T] int32 -> next-character logits [N, T, len(vocabulary) + 1] (id 0 = OOV).

    ``vocabulary``: code points (or one-character strings), in id order (ids 1..V).

    Layers: ``chars``, ``char_lookup``, ``embedding``, ``rnn1``..``rnnK``, ``predictions``.
    With the 65 Tiny Shakespeare characters and the defaults: 875,202 parameters
    (embedding 4,224; LSTMs 328,704 + 525,312; head 16,962).
    """
    vocabulary = [ord(c) if isinstance(c, str) else int(c) for c in vocabulary]
    if not vocabulary or len(set(vocabulary)) != len(vocabulary) or min(vocabulary) < 0:
        raise ValueError(f"vocabulary must be distinct non-negative code points; got {len(vocabulary)} entries")
    inputs = keras.Input(shape=(None,), dtype="int32", name="chars")
    x = keras.layers.IntegerLookup(vocabulary=vocabulary, num_oov_indices=1, oov_token=-1, mask_token=None,
                                   output_mode="int", name="char_lookup")(inputs)
    x = keras.layers.Embedding(len(vocabulary) + 1, embedding_dim, name="embedding")(x)
    x = rnn_stack(x, cell=cell, units=units, layers=layers, dropout=dropout, recurrent_dropout=recurrent_dropout,
                  return_sequences=True)
    logits = keras.layers.Dense(len(vocabulary) + 1, name="predictions")(x)
    return keras.Model(inputs, logits, name=name)


def build_char_lm(hp, meta):
    vocabulary = meta.get("vocabulary")
    if vocabulary is None:
        log.info("char_lm: no training text loaded; using printable ASCII as the vocabulary (architecture only)")
        vocabulary = DEFAULT_VOCABULARY
    return char_rnn(vocabulary, embedding_dim=hp.embedding_dim, cell=hp.cell, units=hp.units, layers=hp.layers,
                    dropout=hp.dropout, recurrent_dropout=hp.recurrent_dropout, name="char_lm")


# ----------------------------------------------------------------------------- generation

def _parts(model):
    names = {layer.name for layer in model.layers}
    missing = {"char_lookup", "embedding", "rnn1", "predictions"} - names
    if missing:
        raise UsageError(f"model {model.name} is not a char_rnn language model (no layer {', '.join(sorted(missing))})")
    cells = []
    while f"rnn{len(cells) + 1}" in names:
        layer = model.get_layer(f"rnn{len(cells) + 1}")
        if not hasattr(layer, "cell"):
            raise UsageError(f"layer {layer.name} is not a unidirectional recurrent layer; cannot generate")
        cells.append(layer.cell)
    return model.get_layer("char_lookup"), model.get_layer("embedding"), cells, model.get_layer("predictions")


def generation_function(model):
    """``fn(prompt [N] string, length, temperature, seed) -> {"text", "generated"}``, a graph-safe function.

    ``generated`` is the ``length`` new characters; ``text`` is prompt + generated.
    """
    import tensorflow as tf

    lookup, embedding, cells, head = _parts(model)
    with tf.init_scope():  # read the table eagerly even when called while tracing an export
        code_of_id = [-1] + [int(c) for c in lookup.get_vocabulary()[1:]]
    code_of_id = tf.constant(code_of_id, tf.int32)

    def initial(batch):
        return [[tf.zeros([batch, size], tf.float32) for size in tf.nest.flatten(cell.state_size)] for cell in cells]

    def step(ids, states):
        x = embedding(ids)
        new_states = []
        for cell, state in zip(cells, states):
            x, new = cell(x, list(state), training=False)
            new_states.append(tf.nest.flatten(new))
        return head(x), new_states

    def fn(prompt, length, temperature, seed):
        prompt = tf.convert_to_tensor(prompt, tf.string)
        length, temperature = tf.cast(length, tf.int32), tf.cast(temperature, tf.float32)
        seed = tf.cast(seed, tf.int64)
        codes = tf.strings.unicode_decode(prompt, "UTF-8", errors="replace", replacement_char=_INVALID)
        checks = [tf.debugging.assert_non_negative(length, message="length must be >= 0"),
                  tf.debugging.assert_non_negative(temperature, message="temperature must be >= 0"),
                  tf.debugging.assert_equal(tf.reduce_any(tf.equal(codes.flat_values, _INVALID)), False,
                                            message="prompt is not valid UTF-8 text")]
        with tf.control_dependencies(checks):  # refuse before any work (e.g. a TensorArray of size -1)
            length, temperature = tf.identity(length), tf.identity(temperature)
            codes = codes.with_flat_values(tf.identity(codes.flat_values))
        empty = tf.cast(tf.equal(codes.row_lengths(), 0), codes.row_splits.dtype)
        newline = tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(empty)], NEWLINE), empty)
        codes = tf.concat([codes, newline], axis=1)  # an empty prompt becomes "\n"
        lengths = tf.cast(codes.row_lengths(), tf.int32)
        ids = tf.cast(lookup(codes.to_tensor(0)), tf.int32)
        batch, steps = tf.shape(ids)[0], tf.shape(ids)[1]
        states = initial(batch)
        logits = tf.zeros([batch, len(code_of_id)], tf.float32)

        def read(t, states, logits):  # feed the prompt; rows past their end keep their state
            new_logits, new_states = step(ids[:, t], states)
            live = (t < lengths)[:, None]
            states = [[tf.where(live, n, o) for n, o in zip(ns, os)] for ns, os in zip(new_states, states)]
            return t + 1, states, tf.where(live, new_logits, logits)

        _, states, logits = tf.while_loop(lambda t, *_: t < steps, read, (0, states, logits))
        oov = tf.one_hot(0, len(code_of_id), on_value=-1e9, off_value=0.0)

        def write(i, states, logits, out):
            scores = tf.cast(logits, tf.float32) + oov
            sampled = tf.random.stateless_categorical(scores / tf.maximum(temperature, 1e-6), 1,
                                                      seed=tf.stack([seed, tf.cast(i, tf.int64)]), dtype=tf.int32)[:, 0]
            chosen = tf.where(temperature > 0, sampled, tf.argmax(scores, -1, output_type=tf.int32))
            logits, states = step(chosen, states)
            return i + 1, states, logits, out.write(i, chosen)

        out = tf.TensorArray(tf.int32, size=length, element_shape=[None])
        _, _, _, out = tf.while_loop(lambda i, *_: i < length, write, (0, states, logits, out))
        chosen = tf.cond(length > 0, lambda: tf.transpose(tf.reshape(out.stack(), [length, batch])),
                         lambda: tf.zeros([batch, 0], tf.int32))  # stacking an empty TensorArray fails
        generated = tf.strings.unicode_encode(tf.gather(code_of_id, chosen), "UTF-8")
        return {"text": prompt + generated, "generated": generated}

    return fn


class TextGenerator(Serving):
    """``prompt`` (DT_STRING [N]) -> ``text`` (prompt + continuation) and ``generated`` (continuation), [N] strings.

    ``serving_default`` uses ``length``, ``temperature`` and ``seed`` fixed here; the
    ``generate`` signature takes them as inputs (int32, float32, int64 scalars).
    """

    input_name = "prompt"

    def __init__(self, length: int = 200, temperature: float = 0.8, seed: int = 0):
        self.length, self.temperature, self.seed = length, temperature, seed

    def input_signature(self) -> list:
        import tensorflow as tf

        return [tf.TensorSpec((None,), tf.string, name="prompt")]

    def outputs(self, model, preprocess, raw) -> dict:
        return generation_function(model)(raw, self.length, self.temperature, self.seed)

    def extra_endpoints(self, model, preprocess) -> dict:
        import tensorflow as tf

        fn = generation_function(model)

        def generate(prompt, length, temperature, seed):
            total = tf.cast(tf.size(prompt), tf.int64) * tf.cast(length, tf.int64)
            most = tf.constant(MAX_GENERATED_CHARACTERS, tf.int64)
            checks = [tf.debugging.assert_less_equal(length, MAX_GENERATE_LENGTH,
                                                     message=f"length must be <= {MAX_GENERATE_LENGTH} characters"),
                      tf.debugging.assert_less_equal(total, most, message=(
                          f"prompts x length must be <= {MAX_GENERATED_CHARACTERS} characters"))]
            with tf.control_dependencies(checks):
                length = tf.identity(length)
            return fn(prompt, length, temperature, seed)

        signature = [tf.TensorSpec((None,), tf.string, name="prompt"), tf.TensorSpec((), tf.int32, name="length"),
                     tf.TensorSpec((), tf.float32, name="temperature"), tf.TensorSpec((), tf.int64, name="seed")]
        return {"generate": tf.function(generate, input_signature=signature)}

    def describe(self) -> str:
        return (f"prompt: string [N] -> text, generated: string [N] ({self.length} characters, temperature "
                f"{self.temperature}, seed {self.seed}); signature 'generate' adds length int32 "
                f"(at most {MAX_GENERATE_LENGTH}), temperature float32, seed int64")


def generate(model_or_run_dir, prompt: str | bytes | Sequence[str | bytes] = "", length: int = GENERATION["length"],
             temperature: float = GENERATION["temperature"], seed: int = GENERATION["seed"]) -> str | list[str]:
    """Continue ``prompt`` by ``length`` characters; returns prompt + continuation (a list for a list of prompts).

    ``model_or_run_dir``: a Keras char-LM model, a run directory, an export
    (``saved_models/char_lm/1``) or an export root (``saved_models/char_lm``: newest version).
    """
    import tensorflow as tf

    from kerasapps.savedmodel.predict import generate as generate_from
    from kerasapps.savedmodel.predict import generation_inputs

    if not isinstance(model_or_run_dir, keras.Model):
        return generate_from(model_or_run_dir, prompt, length=length, temperature=temperature, seed=seed)
    single, args = generation_inputs(prompt, length, temperature, seed)
    result = tf.function(generation_function(model_or_run_dir))(*args)
    texts = [t.decode("utf-8") for t in result["text"].numpy()]
    return texts[0] if single else texts


def bits_per_character(model, hp, data, split, meta, metrics) -> dict:
    """``evaluate``'s addition: the loss in bits per character (nats / ln 2), as char-rnn results are quoted."""
    return {"bits_per_character": metrics["loss"] / math.log(2)} if "loss" in metrics else {}


CHAR_LM = Recipe(
    name="char_lm",
    summary="Character-level LSTM language model (char-rnn) on Tiny Shakespeare; exports a text generator",
    build_model=build_char_lm,
    load_data=load_char_lm,
    hparams={
        "seq_len": HParam(100, int, "characters per training sequence (truncated BPTT length)", minimum=2),
        "stride": HParam(None, int, "characters between sequence starts (null: seq_len)", optional=True, minimum=1),
        "embedding_dim": HParam(64, int, "character embedding size", minimum=1),
        "cell": HParam("lstm", str, "recurrent cell", choices=CELLS),
        "units": HParam(256, int, "units per recurrent layer", minimum=1),
        "layers": HParam(2, int, "stacked recurrent layers", minimum=1),
        "dropout": HParam(0.1, float, "input dropout of each recurrent layer", minimum=0.0, maximum=0.9),
        "recurrent_dropout": HParam(0.0, float, "recurrent-state dropout", minimum=0.0, maximum=0.9),
    },
    # Batch 128 trains 1.5x more characters/s than 64 on the 2-core CPU (13.3k vs 8.9k); 10 epochs at
    # batch 64, lr 2e-3 and no dropout stopped at 1.645 nats/char (train 1.48): more passes, a little dropout.
    defaults={"optimizer": "adam", "learning_rate": 3e-3, "lr_schedule": "cosine", "epochs": 20,
              "batch_size": 128, "clipnorm": 5.0},
    loss={"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": True}},  # Keras config: no import
    metrics=("accuracy",),
    serving=TextGenerator(),
    task="text_corpus",
    evaluation=bits_per_character,
    data="Tiny Shakespeare (tinyshakespeare/input.txt in the data directory, else TFDS 'tiny_shakespeare'); "
         "first 90% train, last 10% validation (also reported as test)",
    reference="Karpathy char-rnn (2015); Graves 2013; Hochreiter & Schmidhuber 1997; val_loss in nats/char",
)

RECIPES = [CHAR_LM]
