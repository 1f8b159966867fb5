"""MS-CAM, AFF and iAFF as stock tf_keras layers, and the output-only
QuantizeConfig their weightless ops need.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Each block is the legacy layer's math (`keras_aff.legacy`) written with
layers tfmot's default 8-bit scheme supports (1x1 Conv2D,
BatchNormalization, ReLU, GlobalAveragePooling2D, Add, sigmoid) plus
Multiply, Subtract and Rescaling with `OutputQuantizeConfig`. The legacy
layer itself is built first: its constructor and `build` check the
arguments and shapes, and the block copies the configs of its gate
sublayers (`attention` / `attention1`, `attention2`; `branch1`, `branch2`;
`conv1`, `bn1`, `conv2`, `bn2`) and their names, so the block's variable
paths are the layer's (`aff/attention/local/conv1/kernel`) and
`keras_aff.porting.copy_weights` moves weights between the two.
"""

import tensorflow_model_optimization as tfmot
import tf_keras

from keras_aff import legacy

_qk = tfmot.quantization.keras


@tf_keras.saving.register_keras_serializable(package="keras_aff")
class OutputQuantizeConfig(_qk.QuantizeConfig):
    """Quantizes only a layer's output (8-bit, asymmetric, per tensor).

    tfmot's default 8-bit registry has no entry for `Multiply`, `Subtract`
    or `Rescaling`, so `quantize_model` of a model that uses them fails
    (`RuntimeError: Layer ...:<class '...Subtract'> is not supported`).
    These layers have no weights; quantizing their output (a moving-average
    min/max fake-quant, as tfmot does after an `Add`) is all LiteRT needs to
    run them in int8. `quantize_model` attaches this config to them; it can
    also be attached to a whole legacy fusion layer
    (`quantize_model(..., unroll=False)`), whose interior is then left to
    the converter's calibration.

    Example:

    >>> import tf_keras
    >>> import tensorflow_model_optimization as tfmot
    >>> from keras_aff import qat
    >>> layer = tfmot.quantization.keras.quantize_annotate_layer(
    ...     tf_keras.layers.Multiply(), qat.OutputQuantizeConfig()
    ... )
    >>> type(layer.quantize_config).__name__
    'OutputQuantizeConfig'
    """

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [
            _qk.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False
            )
        ]

    def get_config(self):
        return {}


def is_tf_keras_tensor(value):
    try:
        return tf_keras.backend.is_keras_tensor(value)
    except ValueError:  # not a tensor at all (numpy, Keras 3 tensor, ...)
        return False


def _check_tf_keras_tensor(name, value, arg):
    if not is_tf_keras_tensor(value):
        raise TypeError(
            f"`{name}` builds a tf_keras functional graph: `{arg}` must be a "
            "tf_keras symbolic tensor (from `tf_keras.Input` or a tf_keras "
            "layer). A Keras 3 tensor cannot be used here; build the model "
            "with tf_keras. "
            f"Received: {arg}={value!r} (of type {type(value).__name__})"
        )


def _spec(cls, name, shapes, kwargs):
    """The legacy fusion layer itself, built to validate and to read from.

    Its constructor and `build` run the layer's argument and shape checks
    and create the gate sublayers (their names, kinds, conv and BN
    settings); the block copies those sublayers' configs.
    """
    spec = cls(name=name, **kwargs)
    spec.build(shapes)
    shape = shapes if cls is legacy.MSCAM else shapes[0]
    data_format = spec.get_config()["data_format"]
    if len(shape) != 4 or data_format != "channels_last":
        raise ValueError(
            f"The stock-layer block '{name}' supports 4-D channels_last "
            "inputs only: tfmot quantizes Conv2D but not Conv1D/Conv3D, and "
            "LiteRT runs NHWC. Use the layer (`keras_aff.legacy."
            f"{cls.__name__}`) otherwise. Received: input_shape="
            f"{tuple(shape)}, data_format={data_format!r}"
        )
    return spec


def _clone(layer, path):
    config = layer.get_config()
    config["name"] = f"{path}/{layer.name}"
    return type(layer).from_config(config)


def _gate_block(z, gate, prefix):
    """sigmoid(B1(z) + B2(z)) from stock layers; `gate` is a built gate."""
    layers = tf_keras.layers
    path = f"{prefix}/{gate.name}"
    logits = []
    for branch in (gate.branch1, gate.branch2):
        bpath = f"{path}/{branch.name}"
        h = z
        if branch.kind == "global":
            h = layers.GlobalAveragePooling2D(
                keepdims=True, name=f"{bpath}/pool"
            )(h)
        h = _clone(branch.conv1, bpath)(h)
        h = _clone(branch.bn1, bpath)(h)
        h = layers.ReLU(name=f"{bpath}/relu")(h)
        h = _clone(branch.conv2, bpath)(h)
        h = _clone(branch.bn2, bpath)(h)
        logits.append(h)
    s = layers.Add(name=f"{path}/add")(logits)
    return layers.Activation("sigmoid", name=f"{path}/sigmoid")(s)


def _blend(x, y, d, w, prefix, tag):
    # y + w * (x - y): the layers' blend, with d = x - y computed once.
    layers = tf_keras.layers
    wd = layers.Multiply(name=f"{prefix}/weighted{tag}")([w, d])
    return layers.Add(name=f"{prefix}/blend{tag}")([y, wd])


def _scale(out, spec):
    scale = spec.get_config().get("output_scale", 1.0)
    if scale == 1.0:
        return out
    return tf_keras.layers.Rescaling(scale, name=f"{spec.name}/scale")(out)


def mscam_block(x, name="ms_cam", **kwargs):
    """`x * M(x)` (`keras_aff.legacy.MSCAM`) from stock tf_keras layers.

    Same arguments as the layer; the block checks them with the layer's own
    code, takes its sublayer settings from it and gives its weights the
    layer's variable paths (`ms_cam/attention/local/conv1/kernel`), so
    `keras_aff.porting.copy_weights` moves weights between the two. Every
    layer is one tfmot supports (with `OutputQuantizeConfig` for the final
    Multiply), so the QAT model converts to fully int8 LiteRT.

    Args:
        x: tf_keras symbolic tensor, 4-D channels_last.
        name: str, default "ms_cam". Prefix of every layer name; use the
            fusion layer's name to port its weights.
        **kwargs: the arguments of `keras_aff.legacy.MSCAM`
            (`reduction_ratio`, `use_bias`, `bn_momentum`, ...).

    Returns:
        The output tensor.

    Example:

    >>> import tf_keras
    >>> from keras_aff import qat
    >>> x = tf_keras.Input((8, 8, 16))
    >>> qat.mscam_block(x, reduction_ratio=4).shape
    TensorShape([None, 8, 8, 16])
    """
    _check_tf_keras_tensor("mscam_block", x, "x")
    spec = _spec(legacy.MSCAM, name, x.shape, kwargs)
    w = _gate_block(x, spec.attention, name)
    return tf_keras.layers.Multiply(name=f"{name}/mul")([x, w])


def _pair(fn_name, cls, x, y, name, kwargs):
    _check_tf_keras_tensor(fn_name, x, "x")
    _check_tf_keras_tensor(fn_name, y, "y")
    spec = _spec(cls, name, [x.shape, y.shape], kwargs)
    layers = tf_keras.layers
    s = layers.Add(name=f"{name}/sum")([x, y])
    d = layers.Subtract(name=f"{name}/diff")([x, y])
    return spec, s, d


def aff_block(x, y, name="aff", **kwargs):
    """AFF (`keras_aff.legacy.AFF`) from stock tf_keras layers.

    `w = M(x + y)`, output `output_scale * (y + w * (x - y))`. Same
    arguments as the layer; the block checks them with the layer's own code,
    takes its sublayer settings from it and gives its weights the layer's
    variable paths (`aff/attention/local/conv1/kernel`), so
    `keras_aff.porting.copy_weights` moves weights between a Keras 3 or
    tf_keras `AFF` and the block. Under tfmot every 1x1 Conv+BN is folded
    and every op boundary gets a fake-quant, so the QAT model converts to
    fully int8 LiteRT without a representative dataset.

    Args:
        x: tf_keras symbolic tensor, 4-D channels_last (weighted by `w`).
        y: tf_keras symbolic tensor of the same shape.
        name: str, default "aff". Prefix of every layer name; use the
            fusion layer's name to port its weights.
        **kwargs: the arguments of `keras_aff.legacy.AFF`
            (`reduction_ratio`, `output_scale`, `use_bias`, ...).

    Returns:
        The output tensor.

    Example:

    >>> import tf_keras
    >>> from keras_aff import qat
    >>> x = tf_keras.Input((8, 8, 16))
    >>> y = tf_keras.Input((8, 8, 16))
    >>> qat.aff_block(x, y, reduction_ratio=4).shape
    TensorShape([None, 8, 8, 16])
    """
    spec, s, d = _pair("aff_block", legacy.AFF, x, y, name, kwargs)
    w = _gate_block(s, spec.attention, name)
    return _scale(_blend(x, y, d, w, name, ""), spec)


def iaff_block(x, y, name="iaff", **kwargs):
    """iAFF (`keras_aff.legacy.IAFF`) from stock tf_keras layers.

    `w1 = M1(x + y)`, `xi = y + w1 * (x - y)`, `w2 = M2(xi)`, output
    `output_scale * (y + w2 * (x - y))`. See `aff_block`: same arguments
    as the layer, its checks, sublayer settings and variable paths
    (`iaff/attention2/global/conv1/kernel`).

    Args:
        x: tf_keras symbolic tensor, 4-D channels_last.
        y: tf_keras symbolic tensor of the same shape.
        name: str, default "iaff". Prefix of every layer name.
        **kwargs: the arguments of `keras_aff.legacy.IAFF`.

    Returns:
        The output tensor.

    Example:

    >>> import tf_keras
    >>> from keras_aff import qat
    >>> x = tf_keras.Input((8, 8, 16))
    >>> y = tf_keras.Input((8, 8, 16))
    >>> qat.iaff_block(x, y, reduction_ratio=4).shape
    TensorShape([None, 8, 8, 16])
    """
    spec, s, d = _pair("iaff_block", legacy.IAFF, x, y, name, kwargs)
    w1 = _gate_block(s, spec.attention1, name)
    xi = _blend(x, y, d, w1, name, "1")
    w2 = _gate_block(xi, spec.attention2, name)
    return _scale(_blend(x, y, d, w2, name, "2"), spec)


# The legacy fusion layers and the block that unrolls each.
BLOCKS = {
    legacy.MSCAM: mscam_block,
    legacy.AFF: aff_block,
    legacy.IAFF: iaff_block,
}
FUSION_CLASSES = tuple(BLOCKS)


def block_for(layer, inputs):
    """The block of a legacy fusion `layer`, called on `inputs`, with the
    layer's name and configuration."""
    config = layer.get_config()
    for key in ("name", "trainable", "dtype"):
        config.pop(key, None)
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    return BLOCKS[type(layer)](*inputs, name=layer.name, **config)
