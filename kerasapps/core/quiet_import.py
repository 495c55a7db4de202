"""Keep TensorFlow's start-up chatter off stderr unless the user asks for it.

TensorFlow's C++ runtime prints CUDA probes and CPU-feature notices on file
descriptor 2 while it loads, before Python logging exists, so the only reliable
way to hide them is to point fd 2 at /dev/null while TensorFlow is imported and
its devices are first listed. Python's own ``sys.stderr`` keeps the real stream
meanwhile, so warnings and errors written from Python still show.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings


@contextlib.contextmanager
def native_stderr_to_devnull():
    """Point file descriptor 2 at /dev/null (what C++ libraries write to) while ``sys.stderr`` writes on."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # captured stderr (pytest, notebooks)
        yield
        return
    stream = sys.stderr
    stream.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    python_stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=stream.encoding, errors="backslashreplace")
    try:
        os.dup2(devnull, fd)
        sys.stderr = python_stderr
        yield
    finally:
        python_stderr.flush()
        sys.stderr = stream
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
        python_stderr.close()


def quiet_native():
    """:func:`native_stderr_to_devnull` where TensorFlow's C++ logging is muted (``TF_CPP_MIN_LOG_LEVEL`` above 0,
    as the command line sets it unless ``--verbose``), else nothing: LiteRT's converter and runtime print INFO
    lines on fd 2 ("Created TensorFlow Lite XNNPACK delegate", the quantiser's settings) that honour no setting."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
    return native_stderr_to_devnull() if level.isdigit() and int(level) > 0 else contextlib.nullcontext()


def import_tensorflow(verbose: bool = False):
    """Import TensorFlow (and Keras), silently unless ``verbose``; returns the module."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return sys.modules["tensorflow"]
    if verbose:
        import keras  # noqa: F401
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_to_devnull():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe happens here
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"keras\.src\..*")
    warnings.filterwarnings("ignore", module=r"tensorflow.*")
    return tf
