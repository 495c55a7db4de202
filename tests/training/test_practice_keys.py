"""Today's practice keys each change what they say: label smoothing the loss by its formula, class weights the
weight of each class, MixUp and CutMix the labels in the proportion of the pixels they mix, EMA the weights to
the average computed by hand, gradient accumulation the update to a larger batch's, weight decay the kernels and
nothing else, flip TTA the answer to the mean of the image and its mirror, epochs=auto the epochs to the data."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasapps
from kerasapps.core.errors import ConfigError
from kerasapps.data.image_practice import augmentation, mix_probabilities
from kerasapps.training.losses import SmoothedSparseCrossentropy, choose_loss, example_weights, sampling_probabilities
from kerasapps.training.optimizers import build_optimizer, decay_kernels_only


def _recipe_hp(name, **changes):
    recipe = kerasapps.get_recipe(name)
    return recipe, recipe.resolve(overrides=changes)


# ----------------------------------------------------------------------------- label smoothing

def test_label_smoothing_follows_its_formula_and_padding_counts_for_nothing():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], "float32")
    ids = np.array([0, 2])
    smoothing, classes = 0.1, 3
    target = (1 - smoothing) * np.eye(classes)[ids] + smoothing / classes
    expected = -(target * np.log(probabilities)).sum(axis=1).mean()
    loss = SmoothedSparseCrossentropy(smoothing)(ids, probabilities)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    # a sequence with padding (class 0 ignored): the mean over the two real positions only
    logits = np.log(np.array([[[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]]], "float32"))
    tokens = np.array([[1, 2, 0]])
    per_position = [-(((1 - smoothing) * np.eye(3)[k] + smoothing / 3) * logits[0, i]).sum() for i, k in
                    enumerate(tokens[0])]
    masked = SmoothedSparseCrossentropy(smoothing, from_logits=True, ignore_class=0)(tokens, logits)
    np.testing.assert_allclose(float(masked), np.mean(per_position[:2]), rtol=1e-5)


def test_label_smoothing_reaches_every_classifier_and_is_refused_for_a_regression():
    recipe, hp = _recipe_hp("resnet20_cifar10", label_smoothing=0.1)
    choice = choose_loss(recipe, hp, recipe.build(hp, {}))
    assert isinstance(choice.loss, SmoothedSparseCrossentropy) and choice.loss.label_smoothing == 0.1
    assert choice.targets is None  # class ids stay ids
    recipe, hp = _recipe_hp("imdb_sentiment", label_smoothing=0.1, max_tokens=50, sequence_length=8, units=2)
    loss = choose_loss(recipe, hp, recipe.build(hp, {})).loss
    assert isinstance(loss, keras.losses.BinaryCrossentropy) and loss.get_config()["label_smoothing"] == 0.1
    recipe, hp = _recipe_hp("char_lm", label_smoothing=0.1)  # logits over a vocabulary, [N, T] targets
    loss = choose_loss(recipe, hp, recipe.build(hp, {})).loss
    assert isinstance(loss, SmoothedSparseCrossentropy) and loss.from_logits
    recipe, hp = _recipe_hp("mlp_tabular", label_smoothing=0.1, objective="regression", loss="mean_absolute_error")
    with pytest.raises(ConfigError, match="label_smoothing=0.1 is for classifiers"):
        choose_loss(recipe, hp, recipe.build(hp, {}))


def test_label_smoothing_auto_smooths_the_cross_entropy_and_leaves_other_losses_their_plain_targets():
    """mlp_mnist smooths by default (auto) and its users still compare losses: hinge and squared error take the
    plain targets, a regression takes none, and a number the user writes is still refused where it cannot apply."""
    recipe, hp = _recipe_hp("mlp_mnist")
    assert hp.label_smoothing == "auto"
    model = recipe.build(hp, {})
    loss = choose_loss(recipe, hp, model).loss
    assert isinstance(loss, SmoothedSparseCrossentropy) and loss.label_smoothing == pytest.approx(0.1)
    loss = choose_loss(recipe, hp.replace(loss="categorical_crossentropy"), model).loss
    assert isinstance(loss, keras.losses.CategoricalCrossentropy)
    assert loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    hinge = choose_loss(recipe, hp.replace(loss="hinge"), model)  # accepted: auto is 0 for a hinge
    y = np.array([3, 7])
    np.testing.assert_array_equal(hinge.targets(y), np.eye(10, dtype="float32")[y])  # unsmoothed one-hot
    assert choose_loss(recipe, hp.replace(loss="mean_squared_error"), model).name == "mean_squared_error"
    with pytest.raises(ConfigError, match="not a cross-entropy"):
        choose_loss(recipe, hp.replace(loss="hinge", label_smoothing=0.1), model)
    recipe, hp = _recipe_hp("mlp_tabular", label_smoothing="auto", objective="regression", loss="mean_absolute_error")
    assert choose_loss(recipe, hp, recipe.build(hp, {})).name == "mean_absolute_error"
    recipe, hp = _recipe_hp("mlp_tabular", label_smoothing="auto", objective="regression")  # its own loss
    assert choose_loss(recipe, hp, recipe.build(hp, {})).name == str(recipe.loss_for(hp))


# ----------------------------------------------------------------------------- class weights

def test_balanced_class_weights_give_every_class_the_same_total_weight():
    recipe, hp = _recipe_hp("mlp_tabular", class_weight="balanced")
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    weights = example_weights(hp, labels)
    np.testing.assert_allclose(weights[[0, 6, 8]], [9 / (3 * 6), 9 / (3 * 2), 9 / 3])
    totals = [weights[labels == k].sum() for k in range(3)]
    np.testing.assert_allclose(totals, [3.0, 3.0, 3.0])
    assert example_weights(recipe.resolve(), labels) is None
    with pytest.raises(ConfigError, match="needs one class id per example"):
        example_weights(hp, np.zeros((4, 7), np.int64))  # a sequence model's targets


def test_class_weights_change_the_loss_of_an_imbalanced_batch():
    """Through the training pipeline: the loss fit reports is the weighted mean of the per-example losses."""
    from kerasapps.data.pipelines import training_dataset

    x = np.arange(8, dtype="float32").reshape(8, 1) / 8
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    recipe, hp = _recipe_hp("mlp_tabular", class_weight="balanced")
    weights = example_weights(hp, y)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(  # answers the majority class, 0
        2, activation="softmax", kernel_initializer="zeros", bias_initializer=keras.initializers.Constant([2.0, 0.0]))])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    per_example = keras.losses.sparse_categorical_crossentropy(y, model.predict(x, verbose=0)).numpy()
    ds, _ = training_dataset((x, y, weights), batch_size=8, seed=1, stage_index=0, first_epoch=0, epochs=1,
                             steps_per_epoch=None)
    logged = model.fit(ds, verbose=0).history["loss"][0]
    np.testing.assert_allclose(logged, (weights * per_example).mean(), rtol=1e-5)
    assert logged > per_example.mean() + 0.4  # the minority's large losses weigh as much as the majority's


def test_the_balanced_sampler_draws_every_class_equally_often_and_repeats_with_its_seed():
    """class_weight=sampler: weights stay 1; each epoch draws its examples with replacement, classes alike in
    expectation; the same (seed, stage, epoch) draws the same order (exact resume), another epoch another."""
    from kerasapps.data.pipelines import training_dataset

    y = np.array([0] * 90 + [1] * 9 + [2])
    recipe, hp = _recipe_hp("mlp_tabular", class_weight="sampler")
    assert example_weights(hp, y) is None
    x = np.arange(len(y), dtype="float32").reshape(-1, 1)
    counts = np.zeros(3)

    def drawn(epoch_from, epochs):
        ds, steps = training_dataset((x, y), batch_size=20, seed=3, stage_index=0, first_epoch=epoch_from,
                                     epochs=epochs, steps_per_epoch=None,
                                     sampling=sampling_probabilities(hp, y))
        return [b[1].numpy() for b in ds], steps

    batches, steps = drawn(0, 30)
    assert steps == 5 and len(batches) == 150  # as many steps as without the sampler
    for labels in batches:
        counts += np.bincount(labels, minlength=3)
    np.testing.assert_allclose(counts / counts.sum(), [1 / 3] * 3, atol=0.03)  # 3,000 draws; unsampled: 0.9/0.09/0.01
    again, _ = drawn(12, 14)  # epochs 12-13 alone, as a resumed run builds them
    for a, b in zip(again, batches[60:70]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(batches[0], batches[5])  # each epoch draws anew
    assert sampling_probabilities(recipe.resolve(), y) is None


def test_lbfgs_refuses_what_only_minibatch_updates_do(tmp_path, recipe_data_dir):
    for key, value in (("class_weight", "sampler"), ("ema", "0.99"), ("gradient_accumulation", "2")):
        with pytest.raises(ConfigError, match=f"optimizer=lbfgs minimises the plain full-batch loss; it cannot "
                                              f"take {key}="):
            kerasapps.train("mlp_mnist", run_dir=tmp_path / key, data_dir=recipe_data_dir,
                            set={"optimizer": "lbfgs", key: value}, smoke=True, verbose=0)
        assert not (tmp_path / key).exists()  # refused before the run wrote anything


# ----------------------------------------------------------------------------- MixUp and CutMix

def _mixing(**keys):
    recipe, hp = _recipe_hp("resnet20_cifar10", **keys)
    return augmentation(hp, recipe).mix


def _key(i):
    import tensorflow as tf

    return tf.constant([7, i], tf.int64)


def test_mixup_mixes_labels_in_the_proportion_of_the_pixels():
    mix = _mixing(mixup=0.4, augment_shift=0.0, augment_flip="none")
    images = np.repeat(np.arange(1, 9, dtype="float32"), 4 * 4 * 3).reshape(8, 4, 4, 3)  # image i is all i + 1
    labels = np.eye(8, dtype="float32")
    mixed, mixed_labels = mix(images, labels, _key(0))
    mixed, mixed_labels = np.asarray(mixed), np.asarray(mixed_labels)
    for image, label in zip(mixed, mixed_labels):
        assert np.allclose(image, image.flat[0])  # one blend for the whole image
        value = float(image.flat[0])
        assert np.count_nonzero(label > 1e-6) in (1, 2)
        np.testing.assert_allclose(label.sum(), 1.0, rtol=1e-5)
        np.testing.assert_allclose(label @ np.arange(1, 9), value, rtol=1e-4)  # the label's mean is the pixels'
    assert not np.allclose(mixed, images)


def test_cutmix_mixes_labels_by_the_area_it_pastes():
    mix = _mixing(cutmix=1.0, augment_shift=0.0, augment_flip="none")
    images = np.repeat(np.arange(1, 9, dtype="float32"), 64 * 64 * 3).reshape(8, 64, 64, 3)
    labels = np.eye(8, dtype="float32")
    mixed, mixed_labels = (np.asarray(a) for a in mix(images, labels, _key(3)))
    pasted = 0
    for i, (image, label) in enumerate(zip(mixed, mixed_labels)):
        own = np.mean(image == i + 1)
        if own < 1:  # Keras weighs the labels by the box's exact area; the pasted pixels are its rounding
            np.testing.assert_allclose(label[i], own, atol=0.04)
            np.testing.assert_allclose(label @ np.arange(1, 9), image.mean(), rtol=0.04)
            pasted += 1
    assert pasted > 0


def test_mixing_happens_with_the_stated_probability_and_the_same_key_repeats_it():
    assert mix_probabilities(kerasapps.get_recipe("resnet20_cifar10").resolve(overrides={"mixup": 0.2,
                                                                                         "cutmix": 1.0})) == (0.5, 0.5)
    mix = _mixing(mixup=0.4, mixup_prob=0.3)
    images = np.repeat(np.arange(1, 5, dtype="float32"), 4 * 4 * 3).reshape(4, 4, 4, 3)
    labels = np.eye(4, dtype="float32")
    mixed = [not np.allclose(np.asarray(mix(images, labels, _key(i))[1]), labels) for i in range(200)]
    assert 0.2 < np.mean(mixed) < 0.4  # 0.3 of the batches (a permutation may leave a few unchanged)
    first, again = (np.asarray(mix(images, labels, _key(11))[0]) for _ in range(2))
    np.testing.assert_array_equal(first, again)


def test_mixing_is_refused_where_the_recipe_takes_no_images():
    recipe, hp = _recipe_hp("mlp_tabular", mixup=0.2)
    with pytest.raises(ConfigError, match="does not take image augmentation"):
        augmentation(hp, recipe)


# ----------------------------------------------------------------------------- RandAugment and random erasing

@pytest.mark.parametrize("shape", [(6, 12, 12, 3), (6, 12, 12)])
def test_pixel_augmentation_works_on_pixel_values_and_repeats_with_its_key(shape):
    recipe, hp = _recipe_hp("resnet20_cifar10", rand_augment_ops=2, rand_augment_magnitude=0.9, random_erasing=1.0)
    pixels = augmentation(hp, recipe).pixels
    images = np.random.default_rng(0).integers(0, 256, shape).astype("uint8")
    out = [np.asarray(pixels(images, _key(k))) for k in (1, 1, 2)]
    assert out[0].shape == shape and out[0].min() >= 0 and out[0].max() <= 255
    np.testing.assert_array_equal(out[0], out[1])
    assert not np.array_equal(out[0], out[2]) and not np.array_equal(out[0], images)


# ----------------------------------------------------------------------------- optimizer: EMA, decay, accumulation

def _dense_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense"),
                             keras.layers.BatchNormalization(name="norm"), keras.layers.Dense(1, name="out")])


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def test_ema_weights_are_the_average_computed_by_hand():
    _, hp = _recipe_hp("mlp_tabular", optimizer="sgd", learning_rate=0.05, ema=0.6, lr_schedule="constant")
    model = _dense_model()
    model.compile(optimizer=build_optimizer(hp, steps_per_epoch=4, epochs=1), loss="mse")
    raw = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raw.append([v.numpy().copy() for v in self.model.trainable_variables])

    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[Record()])
    average = raw[0]  # the first update's weights start the average (Keras: no decay at step 0)
    for step in raw[1:]:
        average = [0.6 * a + 0.4 * w for a, w in zip(average, step)]
    for got, want in zip(model.trainable_variables, average):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-8)
    assert not np.allclose(average[0], raw[-1][0])  # the averaged kernel is not the last one


def test_weight_decay_leaves_biases_and_normalisation_alone_also_after_a_checkpoint(tmp_path):
    _, hp = _recipe_hp("mlp_tabular", optimizer="adamw", weight_decay=0.5, learning_rate=0.1, lr_schedule="constant")

    def zero_loss(y_true, y_pred):  # no gradient: only the decay moves the weights
        return 0.0 * keras.ops.sum(y_pred)

    model = _dense_model()
    model.compile(optimizer=build_optimizer(hp, steps_per_epoch=1, epochs=1), loss=zero_loss)
    decay_kernels_only(model)
    x, y = _data(8)
    for round_ in range(2):
        before = {v.path: v.numpy().copy() for v in model.trainable_variables}
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        for variable in model.trainable_variables:
            expected = before[variable.path] * ((1 - 0.1 * 0.5) if len(variable.shape) > 1 else 1.0)
            np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, err_msg=variable.path)
        if round_ == 0:  # a checkpoint forgets the exclusion; loading and setting it again keeps it
            model.save(tmp_path / "checkpoint.keras")
            model = keras.saving.load_model(tmp_path / "checkpoint.keras", custom_objects={"zero_loss": zero_loss})
            decay_kernels_only(model)


def test_adamw_without_weight_decay_takes_its_default():
    from kerasapps.core.schema import ADAMW_WEIGHT_DECAY

    _, hp = _recipe_hp("mlp_tabular", optimizer="adamw")
    assert build_optimizer(hp, steps_per_epoch=1, epochs=1).weight_decay == ADAMW_WEIGHT_DECAY
    _, hp = _recipe_hp("mlp_tabular", optimizer="adam")
    assert not build_optimizer(hp, steps_per_epoch=1, epochs=1).weight_decay


def test_gradient_accumulation_updates_as_the_larger_batch_would():
    x, y = _data(32)
    trained = []
    for batch, steps in ((32, 1), (16, 2), (8, 4)):
        _, hp = _recipe_hp("mlp_tabular", optimizer="sgd", learning_rate=0.1, lr_schedule="constant",
                           gradient_accumulation=steps)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_initializer="ones")])
        model.compile(optimizer=build_optimizer(hp, steps_per_epoch=steps, epochs=1), loss="mse")
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        assert int(model.optimizer.iterations) == 1  # one update, whatever the batch
        trained.append([w.numpy() for w in model.weights])
    for other in trained[1:]:
        for a, b in zip(trained[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-5)


def test_a_schedule_spans_the_stage_when_gradients_accumulate():
    """Keras evaluates the schedule at every batch it is called with: a cosine over the stage's batches ends at 0."""
    _, hp = _recipe_hp("mlp_tabular", optimizer="sgd", learning_rate=0.1, lr_schedule="cosine",
                       gradient_accumulation=4)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=build_optimizer(hp, steps_per_epoch=8, epochs=2), loss="mse")
    x, y = _data(64)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations) == 4
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)


# ----------------------------------------------------------------------------- test-time augmentation

def test_flip_tta_answers_the_mean_of_the_image_and_its_mirror():
    from kerasapps.training.tta import with_tta

    recipe, hp = _recipe_hp("resnet20_cifar10", width=4)
    model = recipe.build(hp, {})
    images = np.random.default_rng(1).normal(size=(3, 32, 32, 3)).astype("float32")
    averaged = with_tta(model, "flip").predict(images, verbose=0)
    expected = (model.predict(images, verbose=0) + model.predict(images[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(averaged, expected, rtol=1e-5, atol=1e-6)
    assert with_tta(model, "none") is model


def test_tta_is_refused_for_a_model_without_images():
    from kerasapps.training.tta import check_tta

    recipe, hp = _recipe_hp("imdb_sentiment", tta="flip")
    with pytest.raises(ConfigError, match="does not take images"):
        check_tta(recipe, hp)


# ----------------------------------------------------------------------------- epochs=auto

def test_epochs_auto_follows_the_size_of_the_data():
    from kerasapps.training.stage import epochs_for

    _, hp = _recipe_hp("mlp_tabular", epochs="auto", auto_examples=10_000, min_epochs=1, max_epochs=40)
    assert epochs_for(hp, 5_000) == (2, "epochs=auto: 10,000 examples / 5,000 per epoch = 2 epochs")
    assert epochs_for(hp, 3_000)[0] == 4  # ceil
    assert epochs_for(hp, 20_000)[0] == 1
    assert epochs_for(hp.replace(min_epochs=3), 20_000) == (
        3, "epochs=auto: 10,000 examples / 20,000 per epoch = 3 epochs, raised to min_epochs=3")
    epochs, rule = epochs_for(hp, 100)
    assert epochs == 40 and "capped at max_epochs=40" in rule
    _, fixed = _recipe_hp("mlp_tabular", epochs=7)
    assert epochs_for(fixed, 100) == (7, "")


def test_old_run_configuration_reads_missing_keys_as_their_old_behaviour(tmp_path):
    """A config.yaml written before the practice keys existed means the behaviour it had then."""
    import yaml

    recipe = kerasapps.get_recipe("image_transfer")
    current = recipe.resolve()
    old = {k: v for k, v in current.to_dict().items()
           if k not in ("untrained_backbone", "label_smoothing", "ema", "class_weight", "tta", "mixup")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"recipe": "image_transfer", "hparams": old}))
    legacy = recipe.resolve(config_file=path, legacy=True)
    assert legacy.untrained_backbone == "frozen" and current.untrained_backbone == "train"
    assert [stage.name for stage in recipe.stages if stage.runs(legacy)] == ["head", "finetune"]
    assert [stage.name for stage in recipe.stages if stage.runs(current)] == ["scratch"]
    assert (legacy.label_smoothing, legacy.ema, legacy.class_weight, legacy.tta) == (0.0, None, "none", "none")
    assert recipe.resolve(config_file=path).untrained_backbone == "train"  # --config FILE: today's defaults
