"""The compute dtype a stage trains in (hyper-parameter ``precision``).

``mixed_bfloat16`` is Keras's mixed policy: layers compute in bfloat16 and keep float32
weights, so the optimizer updates float32 variables and no loss scaling is needed. On a CPU
with AMX-BF16 (Intel Sapphire Rapids and later) oneDNN runs the convolutions of the
MNIST CNN about 1.8x faster than in float32; on a CPU without it bfloat16 is emulated and
slower, so ``auto`` picks it only where the CPU flags say ``amx_bf16`` and TensorFlow sees
no GPU (a GPU's choice is left to the user: ``--set precision=mixed_bfloat16``).

The policy is a training setting, not part of the model: every model a stage hands on
(its test evaluation, the next stage, ``model.keras``, exports) is converted back to
float32 with the same weights. Mid-stage checkpoints keep the training policy, so a
resumed stage continues in it.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from kerasapps.training.checkpoints import seed_generators

FLOAT32 = "float32"
MIXED = "mixed_bfloat16"


def cpu_has_amx_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU advertises AMX-BF16 (``amx_bf16`` in /proc/cpuinfo's flags; False elsewhere)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    return any(line.startswith("flags") and "amx_bf16" in line.split() for line in cpuinfo.splitlines())


@functools.cache
def _auto() -> str:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU") or not cpu_has_amx_bf16():
        return FLOAT32
    return MIXED


def resolve(precision: str) -> str:
    """``float32`` or ``mixed_bfloat16`` for the hyper-parameter's value (``auto`` decided on this machine)."""
    return _auto() if precision == "auto" else precision


def policy_of(model) -> str:
    """The model's policy name: that of its first layer with weights (float32 for a model without any)."""
    for layer in model.layers:
        if layer.weights:
            return layer.dtype_policy.name
    return FLOAT32


@contextlib.contextmanager
def building(policy: str):
    """Layers created inside get ``policy`` (Keras's global policy, restored afterwards)."""
    import keras

    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def in_policy(model, policy: str):
    """``model`` itself when it already computes in ``policy``, else a functional copy whose layers do,
    holding the same weights, trainable flags and random-generator states."""
    import keras

    if policy_of(model) == policy:
        return model

    def clone(layer):
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    with building(policy):
        copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    for original, layer in zip(model.layers, copy.layers):
        layer.trainable = original.trainable
    states = {key: generator.state for key, generator in seed_generators(model)}
    for key, generator in seed_generators(copy):  # the same dropout masks from here on as without the copy
        if key in states:
            generator.state.assign(states[key])
    return copy
