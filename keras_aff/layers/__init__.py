"""Keras 3 layers: `MSCAM`, `AFF`, `IAFF`, `MultiAFF` and `Align`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

from keras_aff.layers.aff import AFF
from keras_aff.layers.align import Align
from keras_aff.layers.iaff import IAFF
from keras_aff.layers.ms_cam import MSCAM
from keras_aff.layers.multi_aff import MultiAFF

__all__ = ["AFF", "IAFF", "MSCAM", "Align", "MultiAFF"]
