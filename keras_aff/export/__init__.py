"""Verified exports: SavedModel (serving), LiteRT (phones), ONNX.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Every exporter checks its artifact against the Keras model on sample inputs
before it returns, raises `ExportVerificationError` (with the error and the
tolerance) when they disagree, and returns an `ExportReport`: path, size,
ops, error statistics and batch-1 latency. TensorFlow backend only;
ai_edge_litert, tf2onnx and onnxruntime are imported when first needed
(`pip install "keras-aff[litert]"`, `"keras-aff[onnx]"`).

Where each part lives:

- `saved_model`, `litert`, `onnx`: what is specific to a format (its
  conversion, its op listing); `litert_ops`: what a LiteRT file holds
  (ops, float islands: `inspect_litert`).
- `pipeline`: the one stage -> write -> check -> time -> commit -> report
  sequence that every format runs.
- `checks`: the one check policy (tolerances, float and int8);
  `report`: `ExportReport` and `ExportVerificationError`.
- `model_io`: the model's inputs, sample data, Keras outputs;
  `rebuild`: float32 and dynamic-size rebuilds of a model;
  `runners`: one runner per format and `load_artifact`;
  `staging`: atomic writes; `environment`: backend and optional packages.
"""

from keras_aff.export.litert import export_litert
from keras_aff.export.onnx import export_onnx
from keras_aff.export.report import ExportReport
from keras_aff.export.report import ExportVerificationError
from keras_aff.export.runners import load_artifact
from keras_aff.export.saved_model import export_saved_model
from keras_aff.export.saved_model import run_saved_model_standalone

__all__ = [
    "ExportReport",
    "ExportVerificationError",
    "export_litert",
    "export_onnx",
    "export_saved_model",
    "load_artifact",
    "run_saved_model_standalone",
]
