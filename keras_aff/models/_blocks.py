"""The building blocks of the paper backbones (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Convolution, BatchNorm, ReLU, pools, the stems, the fusion of a block and
the classification head, with the official code's constants. Every block
takes the checked `Options` of the network it belongs to (see
`keras_aff.models._setup`) and names its layers after the block, as
keras.applications does, so a builder argument that changes every conv or
every BatchNormalization is read in one place here.
"""

import copy

import keras

from keras_aff.layers import AFF
from keras_aff.layers import IAFF
from keras_aff.layers.gate import synchronized_bn

# The official MXNet code multiplies the AFF output by 2 ("the weights sum
# to 2, like x + y") and leaves the iAFF output unscaled.
OFFICIAL_OUTPUT_SCALE = {"aff": 2.0, "iaff": 1.0}

# `mx.init.MSRAPrelu()` (the official ImageNet initializer): Gaussian with
# variance 2 / (1 + 0.25**2) / fan_avg.
MSRA_PRELU = {
    "class_name": "VarianceScaling",
    "config": {
        "scale": 2.0 / (1.0 + 0.25**2),
        "mode": "fan_avg",
        "distribution": "untruncated_normal",
    },
}
# `mx.init.Xavier()` (the official CIFAR initializer) is Glorot uniform.
XAVIER = "glorot_uniform"

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def _fresh_initializer(opts):
    """A new initializer object per layer (a seeded one must not be
    shared), from the serialized `opts.kernel_initializer`."""
    return keras.initializers.get(copy.deepcopy(opts.kernel_initializer))


def channel_axis():
    if keras.config.image_data_format() == "channels_first":
        return 1
    return -1


def conv(x, opts, filters, kernel_size, name, strides=1, groups=1):
    """Bias-free conv. Stride 1 uses "same" (symmetric for odd kernels);
    a strided k x k conv pads k // 2 on every side explicitly, as the
    official `padding=1` does (Keras "same" pads only bottom/right on even
    sizes)."""
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        groups=groups,
        use_bias=False,
        kernel_initializer=_fresh_initializer(opts),
        name=name,
    )(x)


def batch_norm(x, opts, name, zero_gamma=False, scale=True, center=True):
    """The official BatchNorm (momentum 0.9, epsilon 1e-5); `zero_gamma`
    starts gamma at 0 (the last BN of a block, `--last-gamma`);
    `opts.bn_synchronized` asks for cross-replica statistics (see
    `keras_aff.layers.gate.synchronized_bn`)."""
    return keras.layers.BatchNormalization(
        axis=channel_axis(),
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        synchronized=synchronized_bn(opts.bn_synchronized),
        scale=scale,
        center=center,
        gamma_initializer="zeros" if zero_gamma else "ones",
        name=name,
    )(x)


def relu(x, name):
    return keras.layers.ReLU(name=name)(x)


def down_pool(x, stride, name):
    """AvgPool(kernel=stride, stride, ceil_mode=True, count_include_pad=
    False): TF's "same" pooling adds the partial window at the end and
    excludes the padding from the count, which is exactly that. A 1x1 pool
    is the identity and is left out."""
    if stride == 1:
        return x
    return keras.layers.AveragePooling2D(
        stride, strides=stride, padding="same", name=name
    )(x)


def max_pool_3x3_s2(x, name):
    """MaxPool(3, stride 2, pad 1). It always follows a ReLU, so zero padding
    equals the official -inf padding."""
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name=name)(x)


def deep_stem(x, opts, width):
    """The official ImageNet deep stem: 3x3/2 conv (width), 3x3 conv
    (width), 3x3 conv (2 * width), each followed by BN and ReLU, then a
    3x3/2 max-pool."""
    for i, (filters, strides) in enumerate(
        ((width, 2), (width, 1), (2 * width, 1)), start=1
    ):
        x = conv(x, opts, filters, 3, f"stem_conv{i}", strides=strides)
        x = batch_norm(x, opts, f"stem_bn{i}")
        x = relu(x, f"stem_relu{i}")
    return max_pool_3x3_s2(x, "stem_pool")


def stage_blocks(opts, blocks_per_stage):
    """Yields `(stage, block, stride, fusion, name)` for every block, stages
    and blocks counted from 1: the first block of stages 2+ has stride 2,
    and the fusion is `opts.fusion` in `opts.fusion_stages`, `"add"`
    elsewhere."""
    for s, num_blocks in enumerate(blocks_per_stage, start=1):
        stage_fusion = opts.fusion if s in opts.fusion_stages else "add"
        for b in range(1, num_blocks + 1):
            stride = 2 if s > 1 and b == 1 else 1
            yield s, b, stride, stage_fusion, f"stage{s}_block{b}"


def fuse(residual, shortcut, opts, fusion, name):
    """`fusion([residual, shortcut])`: the attention weight multiplies the
    residual branch, as the official `attention(out, identity)`."""
    if fusion == "add":
        return keras.layers.Add(name=name)([residual, shortcut])
    cls = AFF if fusion == "aff" else IAFF
    return cls(
        reduction_ratio=opts.reduction_ratio,
        output_scale=OFFICIAL_OUTPUT_SCALE[fusion],
        use_bias=True,
        bn_momentum=BN_MOMENTUM,
        bn_epsilon=BN_EPSILON,
        bn_synchronized=opts.bn_synchronized,
        kernel_initializer=copy.deepcopy(opts.kernel_initializer),
        name=name,
    )([residual, shortcut])


def bottleneck(
    x,
    opts,
    planes,
    stride,
    project,
    avg_down,
    fusion,
    name,
    cardinality=32,
    bottleneck_width=4,
):
    """The official `AFFResNeXtBlock`: 1x1 -> grouped 3x3 (stride here) ->
    1x1 to 4 * planes, ending in `ReLU(fusion(residual, shortcut))`.

    Group width = cardinality * floor(planes * bottleneck_width / 64). A
    projecting block's shortcut is [AvgPool(stride)] -> 1x1 conv -> BN (the
    pool only with `avg_down`; a 1x1 pool is the identity). Shared by the
    ImageNet and the CIFAR ResNeXts; with `cardinality=1` and
    `bottleneck_width=64` it is the ResNet V1b bottleneck (stride on the
    3x3) of the official `AFFResNet`.
    """
    group_width = cardinality * int(planes * bottleneck_width // 64)
    shortcut = x
    if project:
        down_stride = stride
        if avg_down:
            shortcut = down_pool(x, stride, name=f"{name}_down_pool")
            down_stride = 1
        shortcut = conv(
            shortcut,
            opts,
            planes * 4,
            1,
            f"{name}_down_conv",
            strides=down_stride,
        )
        shortcut = batch_norm(shortcut, opts, f"{name}_down_bn")
    out = conv(x, opts, group_width, 1, f"{name}_conv1")
    out = batch_norm(out, opts, f"{name}_bn1")
    out = relu(out, f"{name}_relu1")
    out = conv(
        out,
        opts,
        group_width,
        3,
        f"{name}_conv2",
        strides=stride,
        groups=cardinality,
    )
    out = batch_norm(out, opts, f"{name}_bn2")
    out = relu(out, f"{name}_relu2")
    out = conv(out, opts, planes * 4, 1, f"{name}_conv3")
    out = batch_norm(
        out, opts, f"{name}_bn3", zero_gamma=opts.zero_init_residual
    )
    out = fuse(out, shortcut, opts, fusion, f"{name}_{fusion}")
    return relu(out, f"{name}_out")


def head(x, opts):
    """The classifier (global average pool + Dense) with `include_top`,
    else the `pooling` of the last feature map (or none)."""
    if opts.include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return keras.layers.Dense(
            opts.classes,
            activation=opts.classifier_activation,
            kernel_initializer=_fresh_initializer(opts),
            name="predictions",
        )(x)
    if opts.pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if opts.pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x
