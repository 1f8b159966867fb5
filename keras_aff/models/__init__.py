"""The paper's AFF / iAFF backbones, their stage outputs, and `retrofit`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

- ImageNet (224x224, 1000 classes): `AFFResNet50`, `IAFFResNet50`,
  `AFFResNeXt50`, `IAFFResNeXt50`.
- CIFAR-100 (32x32, 100 classes): `AFFResNet32`, `AFFResNeXt38`,
  `AFFResNeXt47`.
- Registry (timm style): `list_models`, `get_model`, `model_info`.
- Stage outputs for FPN / UNet decoders: `pyramid_outputs`,
  `feature_model`.
- Dense prediction: `AFFFPN` (an FPN neck on any backbone's stage
  outputs) and `AFFUNet` (a U-Net), with AFF, iAFF or "add" merges.
- `retrofit`: AFF / iAFF in place of the residual additions of any
  functional Keras model (e.g. keras.applications), starting as the
  identical function.
"""

from keras_aff.models.cifar import AFFResNet32
from keras_aff.models.cifar import AFFResNeXt38
from keras_aff.models.cifar import AFFResNeXt47
from keras_aff.models.features import feature_model
from keras_aff.models.features import pyramid_outputs
from keras_aff.models.fpn import AFFFPN
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
    "feature_model",
    "get_model",
    "list_models",
    "model_info",
    "pyramid_outputs",
    "retrofit",
]
