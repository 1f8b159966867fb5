"""AFF-ResNeXt-50 32x4d and iAFF-ResNeXt-50 32x4d (ImageNet), as the
official code builds them.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

from keras_aff.models._blocks import MSRA_PRELU
from keras_aff.models._setup import Family
from keras_aff.models.registry import IMAGENET
from keras_aff.models.registry import register_model
from keras_aff.models.resnet import IMAGENET_STAGES
from keras_aff.models.resnet import resnet_d

RESNEXT50 = Family(
    num_stages=4,
    default_size=224,
    min_size=32,
    base_name="resnext50_32x4d",
    plain_name="resnext50_32x4d",
)


def resnext(arguments):
    """The family builder: the official ImageNet `AFFResNeXt` (32x4d; a
    deep stem of width 64, outputs 128 channels), from the public
    builder's `arguments`."""
    return resnet_d(
        arguments, RESNEXT50, stem_width=64, cardinality=32, bottleneck_width=4
    )


@register_model(
    "aff_resnext50_32x4d",
    trainable_params=29_953_704,
    total_params=30_074_536,
    readme_params_m=29.9,
    readme_top1_err=None,
    **IMAGENET,
    **IMAGENET_STAGES,
)
def AFFResNeXt50(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    fusion="aff",
    fusion_stages=(3, 4),
    reduction_ratio=16,
    zero_init_residual=True,
    kernel_initializer=MSRA_PRELU,
    bn_synchronized=False,
):
    """AFF-ResNeXt-50 32x4d (ImageNet; 29.9M parameters in the official
    README).

    The official ImageNet network (`model/classification.py::AFFResNeXt` of
    YimianDai/open-aff). Deep stem of width 64 (3x3/2 conv 3->64, BN, ReLU;
    3x3 conv 64->64, BN, ReLU; 3x3 conv 64->128, BN, ReLU; 3x3/2 max-pool),
    then 3/4/6/3 ResNeXt blocks: 1x1 -> grouped 3x3 (32 groups; group
    widths 128/256/512/1024; stride here) -> 1x1 to 256/512/1024/2048
    channels. The first block of every stage projects its shortcut (stage
    1: 1x1 conv + BN; stages 2-4: AvgPool(2) + 1x1 conv + BN). Each block
    ends with `ReLU(fusion(residual, shortcut))`; the fusion is AFF (output
    scale 2, as the official code) in `fusion_stages` (default stages 3 and
    4) and plain addition elsewhere. The last BN of every block starts with
    gamma = 0 (the official ResNeXt always does).

    Arguments: those of `keras_aff.models.AFFResNet50`, with the default
    name "aff_resnext50_32x4d" ("iaff_resnext50_32x4d" for `fusion="iaff"`;
    "resnext50_32x4d", the plain ResNeXt-50 baseline, for `fusion="add"`).

    Returns:
        A `keras.Model`. Its stage outputs are the layers
        `stage{s}_block{last}_out` (see `keras_aff.models.feature_model`).

    Example:

    >>> model = keras_aff.models.AFFResNeXt50(
    ...     include_top=False, pooling="avg", input_shape=(64, 64, 3))
    >>> model.output.shape
    (None, 2048)
    >>> model.get_layer("stage4_block1_conv2").groups
    32

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """
    return resnext(locals())


@register_model(
    "iaff_resnext50_32x4d",
    trainable_params=34_750_632,
    total_params=34_923_688,
    readme_params_m=34.7,
    readme_top1_err=19.78,
    **IMAGENET,
    **IMAGENET_STAGES,
)
def IAFFResNeXt50(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    fusion="iaff",
    fusion_stages=(3, 4),
    reduction_ratio=16,
    zero_init_residual=True,
    kernel_initializer=MSRA_PRELU,
    bn_synchronized=False,
):
    """iAFF-ResNeXt-50 32x4d (ImageNet; 34.7M parameters in the official
    README).

    The network of `keras_aff.models.AFFResNeXt50` with iAFF (two attention
    stages, output scale 1, as the official code) in place of AFF in
    `fusion_stages` (default stages 3 and 4).

    Arguments: those of `keras_aff.models.AFFResNet50`, with the defaults
    `fusion="iaff"` and `name="iaff_resnext50_32x4d"`.

    Returns:
        A `keras.Model`. Its stage outputs are the layers
        `stage{s}_block{last}_out` (see `keras_aff.models.feature_model`).

    Example:

    >>> model = keras_aff.models.IAFFResNeXt50(input_shape=(64, 64, 3),
    ...                                        classes=10)
    >>> model.name, model.output.shape
    ('iaff_resnext50_32x4d', (None, 10))

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """
    return resnext(locals())
