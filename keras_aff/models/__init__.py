"""The paper's AFF / iAFF backbones, their stage outputs, and `retrofit`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

- ImageNet (224x224, 1000 classes): `AFFResNet50`, `IAFFResNet50`,
  `AFFResNeXt50`, `IAFFResNeXt50`.
- CIFAR-100 (32x32, 100 classes): `AFFResNet32`, `AFFResNeXt38`,
  `AFFResNeXt47`.
- Registry (timm style, built from the decorated builders): `list_models`,
  `get_model`, `model_info`, `ModelInfo`.
- Stage outputs for FPN / UNet decoders: `pyramid_outputs`,
  `feature_model`.
- Dense prediction: `AFFFPN` (an FPN neck on any backbone's stage
  outputs) and `AFFUNet` (a U-Net), with AFF, iAFF or "add" merges.
- `retrofit`: AFF / iAFF in place of the residual additions of any
  functional Keras model (e.g. keras.applications), starting as the
  identical function (`AddSite`, `RetrofitReport`).
- The official input pipeline: `preprocess_input` (normalisation) and
  `evaluation_crop` (the ImageNet evaluation crop), for the official
  weights (`weights=` takes the official MXNet `.params` files).

Where things live: `resnet.py` holds the ImageNet family builder
(`resnet_d`, also used by `resnext.py`) and `cifar.py` the CIFAR ones,
each next to its decorated public builders; `_setup.py` checks the
arguments they share (one frozen `Options`), `_inputs.py` makes the image
input, `_blocks.py` holds the building blocks and `registry.py` the
registry. `retrofit.py` is the public `retrofit`, which finds the
additions (`_retrofit_graph.py`), decides for each one
(`_retrofit_plan.py`) and clones the model (`_retrofit_apply.py`).
"""

from keras_aff.models.cifar import AFFResNet32
from keras_aff.models.cifar import AFFResNeXt38
from keras_aff.models.cifar import AFFResNeXt47
from keras_aff.models.features import feature_model
from keras_aff.models.features import pyramid_outputs
from keras_aff.models.fpn import AFFFPN
from keras_aff.models.preprocessing import evaluation_crop
from keras_aff.models.preprocessing import preprocess_input
from keras_aff.models.registry import ModelInfo
from keras_aff.models.registry import get_model
from keras_aff.models.registry import list_models
from keras_aff.models.registry import model_info
from keras_aff.models.resnet import AFFResNet50
from keras_aff.models.resnet import IAFFResNet50
from keras_aff.models.resnext import AFFResNeXt50
from keras_aff.models.resnext import IAFFResNeXt50
from keras_aff.models.retrofit import AddSite
from keras_aff.models.retrofit import RetrofitReport
from keras_aff.models.retrofit import retrofit
from keras_aff.models.unet import AFFUNet

__all__ = [
    "AFFFPN",
    "AFFResNet32",
    "AFFResNet50",
    "AFFResNeXt38",
    "AFFResNeXt47",
    "AFFResNeXt50",
    "AFFUNet",
    "AddSite",
    "IAFFResNet50",
    "IAFFResNeXt50",
    "ModelInfo",
    "RetrofitReport",
    "evaluation_crop",
    "feature_model",
    "get_model",
    "list_models",
    "model_info",
    "preprocess_input",
    "pyramid_outputs",
    "retrofit",
]
