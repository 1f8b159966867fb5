"""tf_keras (Keras 2) twin of the MS-CAM, AFF and iAFF layers.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`keras_aff.legacy.MSCAM`, `AFF` and `IAFF` are the Keras 3 layers' own code
(`MSCAMCore`, `AFFCore`, `IAFFCore` and the gate in `keras_aff.layers.gate`)
run on tf_keras through `LEGACY`, a `keras_aff.layers.kit.LayerKit`: the
math, the argument checks, the config keys and the variable paths
(`aff/attention/local/conv1/kernel`) are shared, not copied. Only the base
class (`tf_keras.layers.Layer`), the registry
(`tf_keras.saving.register_keras_serializable`) and the ops (plain
TensorFlow instead of `keras.ops`) differ. Use them where Keras 2 is
required, chiefly for quantization-aware training with
tensorflow-model-optimization (see `keras_aff.qat`).

This module imports `tf_keras` explicitly. It never looks at
`TF_USE_LEGACY_KERAS` and never uses `tf.keras`, so which classes you get does
not depend on import order. It is not imported by `import keras_aff`.

Weights move between a Keras 3 model and its tf_keras twin by variable path
(`copy_weights`, re-exported from `keras_aff.porting`); the `get_weights()`
orders of the two flavours differ, so `set_weights` cannot be used for that.
"""

import copy
import inspect
import types

import keras
import tensorflow as tf

from keras_aff._optional import require
from keras_aff.layers import gate
from keras_aff.layers.aff import AFFCore
from keras_aff.layers.iaff import IAFFCore
from keras_aff.layers.ms_cam import MSCAMCore
from keras_aff.porting import copy_weights
from keras_aff.porting import weight_paths

tf_keras = require("tf_keras", "qat", "`keras_aff.legacy` (Keras 2 layers)")

__all__ = [
    "AFF",
    "IAFF",
    "MSCAM",
    "copy_weights",
    "weight_paths",
]


def _mean(x, axis):
    # tf.reduce_mean in float16 on CPU is wrong for large maps (2.0 comes
    # back as 0.653 at 224x224), and so is tf_keras' GlobalAveragePooling
    # under mixed_float16: accumulate in float32 for half types.
    axis = list(axis)
    if x.dtype in (tf.float16, tf.bfloat16):
        m = tf.reduce_mean(tf.cast(x, tf.float32), axis=axis, keepdims=True)
        return tf.cast(m, x.dtype)
    return tf.reduce_mean(x, axis=axis, keepdims=True)


class LegacyKit:
    """The tf_keras kit (`keras_aff.layers.kit.LayerKit`): tf_keras layers,
    TensorFlow ops.

    The math uses TensorFlow ops, which run in either flavour; `keras.ops`
    would tie the layer to `KERAS_BACKEND=tensorflow` and `tf_keras` has no
    `ops` module.

    Example:

    >>> from keras_aff import legacy
    >>> from keras_aff.layers import kit
    >>> isinstance(legacy.LEGACY, kit.LayerKit)
    True
    """

    layers = tf_keras.layers
    initializers = tf_keras.initializers
    regularizers = tf_keras.regularizers
    ops = types.SimpleNamespace(
        relu=tf.nn.relu,
        sigmoid=tf.math.sigmoid,
        cast=tf.cast,
        transpose=lambda x, axes: tf.transpose(x, perm=list(axes)),
        mean=_mean,
        convert_to_tensor=tf.convert_to_tensor,
    )

    @staticmethod
    def image_data_format():
        return tf_keras.backend.image_data_format()

    @staticmethod
    def build_child(layer, shape):
        # tf_keras names variables by name scope only; a sublayer built
        # directly (not through __call__) needs its own scope, or every
        # variable is called `aff/kernel:0` and h5 files collide.
        with tf.name_scope(layer.name):
            layer.build(shape)
        # Mark it built the way tf_keras' __call__ does (the shared build()
        # methods do not call super().build()).
        tf_keras.layers.Layer.build(layer, shape)

    @staticmethod
    def synchronized_bn(requested):
        return bool(requested)


LEGACY = LegacyKit()


class _ContextBranch(gate.ContextBranchCore, tf_keras.layers.Layer):
    """One local or global MS-CAM branch (private; built by its gate)."""

    kit = LEGACY


class _MSCAMGate(gate.MSCAMGateCore, tf_keras.layers.Layer):
    """M(z) = sigmoid(L(z) + G(z)) (private; built by MSCAM, AFF, IAFF)."""

    kit = LEGACY
    branch_cls = _ContextBranch


def _accepted_args(cls):
    params = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def _legacy_initializer(value):
    """A Keras 3 initializer config, trimmed to what tf_keras accepts."""
    if not isinstance(value, dict) or "class_name" not in value:
        return value
    try:
        tf_keras.initializers.get(copy.deepcopy(value))
        return value
    except (TypeError, ValueError):
        pass
    value = copy.deepcopy(value)
    cls = tf_keras.initializers.get(value["class_name"]).__class__
    accepted = _accepted_args(cls)
    if accepted is not None:
        # Keras 3 added arguments (e.g. GlorotUniform's `input_axes`); drop
        # them only when they hold their neutral value None.
        config = value.get("config", {})
        for key in list(config):
            if key not in accepted and config[key] is None:
                del config[key]
    return value


class _LegacyLayer:
    """A clear error for Keras 3 tensors, and a `from_config` that also
    accepts the config of the Keras 3 twin."""

    def __call__(self, inputs, *args, **kwargs):
        if any(
            isinstance(t, keras.KerasTensor) for t in tf.nest.flatten(inputs)
        ):
            raise TypeError(
                f"Layer '{self.name}' is the tf_keras (Keras 2) "
                f"`keras_aff.legacy.{type(self).__name__}` and cannot take "
                "Keras 3 symbolic tensors. Use "
                f"`keras_aff.layers.{type(self).__name__}` in a Keras 3 "
                "model, or `tf_keras.Input` with this layer. Received: "
                f"inputs={inputs!r}"
            )
        return super().__call__(inputs, *args, **kwargs)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        dtype = config.get("dtype")
        if isinstance(dtype, dict) and dtype.get("class_name") in (
            "DTypePolicy",
            "FloatDTypePolicy",
        ):
            # Keras 3 serializes the dtype policy as an object; tf_keras
            # takes the policy name.
            config["dtype"] = dtype["config"]["name"]
        if "kernel_initializer" in config:
            config["kernel_initializer"] = _legacy_initializer(
                config["kernel_initializer"]
            )
        config.pop("autocast", None)
        config.pop("activity_regularizer", None)
        return cls(**config)


@tf_keras.saving.register_keras_serializable(package="keras_aff")
class MSCAM(_LegacyLayer, MSCAMCore, tf_keras.layers.Layer):
    """tf_keras twin of `keras_aff.layers.MSCAM`: `x * M(x)`.

    `M(x) = sigmoid(L(x) + G(x))`, the multi-scale channel attention gate
    (L: per-position bottleneck of 1x1 convs with `C // reduction_ratio`
    hidden channels, G: the same on the global average, broadcast back).
    Arguments, config keys and variable paths are those of the Keras 3
    layer, whose docstring has the details; the implementation is the same
    shared code (`keras_aff.layers`), run on tf_keras.

    Args:
        reduction_ratio: int, default 4.
        use_bias: bool, default True.
        bn_momentum: float, default 0.9.
        bn_epsilon: float, default 1e-5.
        bn_synchronized: bool, default False.
        kernel_initializer: initializer, default "glorot_uniform".
        kernel_regularizer: optional regularizer.
        data_format: "channels_last", "channels_first" or None (default:
            `tf_keras.backend.image_data_format()`).
        branches: two branch names, default ("local", "global").
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a tensor of rank 3, 4 or 5.
        training: bool, passed to the BatchNormalization sublayers.

    Returns:
        A tensor of the same shape as `inputs`.

    Example:

    >>> import tf_keras
    >>> from keras_aff import legacy
    >>> x = tf_keras.Input((8, 8, 16))
    >>> legacy.MSCAM(reduction_ratio=4)(x).shape
    TensorShape([None, 8, 8, 16])

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """

    kit = LEGACY
    gate_cls = _MSCAMGate


@tf_keras.saving.register_keras_serializable(package="keras_aff")
class AFF(_LegacyLayer, AFFCore, tf_keras.layers.Layer):
    """tf_keras twin of `keras_aff.layers.AFF`.

    With `w = M(x + y)` (the MS-CAM gate), the output is
    `output_scale * (x * w + y * (1 - w))`, computed as
    `output_scale * (y + w * (x - y))`. Arguments, config keys and variable
    paths are those of the Keras 3 layer (see its docstring); the
    implementation is the same shared code (`keras_aff.layers`), run on
    tf_keras.

    Args:
        reduction_ratio: int, default 4.
        output_scale: float, default 1.0 (2.0 reproduces the official
            networks).
        use_bias: bool, default True.
        bn_momentum: float, default 0.9.
        bn_epsilon: float, default 1e-5.
        bn_synchronized: bool, default False.
        kernel_initializer: initializer, default "glorot_uniform".
        kernel_regularizer: optional regularizer.
        data_format: "channels_last", "channels_first" or None (default:
            `tf_keras.backend.image_data_format()`).
        branches: two branch names, default ("local", "global").
        align_inputs: bool, default False. Must stay False: the twin does
            not align inputs of different shapes (`True` raises a
            ValueError; use the Keras 3 layer, or align in the model).
        resize_interpolation: "bilinear" (default) or "nearest"; kept in
            the config, as the Keras 3 layer's.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list `[x, y]` of two tensors of the same shape, rank 3, 4
            or 5.
        training: bool, passed to the BatchNormalization sublayers.

    Returns:
        A tensor of the same shape as `x`.

    Example:

    >>> import tf_keras
    >>> from keras_aff import legacy
    >>> x = tf_keras.Input((8, 8, 16))
    >>> y = tf_keras.Input((8, 8, 16))
    >>> legacy.AFF(reduction_ratio=4)([x, y]).shape
    TensorShape([None, 8, 8, 16])

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """

    kit = LEGACY
    gate_cls = _MSCAMGate


@tf_keras.saving.register_keras_serializable(package="keras_aff")
class IAFF(_LegacyLayer, IAFFCore, tf_keras.layers.Layer):
    """tf_keras twin of `keras_aff.layers.IAFF`.

    `w1 = M1(x + y)`, `xi = x * w1 + y * (1 - w1)`, `w2 = M2(xi)`, output
    `output_scale * (x * w2 + y * (1 - w2))`, with two MS-CAM gates that
    each have their own local and global branches. Arguments, config keys
    and variable paths are those of the Keras 3 layer (see its docstring);
    the implementation is the same shared code (`keras_aff.layers`),
    run on tf_keras.

    Args:
        reduction_ratio: int, default 4.
        output_scale: float, default 1.0.
        use_bias: bool, default True.
        bn_momentum: float, default 0.9.
        bn_epsilon: float, default 1e-5.
        bn_synchronized: bool, default False.
        kernel_initializer: initializer, default "glorot_uniform".
        kernel_regularizer: optional regularizer.
        data_format: "channels_last", "channels_first" or None (default:
            `tf_keras.backend.image_data_format()`).
        branches: two branch names for both gates, default
            ("local", "global").
        align_inputs: bool, default False. Must stay False (see `AFF`).
        resize_interpolation: "bilinear" (default) or "nearest"; kept in
            the config.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list `[x, y]` of two tensors of the same shape, rank 3, 4
            or 5.
        training: bool, passed to the BatchNormalization sublayers.

    Returns:
        A tensor of the same shape as `x`.

    Example:

    >>> import tf_keras
    >>> from keras_aff import legacy
    >>> x = tf_keras.Input((8, 8, 16))
    >>> y = tf_keras.Input((8, 8, 16))
    >>> legacy.IAFF(reduction_ratio=4)([x, y]).shape
    TensorShape([None, 8, 8, 16])

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """

    kit = LEGACY
    gate_cls = _MSCAMGate
