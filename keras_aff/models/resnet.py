"""AFF-ResNet-50 and iAFF-ResNet-50 (ImageNet), as the official code builds
them.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

from keras_aff.models import _blocks
from keras_aff.models._blocks import MSRA_PRELU
from keras_aff.models._setup import Family
from keras_aff.models._setup import finish
from keras_aff.models._setup import setup
from keras_aff.models.registry import IMAGENET
from keras_aff.models.registry import register_model

RESNET50D = Family(
    num_stages=4,
    default_size=224,
    min_size=32,
    base_name="resnet50",
    plain_name="resnet50d",
)
IMAGENET_STAGES = {
    "stage_channels": (256, 512, 1024, 2048),
    "stage_strides": (4, 8, 16, 32),
}


def resnet_d(
    arguments,
    family=RESNET50D,
    stem_width=32,
    cardinality=1,
    bottleneck_width=64,
    blocks_per_stage=(3, 4, 6, 3),
):
    """The family builder of the official ImageNet networks (`AFFResNet`
    and `AFFResNeXt`), from the public builder's `arguments`: the ResNet-D
    layout, a deep stem of `stem_width` and bottleneck blocks whose
    projecting shortcuts average-pool before the 1x1 conv. The defaults
    give ResNet V1b bottlenecks (one group of full width, stride on the
    3x3); `cardinality=32, bottleneck_width=4` ResNeXt 32x4d blocks."""
    opts = setup(arguments, family)
    x = _blocks.deep_stem(opts.img_input, opts, stem_width)
    for s, block, stride, fusion, block_name in _blocks.stage_blocks(
        opts, blocks_per_stage
    ):
        x = _blocks.bottleneck(
            x,
            opts,
            64 * 2 ** (s - 1),
            stride=stride,
            project=block == 1,
            # Stage 1 projects with a plain 1x1 conv (official
            # `avg_down=False if i == 0`; at stride 1 the pool would be
            # the identity anyway).
            avg_down=s > 1,
            fusion=fusion,
            name=block_name,
            cardinality=cardinality,
            bottleneck_width=bottleneck_width,
        )
    return finish(opts, x)


@register_model(
    "aff_resnet50",
    trainable_params=30_373_192,
    total_params=30_478_664,
    readme_params_m=30.3,
    readme_top1_err=20.3,
    **IMAGENET,
    **IMAGENET_STAGES,
)
def AFFResNet50(
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
    """AFF-ResNet-50 (ImageNet; 30.3M parameters in the official README).

    The official ImageNet network (`model/classification.py::AFFResNet` of
    YimianDai/open-aff): a ResNet-50-D. Deep stem (3x3/2 conv 3->32, BN,
    ReLU; 3x3 conv 32->32, BN, ReLU; 3x3 conv 32->64, BN, ReLU; 3x3/2
    max-pool), then 3/4/6/3 V1b bottlenecks (stride on the 3x3) of widths
    64/128/256/512 (outputs x4). The first block of every stage projects
    the shortcut with AvgPool(stride) -> 1x1 conv -> BN. Each block ends
    with `ReLU(fusion(residual, shortcut))`; the fusion is AFF (output
    scale 2, as the official code) in `fusion_stages` (default stages 3
    and 4, the official `start_layer=3`) and plain addition elsewhere. The
    last BN of every block starts with gamma = 0 (`--last-gamma`). Strided
    convs and pools pad symmetrically, as the official code does.

    Args:
        include_top: bool, default True. Whether to include the global
            average pool and the `classes`-way Dense classifier.
        weights: None (random initialization, the default), the path to
            a weights file (`.weights.h5`) saved from this architecture,
            or the path to the official MXNet `.params` file of this
            network (recognised by its content; `classes` must match its
            classifier; see `keras_aff.interop.load_mxnet_params`). No
            pretrained weights are downloaded.
        input_tensor: optional symbolic tensor (output of `keras.Input`) to
            use as the image input.
        input_shape: optional shape tuple, default (224, 224, 3) ((3, 224,
            224) with channels_first). Height and width may be None; known
            sizes must be at least 32.
        pooling: None, "avg" or "max": pooling of the last feature map when
            `include_top=False` (ignored otherwise).
        classes: int, default 1000. Number of classes when
            `include_top=True`.
        classifier_activation: activation of the top layer, default
            "softmax"; None returns logits.
        name: model name; default "aff_resnet50" ("iaff_resnet50" for
            `fusion="iaff"`, "resnet50d" for `fusion="add"`).
        fusion: "aff", "iaff" or "add" (default "aff"). "add" gives the
            plain ResNet-50-D baseline from the same code.
        fusion_stages: stages (1-4) whose blocks fuse with `fusion`,
            default (3, 4).
        reduction_ratio: int, default 16. Attention bottleneck ratio.
        zero_init_residual: bool, default True. Start the last BN gamma of
            each block at 0.
        kernel_initializer: initializer of every conv and Dense kernel,
            default the official `mx.init.MSRAPrelu()` (Gaussian, variance
            2 / (1 + 0.25**2) / fan_avg).
        bn_synchronized: bool, default False. Passed to every
            BatchNormalization of the network (the backbone's and the
            fusion layers') as `synchronized`: under a TensorFlow
            `tf.distribute` strategy the batch statistics are computed
            over all replicas. On JAX a `keras.distribution.DataParallel`
            step already sees the global batch (see "Scaling out").

    Returns:
        A `keras.Model`. Its stage outputs are the layers
        `stage{s}_block{last}_out` (see `keras_aff.models.feature_model`).

    Example:

    >>> model = keras_aff.models.AFFResNet50(input_shape=(64, 64, 3))
    >>> model.output.shape
    (None, 1000)
    >>> model.get_layer("stage3_block1_aff").output_scale
    2.0

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """
    return resnet_d(locals())


@register_model(
    "iaff_resnet50",
    trainable_params=35_170_120,
    total_params=35_327_816,
    readme_params_m=35.1,
    readme_top1_err=20.2,
    **IMAGENET,
    **IMAGENET_STAGES,
)
def IAFFResNet50(
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
    """iAFF-ResNet-50 (ImageNet; 35.1M parameters in the official README).

    The network of `keras_aff.models.AFFResNet50` with iAFF (two attention
    stages, output scale 1, as the official code) in place of AFF in
    `fusion_stages` (default stages 3 and 4).

    Arguments: those of `keras_aff.models.AFFResNet50`, with the defaults
    `fusion="iaff"` and `name="iaff_resnet50"`.

    Returns:
        A `keras.Model`. Its stage outputs are the layers
        `stage{s}_block{last}_out` (see `keras_aff.models.feature_model`).

    Example:

    >>> model = keras_aff.models.IAFFResNet50(
    ...     include_top=False, pooling="max", input_shape=(64, 64, 3))
    >>> model.name, model.output.shape
    ('iaff_resnet50', (None, 2048))

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """
    return resnet_d(locals())
