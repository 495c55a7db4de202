"""Keep TensorFlow's start-up chatter off stderr unless the user asks for it.

TensorFlow's C++ runtime prints CUDA probes and CPU-feature notices on file
descriptor 2 while it loads, before Python logging exists, so the only reliable
way to hide them is to point fd 2 at /dev/null while TensorFlow is imported and
its devices are first listed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings


@contextlib.contextmanager
def _stderr_to_devnull():
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # captured stderr (pytest, notebooks)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(verbose: bool = False):
    """Import TensorFlow (and Keras), silently unless ``verbose``; returns the module."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return sys.modules["tensorflow"]
    if verbose:
        import keras  # noqa: F401
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_to_devnull():
        import tensorflow as tf

        import keras  # noqa: F401

        tf.config.list_physical_devices()  # the CUDA probe happens here
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"keras\.src\..*")
    warnings.filterwarnings("ignore", module=r"tensorflow.*")
    return tf
