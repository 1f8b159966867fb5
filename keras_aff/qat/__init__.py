"""Quantization-aware training of MS-CAM, AFF and iAFF with tfmot.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

tensorflow-model-optimization 0.8 only accepts tf_keras (Keras 2) models,
and Keras 3 has no convolution QAT. This package works on models built with
the tf_keras twin (`keras_aff.legacy`):

- `blocks`: `aff_block`, `iaff_block` and `mscam_block` express a fusion
  layer with stock tf_keras layers only (1x1 Conv2D, BatchNormalization,
  ReLU, GlobalAveragePooling2D, Add, sigmoid, Subtract, Multiply), so tfmot
  folds every Conv+BN and places a fake-quant at every op boundary; and
  `OutputQuantizeConfig` for Multiply, Subtract and Rescaling, which
  tfmot's default registry lacks. The layer structure, names, argument
  checks and child layer settings come from the legacy layer itself, and
  the variable paths are the layer's (`aff/attention/local/conv1/kernel`),
  so weights move between a fusion layer and its block with
  `keras_aff.porting.copy_weights`.
- `unroll`: `unroll_fusion_layers(model)` replaces every legacy fusion
  layer of a functional model by its block and copies all weights by path.
- `quantize`: `quantize_model(model)` unrolls, annotates and applies
  tfmot's default 8-bit scheme; `quantize_scope()` loads saved QAT models;
  `calibrate_ranges` starts the activation ranges at the data's.
- `convert`: `convert_to_int8_litert(model, sample_inputs)` converts a QAT
  (or, with a representative dataset, a float) model to a fully int8
  LiteRT flatbuffer with `keras_aff.export`'s converter and checks it with
  export's int8 policy (`inspect_litert`: no float tensor between ops; the
  outputs against the Keras model), returning an `ExportReport`.

Importing this package imports tensorflow_model_optimization, which sets
`os.environ["TF_USE_LEGACY_KERAS"] = "1"` for the process (and its child
processes). keras_aff never reads that variable, so its own classes do not
change; but `tf.keras` resolves to tf_keras from then on if it was not used
before. It is not imported by `import keras_aff`.

QAT checkpoints: `model.save(path, save_format="tf")` (load inside
`quantize_scope()`) and `model.save_weights(prefix)` (TF checkpoint) work;
`.keras` and `.h5` do not (see the README).
"""

# The extras are checked before the submodules import them (E402 below).
# ruff: noqa: E402
from keras_aff._optional import require

require("tf_keras", "qat", "`keras_aff.qat` (tfmot works on Keras 2 models)")
require("tensorflow_model_optimization", "qat", "`keras_aff.qat`")

from keras_aff.export.litert_ops import inspect_litert
from keras_aff.qat.blocks import OutputQuantizeConfig
from keras_aff.qat.blocks import aff_block
from keras_aff.qat.blocks import iaff_block
from keras_aff.qat.blocks import mscam_block
from keras_aff.qat.convert import convert_to_int8_litert
from keras_aff.qat.quantize import calibrate_ranges
from keras_aff.qat.quantize import quantize_model
from keras_aff.qat.quantize import quantize_scope
from keras_aff.qat.unroll import unroll_fusion_layers

__all__ = [
    "OutputQuantizeConfig",
    "aff_block",
    "calibrate_ranges",
    "convert_to_int8_litert",
    "iaff_block",
    "inspect_litert",
    "mscam_block",
    "quantize_model",
    "quantize_scope",
    "unroll_fusion_layers",
]
