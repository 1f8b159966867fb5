"""The tf_keras MS-CAM gate: `keras_aff.layers.gate` written for tf_keras.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

A deliberate near-copy of the Keras 3 gate (same sublayer names, creation
order and variable paths: `aff/attention/local/conv1/kernel`), pinned to
it by tests/qat/test_equivalence.py. What differs is tf_keras: TensorFlow
ops instead of `keras.ops`, and sublayers built inside their own name
scope (tf_keras names variables by name scope only).
"""

import copy

import tensorflow as tf
import tf_keras

from keras_aff.layers import shapes


def _shape(shape):
    # tf_keras returns a TensorShape or a list from compute_output_shape.
    return list(tf.TensorShape(shape).as_list())


def build_child(layer, shape):
    """Builds sublayer `layer` outside `__call__`, in its own name scope
    (else every variable is `aff/kernel:0` and h5 files collide), and
    marks it built as tf_keras' `__call__` does.

    Example:

    >>> from keras_aff.legacy import gate
    >>> conv = tf_keras.layers.Conv2D(4, 1, name="c")
    >>> gate.build_child(conv, (None, 8, 8, 2))
    >>> conv.kernel.name
    'c/kernel:0'
    """
    with tf.name_scope(layer.name):
        layer.build(shape)
    tf_keras.layers.Layer.build(layer, shape)


class ContextBranch(tf_keras.layers.Layer):
    """One MS-CAM branch (tf_keras): [global average ->] 1x1 conv -> BN ->
    ReLU -> 1x1 conv -> BN, channels_last inside (see
    `keras_aff.layers.gate.ContextBranch`).

    Example:

    >>> from keras_aff.legacy import gate
    >>> branch = gate.ContextBranch(
    ...     "global", 16, 4, 4, True, 0.9, 1e-5, False, "glorot_uniform",
    ...     None, "channels_last")
    >>> branch(np.ones((2, 8, 8, 16), "float32")).shape
    TensorShape([2, 1, 1, 16])
    """

    def __init__(
        self,
        kind,
        channels,
        inter_channels,
        rank,
        use_bias,
        bn_momentum,
        bn_epsilon,
        bn_synchronized,
        kernel_initializer,
        kernel_regularizer,
        data_format,
        use_batch_norm=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kind = kind
        conv_cls = shapes.conv_class(tf_keras.layers, rank)
        conv = dict(
            kernel_size=1,
            use_bias=use_bias,
            data_format="channels_last",
            dtype=self.dtype_policy,
        )
        bn = dict(
            axis=-1,
            momentum=bn_momentum,
            epsilon=bn_epsilon,
            synchronized=bool(bn_synchronized),
            # Keras 3 updates the moving variance with the batch variance;
            # tf_keras' fused kernel would use the unbiased one (n / (n - 1)).
            fused=False,
            dtype=self.dtype_policy,
        )
        # A new initializer per conv: a seeded one must not be shared.
        init, reg = kernel_initializer, kernel_regularizer
        for i, filters in ((1, inter_channels), (2, channels)):
            conv_layer = conv_cls(
                filters,
                name=f"conv{i}",
                kernel_initializer=tf_keras.initializers.get(
                    copy.deepcopy(init)
                ),
                kernel_regularizer=tf_keras.regularizers.get(
                    copy.deepcopy(reg)
                ),
                **conv,
            )
            setattr(self, f"conv{i}", conv_layer)
            bn_layer = None
            if use_batch_norm:
                bn_layer = tf_keras.layers.BatchNormalization(
                    name=f"bn{i}", **bn
                )
            setattr(self, f"bn{i}", bn_layer)
        self.spatial_axes = list(shapes.spatial_axes(rank, data_format))
        self.to_last, self.to_first = shapes.channel_permutations(
            rank, data_format
        )

    def build(self, input_shape):
        shape = list(input_shape)
        if self.kind == "global":
            for axis in self.spatial_axes:
                shape[axis] = 1
        if self.to_last is not None:
            shape = [shape[i] for i in self.to_last]
        for layer in (self.conv1, self.bn1, self.conv2, self.bn2):
            if layer is not None:
                build_child(layer, tuple(shape))
                shape = _shape(layer.compute_output_shape(shape))

    def call(self, inputs, training=None):
        z = inputs
        if self.kind == "global":
            # float16 reduce_mean on TF's CPU is wrong for large maps:
            # average in float32.
            if z.dtype in (tf.float16, tf.bfloat16):
                z = tf.cast(z, tf.float32)
            z = tf.reduce_mean(z, self.spatial_axes, keepdims=True)
            z = tf.cast(z, inputs.dtype)
        if self.to_last is not None:
            z = tf.transpose(z, list(self.to_last))
        z = self.conv1(z)
        if self.bn1 is not None:
            z = self.bn1(z, training=training)
        z = self.conv2(tf.nn.relu(z))
        if self.bn2 is not None:
            z = self.bn2(z, training=training)
        if self.to_first is not None:
            z = tf.transpose(z, list(self.to_first))
        return z


class MSCAMGate(tf_keras.layers.Layer):
    """The MS-CAM gate `sigmoid(B1(z) + B2(z))` (tf_keras), told its sizes
    (`channels`, `inter_channels`), as `keras_aff.layers.gate.MSCAMGate`.

    Example:

    >>> from keras_aff.legacy import gate
    >>> g = gate.MSCAMGate(
    ...     ("local", "global"), 16, 4, 4, True, 0.9, 1e-5, False,
    ...     "glorot_uniform", None, "channels_last")
    >>> g(np.ones((2, 8, 8, 16), "float32")).shape
    TensorShape([2, 8, 8, 16])
    """

    def __init__(self, branches, channels, inter_channels, *args, **kwargs):
        base = {k: kwargs.pop(k) for k in ("name", "dtype") if k in kwargs}
        super().__init__(**base)
        self.channels = channels
        self.inter_channels = inter_channels
        names = branches
        if branches[0] == branches[1]:  # ablations: unique, stable names
            names = (f"{branches[0]}1", f"{branches[1]}2")
        attributes = ("branch1", "branch2")
        for attribute, kind, name in zip(attributes, branches, names):
            branch = ContextBranch(
                kind,
                channels,
                inter_channels,
                *args,
                name=name,
                dtype=self.dtype_policy,
                **kwargs,
            )
            setattr(self, attribute, branch)

    def build(self, input_shape):
        build_child(self.branch1, input_shape)
        build_child(self.branch2, input_shape)

    def call(self, inputs, training=None):
        a = self.branch1(inputs, training=training)
        b = self.branch2(inputs, training=training)
        return tf.math.sigmoid(a + b)


def build_gate(layer, name, shape):
    """The gate `name` of legacy fusion layer `layer` for a map of
    `shape` (a tuple), built from the arguments `layer` stores.

    Example:

    >>> from keras_aff import legacy
    >>> from keras_aff.legacy import gate
    >>> g = gate.build_gate(legacy.MSCAM(), "g", (None, 8, 8, 16))
    >>> g.channels, g.inter_channels
    (16, 4)
    """
    rank, channels = shapes.check_feature_shape(
        layer.name, shape, layer.data_format, layer.reduction_ratio
    )
    gate = MSCAMGate(
        layer.branches,
        channels,
        channels // layer.reduction_ratio,
        rank,
        layer.use_bias,
        layer.bn_momentum,
        layer.bn_epsilon,
        layer.bn_synchronized,
        tf_keras.initializers.serialize(layer.kernel_initializer),
        tf_keras.regularizers.serialize(layer.kernel_regularizer),
        layer.data_format,
        layer.use_batch_norm,
        name=name,
        dtype=layer.dtype_policy,
    )
    build_child(gate, shape)
    return gate
