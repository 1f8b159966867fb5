"""What the exporters need from the environment: the TensorFlow backend and
the optional LiteRT / ONNX packages (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

from keras_aff._optional import require


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
    """(tf2onnx, onnxruntime), or an ImportError naming the extra."""
    return (
        require("tf2onnx", "onnx", "ONNX export"),
        require("onnxruntime", "onnx", "ONNX verification"),
    )
