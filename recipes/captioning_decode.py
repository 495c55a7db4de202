"""Decoding captions from a trained captioner: greedy, beam search and temperature sampling.

:class:`Decoder` reads the parts of a :func:`kerasapps.recipes.captioning.captioner` model by
layer name (encoder up to ``image_vector``, ``word_lookup``, ``word_embedding``, the
``decoder`` cell, ``logits``) and steps the recurrent cell one word at a time, feeding
back the chosen word, for at most ``max_length`` steps (the model's caption length unless
given). Padding, ``[UNK]`` and ``<start>`` are never emitted; a caption ends at ``<end>``.
Every method is graph-safe (the export calls them while tracing) and returns captions as
a string tensor [N].

- ``greedy``: the most likely word at each step.
- ``sample``: words drawn from softmax(logits / temperature) with ``stateless_categorical``
  seeded by (seed, step), so the same seed gives the same captions; temperature 0 is greedy.
- ``beam``: beam search of width K keeping the K best partial captions by total log
  probability; finished captions stay in the beam unchanged; the final choice maximises
  ``log p / length ** length_penalty`` (0: raw log probability). Width 1 equals greedy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kerasapps.core.errors import UsageError
from kerasapps.recipes.captioning_data import END, START, prepare_images

_NEG = -1e9


class Decoder:
    def __init__(self, model, max_length: int | None = None):
        import keras
        import tensorflow as tf

        names = {layer.name for layer in model.layers}
        missing = {"image", "image_vector", "word_lookup", "word_embedding", "decoder", "logits"} - names
        if missing:
            raise UsageError(f"model {model.name} is not a captioner (no layer {', '.join(sorted(missing))})")
        self.traced = {}  # caption()'s tf.functions, one per decoding setting
        self.encoder = keras.Model(model.get_layer("image").output, model.get_layer("image_vector").output)
        self.image_size = int(model.get_layer("image").output.shape[1])
        self.embedding = model.get_layer("word_embedding")
        self.cell = model.get_layer("decoder").cell
        self.head = model.get_layer("logits")
        self.every_step = "image_repeat" in names
        self.init = [model.get_layer(n) for n in ("init_h", "init_c") if n in names]
        self.max_length = int(max_length or model.get_layer("caption").output.shape[1])
        with tf.init_scope():  # read the table eagerly even while an export is being traced
            self.words = [w.decode("utf-8") if isinstance(w, bytes) else str(w)
                          for w in model.get_layer("word_lookup").get_vocabulary()]
        self.start, self.end = self.words.index(START), self.words.index(END)
        self.size = len(self.words)
        ban = np.zeros(self.size, np.float32)
        ban[[0, 1, self.start]] = _NEG  # pad, [UNK], <start>
        self.ban = ban

    # ------------------------------------------------------------------ steps

    def _initial(self, v):
        import tensorflow as tf

        if self.init:
            return [layer(v) for layer in self.init]
        batch = tf.shape(v)[0]
        return [tf.zeros([batch, size], tf.float32) for size in tf.nest.flatten(self.cell.state_size)]

    def _step(self, ids, v, states):
        import tensorflow as tf

        x = self.embedding(ids)
        if self.every_step:
            x = tf.concat([x, tf.cast(v, x.dtype)], axis=-1)
        h, new = self.cell(x, list(states), training=False)
        return tf.cast(self.head(h), tf.float32) + self.ban, tf.nest.flatten(new)

    def _encode(self, images):
        import tensorflow as tf

        return tf.cast(self.encoder(tf.convert_to_tensor(images, tf.float32), training=False), tf.float32)

    def to_strings(self, ids):
        """ids [N, L] -> words up to the first <end>, joined by spaces: string [N]."""
        import tensorflow as tf

        ids = tf.convert_to_tensor(ids, tf.int32)
        ended = tf.cumsum(tf.cast(tf.equal(ids, self.end), tf.int32), axis=1) > 0
        keep = tf.logical_and(tf.logical_not(ended), ids > 1)
        words = tf.gather(tf.constant(self.words), ids)
        return tf.strings.reduce_join(tf.ragged.boolean_mask(words, keep), axis=1, separator=" ")

    # ------------------------------------------------------------------ decoders

    def sample_ids(self, images, temperature=0.0, seed=0):
        import tensorflow as tf

        v = self._encode(images)
        states = self._initial(v)
        temperature = tf.cast(temperature, tf.float32)
        seed = tf.cast(seed, tf.int64)
        ids = tf.fill([tf.shape(v)[0]], self.start)
        out = []
        for t in range(self.max_length):
            scores, states = self._step(ids, v, states)
            drawn = tf.random.stateless_categorical(scores / tf.maximum(temperature, 1e-6), 1,
                                                    seed=tf.stack([seed, tf.constant(t, tf.int64)]),
                                                    dtype=tf.int32)[:, 0]
            ids = tf.where(temperature > 0, drawn, tf.argmax(scores, -1, output_type=tf.int32))
            out.append(ids)
        return tf.stack(out, axis=1)

    def greedy(self, images):
        return self.to_strings(self.sample_ids(images, 0.0, 0))

    def sample(self, images, temperature, seed=0):
        return self.to_strings(self.sample_ids(images, temperature, seed))

    def beam_ids(self, images, width: int = 3, length_penalty: float = 0.0):
        import tensorflow as tf

        if int(width) < 1:
            raise UsageError(f"beam width must be >= 1; got {width}")
        k, size = int(width), self.size
        v = self._encode(images)
        batch = tf.shape(v)[0]
        v = tf.repeat(v, k, axis=0)  # [N*K, D], beams of one image adjacent
        states = self._initial(v)
        ids = tf.fill([batch * k], self.start)
        scores = tf.tile(tf.constant([[0.0] + [_NEG] * (k - 1)], tf.float32), [batch, 1])  # [N, K]
        finished = tf.zeros([batch, k], tf.bool)
        lengths = tf.zeros([batch, k], tf.float32)
        history = tf.zeros([batch, k, 0], tf.int32)
        pad_only = tf.one_hot(0, size, on_value=0.0, off_value=_NEG)

        for _ in range(self.max_length):
            logits, new_states = self._step(ids, v, states)
            logp = tf.reshape(tf.nn.log_softmax(logits), [batch, k, size])
            logp = tf.where(finished[..., None], pad_only, logp)  # a finished caption only pads, at no cost
            total = tf.reshape(scores[..., None] + logp, [batch, k * size])
            scores, index = tf.math.top_k(total, k)
            beam, token = index // size, index % size
            history = tf.concat([tf.gather(history, beam, batch_dims=1), token[..., None]], axis=2)
            was_finished = tf.gather(finished, beam, batch_dims=1)
            lengths = tf.gather(lengths, beam, batch_dims=1) + tf.cast(tf.logical_not(was_finished), tf.float32)
            finished = tf.logical_or(was_finished, tf.equal(token, self.end))
            states = [tf.reshape(tf.gather(tf.reshape(s, [batch, k, -1]), beam, batch_dims=1), [batch * k, -1])
                      for s in new_states]
            ids = tf.reshape(token, [-1])
        normalised = scores / tf.pow(tf.maximum(lengths, 1.0), float(length_penalty))
        best = tf.argmax(normalised, axis=1, output_type=tf.int32)
        return tf.gather(history, best, batch_dims=1)

    def beam(self, images, width: int = 3, length_penalty: float = 0.0):
        return self.to_strings(self.beam_ids(images, width, length_penalty))


def caption(model, images, *, method: str = "beam", beam_width: int = 5, temperature: float = 0.0, seed: int = 0,
            length_penalty: float = 0.5, max_length: int | None = None, batch_size: int = 128,
            raw: bool = False) -> list[str]:
    """Captions for ``images`` (float32 in [0, 1] at the model's size, or ``raw=True``: uint8 of any size).

    ``model``: a captioner, or a :class:`Decoder` of one, which keeps each setting's traced decoding for the
    next call (a benchmark comparing settings over several splits traces each once).

    ``method``: "greedy", "beam" (``beam_width``, ``length_penalty``) or "sample" (``temperature``, ``seed``).
    The beam defaults (width 5, length penalty 0.5) are the export's: the setting with the best BLEU-4 on
    the Flickr8k subset's dev images (``benchmarks/captioning.py``).
    """
    import tensorflow as tf

    if method not in ("greedy", "beam", "sample"):
        raise UsageError(f"method must be greedy, beam or sample; got {method!r}")
    decoder = model if isinstance(model, Decoder) else Decoder(model, max_length)
    key = (method, beam_width, length_penalty, temperature, seed, raw)
    run = decoder.traced.get(key)  # a Decoder passed again reuses its traced decoding per setting
    if run is None:
        @tf.function(reduce_retracing=True)
        def run(batch):
            if raw:
                batch = prepare_images(batch, decoder.image_size)
            if method == "beam":
                return decoder.beam(batch, beam_width, length_penalty)
            if method == "sample":
                return decoder.sample(batch, temperature, seed)
            return decoder.greedy(batch)

        decoder.traced[key] = run

    out: list[str] = []
    images = np.asarray(images)
    for start in range(0, len(images), batch_size):
        out += [c.decode("utf-8") for c in run(tf.constant(images[start:start + batch_size])).numpy()]
    return out


def encode(model, images: Sequence, batch_size: int = 256) -> np.ndarray:
    """Image vectors v [N, units] (the encoder's output) for float32 images in [0, 1]."""
    decoder = Decoder(model)
    return decoder.encoder.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0)
