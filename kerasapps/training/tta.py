"""Test-time augmentation (``tta``) of image classifiers: what evaluation scores and the export serves.

``tta=flip`` scores each image by the mean of the model's probabilities for it and for its left-right mirror,
the cheapest of the test-time augmentations in use since AlexNet (Krizhevsky et al. 2012 averaged ten crops and
their mirrors). It is one functional model around the trained one, built where it is needed (the stage's test
metrics, ``kerasapps evaluate``, the export) and never saved, so checkpoints and ``model.keras`` hold the trained
model alone and a run written before ``tta`` existed evaluates and exports as it did.
"""

from __future__ import annotations

from kerasapps.core.errors import ConfigError

WIDTH_AXIS = 2  # images are [N, H, W] or [N, H, W, C] (channels last)


def check_tta(recipe, hp, model=None) -> None:
    """Refuse ``tta`` where it cannot apply (before a run writes anything): image classifiers only."""
    if hp.get("tta", "none") == "none":
        return
    if not recipe.augmentable:
        raise ConfigError(f"tta={hp.tta} mirrors images; recipe '{recipe.name}' does not take images")
    if model is not None and (len(model.inputs) != 1 or len(model.inputs[0].shape) not in (3, 4)):
        raise ConfigError(f"tta={hp.tta} takes a model with one image input; {model.name} takes "
                          f"{len(model.inputs)} input(s) of shape {[tuple(t.shape) for t in model.inputs]}")


def with_tta(model, tta: str = "none"):
    """``model`` (its first output) or, for ``tta="flip"``, a model whose output is the mean of its probabilities
    for the input and the input mirrored left to right."""
    import keras

    if tta == "none":
        return model if len(model.outputs) == 1 else keras.Model(model.inputs, model.outputs[0], name=model.name)
    if tta != "flip":
        raise ConfigError(f"tta must be none or flip; got {tta!r}")
    source = model.inputs[0]
    images = keras.Input(batch_shape=source.shape, dtype=source.dtype, name=source.name)

    def answer(x):
        outputs = model(x, training=False)
        return outputs[0] if isinstance(outputs, (list, tuple)) else outputs

    mirrored = keras.ops.flip(images, axis=WIDTH_AXIS)
    averaged = keras.layers.Average(name="tta_flip")([answer(images), answer(mirrored)])
    return keras.Model(images, averaged, name=f"{model.name}_tta_flip")
