"""RetinaNet whose FPN neck is `keras_aff.models.AFFFPN`
(`AFFRetinaNetBackbone`, `AFFRetinaNetObjectDetector`).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras
from keras_hub.models import FeaturePyramidBackbone
from keras_hub.models import RetinaNetObjectDetector
from keras_hub.models import RetinaNetObjectDetectorPreprocessor

from keras_aff import models
from keras_aff._validation import check_data_format
from keras_aff._validation import check_int
from keras_aff._validation import check_one_of_types
from keras_aff._validation import received
from keras_aff.hub._scope import building_with

MIN_LEVEL = 3
MAX_LEVEL = 7


def _encoder(image_encoder):
    if isinstance(image_encoder, dict):
        image_encoder = keras.saving.deserialize_keras_object(image_encoder)
    check_one_of_types(
        "image_encoder",
        image_encoder,
        (FeaturePyramidBackbone,),
        "a KerasHub `FeaturePyramidBackbone` with levels P3, P4 and P5",
    )
    missing = [
        f"P{level}"
        for level in range(MIN_LEVEL, 6)
        if f"P{level}" not in image_encoder.pyramid_outputs
    ]
    if missing:
        raise ValueError(
            "Expected `image_encoder` to have the pyramid levels P3, P4 and "
            f"P5; it lacks {missing}. Received: image_encoder with levels "
            f"{list(image_encoder.pyramid_outputs)}"
        )
    return image_encoder


@keras.saving.register_keras_serializable(package="keras_aff")
class AFFRetinaNetBackbone(FeaturePyramidBackbone):
    """RetinaNet's backbone with `keras_aff.models.AFFFPN` as its neck.

    As KerasHub's `RetinaNetBackbone` (levels P3-P7 of `fpn_channels`
    channels): `AFFFPN` on the encoder's P3, P4 and P5, whose top-down
    merges are AFF, iAFF or "add" (the plain FPN, for the ablation at
    equal settings), its extra level P6 (a stride-2 3x3 conv on P5's
    output), and P7 = stride-2 3x3 conv of ReLU(P6).

    Args:
        image_encoder: a KerasHub `FeaturePyramidBackbone` with P3-P5 (an
            `AFFBackbone` of the ImageNet family, a `ResNetBackbone`, ...),
            or its serialized config.
        fpn_channels: int, default 256.
        fusion: "aff" (default), "iaff" or "add".
        reduction_ratio: int, default 4.
        image_shape: tuple, default (None, None, 3).
        data_format: default `keras.config.image_data_format()`.
        dtype: dtype policy of the neck.
        **kwargs: `name`, `trainable`.

    Example:

    >>> encoder = keras_aff.hub.backbone(
    ...     "aff_resnet50", blocks_per_stage=(1, 1, 1, 1))
    >>> neck = keras_aff.hub.AFFRetinaNetBackbone(encoder, fpn_channels=32)
    >>> for k, v in neck(np.zeros((1, 64, 64, 3))).items():
    ...     print(k, tuple(v.shape))
    P3 (1, 8, 8, 32)
    P4 (1, 4, 4, 32)
    P5 (1, 2, 2, 32)
    P6 (1, 1, 1, 32)
    P7 (1, 1, 1, 32)
    """

    def __init__(
        self,
        image_encoder,
        fpn_channels=256,
        fusion="aff",
        reduction_ratio=4,
        image_shape=(None, None, 3),
        data_format=None,
        dtype=None,
        **kwargs,
    ):
        image_encoder = _encoder(image_encoder)
        fpn_channels = check_int("fpn_channels", fpn_channels, 1)
        data_format = check_data_format(data_format)
        if len(tuple(image_shape)) != 3:
            raise ValueError(
                "Expected `image_shape` to be (height, width, channels). "
                + received("image_shape", image_shape)
            )
        image_shape = tuple(image_shape)

        # === Functional Model ===
        features = keras.Model(
            image_encoder.inputs,
            {
                f"P{level}": image_encoder.pyramid_outputs[f"P{level}"]
                for level in range(MIN_LEVEL, 6)
            },
            name="backbone",
        )
        with building_with(dtype, data_format):
            fpn = models.AFFFPN(
                features,
                channels=fpn_channels,
                fusion=fusion,
                reduction_ratio=reduction_ratio,
                extra_level=True,
                name="fpn",
            )
            image_input = keras.layers.Input(image_shape, name="inputs")
            outputs = dict(fpn(image_input))
            p7 = keras.layers.ReLU(name="P7_relu")(outputs["P6"])
            outputs["P7"] = keras.layers.Conv2D(
                fpn_channels, 3, strides=2, padding="same", name="P7_conv"
            )(p7)
        super().__init__(
            inputs=image_input, outputs=outputs, dtype=dtype, **kwargs
        )

        # === Config ===
        self.image_encoder = image_encoder
        self.fpn_channels = fpn_channels
        self.fusion = fusion
        self.reduction_ratio = reduction_ratio
        self.min_level = MIN_LEVEL
        self.max_level = MAX_LEVEL
        self.image_shape = image_shape
        self.data_format = data_format
        self.pyramid_outputs = outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.saving.serialize_keras_object(
                    self.image_encoder
                ),
                "fpn_channels": self.fpn_channels,
                "fusion": self.fusion,
                "reduction_ratio": self.reduction_ratio,
                "image_shape": self.image_shape,
                "data_format": self.data_format,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_aff")
class AFFRetinaNetObjectDetector(RetinaNetObjectDetector):
    """KerasHub's `RetinaNetObjectDetector` on an `AFFRetinaNetBackbone`
    (its own class, so that KerasHub finds it from a preset's backbone).

    It takes the arguments of `keras_hub.models.RetinaNetObjectDetector`.

    Example:

    >>> encoder = keras_aff.hub.backbone(
    ...     "aff_resnet50", blocks_per_stage=(1, 1, 1, 1))
    >>> detector = keras_aff.hub.AFFRetinaNetObjectDetector(
    ...     keras_aff.hub.AFFRetinaNetBackbone(encoder, fpn_channels=32),
    ...     num_classes=2, pre_logits_num_conv_layers=1)
    >>> out = detector(np.zeros((1, 64, 64, 3)))
    >>> tuple(out["cls_logits"].shape), tuple(out["bbox_regression"].shape)
    ((1, 774, 2), (1, 774, 4))
    """

    backbone_cls = AFFRetinaNetBackbone
    preprocessor_cls = RetinaNetObjectDetectorPreprocessor
