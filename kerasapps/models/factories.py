"""What every CNN factory takes beyond keras.applications' arguments: ``bn_momentum``
(:func:`takes_bn_momentum`). Importing this module loads no TensorFlow: the recipes' modules import it
when the registry lists them."""

from __future__ import annotations

import functools
import inspect

from kerasapps.core.lazy import lazy_import
from kerasapps.models.arguments import check_rate

walk = lazy_import("kerasapps.models.walk")  # imports Keras: loaded when a model is built

__all__ = ["takes_bn_momentum"]

BN_MOMENTUM_DOC = """bn_momentum: the moving-average momentum of every BatchNormalization the
            factory builds ({default}). Keras' 0.99 averages over about 100 steps and lags in
            short runs on small data; Torch's (0.9 here), which the CIFAR ResNets trained with
            and the recipes use, over about 10.
"""


def takes_bn_momentum(default: float | None = None):
    """A factory decorator: the factory also takes ``bn_momentum`` (a keyword, checked before building), the
    momentum :func:`kerasapps.models.walk.set_batch_norm_momentum` gives the model it builds; None leaves the
    layers as built (Keras' 0.99)."""
    def decorate(factory):
        signature = inspect.signature(factory)

        @functools.wraps(factory)
        def build(*args, bn_momentum=default, **kwargs):
            if bn_momentum is not None:
                check_rate(bn_momentum, "bn_momentum")
            model = factory(*args, **kwargs)
            if bn_momentum is not None:
                walk.set_batch_norm_momentum(model, bn_momentum)
            return model

        parameter = inspect.Parameter("bn_momentum", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
        build.__signature__ = signature.replace(parameters=[*signature.parameters.values(), parameter])
        said = "default: Keras' 0.99" if default is None else f"default {default}"
        line = "        " + BN_MOMENTUM_DOC.format(default=said)
        doc = build.__doc__ or ""
        marker = "\n\n    Returns:"  # the last argument's line, a blank line, then Returns
        build.__doc__ = doc.replace(marker, "\n" + line + marker[1:], 1) if marker in doc else doc + "\n\n" + line
        return build
    return decorate
