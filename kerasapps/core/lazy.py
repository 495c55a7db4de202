"""Modules imported on first use, so that declaring recipes does not load TensorFlow.

The registry imports every recipe module to list the recipes, and ``kerasapps list`` answers
without TensorFlow (whose import takes seconds). A recipe module therefore names Keras through
``keras = lazy_import("keras")``: a stand-in whose first attribute access imports the real module.
Python 3.15's ``lazy import keras`` (PEP 810) says the same in the language.
"""

from __future__ import annotations

import importlib


class LazyModule:
    """Stands for the module ``name``; attribute access imports it (once, through ``sys.modules``)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazily imported module {self._name!r}>"


def lazy_import(name: str) -> LazyModule:
    """``lazy_import("keras")``: the module ``name``, imported when first used."""
    return LazyModule(name)
