"""AFF / iAFF retrofitted into KerasHub's own backbones, which stay
KerasHub backbones (`RetrofitBackbone`, `retrofit_backbone`).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import copy

import keras
from keras_hub.models import FeaturePyramidBackbone
from keras_hub.models import ImageClassifier
from keras_hub.models import ImageClassifierPreprocessor

from keras_aff import models
from keras_aff._validation import check_one_of_types
from keras_aff.hub._scope import building_with


def _original(backbone):
    """The original backbone: a live `FeaturePyramidBackbone`, or its
    serialized form (from a config or a preset)."""
    if isinstance(backbone, dict):
        backbone = keras.saving.deserialize_keras_object(backbone)
    return check_one_of_types(
        "backbone",
        backbone,
        (FeaturePyramidBackbone,),
        "a KerasHub `FeaturePyramidBackbone` (e.g. ResNetBackbone)",
    )


def _check_select(select):
    if select is None:
        return None
    check_one_of_types(
        "select", select, (list, tuple), "None or a list of addition names"
    )
    for i, name in enumerate(select):
        check_one_of_types(f"select[{i}]", name, (str,), "a layer name")
    return list(select)


@keras.saving.register_keras_serializable(package="keras_aff")
class RetrofitBackbone(FeaturePyramidBackbone):
    """A KerasHub backbone whose residual additions are AFF / iAFF.

    `keras_aff.models.retrofit` on `backbone` (a KerasHub
    `FeaturePyramidBackbone` such as `ResNetBackbone` or
    `CSPNetBackbone`): every selected `Add` becomes a fusion layer that
    starts as the same addition, so the result starts as the same function
    (the weights are copied; to ~1e-7). `pyramid_outputs` keep their
    levels (a level that was an addition is now its fusion layer). The
    config holds the original backbone's serialized config and the
    retrofit settings: `from_config` (and `from_preset`) rebuilds the
    original and retrofits it again, giving the same layers, names and
    weight order every time.

    Args:
        backbone: a KerasHub `FeaturePyramidBackbone`, or its serialized
            config (`keras.saving.serialize_keras_object`).
        fusion: "aff" (default) or "iaff".
        reduction_ratio: int, default 16.
        select: None (every residual addition with at least
            `min_channels` channels) or a list of addition names.
        min_channels: int or None (default `reduction_ratio`).
        dtype: dtype policy; default the original backbone's.
        **kwargs: `name`, `trainable` (as `keras.Model`).

    Example:

    >>> import keras_hub
    >>> resnet = keras_hub.models.ResNetBackbone(
    ...     input_conv_filters=[64], input_conv_kernel_sizes=[3],
    ...     stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
    ...     stackwise_num_strides=[1, 2], block_type="basic_block",
    ...     image_shape=(32, 32, 3))
    >>> aff = keras_aff.hub.RetrofitBackbone(resnet, reduction_ratio=4)
    >>> list(aff.pyramid_outputs), aff.get_layer("stack1_block0_add_aff")
    (['P2', 'P3'], <AFF name=stack1_block0_add_aff, built=True>)
    >>> x = np.random.default_rng(0).uniform(size=(1, 32, 32, 3))
    >>> bool(np.abs(aff(x) - resnet(x)).max() < 1e-5)
    True
    """

    def __init__(
        self,
        backbone,
        fusion="aff",
        reduction_ratio=16,
        select=None,
        min_channels=None,
        dtype=None,
        **kwargs,
    ):
        original = _original(backbone)
        select = _check_select(select)
        policy = original.dtype_policy if dtype is None else dtype
        data_format = getattr(original, "data_format", None)
        data_format = data_format or keras.config.image_data_format()

        # === Functional Model ===
        with building_with(policy, data_format):
            model, report = models.retrofit(
                original,
                fusion=fusion,
                reduction_ratio=reduction_ratio,
                select=select,
                min_channels=min_channels,
                data_format=data_format,
                return_report=True,
            )
        renamed = {r["path"]: r["fusion_layer"] for r in report.replaced}
        pyramid_outputs = {}
        for level, tensor in original.pyramid_outputs.items():
            name = tensor._keras_history.operation.name
            layer = model.get_layer(renamed.get(name, name))
            pyramid_outputs[level] = layer.output
        super().__init__(
            inputs=model.inputs[0],
            outputs=model.outputs[0],
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.backbone_config = copy.deepcopy(
            keras.saving.serialize_keras_object(original)
        )
        self.fusion = report.fusion
        self.reduction_ratio = report.reduction_ratio
        self.select = select
        self.min_channels = min_channels
        self.image_shape = getattr(original, "image_shape", None)
        self.data_format = data_format
        self.pyramid_outputs = pyramid_outputs
        self.report = report

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": copy.deepcopy(dict(self.backbone_config)),
                "fusion": self.fusion,
                "reduction_ratio": self.reduction_ratio,
                "select": self.select,
                "min_channels": self.min_channels,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_aff")
class RetrofitImageClassifier(ImageClassifier):
    """KerasHub's `ImageClassifier` on a `RetrofitBackbone`.

    KerasHub finds the task class of a preset from its backbone class, so
    a classifier on a retrofitted backbone is this class; give it the
    original model's preprocessor (e.g. `ResNetImageClassifierPreprocessor`),
    which the preset keeps.

    It takes the arguments of `keras_hub.models.ImageClassifier`.

    Example:

    >>> import keras_hub
    >>> resnet = keras_hub.models.ResNetBackbone(
    ...     input_conv_filters=[64], input_conv_kernel_sizes=[3],
    ...     stackwise_num_filters=[64], stackwise_num_blocks=[1],
    ...     stackwise_num_strides=[1], block_type="basic_block",
    ...     image_shape=(32, 32, 3))
    >>> classifier = keras_aff.hub.RetrofitImageClassifier(
    ...     keras_aff.hub.retrofit_backbone(resnet, reduction_ratio=4), 5)
    >>> tuple(classifier(np.zeros((1, 32, 32, 3))).shape)
    (1, 5)
    """

    backbone_cls = RetrofitBackbone
    preprocessor_cls = ImageClassifierPreprocessor


def retrofit_backbone(backbone, fusion="aff", reduction_ratio=16, **kwargs):
    """AFF / iAFF in place of the residual additions of a KerasHub
    backbone; the result is a KerasHub backbone (`RetrofitBackbone`).

    Args:
        backbone: a KerasHub `FeaturePyramidBackbone`, e.g. from
            `keras_hub.models.ResNetBackbone.from_preset(...)`.
        fusion: "aff" (default) or "iaff".
        reduction_ratio: int, default 16.
        **kwargs: `select`, `min_channels`, `dtype`, `name` (see
            `RetrofitBackbone`).

    Returns:
        A `RetrofitBackbone` that starts as the same function; its
        `report` is the `keras_aff.models.RetrofitReport`.

    Example:

    >>> import keras_hub
    >>> resnet = keras_hub.models.ResNetBackbone(
    ...     input_conv_filters=[64], input_conv_kernel_sizes=[3],
    ...     stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
    ...     stackwise_num_strides=[1, 2], block_type="bottleneck_block",
    ...     image_shape=(32, 32, 3))
    >>> aff = keras_aff.hub.retrofit_backbone(resnet, fusion="iaff")
    >>> len(aff.report.replaced)
    2
    """
    return RetrofitBackbone(
        backbone, fusion=fusion, reduction_ratio=reduction_ratio, **kwargs
    )
