"""keras_aff: Attentional Feature Fusion (MS-CAM, AFF, iAFF) for Keras 3.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Subpackages:

- `keras_aff.layers`: `MSCAM`, `AFF`, `IAFF`, `MultiAFF`, `Align` (Keras 3:
  TensorFlow, JAX and PyTorch).
- `keras_aff.models`: the paper's AFF/iAFF ResNet-50, ResNeXt-50 and CIFAR
  networks (with the official weights), `AFFFPN`, `AFFUNet`, stage
  outputs, and `retrofit`.
- `keras_aff.export`: verified SavedModel, LiteRT and ONNX exports
  (TensorFlow backend; TensorFlow is imported only when you export).
- `keras_aff.interop`: weights of the official MXNet and PyTorch code.
- `keras_aff.optimize`: inference rewrites (`fold_batchnorm`).
- `keras_aff.legacy` (tf_keras twin) and `keras_aff.qat` (tfmot
  quantization-aware training) are imported on demand: they need the `qat`
  extra; so are the `keras-aff` command (`keras_aff.cli`), its demo
  (`keras_aff.demo`) and the JAX kernels (`keras_aff.kernels`).

Example:

>>> import keras_aff
>>> fuse = keras_aff.layers.AFF(reduction_ratio=4)
"""

__version__ = "0.2.0"

from keras_aff import _quiet  # noqa: E402

# Keras imports TensorFlow here. In the `keras-aff` command (only there)
# its C++ notices stay off the terminal: see `keras_aff._quiet`.
with _quiet.command_startup():
    from keras_aff import export  # noqa: E402
    from keras_aff import interop  # noqa: E402
    from keras_aff import layers  # noqa: E402
    from keras_aff import models  # noqa: E402
    from keras_aff import optimize  # noqa: E402

__all__ = ["__version__", "export", "interop", "layers", "models", "optimize"]
