"""AFF-ResNet-32 and AFF-ResNeXt-38 / -47 32x4d (CIFAR), as the official code
builds them.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

from keras_aff.models import _common as C
from keras_aff.models.resnext import resnext_block


def _preact_block(
    x, channels, stride, project, fusion, reduction_ratio, cfg, name
):
    """The official `AFFResBlockV2`: BN, ReLU, 3x3 conv, BN, ReLU, 3x3 conv;
    the output is `fusion(residual, shortcut)` with no ReLU after it. A
    projecting shortcut is AvgPool(stride) -> 1x1 conv (no BN) on the raw
    block input."""
    init = cfg["init"]
    shortcut = x
    if project:
        shortcut = C.avg_down(x, stride, name=f"{name}_down_pool")
        shortcut = C.conv(shortcut, channels, 1, f"{name}_down_conv", init)
    out = C.batch_norm(x, f"{name}_bn1")
    out = C.relu(out, f"{name}_relu1")
    out = C.conv(out, channels, 3, f"{name}_conv1", init, strides=stride)
    out = C.batch_norm(out, f"{name}_bn2")
    out = C.relu(out, f"{name}_relu2")
    out = C.conv(out, channels, 3, f"{name}_conv2", init)
    # No ReLU follows, so the fusion itself is the block output (named
    # `_out`, as keras.applications names the Add of a pre-activation
    # block).
    return C.fuse(out, shortcut, fusion, f"{name}_out", reduction_ratio, init)


def _cifar_resnet(blocks_per_stage, widths, stem_width, name, **common):
    """The family builder: the official `CIFARAFFResNet` (pre-activation)."""
    C.validate_positive_int("blocks_per_stage", blocks_per_stage)
    b = C.setup(num_stages=len(widths), default_size=32, min_size=4, **common)

    # Stem: a BatchNorm without scale and center normalises the raw image.
    x = C.batch_norm(b.img_input, "stem_bn", scale=False, center=False)
    x = C.conv(x, stem_width, 3, "stem_conv", b.init)

    in_channels = stem_width
    for s, block, stride, fusion, block_name in C.stage_blocks(
        (blocks_per_stage,) * len(widths), b.fusion, b.fusion_stages
    ):
        channels = widths[s - 1]
        x = _preact_block(
            x,
            channels,
            stride=stride,
            project=block == 1 and channels != in_channels,
            fusion=fusion,
            reduction_ratio=b.reduction_ratio,
            cfg=b.cfg,
            name=block_name,
        )
        in_channels = channels

    # Pre-activation head: BN + ReLU belong to the backbone (as in
    # keras.applications' ResNetV2), so `include_top=False` keeps them.
    x = C.batch_norm(x, "post_bn")
    x = C.relu(x, "post_relu")
    return b.finish(x, name)


def _cifar_resnext(
    blocks_per_stage,
    cardinality,
    bottleneck_width,
    stem_width,
    zero_init_residual,
    name,
    **common,
):
    """The family builder: the official `CIFARAFFResNeXt`."""
    C.validate_positive_int("blocks_per_stage", blocks_per_stage)
    b = C.setup(
        num_stages=3,
        default_size=32,
        min_size=4,
        zero_init_residual=zero_init_residual,
        **common,
    )

    x = C.conv(b.img_input, stem_width, 3, "stem_conv", b.init)
    x = C.batch_norm(x, "stem_bn")
    x = C.relu(x, "stem_relu")
    for s, block, stride, fusion, block_name in C.stage_blocks(
        (blocks_per_stage,) * 3, b.fusion, b.fusion_stages
    ):
        x = resnext_block(
            x,
            stem_width * 2 ** (s - 1),
            stride=stride,
            project=block == 1,
            avg_down=True,
            fusion=fusion,
            reduction_ratio=b.reduction_ratio,
            cardinality=cardinality,
            bottleneck_width=bottleneck_width,
            cfg=b.cfg,
            name=block_name,
        )
    return b.finish(x, name)


_COMMON_ARGS = """
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
        name: model name; default "{default_name}" ("{plain_name}" for
            `fusion="add"`).
        fusion: "aff", "iaff" or "add" (default "aff"). "add" gives the
            plain baseline from the same code; "iaff" the iAFF variant.
        fusion_stages: stages (1-3) whose blocks fuse with `fusion`,
            default (1, 2, 3) (the official `start_layer=1`).
        reduction_ratio: int, default {ratio}. Attention bottleneck ratio.
"""


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
    kernel_initializer=C.XAVIER,
):
    return _cifar_resnet(
        blocks_per_stage=5,
        widths=(64, 128, 256),
        stem_width=64,
        fusion=fusion,
        fusion_stages=fusion_stages,
        reduction_ratio=reduction_ratio,
        kernel_initializer=kernel_initializer,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name or C.default_name(fusion, "resnet32", "resnet32"),
    )


def _cifar_resnext_wrapper(depth, blocks):
    def builder(
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
        kernel_initializer=C.XAVIER,
    ):
        return _cifar_resnext(
            blocks_per_stage=blocks,
            fusion=fusion,
            fusion_stages=fusion_stages,
            reduction_ratio=reduction_ratio,
            cardinality=32,
            bottleneck_width=4,
            stem_width=64,
            zero_init_residual=zero_init_residual,
            kernel_initializer=kernel_initializer,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name
            or C.default_name(
                fusion, f"resnext{depth}_32x4d", f"resnext{depth}_32x4d"
            ),
        )

    return builder


AFFResNeXt38 = _cifar_resnext_wrapper(38, 4)
AFFResNeXt38.__name__ = AFFResNeXt38.__qualname__ = "AFFResNeXt38"
AFFResNeXt47 = _cifar_resnext_wrapper(47, 5)
AFFResNeXt47.__name__ = AFFResNeXt47.__qualname__ = "AFFResNeXt47"

AFFResNet32.__doc__ = (
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
"""
    + _COMMON_ARGS.format(
        default_name="aff_resnet32", plain_name="resnet32", ratio=4
    )
    + """        kernel_initializer: initializer of every conv and Dense kernel,
            default "glorot_uniform" (the official `mx.init.Xavier()`).

    Returns:
        A `keras.Model`. Its stage outputs are the layers
        `stage{s}_block5_out` (see `keras_aff.models.feature_model`);
        `include_top=False` keeps the final BN + ReLU, as ResNetV2 does.

    Example:

    >>> model = keras_aff.models.AFFResNet32()
    >>> model.output.shape
    (None, 100)

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
"""
)

_RESNEXT_DOC = """AFF-ResNeXt-{depth} 32x4d (CIFAR-100; {params} parameters in
    the official README).

    The official CIFAR network (`model/classification.py::CIFARAFFResNeXt`
    of YimianDai/open-aff, `--blocks {blocks} --channel-times 4`). Stem:
    3x3 conv 3->64, BN, ReLU (no pool). Three stages of {blocks} ResNeXt
    blocks (1x1 -> grouped 3x3, 32 groups, group widths 128/256/512 ->
    1x1 to 256/512/1024), strides 1/2/2; the first block of each stage
    projects its shortcut (AvgPool(stride) -> 1x1 conv -> BN). Each block
    ends with `ReLU(fusion(residual, shortcut))` (AFF with output scale 2,
    ratio 16, in every stage); the last BN of each block starts with gamma
    = 0. Head: global average pool, Dense.
"""

AFFResNeXt38.__doc__ = (
    _RESNEXT_DOC.format(depth=38, params="7.8M", blocks=4)
    + _COMMON_ARGS.format(
        default_name="aff_resnext38_32x4d",
        plain_name="resnext38_32x4d",
        ratio=16,
    )
    + """        zero_init_residual: bool, default True. Start the last BN
            gamma of each block at 0 (the official CIFAR ResNeXt always
            does).
        kernel_initializer: initializer of every conv and Dense kernel,
            default "glorot_uniform" (the official `mx.init.Xavier()`).

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
)

AFFResNeXt47.__doc__ = (
    _RESNEXT_DOC.format(depth=47, params="9.7M", blocks=5)
    + _COMMON_ARGS.format(
        default_name="aff_resnext47_32x4d",
        plain_name="resnext47_32x4d",
        ratio=16,
    )
    + """        zero_init_residual: bool, default True. Start the last BN
            gamma of each block at 0 (the official CIFAR ResNeXt always
            does).
        kernel_initializer: initializer of every conv and Dense kernel,
            default "glorot_uniform" (the official `mx.init.Xavier()`).

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
)
