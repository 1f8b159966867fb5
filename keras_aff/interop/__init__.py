"""Weights of the official implementations of MS-CAM, AFF and iAFF.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

- PyTorch: `load_torch_state_dict` and `to_torch_state_dict` convert
  between the official PyTorch modules' state dicts (also used by
  LAION-CLAP) and `keras_aff.layers` layers; torch itself is never
  imported.
- MXNet: `read_mxnet_params` reads the official `.params` files (no MXNet
  needed).
"""

from keras_aff.interop.mxnet_format import read_mxnet_params
from keras_aff.interop.torch import load_torch_state_dict
from keras_aff.interop.torch import to_torch_state_dict

__all__ = [
    "load_torch_state_dict",
    "read_mxnet_params",
    "to_torch_state_dict",
]
