"""keras_aff as KerasHub models: backbones, tasks and presets.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Needs the `hub` extra (`pip install "keras-aff[hub]"`: keras-hub and
Keras >= 3.15). `import keras_aff` does not import it; `import
keras_aff.hub` registers every class a preset names (package
"keras_aff"), so a fresh process runs it before
`keras_hub.models.ImageClassifier.from_preset(...)`.

- `AFFBackbone` (and `backbone(name)`): every registered network as a
  `keras_hub.models.FeaturePyramidBackbone`.
- `AFFImageClassifier`, `AFFImageClassifierPreprocessor`,
  `AFFImageConverter` (the official normalisation).
- `retrofit_backbone` (`RetrofitBackbone`): AFF / iAFF in place of the
  residual additions of a KerasHub backbone, still a KerasHub backbone;
  `RetrofitImageClassifier` is its classifier.
- `AFFRetinaNetBackbone`, `AFFRetinaNetObjectDetector`: RetinaNet whose
  FPN neck is `keras_aff.models.AFFFPN`. KerasHub's
  `DeepLabV3Backbone(image_encoder=AFFBackbone(...))` takes the ImageNet
  family as it is.
"""

from keras_aff._optional import require

require("keras_hub", "hub", "keras_aff.hub")

from keras_aff.hub.backbone import AFFBackbone  # noqa: E402
from keras_aff.hub.backbone import backbone  # noqa: E402
from keras_aff.hub.classifier import AFFImageClassifier  # noqa: E402
from keras_aff.hub.classifier import AFFImageClassifierPreprocessor  # noqa: E402
from keras_aff.hub.classifier import AFFImageConverter  # noqa: E402
from keras_aff.hub.detection import AFFRetinaNetBackbone  # noqa: E402
from keras_aff.hub.detection import AFFRetinaNetObjectDetector  # noqa: E402
from keras_aff.hub.retrofit import RetrofitBackbone  # noqa: E402
from keras_aff.hub.retrofit import RetrofitImageClassifier  # noqa: E402
from keras_aff.hub.retrofit import retrofit_backbone  # noqa: E402

__all__ = [
    "AFFBackbone",
    "AFFImageClassifier",
    "AFFImageClassifierPreprocessor",
    "AFFImageConverter",
    "AFFRetinaNetBackbone",
    "AFFRetinaNetObjectDetector",
    "RetrofitBackbone",
    "RetrofitImageClassifier",
    "backbone",
    "retrofit_backbone",
]
