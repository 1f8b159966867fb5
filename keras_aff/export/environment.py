"""What the exporters need from the environment: the TensorFlow backend and
the optional LiteRT / ONNX packages (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import os

from keras_aff._optional import require

# tf2onnx.convert sets this variable when it loads; the library puts the
# process's own value back (see `import_onnx_tools`).
_TF2ONNX_SETS = "TF_CPP_MIN_LOG_LEVEL"


def require_tensorflow_backend(function_name):
    """Raises unless Keras runs on TensorFlow; returns the tf module."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"`keras_aff.export.{function_name}` needs the TensorFlow "
            "backend: SavedModel, LiteRT and tf2onnx all trace TensorFlow "
            "graphs. Set KERAS_BACKEND=tensorflow before importing keras. "
            f"Received: backend={backend!r}"
        )
    import tensorflow as tf

    return tf


def import_litert_interpreter():
    """The ai_edge_litert interpreter module, or an ImportError naming the
    extra to install."""
    return require(
        "ai_edge_litert.interpreter", "litert", "LiteRT export and verification"
    )


def import_onnx_tools():
    """(tf2onnx, onnxruntime), or an ImportError naming the extra.

    tf2onnx.convert sets TF_CPP_MIN_LOG_LEVEL=3 in `os.environ` when it
    loads; the value the process had (or its absence) is restored, so
    that an ONNX export changes no logging setting of the user's program
    (TensorFlow, loaded already, has read the variable)."""
    before = os.environ.get(_TF2ONNX_SETS)
    try:
        tf2onnx = require("tf2onnx", "onnx", "ONNX export")
        # A lazy submodule: loaded here, within the guard.
        require("tf2onnx.convert", "onnx", "ONNX export")
        return tf2onnx, require("onnxruntime", "onnx", "ONNX verification")
    finally:
        if before is None:
            os.environ.pop(_TF2ONNX_SETS, None)
        else:
            os.environ[_TF2ONNX_SETS] = before
