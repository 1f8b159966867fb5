"""AFF-ResNet-32 and AFF-ResNeXt-38 / -47 32x4d (CIFAR), as the official code
builds them.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

from keras_aff._validation import check_int
from keras_aff.models import _blocks
from keras_aff.models._blocks import XAVIER
from keras_aff.models._setup import Family
from keras_aff.models._setup import finish
from keras_aff.models._setup import setup
from keras_aff.models.registry import CIFAR100
from keras_aff.models.registry import register_model

RESNEXT_STAGES = {
    "stage_channels": (256, 512, 1024),
    "stage_strides": (1, 2, 4),
}


def _cifar_family(base_name, num_stages):
    return Family(
        num_stages=num_stages,
        default_size=32,
        min_size=4,
        base_name=base_name,
        plain_name=base_name,
    )


def preact_block(x, opts, channels, stride, project, fusion, name):
    """The official `AFFResBlockV2`: BN, ReLU, 3x3 conv, BN, ReLU, 3x3 conv;
    the output is `fusion(residual, shortcut)` with no ReLU after it. A
    projecting shortcut is AvgPool(stride) -> 1x1 conv (no BN) on the raw
    block input."""
    shortcut = x
    if project:
        shortcut = _blocks.down_pool(x, stride, name=f"{name}_down_pool")
        shortcut = _blocks.conv(
            shortcut, opts, channels, 1, f"{name}_down_conv"
        )
    out = _blocks.batch_norm(x, opts, f"{name}_bn1")
    out = _blocks.relu(out, f"{name}_relu1")
    out = _blocks.conv(out, opts, channels, 3, f"{name}_conv1", strides=stride)
    out = _blocks.batch_norm(out, opts, f"{name}_bn2")
    out = _blocks.relu(out, f"{name}_relu2")
    out = _blocks.conv(out, opts, channels, 3, f"{name}_conv2")
    # No ReLU follows, so the fusion itself is the block output (named
    # `_out`, as keras.applications names the Add of a pre-activation
    # block).
    return _blocks.fuse(out, shortcut, opts, fusion, f"{name}_out")


def cifar_resnet(
    arguments, blocks_per_stage=5, widths=(64, 128, 256), stem_width=64
):
    """The family builder: the official `CIFARAFFResNet` (pre-activation),
    depth 6 * blocks_per_stage + 2 for three stages, from the public
    builder's `arguments` (a dict with every argument of `AFFResNet32`)."""
    blocks_per_stage = check_int("blocks_per_stage", blocks_per_stage, 1)
    depth = 2 * len(widths) * blocks_per_stage + 2
    opts = setup(arguments, _cifar_family(f"resnet{depth}", len(widths)))

    # Stem: a BatchNorm without scale and center normalises the raw image.
    x = _blocks.batch_norm(
        opts.img_input, opts, "stem_bn", scale=False, center=False
    )
    x = _blocks.conv(x, opts, stem_width, 3, "stem_conv")

    in_channels = stem_width
    for s, block, stride, fusion, block_name in _blocks.stage_blocks(
        opts, (blocks_per_stage,) * len(widths)
    ):
        channels = widths[s - 1]
        x = preact_block(
            x,
            opts,
            channels,
            stride=stride,
            project=block == 1 and channels != in_channels,
            fusion=fusion,
            name=block_name,
        )
        in_channels = channels

    # Pre-activation head: BN + ReLU belong to the backbone (as in
    # keras.applications' ResNetV2), so `include_top=False` keeps them.
    x = _blocks.batch_norm(x, opts, "post_bn")
    x = _blocks.relu(x, "post_relu")
    return finish(opts, x)


def cifar_resnext(arguments, blocks_per_stage, stem_width=64):
    """The family builder: the official `CIFARAFFResNeXt` (32x4d, three
    stages, depth 9 * blocks_per_stage + 2), from the public builder's
    `arguments` (a dict with every argument of `AFFResNeXt38`)."""
    blocks_per_stage = check_int("blocks_per_stage", blocks_per_stage, 1)
    depth = 9 * blocks_per_stage + 2
    opts = setup(arguments, _cifar_family(f"resnext{depth}_32x4d", 3))

    x = _blocks.conv(opts.img_input, opts, stem_width, 3, "stem_conv")
    x = _blocks.batch_norm(x, opts, "stem_bn")
    x = _blocks.relu(x, "stem_relu")
    for s, block, stride, fusion, block_name in _blocks.stage_blocks(
        opts, (blocks_per_stage,) * 3
    ):
        x = _blocks.bottleneck(
            x,
            opts,
            stem_width * 2 ** (s - 1),
            stride=stride,
            project=block == 1,
            avg_down=True,
            fusion=fusion,
            name=block_name,
        )
    return finish(opts, x)


@register_model(
    "aff_resnet32",
    trainable_params=7_897_156,
    total_params=7_917_450,
    readme_params_m=7.9,
    stage_channels=(64, 128, 256),
    stage_strides=(1, 2, 4),
    **CIFAR100,
)
def AFFResNet32(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=100,
    classifier_activation="softmax",
    name=None,
    fusion="aff",
    fusion_stages=(1, 2, 3),
    reduction_ratio=4,
    kernel_initializer=XAVIER,
    bn_synchronized=False,
):
    """AFF-ResNet-32 (CIFAR-100; 7.9M parameters in the official README).

    The official CIFAR network (`model/classification.py::CIFARAFFResNet`
    of YimianDai/open-aff, `--blocks 5 --channel-times 4`). Stem: BatchNorm
    without scale and center, then a 3x3 conv 3->64. Three stages of 5
    pre-activation blocks (BN, ReLU, 3x3 conv, BN, ReLU, 3x3 conv), widths
    64/128/256, strides 1/2/2; when the width changes the shortcut is
    AvgPool(2) -> 1x1 conv (no BN) on the raw block input. Each block
    outputs `fusion(residual, shortcut)` (AFF with output scale 2, ratio 4,
    in every stage; no ReLU after it). Head: BN, ReLU, global average
    pool, Dense. Depth 32 = 15 blocks x 2 convs + the stem conv + the
    classifier.

    Args:
        include_top: bool, default True. Whether to include the classifier
            (global average pool + `classes`-way Dense).
        weights: None (random initialization, the default), the path to
            a weights file (`.weights.h5`) saved from this architecture,
            or the path to the official MXNet `.params` file of this
            network (recognised by its content; `classes` must match its
            classifier; see `keras_aff.interop.load_mxnet_params`). No
            pretrained weights are downloaded.
        input_tensor: optional symbolic tensor (output of `keras.Input`) to
            use as the image input.
        input_shape: optional shape tuple, default (32, 32, 3) ((3, 32, 32)
            with channels_first). Height and width may be None; known sizes
            must be at least 4.
        pooling: None, "avg" or "max": pooling of the last feature map when
            `include_top=False` (ignored otherwise).
        classes: int, default 100. Number of classes when
            `include_top=True`.
        classifier_activation: activation of the top layer, default
            "softmax"; None returns logits.
        name: model name; default "aff_resnet32" ("iaff_resnet32" for
            `fusion="iaff"`, "resnet32" for `fusion="add"`).
        fusion: "aff", "iaff" or "add" (default "aff"). "add" gives the
            plain baseline from the same code; "iaff" the iAFF variant.
        fusion_stages: stages (1-3) whose blocks fuse with `fusion`,
            default (1, 2, 3) (the official `start_layer=1`).
        reduction_ratio: int, default 4. Attention bottleneck ratio.
        kernel_initializer: initializer of every conv and Dense kernel,
            default "glorot_uniform" (the official `mx.init.Xavier()`).
        bn_synchronized: bool, default False. Passed to every
            BatchNormalization of the network (the backbone's and the
            fusion layers') as `synchronized`: under a TensorFlow
            `tf.distribute` strategy the batch statistics are computed
            over all replicas. On JAX a `keras.distribution.DataParallel`
            step already sees the global batch (see "Scaling out").

    Returns:
        A `keras.Model`. Its stage outputs are the layers
        `stage{s}_block5_out` (see `keras_aff.models.feature_model`);
        `include_top=False` keeps the final BN + ReLU, as ResNetV2 does.

    Example:

    >>> model = keras_aff.models.AFFResNet32()
    >>> model.output.shape
    (None, 100)
    >>> probs = model(np.zeros((2, 32, 32, 3), "float32"), training=False)
    >>> keras.ops.convert_to_numpy(probs).sum(axis=-1).round(4)
    array([1., 1.], dtype=float32)

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """
    return cifar_resnet(locals())


@register_model(
    "aff_resnext38_32x4d",
    trainable_params=7_770_148,
    total_params=7_832_996,
    readme_params_m=7.8,
    **RESNEXT_STAGES,
    **CIFAR100,
)
def AFFResNeXt38(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=100,
    classifier_activation="softmax",
    name=None,
    fusion="aff",
    fusion_stages=(1, 2, 3),
    reduction_ratio=16,
    zero_init_residual=True,
    kernel_initializer=XAVIER,
    bn_synchronized=False,
):
    """AFF-ResNeXt-38 32x4d (CIFAR-100; 7.8M parameters in the official
    README).

    The official CIFAR network (`model/classification.py::CIFARAFFResNeXt`
    of YimianDai/open-aff, `--blocks 4 --channel-times 4`). Stem: 3x3 conv
    3->64, BN, ReLU (no pool). Three stages of 4 ResNeXt blocks (1x1 ->
    grouped 3x3, 32 groups, group widths 128/256/512 -> 1x1 to
    256/512/1024), strides 1/2/2; the first block of each stage projects
    its shortcut (AvgPool(stride) -> 1x1 conv -> BN). Each block ends with
    `ReLU(fusion(residual, shortcut))` (AFF with output scale 2, ratio 16,
    in every stage); the last BN of each block starts with gamma = 0.
    Head: global average pool, Dense.

    Arguments: those of `keras_aff.models.AFFResNet32` (default name
    "aff_resnext38_32x4d", "resnext38_32x4d" for `fusion="add"`;
    `reduction_ratio` default 16), and `zero_init_residual`.

    Args:
        zero_init_residual: bool, default True. Start the last BN gamma of
            each block at 0 (the official CIFAR ResNeXt always does).

    Returns:
        A `keras.Model`. Its stage outputs are the layers
        `stage{s}_block4_out` (see `keras_aff.models.feature_model`).

    Example:

    >>> model = keras_aff.models.AFFResNeXt38(include_top=False)
    >>> model.output.shape
    (None, 8, 8, 1024)

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """
    return cifar_resnext(locals(), blocks_per_stage=4)


@register_model(
    "aff_resnext47_32x4d",
    trainable_params=9_605_828,
    total_params=9_683_460,
    readme_params_m=9.7,
    **RESNEXT_STAGES,
    **CIFAR100,
)
def AFFResNeXt47(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=100,
    classifier_activation="softmax",
    name=None,
    fusion="aff",
    fusion_stages=(1, 2, 3),
    reduction_ratio=16,
    zero_init_residual=True,
    kernel_initializer=XAVIER,
    bn_synchronized=False,
):
    """AFF-ResNeXt-47 32x4d (CIFAR-100; 9.7M parameters in the official
    README).

    The network of `keras_aff.models.AFFResNeXt38` with 5 blocks per stage
    (`--blocks 5 --channel-times 4`).

    Arguments: those of `keras_aff.models.AFFResNeXt38`, with the default
    name "aff_resnext47_32x4d" ("resnext47_32x4d" for `fusion="add"`).

    Returns:
        A `keras.Model`. Its stage outputs are the layers
        `stage{s}_block5_out` (see `keras_aff.models.feature_model`).

    Example:

    >>> model = keras_aff.models.AFFResNeXt47(pooling="avg",
    ...                                      include_top=False)
    >>> model.output.shape
    (None, 1024)

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """
    return cifar_resnext(locals(), blocks_per_stage=5)
