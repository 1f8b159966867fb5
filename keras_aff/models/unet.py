"""AFF-UNet: a U-Net whose long-skip merges are AFF / iAFF.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras

from keras_aff import _validation
from keras_aff.models import _merge

DEFAULT_NAMES = {"aff": "aff_unet", "iaff": "iaff_unet", "add": "unet"}
MAX_DEPTH = 8


def _channel_axis():
    return 1 if keras.config.image_data_format() == "channels_first" else -1


def _check_input_shape(input_shape, depth):
    """(H, W, C) (channels first per the data format) with known channels
    and sizes, where known, divisible by 2**depth."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            "Expected `input_shape` to be a tuple of three integers or None "
            "(height, width, channels; channels first with "
            "data_format='channels_first'). "
            + _validation.received("input_shape", input_shape)
        )
    shape = tuple(input_shape)
    first = keras.config.image_data_format() == "channels_first"
    channels, spatial = (
        (shape[0], shape[1:]) if first else (shape[2], shape[:2])
    )
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(
            "Expected the channel dimension of `input_shape` to be a known "
            f"positive integer. Received: input_shape={shape}"
        )
    for d in spatial:
        if d is not None and (not isinstance(d, int) or d % 2**depth):
            raise ValueError(
                f"Expected the sizes in `input_shape` to be None or "
                f"multiples of 2**depth = {2**depth} (depth={depth}). "
                f"Received: input_shape={shape}"
            )
    return shape


def _block(x, filters, name):
    """(3x3 conv, BN, ReLU) x 2."""
    for i in (1, 2):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}"
        )(x)
        x = keras.layers.BatchNormalization(
            axis=_channel_axis(), momentum=0.9, name=f"{name}_bn{i}"
        )(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def AFFUNet(
    input_shape,
    num_classes,
    depth=4,
    base_filters=32,
    fusion="aff",
    reduction_ratio=4,
    classifier_activation="softmax",
    name=None,
):
    """A U-Net for segmentation whose skip merges are AFF or iAFF.

    Encoder level `i` (0 to `depth - 1`) is two (3x3 conv, BN, ReLU) with
    `base_filters * 2**i` filters, then 2x2 max pooling; the bottleneck has
    `base_filters * 2**depth` filters. Each decoder level merges the
    encoder's skip with the coarser map below it,

        merged = fusion(skip, upsampled)

    where `upsampled` is the coarser map aligned to the skip
    (`align_inputs=True`: a 1x1 conv + BN from its `2C` channels to the
    skip's `C`, then a 2x bilinear resize to the skip's size), then two
    (3x3 conv, BN, ReLU). `fusion` is AFF (output x 2, as the official
    networks), iAFF, or "add" (`skip + Align()([skip, coarse])`: the same
    alignment, no attention; the ablation). A 1x1 conv gives
    `num_classes` maps. BatchNorm momentum is 0.9.

    Args:
        input_shape: (height, width, channels) (channels first with
            `keras.config.image_data_format() == "channels_first"`);
            height and width None (any size at run time) or multiples of
            `2**depth`.
        num_classes: int, number of output maps (classes).
        depth: int in [1, 8], default 4. Number of poolings.
        base_filters: int, default 32. Filters of the first level.
        fusion: "aff" (default), "iaff" or "add".
        reduction_ratio: int, default 4. The AFF / iAFF `reduction_ratio`
            (`base_filters // reduction_ratio` must be at least 1).
        classifier_activation: default "softmax" (over the classes, per
            pixel); None gives logits. Any Keras activation.
        name: optional model name, default "aff_unet", "iaff_unet" or
            "unet".

    Returns:
        A functional `keras.Model` from images to per-pixel outputs of
        shape (height, width, num_classes), float32 under mixed precision.

    Example:

    >>> model = keras_aff.models.AFFUNet(
    ...     (64, 64, 3), num_classes=4, depth=3, base_filters=8)
    >>> model.output.shape
    (None, 64, 64, 4)
    >>> model.get_layer("dec1_aff").get_config()["align_inputs"]
    True

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082; Ronneberger et al., U-Net,
        MICCAI 2015.
    """
    check = _validation
    depth = check.check_int("depth", depth, min_value=1, max_value=MAX_DEPTH)
    shape = _check_input_shape(input_shape, depth)
    num_classes = check.check_int("num_classes", num_classes, min_value=1)
    base_filters = check.check_int("base_filters", base_filters, min_value=1)
    fusion = _merge.check_fusion(fusion)
    reduction_ratio = check.check_int(
        "reduction_ratio", reduction_ratio, min_value=1, max_value=base_filters
    )
    check.check_keras_object(
        "classifier_activation", classifier_activation, keras.activations.get
    )
    inputs = keras.Input(shape, name="image")
    x, skips = inputs, []
    for i in range(depth):
        x = _block(x, base_filters * 2**i, f"enc{i + 1}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{i + 1}_pool")(x)
    x = _block(x, base_filters * 2**depth, "bottleneck")
    for i in reversed(range(depth)):
        # The alignment upsamples: it projects the coarse map (cheaper than
        # after upsampling; a 1x1 conv + BN commute with the bilinear
        # resize in inference) and resizes it to the skip, at any size
        # (Keras' bilinear UpSampling2D needs static sizes on TensorFlow).
        x = _merge.merge(
            skips[i], x, fusion, f"dec{i + 1}", reduction_ratio, "bilinear"
        )
        x = _block(x, base_filters * 2**i, f"dec{i + 1}")
    x = keras.layers.Conv2D(num_classes, 1, name="logits")(x)
    x = keras.layers.Activation(
        classifier_activation or "linear", dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, x, name=name or DEFAULT_NAMES[fusion])
