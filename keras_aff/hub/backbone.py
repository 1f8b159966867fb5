"""The paper's networks as KerasHub backbones (`AFFBackbone`).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras
from keras_hub.models import FeaturePyramidBackbone

from keras_aff import models
from keras_aff._validation import check_choice
from keras_aff._validation import check_data_format
from keras_aff._validation import check_one_of_types
from keras_aff._validation import received
from keras_aff.hub import _layouts
from keras_aff.hub._scope import building_with


def _image_shape(value, data_format):
    if value is None:
        value = (
            (3, None, None)
            if data_format == "channels_first"
            else (
                None,
                None,
                3,
            )
        )
    check_one_of_types(
        "image_shape", value, (tuple, list), "a tuple (height, width, 3)"
    )
    if len(value) != 3:
        raise ValueError(
            "Expected `image_shape` to be (height, width, channels), without "
            "the batch size. " + received("image_shape", value)
        )
    return tuple(None if d is None else int(d) for d in value)


@keras.saving.register_keras_serializable(package="keras_aff")
class AFFBackbone(FeaturePyramidBackbone):
    """A network of `keras_aff.models` as a KerasHub backbone.

    The feature extractor of the registered network `architecture` (the
    functional network with `include_top=False`, built by its own builder
    and holding the same layers, hence the same weights in the same order:
    `backbone.set_weights(network.get_weights())` copies a functional
    network in). Its output is the last feature map; `pyramid_outputs`
    holds the output of every stage by pyramid level ("P{level}": stride
    `2**level`): P2-P5 for the ImageNet networks, P0-P2 for the CIFAR
    ones. `keras_aff.hub.backbone(name)` makes one from a registry name.

    Args:
        architecture: str, a name of `keras_aff.models.list_models()`, e.g.
            "iaff_resnet50" or "aff_resnet32": the layout (depth, widths,
            cardinality, stem).
        fusion: "aff", "iaff" or "add"; default that of `architecture`.
        fusion_stages: stages whose blocks fuse with `fusion`; default
            that of `architecture` ((3, 4) ImageNet, (1, 2, 3) CIFAR).
        reduction_ratio: int; default that of `architecture` (16 ImageNet,
            4 CIFAR).
        blocks_per_stage: tuple of ints, blocks of each stage; default
            that of `architecture` ((3, 4, 6, 3) ImageNet, (5, 5, 5)
            AFF-ResNet-32, ...). Fewer blocks give a shallower network of
            the same family (the CIFAR families take equal counts).
        image_shape: tuple, the input shape without the batch size; default
            (None, None, 3) ((3, None, None) channels first). Known sizes
            must be at least 32 (ImageNet networks) or 4 (CIFAR).
        data_format: "channels_last" or "channels_first"; default
            `keras.config.image_data_format()`.
        dtype: dtype policy of every layer; default the global policy.
        **kwargs: `name`, `trainable` (as `keras.Model`).

    Example:

    >>> backbone = keras_aff.hub.AFFBackbone("aff_resnet32",
    ...                                     image_shape=(32, 32, 3))
    >>> for level, x in backbone.pyramid_outputs.items():
    ...     print(level, x.shape)
    P0 (None, 32, 32, 64)
    P1 (None, 16, 16, 128)
    P2 (None, 8, 8, 256)
    >>> backbone.output.shape
    (None, 8, 8, 256)
    """

    def __init__(
        self,
        architecture,
        fusion=None,
        fusion_stages=None,
        reduction_ratio=None,
        blocks_per_stage=None,
        image_shape=None,
        data_format=None,
        dtype=None,
        **kwargs,
    ):
        architecture = check_choice(
            "architecture", architecture, models.list_models()
        )
        if fusion is None:
            fusion = _layouts.default_argument(architecture, "fusion")
        if fusion_stages is None:
            fusion_stages = _layouts.default_argument(
                architecture, "fusion_stages"
            )
        if reduction_ratio is None:
            reduction_ratio = _layouts.default_argument(
                architecture, "reduction_ratio"
            )
        blocks_per_stage = _layouts.check_blocks(architecture, blocks_per_stage)
        data_format = check_data_format(data_format)
        image_shape = _image_shape(image_shape, data_format)

        # === Functional Model ===
        with building_with(dtype, data_format):
            network = _layouts.build(
                architecture,
                blocks_per_stage,
                include_top=False,
                input_shape=image_shape,
                fusion=fusion,
                fusion_stages=fusion_stages,
                reduction_ratio=reduction_ratio,
            )
            pyramid_outputs = models.pyramid_outputs(network)
        super().__init__(
            inputs=network.inputs[0],
            outputs=network.outputs[0],
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.architecture = architecture
        self.fusion = fusion
        self.fusion_stages = tuple(sorted(set(fusion_stages)))
        self.reduction_ratio = reduction_ratio
        self.blocks_per_stage = blocks_per_stage
        self.image_shape = image_shape
        self.data_format = data_format
        self.pyramid_outputs = pyramid_outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "architecture": self.architecture,
                "fusion": self.fusion,
                "fusion_stages": list(self.fusion_stages),
                "reduction_ratio": self.reduction_ratio,
                "blocks_per_stage": list(self.blocks_per_stage),
                "image_shape": self.image_shape,
                "data_format": self.data_format,
            }
        )
        return config


def backbone(name, **kwargs):
    """The KerasHub backbone of the registered network `name`.

    Args:
        name: a name of `keras_aff.models.list_models()`.
        **kwargs: the other arguments of `keras_aff.hub.AFFBackbone`
            (`image_shape`, `fusion`, `dtype`, ...).

    Returns:
        An `AFFBackbone`.

    Example:

    >>> net = keras_aff.hub.backbone("iaff_resnet50", image_shape=(64, 64, 3))
    >>> net.fusion, list(net.pyramid_outputs)
    ('iaff', ['P2', 'P3', 'P4', 'P5'])
    """
    return AFFBackbone(name, **kwargs)
