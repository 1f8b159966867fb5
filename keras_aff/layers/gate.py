"""The MS-CAM gate `M(z) = sigmoid(L(z) + G(z))`, written once.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

    L(z) = BN(Conv1x1(c -> C)(ReLU(BN(Conv1x1(C -> c)(z)))))   per position
    G(z) = the same on the global average of z, broadcast back

with `c = C // reduction_ratio`. `MSCAM`, `AFF` and `IAFF` own one or two
gates as the sublayers `attention` / `attention1`, `attention2`, created
by `build_gate`; anyone who needs the gate's output calls the layer's
`fusion_weights()`.

For `MultiAFF` (N inputs) the gate is built with `num_inputs=N`: the last
conv of each branch produces `N * C` channels and the gate returns the
logits `L(z) + G(z)` (input-major: channel `i * C + k` belongs to input
`i`); the layer turns them into weights with a softmax over the inputs.
"""

import copy

import keras
from keras import ops

from keras_aff.layers import shapes


def synchronized_bn(requested):
    """The `synchronized` argument to give a Keras BatchNormalization for
    `bn_synchronized=requested`.

    Keras' BatchNormalization takes `synchronized=True` on TensorFlow only
    (cross-replica statistics under a `tf.distribute` strategy) and raises
    `ValueError` elsewhere. On JAX, `keras.distribution.DataParallel` jits
    one computation over the global batch, so the batch statistics are
    global already: the request is met without the argument
    (tests/distributed checks it). torch has no multi-device Keras
    distribution, so there is nothing to synchronize.

    Example:

    >>> from keras_aff.layers import gate
    >>> gate.synchronized_bn(False)
    False
    """
    return bool(requested) and keras.backend.backend() == "tensorflow"


def global_mean(z, axes):
    """The mean of `z` over `axes` (kept), accumulated in float32 for
    half-precision `z` and returned in `z`'s dtype: a float16 mean of a
    large map loses its accuracy (and TF's CPU float16 reduce_mean returns
    0.653 for a 224x224 map of 2.0).

    Example:

    >>> from keras_aff.layers import gate
    >>> z = np.full((1, 224, 224, 2), 2.0, "float16")
    >>> keras.ops.convert_to_numpy(gate.global_mean(z, (1, 2))).ravel()
    array([2., 2.], dtype=float16)
    """
    dtype = keras.backend.standardize_dtype(z.dtype)
    if dtype in ("float16", "bfloat16"):
        mean = ops.mean(ops.cast(z, "float32"), axes, keepdims=True)
        return ops.cast(mean, dtype)
    return ops.mean(z, axes, keepdims=True)


def _fresh(getter, config):
    # A new object per conv: one seeded initializer must not be shared.
    return getter(copy.deepcopy(config))


class ContextBranch(keras.layers.Layer):
    """One MS-CAM branch: [global average ->] 1x1 conv (C -> c) -> BN ->
    ReLU -> 1x1 conv (c -> C) -> BN (built by its gate).

    A "global" branch averages over the spatial axes first (in float32,
    keeping the axes, so its output broadcasts back). With
    `use_batch_norm=False` the BNs are left out (`bn1` and `bn2` are None):
    the form of a gate whose BNs were folded into its convs
    (`keras_aff.optimize.fold_batchnorm`). The convs and BNs run
    channels_last; with `channels_first` the branch transposes in and out
    (a 1x1 conv has the same kernel in either layout).

    Example:

    >>> from keras_aff.layers import gate
    >>> branch = gate.ContextBranch(
    ...     "global", 16, 4, 4, True, 0.9, 1e-5, False, "glorot_uniform",
    ...     None, "channels_last")
    >>> tuple(branch(np.ones((2, 8, 8, 16), "float32")).shape)
    (2, 1, 1, 16)
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
        self.data_format = data_format
        conv_cls = shapes.conv_class(keras.layers, rank)
        conv = dict(
            kernel_size=1,
            use_bias=use_bias,
            data_format="channels_last",  # whatever the global default
            dtype=self.dtype_policy,
        )
        bn = dict(
            axis=-1,
            momentum=bn_momentum,
            epsilon=bn_epsilon,
            synchronized=synchronized_bn(bn_synchronized),
            dtype=self.dtype_policy,
        )
        init = (keras.initializers.get, kernel_initializer)
        reg = (keras.regularizers.get, kernel_regularizer)
        # Created in this order (conv1, bn1, conv2, bn2): the order of the
        # variables, by which `.keras` files store optimizer slots.
        self.conv1 = conv_cls(
            inter_channels,
            name="conv1",
            kernel_initializer=_fresh(*init),
            kernel_regularizer=_fresh(*reg),
            **conv,
        )
        self.bn1 = self.bn2 = None
        if use_batch_norm:
            self.bn1 = keras.layers.BatchNormalization(name="bn1", **bn)
        self.conv2 = conv_cls(
            channels,
            name="conv2",
            kernel_initializer=_fresh(*init),
            kernel_regularizer=_fresh(*reg),
            **conv,
        )
        if use_batch_norm:
            self.bn2 = keras.layers.BatchNormalization(name="bn2", **bn)
        self.spatial_axes = shapes.spatial_axes(rank, data_format)
        self.to_last, self.to_first = shapes.channel_permutations(
            rank, data_format
        )

    def build(self, input_shape):
        shape = self._pooled(input_shape)
        if self.to_last is not None:
            shape = tuple(shape[i] for i in self.to_last)
        for layer in (self.conv1, self.bn1, self.conv2, self.bn2):
            if layer is not None:  # None: use_batch_norm=False
                layer.build(shape)
                shape = tuple(layer.compute_output_shape(shape))

    def call(self, inputs, training=None):
        z = inputs
        if self.kind == "global":
            z = global_mean(z, self.spatial_axes)
        if self.to_last is not None:
            z = ops.transpose(z, self.to_last)
        z = self.conv1(z)
        if self.bn1 is not None:
            z = self.bn1(z, training=training)
        z = self.conv2(ops.relu(z))
        if self.bn2 is not None:
            z = self.bn2(z, training=training)
        if self.to_first is not None:
            z = ops.transpose(z, self.to_first)
        return z

    def compute_output_shape(self, input_shape):
        shape = list(self._pooled(input_shape))
        shape[-1 if self.to_last is None else 1] = self.conv2.filters
        return tuple(shape)

    def _pooled(self, input_shape):
        shape = list(input_shape)
        if self.kind == "global":
            for axis in self.spatial_axes:
                shape[axis] = 1
        return tuple(shape)


class MSCAMGate(keras.layers.Layer):
    """The MS-CAM gate `sigmoid(B1(z) + B2(z))`, the branches named in
    `branches` (by default the local and the global branch), in the
    layer's compute dtype.

    It is told its sizes: `channels` (C, per input), `inter_channels` (c)
    and, for an N-way fusion, `num_inputs=N` (its branches then produce
    `N * C` channels and it returns the logits `B1(z) + B2(z)`, see the
    module docstring). Owners read those three attributes, never the
    branches'.

    Example:

    >>> from keras_aff.layers import gate
    >>> g = gate.MSCAMGate(
    ...     branches=("local", "global"), channels=16, inter_channels=4,
    ...     rank=4, use_bias=True, bn_momentum=0.9, bn_epsilon=1e-5,
    ...     bn_synchronized=False, kernel_initializer="glorot_uniform",
    ...     kernel_regularizer=None, data_format="channels_last")
    >>> w = g(np.ones((2, 8, 8, 16), "float32"))
    >>> bool(keras.ops.all((w >= 0) & (w <= 1)))
    True
    """

    def __init__(
        self,
        branches,
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
        num_inputs=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = channels
        self.inter_channels = inter_channels
        self.num_inputs = num_inputs
        names = branches
        if branches[0] == branches[1]:  # ablations: unique, stable names
            names = (f"{branches[0]}1", f"{branches[1]}2")
        attributes = ("branch1", "branch2")
        for attribute, kind, name in zip(attributes, branches, names):
            branch = ContextBranch(
                kind,
                channels * (num_inputs or 1),
                inter_channels,
                rank,
                use_bias,
                bn_momentum,
                bn_epsilon,
                bn_synchronized,
                kernel_initializer,
                kernel_regularizer,
                data_format,
                use_batch_norm,
                name=name,
                dtype=self.dtype_policy,
            )
            setattr(self, attribute, branch)

    def build(self, input_shape):
        self.branch1.build(input_shape)
        self.branch2.build(input_shape)

    def call(self, inputs, training=None):
        logits = self.branch1(inputs, training=training) + self.branch2(
            inputs, training=training
        )
        if self.num_inputs is not None:
            return logits
        return ops.sigmoid(logits)

    def compute_output_shape(self, input_shape):
        # The sum broadcasts a global branch's (B, 1, 1, C) back.
        a = self.branch1.compute_output_shape(input_shape)
        b = self.branch2.compute_output_shape(input_shape)
        return tuple(p if q == 1 else q for p, q in zip(a, b))


def build_gate(layer, name, shape, num_inputs=None):
    """The gate `name` of fusion layer `layer`, built for a feature map of
    `shape` (checked by `shapes.check_feature_shape`) from the gate
    arguments `layer` stores; with `num_inputs=N`, the gate of an N-way
    fusion.

    Example:

    >>> from keras_aff.layers import gate
    >>> layer = keras_aff.layers.MSCAM(reduction_ratio=4)
    >>> g = gate.build_gate(layer, "g", (None, 8, 8, 16))
    >>> g.channels, g.inter_channels, g.branch2.kind
    (16, 4, 'global')
    >>> g3 = gate.build_gate(layer, "g3", (None, 8, 8, 16), num_inputs=3)
    >>> g3.branch1.conv2.filters
    48
    """
    rank, channels = shapes.check_feature_shape(
        layer.name, shape, layer.data_format, layer.reduction_ratio
    )
    gate = MSCAMGate(
        branches=layer.branches,
        channels=channels,
        inter_channels=channels // layer.reduction_ratio,
        rank=rank,
        use_bias=layer.use_bias,
        bn_momentum=layer.bn_momentum,
        bn_epsilon=layer.bn_epsilon,
        bn_synchronized=layer.bn_synchronized,
        kernel_initializer=keras.initializers.serialize(
            layer.kernel_initializer
        ),
        kernel_regularizer=keras.regularizers.serialize(
            layer.kernel_regularizer
        ),
        data_format=layer.data_format,
        use_batch_norm=layer.use_batch_norm,
        num_inputs=num_inputs,
        name=name,
        dtype=layer.dtype_policy,
    )
    gate.build(tuple(shape))
    return gate
