"""Recipes of the deep-learning canon, and the factories behind them.

The factories take keras.applications' keyword signature (``include_top``, ``input_shape``,
``pooling``, ``classes``, ``classifier_activation``, ``name``) and preprocessed float input; their
blocks, classifier top, argument checks and ResNet's builders live in :mod:`kerasapps.models`
(``blocks``, ``arguments``, ``resnet``).
Importing this package builds nothing; recipes are registered through the
``kerasapps.recipes`` entry-point group (see setup.cfg).
"""

from kerasapps.recipes.alexnet import alexnet
from kerasapps.recipes.googlenet import googlenet
from kerasapps.recipes.lenet import lenet5
from kerasapps.recipes.resnet import (
                                      resnet18,
                                      resnet20,
                                      resnet32,
                                      resnet34,
                                      resnet44,
                                      resnet50,
                                      resnet56,
                                      resnet101,
                                      resnet110,
                                      resnet152,
)
from kerasapps.recipes.vgg import vgg16, vgg19
from kerasapps.recipes.zfnet import zfnet

__all__ = ["lenet5", "alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "resnet18", "resnet34", "resnet50",
           "resnet101", "resnet152", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]
