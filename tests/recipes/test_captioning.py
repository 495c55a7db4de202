"""captioning_flickr8k: tokeniser, teacher forcing, decoding, BLEU, memorisation, export round trip, real data."""

from pathlib import Path

import numpy as np
import pytest

import kerasapps
from kerasapps.core.errors import UsageError
from kerasapps.core.recipe import DataContext
from kerasapps.recipes import captioning, captioning_data
from kerasapps.recipes.captioning_decode import Decoder, caption
from kerasapps.recipes.captioning_eval import (
    best_constant_caption,
    corpus_bleu,
    nearest_neighbour_captions,
)

MEMORISE = ["a red dog runs on grass", "two men climb a rock", "a girl in a pink dress", "the blue car is fast",
            "a child jumps into water", "dogs play in the snow", "a man rides a bike", "a woman sings",
            "black and white dog sits", "people walk down the street"]


def test_tokeniser_round_trip():
    text = "A girl going into a wooden building , with her dog's toy ."
    tokens = captioning_data.tokenize(text)
    assert tokens == ["a", "girl", "going", "into", "a", "wooden", "building", "with", "her", "dog's", "toy"]
    assert captioning_data.tokenize(captioning_data.detokenize(tokens)) == tokens
    words = captioning_data.build_vocabulary([text])
    caption_in, rows_out = captioning_data.frame([text], max_length=16)
    ids = captioning_data.token_ids(rows_out, words)
    table = captioning_data.lookup_vocabulary(words)
    assert caption_in[0, 0] == captioning_data.START and rows_out[0][len(tokens)] == captioning_data.END
    assert (captioning_data.detokenize([table[i] for i in ids[0]]) == captioning_data.detokenize(tokens)
            == " ".join(tokens))
    assert table[:4] == [captioning_data.PAD, captioning_data.UNK, captioning_data.START, captioning_data.END]


def _words(model):
    """The caption words a trained model holds (its word_lookup table without pad, unknown, start, end)."""
    table = [w.decode() if isinstance(w, bytes) else str(w)
             for w in model.get_layer("word_lookup").get_vocabulary()]
    return [w for w in table
            if w not in (captioning_data.PAD, captioning_data.UNK, captioning_data.START, captioning_data.END)]


def test_teacher_forcing_shapes_and_training_only_vocabulary(tiny_data_dir):
    hp = kerasapps.get_recipe(captioning.NAME).resolve(overrides=["max_length=6", "min_word_count=1"])
    splits = captioning_data.load_captioning(hp, DataContext(tiny_data_dir))
    (images, caption_in), caption_out = splits["train"]
    assert images.shape == (60, 64, 64, 3) and images.dtype == np.uint8
    assert caption_in.shape == (60, 6) and caption_out.shape == (60, 6) and caption_out.dtype == np.int32
    assert len(splits["validation"][1]) == 20 and len(splits["test"][1]) == 20
    words = splits.meta["words"]
    assert "zebra" not in words and "red" in words  # test-only words stay out of the vocabulary
    table = captioning_data.lookup_vocabulary(words)
    # the target is the input shifted left by one: caption_out[t] == caption_in[t + 1]
    for row_in, row_out in zip(caption_in, caption_out):
        words_out = [table[i] for i in row_out if i]
        assert words_out[:-1] == [w for w in row_in[1:] if w] and words_out[-1] == captioning_data.END
    test_ids = splits["test"][1]
    assert (test_ids == 1).any()  # "zebra" is the unknown word in the test targets
    model = captioning.build_captioning(hp, splits.meta)
    import tensorflow as tf

    logits = model([captioning_data.preprocess(images[:3]), tf.constant(caption_in[:3].astype(str))])
    assert tuple(logits.shape) == (3, 6, len(table))
    assert model.layers[-1].name == "logits"


@pytest.mark.parametrize("cell,inject", [("rnn", "every_step"), ("gru", "init_state"), ("lstm", "every_step")])
def test_variants_build_and_decode(cell, inject):
    model = captioning.captioner(["a", "dog"], image_size=16, max_length=4, filters=(4,), units=8, embedding_dim=4,
                        cell=cell, inject=inject)
    images = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    assert all(isinstance(c, str) for c in caption(model, images, method="beam", beam_width=2))
    assert ("image_repeat" in [layer.name for layer in model.layers]) == (inject == "every_step")



def test_canon_encoder_pretrained_and_frozen(tiny_data_dir, tmp_path):
    """encoder=resnet20 starts from a saved ResNet-20 (layers by name) and, frozen, keeps those weights
    through training, while the decoder learns; augmentation flips the image input only."""
    from kerasapps.recipes.resnet import resnet20
    from kerasapps.training import checkpoints

    source = resnet20(input_shape=(32, 32, 3), classes=10)
    source.save(tmp_path / "resnet20.keras")
    kernel = source.get_layer("conv4_block3_2_conv").get_weights()[0]
    run = kerasapps.train(captioning.NAME, run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True, verbose=0,
                          set=["max_length=5", "units=16", "embedding_dim=8", "min_word_count=1",
                                     "image_size=32", "encoder=resnet20", "freeze_encoder=true",
                                     f"encoder_weights={tmp_path / 'resnet20.keras'}", "augment_flip=horizontal"])
    model = checkpoints.load_model(run.run_dir / "model.keras", compile=False)
    encoder = model.get_layer("encoder")
    assert not encoder.trainable
    np.testing.assert_array_equal(encoder.get_layer("conv4_block3_2_conv").get_weights()[0], kernel)
    fresh = captioning.captioner(_words(model), image_size=32, max_length=5, units=16, embedding_dim=8,
                        encoder="resnet20", encoder_weights=tmp_path / "resnet20.keras")
    assert not np.allclose(model.get_layer("logits").get_weights()[0], fresh.get_layer("logits").get_weights()[0])
    assert isinstance(caption(model, np.zeros((1, 32, 32, 3), "float32"))[0], str)
    # a captioning run
    again = captioning.captioner(["a"], image_size=32, encoder="resnet20", encoder_weights=run.run_dir)
    np.testing.assert_array_equal(again.get_layer("encoder").get_layer("conv4_block3_2_conv").get_weights()[0], kernel)
    captioning.captioner(["a"], image_size=16, filters=(4,), units=8).save(tmp_path / "conv.keras")
    with pytest.raises(UsageError, match="no layer of .* matches the encoder encoder by name"):
        captioning.captioner(["a"], image_size=32, encoder="resnet20", encoder_weights=tmp_path / "conv.keras")
    with pytest.raises(UsageError, match="neither a .keras file nor a finished run directory"):
        captioning.captioner(["a"], encoder="resnet20", encoder_weights=tmp_path / "missing")
    for bad, message in ((["encoder=resnet20", f"encoder_weights={tmp_path / 'missing'}"], "neither a .keras"),
                         (["freeze_encoder=true"], "need encoder=resnet20")):
        with pytest.raises(UsageError, match=message):
            kerasapps.train(captioning.NAME, run_dir=tmp_path / "refused", data_dir=tiny_data_dir, smoke=True,
                            verbose=0, set=bad)
        assert not (tmp_path / "refused").exists()  # refused before anything is written

def test_bleu_of_the_references_against_themselves_is_one():
    references = [["a dog runs on the grass .", "a brown dog is running", "the dog runs outside"],
                  ["two men climb a rock", "men climbing a big rock face", "climbers on a rock"]]
    scores = corpus_bleu([refs[0] for refs in references], references)
    assert scores == pytest.approx({"bleu1": 1.0, "bleu2": 1.0, "bleu3": 1.0, "bleu4": 1.0})
    assert corpus_bleu(["cat"] * 2, references)["bleu1"] < 0.1


def test_baselines():
    refs = [["a dog runs on the grass", "a dog is running on grass"], ["a dog runs in the snow", "a dog in snow"],
            ["a man rides a bike", "a man is riding a bike"]]
    constant, score = best_constant_caption(refs)
    assert constant.startswith("a dog") and 0 < score <= 1
    # the vectorised score equals nltk's corpus BLEU-4 for the chosen caption
    assert score == pytest.approx(corpus_bleu([constant] * 3, refs)["bleu4"], rel=1e-9)
    features = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    assert nearest_neighbour_captions(features, refs, np.array([[0.1, 2.0], [3.0, 0.1]])) == \
        ["a man rides a bike", "a dog runs on the grass"]


@pytest.fixture(scope="module")
def memorised():
    """A captioner trained on 10 solid-colour images with one caption each."""
    import keras

    keras.utils.set_random_seed(0)
    words = captioning_data.build_vocabulary(MEMORISE)
    model = captioning.captioner(words, image_size=16, max_length=8, filters=(8, 16), units=64, embedding_dim=32,
                        cell="lstm", inject="init_state", dropout=0.0)
    hues = np.linspace(0, 1, 10, endpoint=False)
    images = np.stack([np.full((16, 16, 3), [h, (3 * h) % 1, 1 - h], np.float32) for h in hues])
    caption_in, rows_out = captioning_data.frame(MEMORISE, 8)
    y = captioning_data.token_ids(rows_out, words)
    import tensorflow as tf

    from kerasapps.training.losses import recipe_loss

    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=recipe_loss(kerasapps.get_recipe(captioning.NAME)))
    repeat = 15  # 150 full-batch steps in 10 epochs (fewer per-epoch overheads)
    model.fit([np.tile(images, (repeat, 1, 1, 1)), tf.constant(np.tile(caption_in.astype(str), (repeat, 1)))],
              np.tile(y, (repeat, 1)), batch_size=10, epochs=10, shuffle=False, verbose=0)
    return model, images


def test_a_model_trained_on_ten_captions_reproduces_them(memorised):
    model, images = memorised
    assert caption(model, images, method="greedy") == MEMORISE
    assert caption(model, images, method="beam", beam_width=3) == MEMORISE
    assert caption(model, images, method="sample", temperature=0.01, seed=3) == MEMORISE
    decoder = Decoder(model)  # a prepared decoder gives the same captions and traces each setting once
    assert caption(decoder, images[:4], method="beam", beam_width=3) == MEMORISE[:4]
    assert caption(decoder, images[4:], method="beam", beam_width=3) == MEMORISE[4:]
    assert len(decoder.traced) == 1


def test_beam_width_one_equals_greedy(memorised):
    model, _ = memorised
    noise = np.random.default_rng(1).random((6, 16, 16, 3)).astype("float32")
    assert caption(model, noise, method="beam", beam_width=1) == caption(model, noise, method="greedy")
    decoder = Decoder(model, max_length=5)
    import tensorflow as tf

    greedy_ids = decoder.sample_ids(tf.constant(noise)).numpy()
    beam_ids = decoder.beam_ids(tf.constant(noise), 1).numpy()
    for g, b in zip(greedy_ids, beam_ids):  # identical up to and including <end>
        stop = list(g).index(decoder.end) + 1 if decoder.end in g else len(g)
        assert list(g[:stop]) == list(b[:stop])


def test_sampling_is_seeded(memorised):
    model, images = memorised
    first = caption(model, images, method="sample", temperature=5.0, seed=7)
    assert first == caption(model, images, method="sample", temperature=5.0, seed=7)
    assert first != caption(model, images, method="sample", temperature=5.0, seed=8)


def test_export_round_trip_captions_raw_images_of_any_size(tiny_data_dir, tmp_path):
    import tensorflow as tf
    from PIL import Image

    from kerasapps.training import checkpoints

    run = kerasapps.train(captioning.NAME, run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True, verbose=0,
                          set=["max_length=5", "units=16", "embedding_dim=8", "base_filters=4",
                                     "conv_blocks=2", "min_word_count=1"])
    path = kerasapps.export(run.run_dir, out=tmp_path / "models")
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["images"]
    raw = np.random.default_rng(0).integers(0, 255, (3, 48, 80, 3)).astype(np.uint8)
    out = serve(images=tf.constant(raw))
    assert list(out) == ["captions"] and out["captions"].dtype == tf.string and out["captions"].shape == (3,)
    model = checkpoints.load_model(run.run_dir / "model.keras", compile=False)
    expected = caption(model, raw, method="beam", beam_width=5, length_penalty=0.5, raw=True)
    assert [c.decode() for c in out["captions"].numpy()] == expected
    sample = loaded.signatures["sample"]
    once = sample(images=tf.constant(raw), temperature=tf.constant(1.0), seed=tf.constant(5, tf.int64))
    again = sample(images=tf.constant(raw), temperature=tf.constant(1.0), seed=tf.constant(5, tf.int64))
    assert once["captions"].numpy().tolist() == again["captions"].numpy().tolist()
    Image.fromarray(raw[0]).save(tmp_path / "photo.png")
    rows = kerasapps.predict(str(path), [str(tmp_path / "photo.png")])
    assert rows[0]["captions"] == expected[0]
    files = []  # the same pictures as PNG files' bytes: decoded inside, captioned as their pixels
    for picture in raw:
        Image.fromarray(picture).save(tmp_path / "photo.png")
        files.append((tmp_path / "photo.png").read_bytes())
    from_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.constant(files))["captions"]
    assert [c.decode() for c in from_bytes.numpy()] == expected


@pytest.mark.realdata
def test_real_subset_trains_and_captions(real_data_dir, tmp_path):
    if not (Path(real_data_dir) / "flickr8k_subset" / "captions.json").is_file():
        pytest.skip("flickr8k_subset is not in the real data directory")
    run = kerasapps.train(captioning.NAME, run_dir=tmp_path / "run", data_dir=real_data_dir, verbose=0,
                          epochs=1, steps_per_epoch=25, set=["max_length=12"])
    from kerasapps.training import checkpoints

    model = checkpoints.load_model(run.run_dir / "model.keras", compile=False)
    vocabulary_size = len(captioning_data.lookup_vocabulary(_words(model)))
    assert 500 < vocabulary_size < 2000
    assert run.metrics["test"]["loss"] < 0.85 * np.log(vocabulary_size)  # better than a uniform guess
    path = kerasapps.export(run.run_dir, out=tmp_path / "models")
    images, entries = captioning_data.read_subset(DataContext(Path(real_data_dir)))
    test_images, _ = captioning_data.split_images(images, entries, "test")
    import tensorflow as tf

    captions = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(test_images[:4]))
    words = set(_words(model))
    for text in captions["captions"].numpy():
        assert text and set(text.decode().split()) <= words


@pytest.mark.realdata
@pytest.mark.slow
def test_the_captioner_in_onnx_and_litert_captions_as_the_saved_model(real_data_dir, tmp_path):
    """ONNX and LiteRT hold no string ops: their export is the beam search's token ids, and predict makes the
    captions with the vocabulary the export's info file holds. On the 125 real test images: ONNX's captions are
    the SavedModel's; full-integer int8 breaks the beam search's scores (it answered as the float model on none
    of the checked training images), so the export says so and writes dynamic-range int8, which keeps nearly all."""
    if not (Path(real_data_dir) / "flickr8k_subset" / "captions.json").is_file():
        pytest.skip("flickr8k_subset is not in the real data directory")
    run = kerasapps.train(captioning.NAME, run_dir=tmp_path / "run", data_dir=real_data_dir, verbose=0, epochs=8,
                          set=["max_length=12"])
    images, entries = captioning_data.read_subset(DataContext(Path(real_data_dir)))
    test_images, _ = captioning_data.split_images(images, entries, "test")
    np.save(tmp_path / "test.npy", test_images)
    captions = {}
    for fmt, quantize in (("saved_model", "none"), ("onnx", "none"), ("litert", "int8")):
        export = kerasapps.export(run.run_dir, out=tmp_path / fmt, format=fmt, quantize=quantize)
        rows = kerasapps.predict(export, [tmp_path / "test.npy"])
        assert all(set(row) == {"input", "captions"} for row in rows)  # as the SavedModel answers
        captions[fmt] = [row["captions"] for row in rows]
    assert len(set(captions["saved_model"])) >= 2  # captions that follow the image (measured: 3 after 8 epochs,
    # "a black dog is running through the water", "a man in a red shirt is standing on the grass", ...)
    assert captions["onnx"] == captions["saved_model"]
    info = (export / "assets.extra" / "kerasapps.json").read_text()
    assert '"int8": "dynamic range' in info
    assert np.mean([a == b for a, b in zip(captions["litert"], captions["saved_model"])]) >= 0.9  # measured: 0.984
