"""Inference-time rewrites of trained models.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

- `fold_batchnorm(model)`: every BatchNormalization that follows a conv,
  those of the MSCAM/AFF/IAFF gates included, folded into that conv. The
  exporters of `keras_aff.export` call it by default.
"""

from keras_aff.optimize.fold import FoldReport
from keras_aff.optimize.fold import fold_batchnorm

__all__ = ["FoldReport", "fold_batchnorm"]
