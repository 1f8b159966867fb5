"""Weights of the official implementations of MS-CAM, AFF and iAFF.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

- PyTorch: `load_torch_state_dict` and `to_torch_state_dict` convert
  between the official PyTorch modules' state dicts (also used by
  LAION-CLAP) and `keras_aff.layers` layers; torch itself is never
  imported.
- MXNet: `read_mxnet_params` reads the official `.params` files (no MXNet
  needed) and `load_mxnet_params` loads them into the `keras_aff.models`
  backbones, reporting what it loaded in a `MXNetLoadReport`.
"""

from keras_aff.interop.mxnet import MXNetLoadReport
from keras_aff.interop.mxnet import load_mxnet_params
from keras_aff.interop.mxnet_format import read_mxnet_params
from keras_aff.interop.torch import load_torch_state_dict
from keras_aff.interop.torch import to_torch_state_dict

__all__ = [
    "MXNetLoadReport",
    "load_mxnet_params",
    "load_torch_state_dict",
    "read_mxnet_params",
    "to_torch_state_dict",
]
