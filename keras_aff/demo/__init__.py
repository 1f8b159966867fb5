"""The `keras-aff demo` pipeline, step by step: a small AFF/iAFF network
trained on scikit-learn's bundled digits, exported and verified in every
format, run on the held-out digits, its fusion weights plotted.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

- Data: `load_demo_data`.
- Model: `build_demo_model`, `fusion_weight_model` (the layers' own
  `fusion_weights`).
- Train: `train_demo_model`.
- Export and run: `export_artifact` (through `keras_aff.export`),
  `evaluate_keras`, `evaluate_artifact`, `accuracy`.
- Plot: `save_fusion_weight_png`.
- Summary: `DemoSummary` (`demo_report.json`).

`keras-aff demo` (`keras_aff.cli`) runs them in this order and prints the
progress and the table. Needs the `demo` extra (scikit-learn, matplotlib)
and, for the exports, `litert` and `onnx`.

Example:

>>> x_train, x_test, y_train, y_test = keras_aff.demo.load_demo_data()
>>> model = keras_aff.demo.build_demo_model()
>>> tuple(model(x_test[:2]).shape)
(2, 10)
"""

from keras_aff.demo.artifacts import accuracy
from keras_aff.demo.artifacts import evaluate_artifact
from keras_aff.demo.artifacts import evaluate_keras
from keras_aff.demo.artifacts import export_artifact
from keras_aff.demo.data import load_demo_data
from keras_aff.demo.model import build_demo_model
from keras_aff.demo.model import fusion_weight_model
from keras_aff.demo.plot import save_fusion_weight_png
from keras_aff.demo.summary import DemoSummary
from keras_aff.demo.train import train_demo_model

__all__ = [
    "DemoSummary",
    "accuracy",
    "build_demo_model",
    "evaluate_artifact",
    "evaluate_keras",
    "export_artifact",
    "fusion_weight_model",
    "load_demo_data",
    "save_fusion_weight_png",
    "train_demo_model",
]
