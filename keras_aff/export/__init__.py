"""Verified exports: SavedModel (serving), LiteRT (phones), ONNX.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Every exporter checks its artifact against the Keras model on sample inputs
before it returns, raises `ExportVerificationError` (with the error and the
tolerance) when they disagree, and returns an `ExportReport`: path, size,
ops, error statistics and batch-1 latency. TensorFlow backend only;
ai_edge_litert, tf2onnx and onnxruntime are imported when first needed
(`pip install "keras-aff[litert]"`, `"keras-aff[onnx]"`).
"""

import os

from keras_aff.export._verify import ExportReport
from keras_aff.export._verify import ExportVerificationError
from keras_aff.export.litert import export_litert
from keras_aff.export.onnx import export_onnx
from keras_aff.export.saved_model import export_saved_model
from keras_aff.export.saved_model import run_saved_model_standalone


def load_artifact(path, input_names=None, num_threads=None):
    """Loads an exported artifact as a predictor with float inputs and
    outputs, whatever its format.

    A directory is a SavedModel (its `serving_default` signature, run with
    TensorFlow), a `.tflite` file a LiteRT model (run with ai_edge_litert;
    int8 inputs are quantized and int8 outputs dequantized with the
    model's scales), an `.onnx` file an ONNX model (run with onnxruntime).

    Args:
        path: str or path-like.
        input_names: optional list, the order in which a list of inputs is
            read (default: the artifact's own order, `predictor.input_names`).
        num_threads: optional int, threads for LiteRT / onnxruntime.

    Returns:
        A callable: `predictor(inputs)` takes an array (one input), a list
        of arrays or a dict name -> array, and returns a list of float32
        arrays in model output order. It has `format`, `input_names`,
        `inputs` and `outputs` (declared shapes and dtypes) and
        `latency_ms(inputs)`.

    Example:

    >>> predict = keras_aff.export.load_artifact("model_int8.tflite")
    >>> probs = predict(x_test)[0]
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        from keras_aff.export.saved_model import SavedModelRunner

        return SavedModelRunner(path, input_names)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No exported artifact at this path. Received: path={path!r}"
        )
    if path.endswith(".tflite"):
        from keras_aff.export.litert import LiteRTRunner

        with open(path, "rb") as f:
            return LiteRTRunner(f.read(), input_names, num_threads)
    if path.endswith(".onnx"):
        from keras_aff.export.onnx import ONNXRunner

        return ONNXRunner(path, input_names, num_threads)
    raise ValueError(
        "Expected a SavedModel directory, a `.tflite` or an `.onnx` file. "
        f"Received: path={path!r}"
    )


__all__ = [
    "ExportReport",
    "ExportVerificationError",
    "export_litert",
    "export_onnx",
    "export_saved_model",
    "load_artifact",
    "run_saved_model_standalone",
]
