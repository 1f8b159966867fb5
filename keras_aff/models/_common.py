"""Shared pieces of the paper backbones (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Argument checks with the keras.applications signature, explicit symmetric
padding, the fusion factory (`"aff"`, `"iaff"`, `"add"`) and the
classification head. Every builder in `keras_aff.models` goes through these
helpers, so every model validates and names things the same way.
"""

import copy
import numbers
import os

import keras

from keras_aff.layers import AFF
from keras_aff.layers import IAFF

FUSIONS = ("aff", "iaff", "add")
POOLINGS = (None, "avg", "max")

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


# ---------------------------------------------------------------------------
# Argument validation
# ---------------------------------------------------------------------------
def validate_fusion(fusion):
    if fusion not in FUSIONS:
        raise ValueError(
            f"Expected `fusion` to be one of {FUSIONS}. "
            f"Received: fusion={fusion!r}"
        )
    return fusion


def validate_pooling(pooling):
    if pooling not in POOLINGS:
        raise ValueError(
            f"Expected `pooling` to be one of {POOLINGS}. "
            f"Received: pooling={pooling!r}"
        )
    return pooling


def validate_weights(weights):
    """`None` or the path of an existing weights file (`.weights.h5`, or
    an official MXNet `.params` file)."""
    if weights is None:
        return None
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if os.path.isfile(path):
            return path
        hint = ""
        if path in ("imagenet", "cifar100", "cifar10"):
            hint = (
                " No pretrained weights are downloaded by keras_aff: pass "
                "the path of the official MXNet `.params` file (from the "
                "official repository, YimianDai/open-aff) or of a "
                "`.weights.h5` file."
            )
        raise ValueError(
            "Expected `weights` to be None (random initialization) or the "
            f"path to an existing weights file.{hint} "
            f"Received: weights={weights!r}"
        )
    raise ValueError(
        "Expected `weights` to be None (random initialization) or the path "
        f"to an existing weights file. Received: weights={weights!r}"
    )


def validate_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(
            f"Expected `{name}` to be a bool. Received: {name}={value!r}"
        )
    return value


def validate_positive_int(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise ValueError(
            f"Expected `{name}` to be a positive integer. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def validate_fusion_stages(value, num_stages):
    try:
        stages = tuple(sorted(set(int(s) for s in value)))
    except (TypeError, ValueError):
        stages = None
    if stages is None or any(s < 1 or s > num_stages for s in stages):
        raise ValueError(
            "Expected `fusion_stages` to be a collection of stage numbers "
            f"between 1 and {num_stages}. Received: fusion_stages={value!r}"
        )
    return stages


def validate_classifier_activation(value):
    try:
        keras.activations.get(value)
    except (ValueError, TypeError) as e:
        raise ValueError(
            "Could not interpret `classifier_activation`. "
            f"Received: classifier_activation={value!r} ({e})"
        ) from None
    return value


def serialize_initializer(value):
    """Validates an initializer and returns its config (so that every layer
    can get a fresh object of its own)."""
    try:
        init = keras.initializers.get(value)
    except (ValueError, TypeError) as e:
        raise ValueError(
            "Could not interpret `kernel_initializer`. "
            f"Received: kernel_initializer={value!r} ({e})"
        ) from None
    return keras.initializers.serialize(init)


def fresh_initializer(config):
    return keras.initializers.get(copy.deepcopy(config))


def channel_axis():
    if keras.config.image_data_format() == "channels_first":
        return 1
    return -1


def resolve_input(input_tensor, input_shape, default_size, min_size):
    """Returns `(img_input, model_inputs)` as keras.applications does.

    `input_shape` defaults to `(default_size, default_size, 3)` (channels
    first when `keras.config.image_data_format()` says so). Spatial sizes
    may be None (the models end with global pooling); known sizes must be
    at least `min_size`.
    """
    channels_first = keras.config.image_data_format() == "channels_first"
    if input_tensor is not None:
        if not isinstance(input_tensor, keras.KerasTensor):
            raise ValueError(
                "Expected `input_tensor` to be a symbolic Keras tensor (e.g. "
                "the output of `keras.Input`). "
                f"Received: input_tensor={input_tensor!r}"
            )
        shape = tuple(input_tensor.shape[1:])
    elif input_shape is None:
        shape = (
            (3, default_size, default_size)
            if channels_first
            else (default_size, default_size, 3)
        )
    else:
        shape = input_shape
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise ValueError(
            "Expected `input_shape` to be a tuple of three integers "
            "(height, width, channels) (channels first with "
            "data_format='channels_first'). "
            f"Received: input_shape={input_shape!r}"
        )
    shape = tuple(shape)
    spatial = shape[1:] if channels_first else shape[:2]
    channels = shape[0] if channels_first else shape[2]
    if channels is None:
        raise ValueError(
            "The channel dimension of the input must be known. "
            f"Received: input_shape={shape}"
        )
    for d in spatial:
        if d is not None and d < min_size:
            raise ValueError(
                f"Input size must be at least {min_size}x{min_size}. "
                f"Received: input_shape={shape}"
            )
    if input_tensor is not None:
        return input_tensor, keras.utils.get_source_inputs(input_tensor)
    img_input = keras.Input(shape=shape, name="input_layer")
    return img_input, img_input


# ---------------------------------------------------------------------------
# Building blocks (each names its layers after the block)
# ---------------------------------------------------------------------------
def conv(x, filters, kernel_size, name, init, strides=1, groups=1):
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
        kernel_initializer=fresh_initializer(init),
        name=name,
    )(x)


def batch_norm(x, name, zero_gamma=False, scale=True, center=True):
    return keras.layers.BatchNormalization(
        axis=channel_axis(),
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        scale=scale,
        center=center,
        gamma_initializer="zeros" if zero_gamma else "ones",
        name=name,
    )(x)


def relu(x, name):
    return keras.layers.ReLU(name=name)(x)


def avg_down(x, stride, name):
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


def fuse(residual, shortcut, fusion, name, reduction_ratio, init):
    """`fusion([residual, shortcut])`: the attention weight multiplies the
    residual branch, as the official `attention(out, identity)`."""
    if fusion == "add":
        return keras.layers.Add(name=name)([residual, shortcut])
    cls = AFF if fusion == "aff" else IAFF
    return cls(
        reduction_ratio=reduction_ratio,
        output_scale=OFFICIAL_OUTPUT_SCALE[fusion],
        use_bias=True,
        bn_momentum=BN_MOMENTUM,
        bn_epsilon=BN_EPSILON,
        kernel_initializer=copy.deepcopy(init),
        name=name,
    )([residual, shortcut])


def fusion_name(block_name, fusion):
    return f"{block_name}_{fusion}"


def head(x, include_top, pooling, classes, classifier_activation, init):
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return keras.layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=fresh_initializer(init),
            name="predictions",
        )(x)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


class Build:
    """What `setup` checked and created for one family builder: the checked
    arguments as attributes (`fusion`, `fusion_stages`, `reduction_ratio`,
    `weights`, ...), `cfg` (the serialized kernel initializer `"init"`,
    and `"zero_gamma"` for the families that have the flag), `init`, and
    the image input (`img_input`, `inputs`)."""

    def __init__(self, **attributes):
        self.__dict__.update(attributes)

    def finish(self, x, name):
        """The classification head (or pooling) on `x`, then the model,
        with the weights file loaded when one was given."""
        x = head(
            x,
            self.include_top,
            self.pooling,
            self.classes,
            self.classifier_activation,
            self.init,
        )
        return finish(self.inputs, x, name, self.weights)


def setup(
    *,
    num_stages,
    default_size,
    min_size,
    fusion,
    fusion_stages,
    reduction_ratio,
    kernel_initializer,
    include_top,
    weights,
    input_tensor,
    input_shape,
    pooling,
    classes,
    classifier_activation,
    zero_init_residual=None,
):
    """Checks the arguments every family builder takes, then creates the
    image input. Returns a `Build`."""
    validate_fusion(fusion)
    weights = validate_weights(weights)
    validate_pooling(pooling)
    validate_bool("include_top", include_top)
    validate_positive_int("classes", classes)
    validate_classifier_activation(classifier_activation)
    fusion_stages = validate_fusion_stages(fusion_stages, num_stages)
    validate_positive_int("reduction_ratio", reduction_ratio)
    cfg = {"init": serialize_initializer(kernel_initializer)}
    if zero_init_residual is not None:
        validate_bool("zero_init_residual", zero_init_residual)
        cfg["zero_gamma"] = zero_init_residual
    img_input, inputs = resolve_input(
        input_tensor, input_shape, default_size=default_size, min_size=min_size
    )
    return Build(
        fusion=fusion,
        fusion_stages=fusion_stages,
        reduction_ratio=reduction_ratio,
        weights=weights,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        cfg=cfg,
        init=cfg["init"],
        img_input=img_input,
        inputs=inputs,
    )


def stage_blocks(blocks_per_stage, fusion, fusion_stages):
    """Yields `(stage, block, stride, fusion, name)` for every block, stages
    and blocks counted from 1: the first block of stages 2+ has stride 2,
    and the fusion is `fusion` in `fusion_stages`, `"add"` elsewhere."""
    for s, num_blocks in enumerate(blocks_per_stage, start=1):
        stage_fusion = fusion if s in fusion_stages else "add"
        for b in range(1, num_blocks + 1):
            stride = 2 if s > 1 and b == 1 else 1
            yield s, b, stride, stage_fusion, f"stage{s}_block{b}"


def deep_stem(x, width, init):
    """The official ImageNet deep stem: 3x3/2 conv (width), 3x3 conv
    (width), 3x3 conv (2 * width), each followed by BN and ReLU, then a
    3x3/2 max-pool."""
    for i, (filters, strides) in enumerate(
        ((width, 2), (width, 1), (2 * width, 1)), start=1
    ):
        x = conv(x, filters, 3, f"stem_conv{i}", init, strides=strides)
        x = batch_norm(x, f"stem_bn{i}")
        x = relu(x, f"stem_relu{i}")
    return max_pool_3x3_s2(x, "stem_pool")


def finish(inputs, outputs, name, weights):
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model, path):
    """A Keras weights file, or an official MXNet `.params` file
    (recognised by its content, whatever its extension)."""
    from keras_aff.interop import mxnet_format

    if mxnet_format.is_mxnet_params(path):
        from keras_aff.interop import load_mxnet_params

        load_mxnet_params(model, path)
    else:
        model.load_weights(path)


def default_name(fusion, base, plain):
    """`aff_<base>` / `iaff_<base>`, or `plain` for the addition baseline."""
    return plain if fusion == "add" else f"{fusion}_{base}"
