"""The MS-CAM gate `M(z) = sigmoid(L(z) + G(z))`, written once.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

    L(z) = BN(Conv1x1(c -> C)(ReLU(BN(Conv1x1(C -> c)(z)))))   per position
    G(z) = the same on the global average of z, broadcast back

with `c = C // reduction_ratio`. `MSCAM`, `AFF` and `IAFF` own one or two
gates as the sublayers `attention` / `attention1`, `attention2`; anyone who
needs the gate's output calls the layer's `fusion_weights()`.

For `MultiAFF` (N inputs) the same gate is built with `num_inputs=N`: the
last conv of each branch produces `N * C` channels and the gate returns
the logits `L(z) + G(z)` (input-major: channel `i * C + k` belongs to input
`i`); the layer turns them into weights with a softmax over the inputs.

This module also owns the gate's constructor arguments: `gate_arguments`
checks them, the layers store them under their own names and
`gate_config` serializes them, so the three layers (and their tf_keras
twins) accept, check and save them identically.

The shared classes (`ContextBranchCore`, `MSCAMGateCore`) take their Keras
flavour from the class attribute `kit` (a `keras_aff.layers.kit.LayerKit`);
`ContextBranch` and `MSCAMGate` are the Keras 3 ones.
"""

import copy

import keras

from keras_aff import _validation
from keras_aff.layers import kit as kit_module
from keras_aff.layers import shapes

BRANCH_KINDS = ("local", "global")
DEFAULT_BRANCHES = ("local", "global")
GATE_ARGUMENTS = (
    "reduction_ratio",
    "use_bias",
    "bn_momentum",
    "bn_epsilon",
    "bn_synchronized",
    "kernel_initializer",
    "kernel_regularizer",
    "data_format",
    "branches",
    "use_batch_norm",
    "implementation",
)


def check_branches(value):
    """Two branch names, each "local" or "global".

    Example:

    >>> from keras_aff.layers import gate
    >>> gate.check_branches(["global", "global"])
    ('global', 'global')
    """
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(
            "Expected `branches` to be a list or tuple of two branch names "
            f"from {BRANCH_KINDS}. "
            + _validation.received("branches", value, with_type=True)
        )
    value = tuple(value)
    if len(value) != 2 or any(v not in BRANCH_KINDS for v in value):
        raise ValueError(
            "Expected `branches` to be two branch names, each one of "
            f"{BRANCH_KINDS}, e.g. ('local', 'global'). "
            + _validation.received("branches", value)
        )
    return value


def gate_arguments(
    kit,
    reduction_ratio=4,
    use_bias=True,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    bn_synchronized=False,
    kernel_initializer="glorot_uniform",
    kernel_regularizer=None,
    data_format=None,
    branches=DEFAULT_BRANCHES,
    use_batch_norm=True,
    implementation="auto",
):
    """Checks the gate's arguments; returns them by name, canonical.

    Example:

    >>> from keras_aff.layers import gate, kit
    >>> args = gate.gate_arguments(
    ...     kit.KERAS3, 4, True, 0.9, 1e-5, False, "glorot_uniform", None,
    ...     None, ("local", "global"))
    >>> args["data_format"], args["reduction_ratio"], args["implementation"]
    ('channels_last', 4, 'auto')
    """
    from keras_aff.layers import dispatch  # it imports this module

    check = _validation
    arguments = {
        "reduction_ratio": check.check_int(
            "reduction_ratio", reduction_ratio, min_value=1
        ),
        "use_bias": check.check_bool("use_bias", use_bias),
        "bn_momentum": check.check_number(
            "bn_momentum", bn_momentum, low=0.0, high=1.0, high_open=True
        ),
        "bn_epsilon": check.check_number(
            "bn_epsilon", bn_epsilon, low=0.0, low_open=True
        ),
        "bn_synchronized": check.check_bool("bn_synchronized", bn_synchronized),
        "kernel_initializer": check.check_keras_object(
            "kernel_initializer", kernel_initializer, kit.initializers.get
        ),
        "kernel_regularizer": check.check_keras_object(
            "kernel_regularizer", kernel_regularizer, kit.regularizers.get
        ),
        "data_format": check.check_data_format(
            data_format, kit.image_data_format()
        ),
        "branches": check_branches(branches),
        "use_batch_norm": check.check_bool("use_batch_norm", use_batch_norm),
        "implementation": check.check_choice(
            "implementation", implementation, dispatch.IMPLEMENTATIONS
        ),
    }
    dispatch.check_fused_support(kit, arguments)
    return arguments


def store_gate_arguments(layer, arguments):
    """Checks the gate arguments among `arguments` (a fusion layer's
    `__init__` locals) with `gate_arguments` and stores each on `layer`
    under its own name.

    Example:

    >>> from keras_aff.layers import gate
    >>> layer = keras_aff.layers.MSCAM()
    >>> gate.store_gate_arguments(layer, {"reduction_ratio": 8})
    >>> layer.reduction_ratio, layer.data_format
    (8, 'channels_last')
    """
    given = {k: arguments[k] for k in GATE_ARGUMENTS if k in arguments}
    for name, value in gate_arguments(layer.kit, **given).items():
        setattr(layer, name, value)


def gate_config(layer):
    """The gate arguments stored on `layer`, as plain JSON values.

    Example:

    >>> from keras_aff.layers import gate
    >>> gate.gate_config(keras_aff.layers.MSCAM())["branches"]
    ['local', 'global']
    """
    kit = layer.kit
    return {
        "reduction_ratio": layer.reduction_ratio,
        "use_bias": layer.use_bias,
        "bn_momentum": layer.bn_momentum,
        "bn_epsilon": layer.bn_epsilon,
        "bn_synchronized": layer.bn_synchronized,
        "kernel_initializer": kit.initializers.serialize(
            layer.kernel_initializer
        ),
        "kernel_regularizer": kit.regularizers.serialize(
            layer.kernel_regularizer
        ),
        "data_format": layer.data_format,
        "branches": list(layer.branches),
        "use_batch_norm": layer.use_batch_norm,
        "implementation": layer.implementation,
    }


def gate_dtype(layer):
    """The gate's dtype policy: the layer's, except that a float16 layer's
    gate computes in float32.

    float16 tops out at 65504: on inputs of a few thousand the 1x1 convs
    of the gate overflow to inf, and the next conv turns inf - inf into
    NaN. The gate is small next to the blend; computing it in float32 keeps
    every output finite for finite inputs (the weights are float32 under
    `mixed_float16` anyway). bfloat16 has float32's range and keeps its
    policy. The layers cast the gate's output back to their compute dtype.

    Example:

    >>> from keras_aff.layers import gate
    >>> gate.gate_dtype(keras_aff.layers.AFF(dtype="mixed_float16"))
    'float32'
    """
    if layer.compute_dtype == "float16":
        return "float32"
    return layer.dtype_policy


def build_gate(layer, name, shape, gate_cls, num_inputs=None):
    """Creates and builds one gate of `layer` for a feature map of `shape`
    (checked by `shapes.check_feature_shape`); with `num_inputs=N`,
    the gate of an N-way fusion (N * C logits, see the module docstring).

    Example:

    >>> from keras_aff.layers import gate
    >>> layer = keras_aff.layers.MSCAM(reduction_ratio=4)
    >>> g = gate.build_gate(layer, "g", (None, 8, 8, 16), gate.MSCAMGate)
    >>> g.branch1.conv1.filters, g.branch2.kind
    (4, 'global')
    >>> g3 = gate.build_gate(layer, "g3", (None, 8, 8, 16), gate.MSCAMGate, 3)
    >>> g3.branch1.conv1.filters, g3.branch1.conv2.filters
    (4, 48)
    """
    rank, channels = shapes.check_feature_shape(
        layer.name, shape, layer.data_format, layer.reduction_ratio
    )
    config = gate_config(layer)
    del config["reduction_ratio"]  # the gate takes `inter_channels`
    del config["implementation"]  # the layer's choice, not the gate's
    if num_inputs is not None:
        config["num_inputs"] = num_inputs
    gate = gate_cls(
        channels=channels,
        inter_channels=channels // layer.reduction_ratio,
        rank=rank,
        name=name,
        dtype=gate_dtype(layer),
        output_dtype=layer.compute_dtype,
        **config,
    )
    layer.kit.build_child(gate, tuple(shape))
    return gate


def _fresh(getter, config):
    # A new object per conv: one seeded initializer must not be shared.
    return getter(copy.deepcopy(config))


class ContextBranchCore:
    """One MS-CAM branch: [global average ->] 1x1 conv (C -> c) -> BN ->
    ReLU -> 1x1 conv (c -> C) -> BN. A "global" branch averages over the
    spatial axes first, keeping them, so its output broadcasts back. With
    `use_batch_norm=False` the BNs are left out (`bn1` and `bn2` are None):
    the form of a gate whose BNs were folded into its convs
    (`keras_aff.optimize.fold_batchnorm`).

    The convs and BNs always run channels_last; with `channels_first` the
    branch transposes in and out. TF's CPU kernels cannot run NCHW
    convolutions, and a 1x1 conv has the same kernel in either layout, so
    the weights do not depend on the data format.
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
        self.rank = rank
        self.data_format = data_format
        layers = self.kit.layers
        conv_cls = {3: layers.Conv1D, 4: layers.Conv2D, 5: layers.Conv3D}[rank]
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
            synchronized=self.kit.synchronized_bn(bn_synchronized),
            dtype=self.dtype_policy,
        )
        init = (self.kit.initializers.get, kernel_initializer)
        reg = (self.kit.regularizers.get, kernel_regularizer)
        self.conv1 = conv_cls(
            inter_channels,
            name="conv1",
            kernel_initializer=_fresh(*init),
            kernel_regularizer=_fresh(*reg),
            **conv,
        )
        # Created in this order (conv1, bn1, conv2, bn2): it is the order of
        # the variables, which `.keras` files store optimizer slots by.
        self.bn1 = self.bn2 = None
        if use_batch_norm:
            self.bn1 = layers.BatchNormalization(name="bn1", **bn)
        self.conv2 = conv_cls(
            channels,
            name="conv2",
            kernel_initializer=_fresh(*init),
            kernel_regularizer=_fresh(*reg),
            **conv,
        )
        if use_batch_norm:
            self.bn2 = layers.BatchNormalization(name="bn2", **bn)
        if data_format == "channels_last":
            self.spatial_axes = tuple(range(1, rank - 1))
            self.to_last = self.to_first = None
        else:
            self.spatial_axes = tuple(range(2, rank))
            self.to_last = (0, *range(2, rank), 1)
            self.to_first = (0, rank - 1, *range(1, rank - 1))

    def build(self, input_shape):
        shape = self._pooled(input_shape)
        if self.to_last is not None:
            shape = tuple(shape[i] for i in self.to_last)
        for layer in (self.conv1, self.bn1, self.conv2, self.bn2):
            if layer is None:  # use_batch_norm=False
                continue
            self.kit.build_child(layer, shape)
            shape = tuple(layer.compute_output_shape(shape))

    def call(self, inputs, training=None):
        ops = self.kit.ops
        z = inputs
        if self.kind == "global":
            z = ops.mean(z, self.spatial_axes)
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


class MSCAMGateCore:
    """`M(z) = sigmoid(B1(z) + B2(z))`, the branches named in `branches`
    (by default the local and the global branch), returned in
    `output_dtype` (the owning layer's compute dtype; see `gate_dtype`).

    With `num_inputs=N` the branches produce `N * channels` channels and
    the gate returns the logits `B1(z) + B2(z)` (see the module docstring).
    """

    def __init__(self, branches, output_dtype=None, num_inputs=None, **kwargs):
        base = {k: kwargs.pop(k) for k in ("name", "dtype") if k in kwargs}
        super().__init__(**base)
        self.output_dtype = output_dtype or self.compute_dtype
        self.num_inputs = num_inputs
        if num_inputs is not None:
            kwargs["channels"] = kwargs["channels"] * num_inputs
        names = branches
        if branches[0] == branches[1]:  # ablations: unique, stable names
            names = (f"{branches[0]}1", f"{branches[1]}2")
        self.branch1 = self.branch_cls(
            kind=branches[0], name=names[0], dtype=self.dtype_policy, **kwargs
        )
        self.branch2 = self.branch_cls(
            kind=branches[1], name=names[1], dtype=self.dtype_policy, **kwargs
        )

    def build(self, input_shape):
        self.kit.build_child(self.branch1, input_shape)
        self.kit.build_child(self.branch2, input_shape)

    def call(self, inputs, training=None):
        a = self.branch1(inputs, training=training)
        b = self.branch2(inputs, training=training)
        if self.num_inputs is not None:
            return self.kit.ops.cast(a + b, self.output_dtype)
        return self.kit.ops.cast(self.kit.ops.sigmoid(a + b), self.output_dtype)

    def compute_output_shape(self, input_shape):
        # The sum broadcasts a global branch's (B, 1, 1, C) back.
        a = self.branch1.compute_output_shape(input_shape)
        b = self.branch2.compute_output_shape(input_shape)
        return tuple(p if q == 1 else q for p, q in zip(a, b))


class ContextBranch(ContextBranchCore, keras.layers.Layer):
    """A local or global MS-CAM branch (Keras 3; built by its gate).

    Example:

    >>> from keras_aff.layers import gate
    >>> branch = gate.ContextBranch(
    ...     "global", 16, 4, 4, True, 0.9, 1e-5, False, "glorot_uniform",
    ...     None, "channels_last")
    >>> tuple(branch(np.ones((2, 8, 8, 16), "float32")).shape)
    (2, 1, 1, 16)
    """

    kit = kit_module.KERAS3


class MSCAMGate(MSCAMGateCore, keras.layers.Layer):
    """The MS-CAM gate (Keras 3; built by MSCAM, AFF and IAFF).

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

    kit = kit_module.KERAS3
    branch_cls = ContextBranch
