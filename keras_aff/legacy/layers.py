"""The tf_keras twins of `MSCAM`, `AFF` and `IAFF`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Written for tf_keras (TensorFlow ops, `tf_keras.layers.Layer`), reusing
only the pure helpers of `keras_aff.layers` (`arguments`, `shapes`); the
arguments, config keys and variable paths equal the Keras 3 layers',
which tests/qat/test_equivalence.py checks, with the outputs.
"""

import copy
import inspect

import keras
import tensorflow as tf
import tf_keras

from keras_aff import _validation
from keras_aff.layers import arguments
from keras_aff.layers import shapes
from keras_aff.legacy import gate

_IMPLEMENTATIONS = ("auto", "xla")  # the fused kernel is Keras 3 + JAX


def _shape(shape):
    """A tf_keras shape (TensorShape, tuple) as a tuple; None if unknown."""
    shape = tf.TensorShape(shape)
    return None if shape.rank is None else tuple(shape.as_list())


def _shapes(input_shape):
    """One shape as a tuple, or a list of shapes as a list of tuples."""
    if isinstance(input_shape, (list, tuple)) and not shapes.is_shape(
        input_shape
    ):
        return [_shape(s) for s in input_shape]
    return _shape(input_shape)


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


class _Fusion(tf_keras.layers.Layer):
    """The gate arguments (MSCAM's signature), a clear error for Keras 3
    tensors, and a `from_config` that also accepts the config of the
    Keras 3 twin."""

    def __init__(
        self,
        reduction_ratio=4,
        use_bias=True,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        bn_synchronized=False,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        data_format=None,
        branches=arguments.DEFAULT_BRANCHES,
        use_batch_norm=True,
        implementation="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check = _validation
        self.reduction_ratio = arguments.check_ratio(reduction_ratio)
        self.use_bias = check.check_bool("use_bias", use_bias)
        self.bn_momentum = arguments.check_momentum(bn_momentum)
        self.bn_epsilon = arguments.check_epsilon(bn_epsilon)
        self.bn_synchronized = check.check_bool(
            "bn_synchronized", bn_synchronized
        )
        self.kernel_initializer = check.check_keras_object(
            "kernel_initializer", kernel_initializer, tf_keras.initializers.get
        )
        self.kernel_regularizer = check.check_keras_object(
            "kernel_regularizer", kernel_regularizer, tf_keras.regularizers.get
        )
        self.data_format = check.check_data_format(
            data_format, tf_keras.backend.image_data_format()
        )
        self.branches = arguments.check_branches(branches)
        self.use_batch_norm = check.check_bool("use_batch_norm", use_batch_norm)
        self.implementation = check.check_choice(
            "implementation", implementation, _IMPLEMENTATIONS
        )

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

    def get_config(self):
        config = super().get_config()
        config.update(
            arguments.gate_config(
                self, tf_keras.initializers, tf_keras.regularizers
            )
        )
        config["implementation"] = self.implementation
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(arguments.check_config(cls, config))
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
class MSCAM(_Fusion):
    """tf_keras twin of `keras_aff.layers.MSCAM`: `x * M(x)`.

    `M(x) = sigmoid(L(x) + G(x))`, the multi-scale channel attention gate
    (L: per-position bottleneck of 1x1 convs with `C // reduction_ratio`
    hidden channels, G: the same on the global average, broadcast back).

    Arguments: those of `keras_aff.layers.MSCAM`, with the same defaults,
    checks and config keys (its docstring has the details):
    reduction_ratio=4, use_bias=True, bn_momentum=0.9,
    bn_epsilon=1e-5, bn_synchronized=False,
    kernel_initializer="glorot_uniform", kernel_regularizer=None,
    data_format=None (`tf_keras.backend.image_data_format()`),
    branches=("local", "global"), use_batch_norm=True and
    implementation="auto" ("auto" or "xla": both TensorFlow ops; the
    fused kernel is the Keras 3 layers' on JAX), plus the base layer
    keyword arguments (`name`, `dtype`, ...).

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

    def build(self, input_shape):
        shape = shapes.check_single_shape(self.name, _shapes(input_shape))
        self.attention = gate.build_gate(self, "attention", shape)
        self.channels = self.attention.channels
        self.inter_channels = self.attention.inter_channels

    def call(self, inputs, training=None):
        shapes.check_float_dtypes(self.name, [inputs.dtype])
        return inputs * self.attention(inputs, training=training)

    def fusion_weights(self, inputs, training=False):
        """The gate `M(x)`, in [0, 1], shaped like `inputs`.

        Example:

        >>> from keras_aff import legacy
        >>> w = legacy.MSCAM().fusion_weights(np.ones((1, 4, 4, 8), "f"))
        >>> w.shape
        TensorShape([1, 4, 4, 8])
        """
        x = tf.convert_to_tensor(inputs)
        if not self.built:
            gate.build_child(self, x.shape)
        return self.attention(x, training=training)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)


class _Pair(_Fusion):
    """AFF's and IAFF's arguments, checks and config (tf_keras)."""

    def __init__(
        self,
        reduction_ratio=4,
        output_scale=1.0,
        use_bias=True,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        bn_synchronized=False,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        data_format=None,
        branches=arguments.DEFAULT_BRANCHES,
        align_inputs=False,
        resize_interpolation="bilinear",
        use_batch_norm=True,
        implementation="auto",
        **kwargs,
    ):
        super().__init__(
            reduction_ratio,
            use_bias,
            bn_momentum,
            bn_epsilon,
            bn_synchronized,
            kernel_initializer,
            kernel_regularizer,
            data_format,
            branches,
            use_batch_norm,
            implementation,
            **kwargs,
        )
        self.output_scale = arguments.check_output_scale(output_scale)
        self.resize_interpolation = arguments.check_interpolation(
            "resize_interpolation", resize_interpolation
        )
        if _validation.check_bool("align_inputs", align_inputs):
            name = type(self).__name__
            raise ValueError(
                f"Expected `align_inputs` to be False: the tf_keras "
                f"`keras_aff.legacy.{name}` cannot align its inputs (use "
                f"`keras_aff.layers.{name}`, or align them in the model "
                "with a 1x1 conv + BatchNormalization and a resize). "
                "Received: align_inputs=True"
            )
        self.align_inputs = False

    def _pair(self, inputs):
        x, y = shapes.check_pair_inputs(self.name, inputs)
        x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
        if not self.built:
            gate.build_child(self, [x.shape, y.shape])
        return x, y

    def _blend(self, x, y, w):
        out = y + w * (x - y)
        if self.output_scale != 1.0:
            out = out * self.output_scale
        return out

    def compute_output_shape(self, input_shape):
        shape = shapes.check_pair_shapes(self.name, _shapes(input_shape))
        return tf.TensorShape(shape)

    def get_config(self):
        config = super().get_config()
        config["output_scale"] = self.output_scale
        config["align_inputs"] = self.align_inputs
        config["resize_interpolation"] = self.resize_interpolation
        return config


@tf_keras.saving.register_keras_serializable(package="keras_aff")
class AFF(_Pair):
    """tf_keras twin of `keras_aff.layers.AFF`.

    With `w = M(x + y)` (the MS-CAM gate), the output is
    `output_scale * (x * w + y * (1 - w))`, computed as
    `output_scale * (y + w * (x - y))`.

    Arguments: the arguments of `keras_aff.layers.AFF`, with the same defaults,
    checks and config keys (its docstring has the details):
    reduction_ratio=4, output_scale=1.0 (2.0 reproduces the official
    networks), use_bias=True, bn_momentum=0.9, bn_epsilon=1e-5,
    bn_synchronized=False, kernel_initializer="glorot_uniform",
    kernel_regularizer=None, data_format=None
    (`tf_keras.backend.image_data_format()`),
    branches=("local", "global"), align_inputs=False (must stay
    False: the twin does not align inputs of different shapes),
    resize_interpolation="bilinear" (kept in the config),
    use_batch_norm=True and implementation="auto" ("auto" or "xla"),
    plus the base layer keyword arguments (`name`, `dtype`, ...).

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

    def build(self, input_shape):
        shape = shapes.check_pair_shapes(self.name, _shapes(input_shape))
        self.attention = gate.build_gate(self, "attention", shape)
        self.channels = self.attention.channels
        self.inter_channels = self.attention.inter_channels

    def call(self, inputs, training=None):
        x, y = self._pair(inputs)
        w = self.attention(x + y, training=training)
        return self._blend(x, y, w)

    def fusion_weights(self, inputs, training=False):
        """The weight `w = M(x + y)` of the first input, in [0, 1].

        Example:

        >>> from keras_aff import legacy
        >>> x = np.ones((1, 4, 4, 8), "float32")
        >>> legacy.AFF().fusion_weights([x, x]).shape
        TensorShape([1, 4, 4, 8])
        """
        x, y = self._pair(inputs)
        return self.attention(x + y, training=training)


@tf_keras.saving.register_keras_serializable(package="keras_aff")
class IAFF(_Pair):
    """tf_keras twin of `keras_aff.layers.IAFF`.

    `w1 = M1(x + y)`, `xi = x * w1 + y * (1 - w1)`, `w2 = M2(xi)`, output
    `output_scale * (x * w2 + y * (1 - w2))`, with two MS-CAM gates that
    each have their own local and global branches.

    Arguments: the arguments of `keras_aff.layers.IAFF`, as the twin `AFF` takes
    them (same names, defaults, checks and config keys).

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

    def build(self, input_shape):
        shape = shapes.check_pair_shapes(self.name, _shapes(input_shape))
        self.attention1 = gate.build_gate(self, "attention1", shape)
        self.attention2 = gate.build_gate(self, "attention2", shape)
        self.channels = self.attention1.channels
        self.inter_channels = self.attention1.inter_channels

    def call(self, inputs, training=None):
        x, y = self._pair(inputs)
        _, w2 = self.fusion_weights([x, y], training=training)
        return self._blend(x, y, w2)

    def fusion_weights(self, inputs, training=False):
        """The weights `(w1, w2)` of the first input: `w1 = M1(x + y)`,
        `w2 = M2(y + w1 * (x - y))`.

        Example:

        >>> from keras_aff import legacy
        >>> x = np.ones((1, 4, 4, 8), "float32")
        >>> [w.shape for w in legacy.IAFF().fusion_weights([x, x])]
        [TensorShape([1, 4, 4, 8]), TensorShape([1, 4, 4, 8])]
        """
        x, y = self._pair(inputs)
        w1 = self.attention1(x + y, training=training)
        w2 = self.attention2(y + w1 * (x - y), training=training)
        return w1, w2
