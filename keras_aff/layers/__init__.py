"""Keras 3 layers: `MSCAM`, `AFF` and `IAFF`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

from keras_aff.layers.aff import AFF
from keras_aff.layers.iaff import IAFF
from keras_aff.layers.ms_cam import MSCAM

__all__ = ["AFF", "IAFF", "MSCAM"]
