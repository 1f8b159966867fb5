"""Stage outputs of the paper backbones, for FPN / UNet decoders.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import math
import re

import keras

from keras_aff._validation import check_one_of_types
from keras_aff._validation import received

_STAGE_OUT = re.compile(r"^stage(\d+)_block(\d+)_out$")


def _stage_layers(model):
    last = {}
    for layer in model.layers:
        m = _STAGE_OUT.match(layer.name)
        if m:
            stage, block = int(m.group(1)), int(m.group(2))
            if stage not in last or block > last[stage][0]:
                last[stage] = (block, layer)
    if not last:
        raise ValueError(
            "Expected a keras_aff.models backbone, whose blocks end in layers "
            "named `stage<s>_block<b>_out`. Received: a model named "
            f"'{model.name}' without such layers"
        )
    return [last[s][1] for s in sorted(last)]


def _spatial(shape):
    if keras.config.image_data_format() == "channels_first":
        return tuple(shape[2:])
    return tuple(shape[1:-1])


def _strides(model, tensors):
    """Stride of each stage output w.r.t. the input, from static shapes
    (probing a 64x64 input when the model's input size is not static)."""
    in_hw = _spatial(model.inputs[0].shape)
    outs = [_spatial(t.shape) for t in tensors]
    if any(d is None for d in in_hw) or any(
        d is None for hw in outs for d in hw
    ):
        probe = keras.Model(model.inputs[0], tensors)
        shape = list(model.inputs[0].shape)
        shape[0] = 1
        if keras.config.image_data_format() == "channels_first":
            shape[2:] = [64, 64]
        else:
            shape[1:-1] = [64, 64]
        outs = [_spatial(s) for s in probe.compute_output_shape(tuple(shape))]
        in_hw = (64, 64)
    return [
        2 ** round(math.log2(in_hw[0] / hw[0])) if hw[0] else None
        for hw in outs
    ]


def pyramid_outputs(model):
    """The stage outputs of a `keras_aff.models` backbone, by pyramid level.

    The keys follow keras-hub's `pyramid_outputs`: "P{level}" where the
    stage output has stride `2**level` w.r.t. the input. The ImageNet
    networks give P2, P3, P4, P5 (strides 4, 8, 16, 32; 256, 512, 1024 and
    2048 channels); the CIFAR networks give P0, P1, P2 (strides 1, 2, 4).
    Each value is the output of the stage's last block (the layer
    `stage{s}_block{last}_out`); for AFF-ResNet-32 that is the fused output
    before the final BN + ReLU of the head.

    Args:
        model: a model built by `keras_aff.models` (any `include_top`,
            `pooling` and input size), or one loaded back from `.keras`.

    Returns:
        A dict from "P{level}" to symbolic tensors of `model`'s graph.

    Example:

    >>> model = keras_aff.models.AFFResNet32(include_top=False)
    >>> for k, v in keras_aff.models.pyramid_outputs(model).items():
    ...     print(k, v.shape)
    P0 (None, 32, 32, 64)
    P1 (None, 16, 16, 128)
    P2 (None, 8, 8, 256)
    """
    expected = "a functional keras.Model built by keras_aff.models"
    check_one_of_types("model", model, (keras.Model,), expected)
    if not getattr(model, "inputs", None):
        raise ValueError(
            f"Expected `model` to be {expected}. " + received("model", model)
        )
    tensors = [layer.output for layer in _stage_layers(model)]
    strides = _strides(model, tensors)
    return {f"P{int(math.log2(s))}": t for s, t in zip(strides, tensors)}


def feature_model(model, levels=None, name=None):
    """A `keras.Model` from the backbone's input to its stage outputs.

    For FPN or UNet decoders (the paper's long-skip use): the returned model
    shares its layers and weights with `model` and outputs a dict
    {"P2": ..., "P5": ...} (ImageNet) or {"P0": ..., "P2": ...} (CIFAR); see
    `pyramid_outputs`.

    Args:
        model: a model built by `keras_aff.models`.
        levels: optional list of keys to keep, e.g. ["P3", "P4", "P5"].
        name: optional model name, default "<model.name>_features".

    Returns:
        A functional `keras.Model` with dict outputs.

    Example:

    >>> backbone = keras_aff.models.AFFResNet50(
    ...     include_top=False, input_shape=(64, 64, 3))
    >>> features = keras_aff.models.feature_model(backbone)
    >>> for k, v in features.output.items():
    ...     print(k, v.shape)
    P2 (None, 16, 16, 256)
    P3 (None, 8, 8, 512)
    P4 (None, 4, 4, 1024)
    P5 (None, 2, 2, 2048)

    A small FPN on top (AFF fuses each lateral with the upsampled coarser
    map, as the paper's AFF-FPN):

    >>> feats = features.output
    >>> top = keras.layers.Conv2D(64, 1)(feats["P5"])
    >>> for level in ("P4", "P3", "P2"):
    ...     lateral = keras.layers.Conv2D(64, 1)(feats[level])
    ...     up = keras.layers.UpSampling2D(2)(top)
    ...     top = keras_aff.layers.AFF(output_scale=2.0)([lateral, up])
    >>> fpn = keras.Model(features.input, top)
    """
    outputs = pyramid_outputs(model)
    check_one_of_types("name", name, (str, type(None)), "a str or None")
    if levels is not None:
        check_one_of_types(
            "levels",
            levels,
            (list, tuple),
            f"a list of keys of {list(outputs)}",
        )
        unknown = [k for k in levels if k not in outputs]
        if unknown:
            raise ValueError(
                f"Expected `levels` to be keys of {list(outputs)}. "
                f"Received: levels={list(levels)!r}"
            )
        outputs = {k: outputs[k] for k in levels}
    return keras.Model(
        model.inputs[0],
        outputs,
        name=name or f"{model.name}_features",
    )
