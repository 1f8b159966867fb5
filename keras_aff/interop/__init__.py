"""Weights of the official implementations of MS-CAM, AFF and iAFF.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`load_torch_state_dict` and `to_torch_state_dict` convert between the
official PyTorch modules' state dicts (also used by LAION-CLAP) and
`keras_aff.layers` layers; torch itself is never imported.
"""

from keras_aff.interop.torch import load_torch_state_dict
from keras_aff.interop.torch import to_torch_state_dict

__all__ = ["load_torch_state_dict", "to_torch_state_dict"]
