"""AFF-ResNeXt-50 32x4d and iAFF-ResNeXt-50 32x4d (ImageNet), as the
official code builds them.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

from keras_aff.models import _common as C


def resnext_block(
    x,
    planes,
    stride,
    project,
    avg_down,
    fusion,
    reduction_ratio,
    cardinality,
    bottleneck_width,
    cfg,
    name,
):
    """The official `AFFResNeXtBlock`: 1x1 -> grouped 3x3 (stride here) ->
    1x1 to 4 * planes, ending in `ReLU(fusion(residual, shortcut))`.

    Group width = cardinality * floor(planes * bottleneck_width / 64). A
    projecting block's shortcut is [AvgPool(stride)] -> 1x1 conv -> BN (the
    pool only with `avg_down`; a 1x1 pool is the identity). Shared by the
    ImageNet and the CIFAR ResNeXts.
    """
    init = cfg["init"]
    group_width = cardinality * int(planes * bottleneck_width // 64)
    shortcut = x
    if project:
        if avg_down:
            shortcut = C.avg_down(x, stride, name=f"{name}_down_pool")
            down_stride = 1
        else:
            down_stride = stride
        shortcut = C.conv(
            shortcut,
            planes * 4,
            1,
            f"{name}_down_conv",
            init,
            strides=down_stride,
        )
        shortcut = C.batch_norm(shortcut, f"{name}_down_bn")
    out = C.conv(x, group_width, 1, f"{name}_conv1", init)
    out = C.batch_norm(out, f"{name}_bn1")
    out = C.relu(out, f"{name}_relu1")
    out = C.conv(
        out,
        group_width,
        3,
        f"{name}_conv2",
        init,
        strides=stride,
        groups=cardinality,
    )
    out = C.batch_norm(out, f"{name}_bn2")
    out = C.relu(out, f"{name}_relu2")
    out = C.conv(out, planes * 4, 1, f"{name}_conv3", init)
    out = C.batch_norm(out, f"{name}_bn3", zero_gamma=cfg["zero_gamma"])
    out = C.fuse(
        out,
        shortcut,
        fusion,
        C.fusion_name(name, fusion),
        reduction_ratio,
        init,
    )
    return C.relu(out, f"{name}_out")


def _resnext(
    blocks_per_stage,
    cardinality,
    bottleneck_width,
    stem_width,
    zero_init_residual,
    name,
    **common,
):
    """The family builder: the official ImageNet `AFFResNeXt`."""
    b = C.setup(
        num_stages=len(blocks_per_stage),
        default_size=224,
        min_size=32,
        zero_init_residual=zero_init_residual,
        **common,
    )

    # Deep stem of width 64 (outputs 128 channels), then a 3x3/2 max-pool.
    x = C.deep_stem(b.img_input, stem_width, b.init)
    for s, block, stride, fusion, block_name in C.stage_blocks(
        blocks_per_stage, b.fusion, b.fusion_stages
    ):
        x = resnext_block(
            x,
            64 * 2 ** (s - 1),
            stride=stride,
            project=block == 1,
            # Stage 1 projects with a plain 1x1 conv (official
            # `avg_down=False if i == 0`).
            avg_down=s > 1,
            fusion=fusion,
            reduction_ratio=b.reduction_ratio,
            cardinality=cardinality,
            bottleneck_width=bottleneck_width,
            cfg=b.cfg,
            name=block_name,
        )
    return b.finish(x, name)


_SHARED_DOC = """
    The official ImageNet network (`model/classification.py::AFFResNeXt` of
    YimianDai/open-aff). Deep stem of width 64 (3x3/2 conv 3->64, BN, ReLU;
    3x3 conv 64->64, BN, ReLU; 3x3 conv 64->128, BN, ReLU; 3x3/2 max-pool),
    then 3/4/6/3 ResNeXt blocks: 1x1 -> grouped 3x3 (32 groups; group
    widths 128/256/512/1024; stride here) -> 1x1 to 256/512/1024/2048
    channels. The first block of every stage projects its shortcut (stage
    1: 1x1 conv + BN; stages 2-4: AvgPool(2) + 1x1 conv + BN). Each block
    ends with `ReLU(fusion(residual, shortcut))`; the fusion is
    {fusion_desc} in `fusion_stages` (default stages 3 and 4) and plain
    addition elsewhere. The last BN of every block starts with gamma = 0.

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
        name: model name; default "{default_name}" (for `fusion="add"`:
            "resnext50_32x4d").
        fusion: "aff", "iaff" or "add" (default "{fusion}"). "add" gives
            the plain ResNeXt-50 baseline from the same code.
        fusion_stages: stages (1-4) whose blocks fuse with `fusion`,
            default (3, 4).
        reduction_ratio: int, default 16. Attention bottleneck ratio.
        zero_init_residual: bool, default True. Start the last BN gamma of
            each block at 0 (the official ResNeXt always does).
        kernel_initializer: initializer of every conv and Dense kernel,
            default the official `mx.init.MSRAPrelu()`.

    Returns:
        A `keras.Model`. Its stage outputs are the layers
        `stage{{s}}_block{{last}}_out` (see `keras_aff.models.feature_model`).

    Example:

    >>> model = keras_aff.models.{public}(include_top=False, pooling="avg",
    ...                                   input_shape=(64, 64, 3))
    >>> model.output.shape
    (None, 2048)

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
"""


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
    kernel_initializer=C.MSRA_PRELU,
):
    return _resnext(
        blocks_per_stage=(3, 4, 6, 3),
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
        or C.default_name(fusion, "resnext50_32x4d", "resnext50_32x4d"),
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
    kernel_initializer=C.MSRA_PRELU,
):
    return _resnext(
        blocks_per_stage=(3, 4, 6, 3),
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
        or C.default_name(fusion, "resnext50_32x4d", "resnext50_32x4d"),
    )


AFFResNeXt50.__doc__ = (
    "AFF-ResNeXt-50 32x4d (ImageNet; 29.9M parameters in the official "
    "README).\n"
    + _SHARED_DOC.format(
        fusion="aff",
        fusion_desc="AFF (output scale 2, as the official code)",
        default_name="aff_resnext50_32x4d",
        public="AFFResNeXt50",
    )
)
IAFFResNeXt50.__doc__ = (
    "iAFF-ResNeXt-50 32x4d (ImageNet; 34.7M parameters in the official "
    "README).\n"
    + _SHARED_DOC.format(
        fusion="iaff",
        fusion_desc="iAFF (output scale 1, as the official code)",
        default_name="iaff_resnext50_32x4d",
        public="IAFFResNeXt50",
    )
)
