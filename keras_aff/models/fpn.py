"""AFF-FPN: a feature pyramid neck whose top-down merges are AFF / iAFF.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import math
import re

import keras

from keras_aff import _validation
from keras_aff.layers.arguments import INTERPOLATIONS
from keras_aff.models import _merge
from keras_aff.models.features import pyramid_outputs

_LEVEL = re.compile(r"^P(\d+)$")
DEFAULT_NAMES = {"aff": "aff_fpn", "iaff": "iaff_fpn", "add": "fpn"}


def _spatial_axis():
    return 2 if keras.config.image_data_format() == "channels_first" else 1


def _named_by_stride(backbone, tensors, names):
    """{"P<level>": tensor} for stage outputs given as a list, the level
    being log2 of the stride (read from the static shapes)."""
    axis = _spatial_axis()
    size = backbone.inputs[0].shape[axis]
    out = {}
    for tensor in tensors:
        if size is None or tensor.shape[axis] is None:
            raise ValueError(
                "Expected `levels` as a dict {'P3': layer_name, ...}: the "
                "backbone's sizes are not static, so the level of each "
                f"layer cannot be read from its stride. Received: "
                f"levels={list(names)!r}"
            )
        out[f"P{round(math.log2(size / tensor.shape[axis]))}"] = tensor
    return out


def _layer_outputs(backbone, names):
    known = {layer.name for layer in backbone.layers}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"Expected `levels` to name layers of the backbone "
            f"'{backbone.name}'; {unknown} are not among them. "
            f"Received: levels={names!r}"
        )
    return [backbone.get_layer(n).output for n in names]


def _pyramid(backbone, levels):
    """The backbone's pyramid as {"P<level>": tensor}, fine to coarse."""
    if levels is None:
        if isinstance(backbone.output, dict):
            features = dict(backbone.output)
        else:
            try:
                features = pyramid_outputs(backbone)
            except ValueError as e:
                raise ValueError(
                    "Expected `levels` (the backbone's stage-output layers) "
                    "for a backbone without dict outputs that is not a "
                    f"keras_aff.models backbone ({e}). Received: levels=None"
                ) from None
    elif isinstance(levels, dict):
        names = list(levels.values())
        features = dict(zip(levels, _layer_outputs(backbone, names)))
    elif isinstance(levels, (list, tuple)) and levels:
        names = list(levels)
        tensors = _layer_outputs(backbone, names)
        features = _named_by_stride(backbone, tensors, names)
    else:
        raise TypeError(
            "Expected `levels` to be None, a dict {'P3': layer_name, ...} or "
            "a list of layer names. "
            + _validation.received("levels", levels, with_type=True)
        )
    keys = list(features)
    bad = [k for k in keys if not _LEVEL.match(str(k))]
    if bad or len(keys) < 2 or len(set(keys)) != len(keys):
        raise ValueError(
            "Expected the pyramid to have at least two distinct levels named "
            f"'P<level>'. Received: levels {keys}"
        )
    for key, tensor in features.items():
        if len(tensor.shape) != 4:
            raise ValueError(
                f"Expected 2-D feature maps (rank 4). Received: {key} of "
                f"shape {tuple(tensor.shape)}"
            )
    return dict(sorted(features.items(), key=lambda kv: int(kv[0][1:])))


def AFFFPN(
    backbone,
    levels=None,
    channels=256,
    fusion="aff",
    reduction_ratio=4,
    extra_level=False,
    interpolation="nearest",
    name=None,
):
    """A feature pyramid network (FPN) neck whose merges are AFF or iAFF.

    On the backbone's stage outputs `C_l` (stride `2**l`), as Lin et al.'s
    FPN with the paper's AFF-FPN merge:

        lateral_l = Conv1x1(channels)(C_l)
        T_top     = lateral_top
        T_l       = fusion(lateral_l, T_{l+1} resized to lateral_l)
        P_l       = Conv3x3(channels)(T_l)

    where `fusion` is AFF (output x 2, as the official networks), iAFF, or
    "add" (`lateral + upsampled`, the plain FPN: the ablation). The resize
    is that of `AFF(align_inputs=True)` / `keras_aff.layers.Align`, to the
    lateral's exact size, so stage sizes need not be exact halves (odd
    input sizes work). `extra_level=True` adds `P_{top+1}`, a 3x3 conv
    with stride 2 on the top output (a P6 from P5, as FCOS; RetinaNet
    takes it from C5).

    Args:
        backbone: a functional `keras.Model`. Its pyramid is its dict
            output ({"P2": ..., "P5": ...}, e.g. from
            `keras_aff.models.feature_model`), the stage outputs of a
            `keras_aff.models` backbone (`pyramid_outputs`), or the layers
            named by `levels`.
        levels: optional. A dict {"P3": layer name, ...}, or a list of layer
            names (the level of each from its stride; static sizes
            needed), e.g. for `keras.applications.ResNet50`:
            ["conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
            "conv5_block3_out"].
        channels: int, default 256. Channels of every pyramid output.
        fusion: "aff" (default), "iaff" or "add".
        reduction_ratio: int, default 4. The AFF / iAFF `reduction_ratio`.
        extra_level: bool, default False. Add one coarser level.
        interpolation: "nearest" (default, as FPN) or "bilinear", the
            resize of the coarser map.
        name: optional model name, default "aff_fpn", "iaff_fpn" or "fpn".

    Returns:
        A functional `keras.Model` from the backbone's input(s) to a dict
        {"P2": ..., "P5": ...[, "P6": ...]} of `channels`-channel maps. It
        shares its layers and weights with `backbone`.

    Example:

    >>> backbone = keras.applications.ResNet50(
    ...     include_top=False, weights=None, input_shape=(96, 96, 3))
    >>> fpn = keras_aff.models.AFFFPN(
    ...     backbone,
    ...     levels=["conv2_block3_out", "conv3_block4_out",
    ...             "conv4_block6_out", "conv5_block3_out"],
    ...     channels=64, extra_level=True)
    >>> for k, v in fpn.output.items():
    ...     print(k, v.shape)
    P2 (None, 24, 24, 64)
    P3 (None, 12, 12, 64)
    P4 (None, 6, 6, 64)
    P5 (None, 3, 3, 64)
    P6 (None, 2, 2, 64)

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082; Lin et al., Feature Pyramid
        Networks for Object Detection, CVPR 2017.
    """
    if not isinstance(backbone, keras.Model) or not getattr(
        backbone, "inputs", None
    ):
        raise TypeError(
            "Expected `backbone` to be a functional keras.Model. "
            + _validation.received("backbone", backbone, with_type=True)
        )
    fusion = _merge.check_fusion(fusion)
    channels = _validation.check_int("channels", channels, min_value=1)
    reduction_ratio = _validation.check_int(
        "reduction_ratio", reduction_ratio, min_value=1
    )
    extra_level = _validation.check_bool("extra_level", extra_level)
    interpolation = _validation.check_choice(
        "interpolation", interpolation, INTERPOLATIONS
    )
    name = name or DEFAULT_NAMES[fusion]
    features = _pyramid(backbone, levels)
    conv = keras.layers.Conv2D
    laterals = {
        k: conv(channels, 1, name=f"{name}_lateral_{k}")(t)
        for k, t in features.items()
    }
    keys = list(features)
    merged = {keys[-1]: laterals[keys[-1]]}
    for key in reversed(keys[:-1]):
        merged[key] = _merge.merge(
            laterals[key],
            merged[keys[keys.index(key) + 1]],
            fusion,
            f"{name}_{key}",
            reduction_ratio,
            interpolation,
        )
    outputs = {
        k: conv(channels, 3, padding="same", name=f"{name}_output_{k}")(
            merged[k]
        )
        for k in keys
    }
    if extra_level:
        top = f"P{int(keys[-1][1:]) + 1}"
        outputs[top] = conv(
            channels, 3, strides=2, padding="same", name=f"{name}_{top}"
        )(outputs[keys[-1]])
    inputs = backbone.inputs
    return keras.Model(
        inputs[0] if len(inputs) == 1 else inputs, outputs, name=name
    )
