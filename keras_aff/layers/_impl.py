"""The one implementation of MS-CAM, AFF and iAFF, shared by every flavour.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

This module holds the math, the argument checks and the configs as mixins
that know nothing about a particular Keras. A flavour supplies a "kit"
(`_kit` class attribute) with:

- `layers`: the module that provides `Conv1D/2D/3D` and `BatchNormalization`
  (`keras.layers` for Keras 3, `tf_keras.layers` for the legacy twin);
- `relu`, `sigmoid`, `transpose(x, axes)`, `mean(x, axis)` (keepdims,
  float32 accumulation for half types): the ops the math uses;
- `build_child(layer, shape)`: builds a sublayer (tf_keras needs a name
  scope so that variable names stay unique);
- `image_data_format()`, `initializers`, `regularizers`, `dtype_policy(l)`.

Keras 3 classes live in `ms_cam.py`, `aff.py` and `iaff.py`; the tf_keras
twin in `keras_aff.legacy`. Both get identical math, configs and variable
paths (`aff/attention/local/conv1/kernel`).
"""

import copy
import math
import numbers

BRANCH_KINDS = ("local", "global")
DATA_FORMATS = ("channels_last", "channels_first")
DEFAULT_BRANCHES = ("local", "global")


# ---------------------------------------------------------------------------
# Argument validation (plain functions, shared by every flavour)
# ---------------------------------------------------------------------------
def validate_reduction_ratio(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            "Expected `reduction_ratio` to be a positive integer. "
            f"Received: reduction_ratio={value!r} "
            f"(of type {type(value).__name__})"
        )
    if value < 1:
        raise ValueError(
            "Expected `reduction_ratio` to be a positive integer (>= 1). "
            f"Received: reduction_ratio={value}"
        )
    return int(value)


def validate_output_scale(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            "Expected `output_scale` to be a finite positive number. "
            f"Received: output_scale={value!r} "
            f"(of type {type(value).__name__})"
        )
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            "Expected `output_scale` to be a finite positive number. "
            f"Received: output_scale={value}"
        )
    return value


def validate_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(
            f"Expected `{name}` to be a bool. Received: {name}={value!r}"
        )
    return value


def validate_bn_momentum(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            "Expected `bn_momentum` to be a number in [0, 1). "
            f"Received: bn_momentum={value!r}"
        )
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(
            "Expected `bn_momentum` to be a number in [0, 1). "
            f"Received: bn_momentum={value}"
        )
    return float(value)


def validate_bn_epsilon(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            "Expected `bn_epsilon` to be a positive number. "
            f"Received: bn_epsilon={value!r}"
        )
    if not (math.isfinite(float(value)) and float(value) > 0):
        raise ValueError(
            "Expected `bn_epsilon` to be a positive number. "
            f"Received: bn_epsilon={value}"
        )
    return float(value)


def validate_data_format(value, default):
    if value is None:
        value = default
    if not isinstance(value, str) or value.lower() not in DATA_FORMATS:
        raise ValueError(
            "Expected `data_format` to be one of "
            f"{DATA_FORMATS} or None. Received: data_format={value!r}"
        )
    return value.lower()


def validate_branches(value):
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(
            "Expected `branches` to be a list or tuple of two branch names "
            f"from {BRANCH_KINDS}. Received: branches={value!r}"
        )
    value = tuple(value)
    if len(value) != 2 or any(v not in BRANCH_KINDS for v in value):
        raise ValueError(
            "Expected `branches` to be two branch names, each one of "
            f"{BRANCH_KINDS}, e.g. ('local', 'global'). "
            f"Received: branches={value!r}"
        )
    return value


def branch_layer_names(branches):
    """Sublayer names for the two branches: unique and stable."""
    if branches[0] == branches[1]:
        return (f"{branches[0]}1", f"{branches[1]}2")
    return tuple(branches)


def _is_shape(shape):
    return isinstance(shape, (list, tuple)) and all(
        d is None or isinstance(d, numbers.Integral) for d in shape
    )


def _shape_tuple(shape):
    if hasattr(shape, "as_list"):  # tf.TensorShape (tf_keras)
        shape = shape.as_list() if shape.rank is not None else None
    if shape is None:
        return None
    return tuple(None if d is None else int(d) for d in shape)


def channel_axis(data_format):
    return -1 if data_format == "channels_last" else 1


def check_feature_shape(layer_name, shape, data_format, reduction_ratio):
    """Checks one feature-map shape; returns (rank, channels)."""
    shape = _shape_tuple(shape)
    if shape is None or len(shape) not in (3, 4, 5):
        raise ValueError(
            f"Layer '{layer_name}' expects a 1-D, 2-D or 3-D feature map: "
            "an input of rank 3 (batch, steps, channels), 4 (batch, height, "
            "width, channels) or 5 (batch, depth, height, width, channels) "
            f"(channels first when data_format='channels_first'). "
            f"Received: input_shape={shape}"
        )
    channels = shape[channel_axis(data_format)]
    if channels is None:
        raise ValueError(
            f"Layer '{layer_name}' needs a known channel dimension "
            f"(axis {channel_axis(data_format)} for data_format="
            f"'{data_format}'). Received: input_shape={shape}"
        )
    if channels // reduction_ratio < 1:
        raise ValueError(
            f"Layer '{layer_name}': `reduction_ratio` is too large for "
            f"{channels} channels; channels // reduction_ratio must be at "
            f"least 1, so use a reduction_ratio between 1 and {channels}. "
            f"Received: reduction_ratio={reduction_ratio} with "
            f"input_shape={shape}"
        )
    return len(shape), channels


def check_pair_shapes(layer_name, input_shape):
    """Checks that `input_shape` describes a list of exactly two tensors
    whose static shapes agree; returns the merged shape."""
    if hasattr(input_shape, "as_list") or _is_shape(input_shape):
        raise ValueError(
            f"Layer '{layer_name}' must be called on a list of exactly two "
            "tensors [x, y] of the same shape. Received: a single input "
            f"with shape {_shape_tuple(input_shape)}"
        )
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
        n = len(input_shape) if isinstance(input_shape, (list, tuple)) else 1
        raise ValueError(
            f"Layer '{layer_name}' must be called on a list of exactly two "
            f"tensors [x, y]. Received: {n} inputs"
        )
    sx, sy = (_shape_tuple(s) for s in input_shape)
    if sx is None or sy is None or len(sx) != len(sy):
        raise ValueError(
            f"Layer '{layer_name}' needs two inputs of the same shape. "
            f"Received: x.shape={sx} and y.shape={sy}"
        )
    merged = []
    for a, b in zip(sx, sy):
        if a is not None and b is not None and a != b:
            raise ValueError(
                f"Layer '{layer_name}' needs two inputs of the same shape. "
                f"Received: x.shape={sx} and y.shape={sy}"
            )
        merged.append(a if a is not None else b)
    return tuple(merged)


def check_pair_inputs(layer_name, inputs):
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        n = len(inputs) if isinstance(inputs, (list, tuple)) else 1
        raise ValueError(
            f"Layer '{layer_name}' must be called on a list of exactly two "
            f"tensors [x, y]. Received: {n} input(s)"
        )
    # build() checked the first call only; a built layer called again on
    # [x, y] of different shapes would otherwise broadcast silently.
    check_pair_shapes(layer_name, [_known_dims(t.shape) for t in inputs])
    return inputs


def _known_dims(shape):
    """A tensor's shape with every dim that is not a plain int (None, a
    JAX symbolic dim while Keras traces an output spec) as None."""
    if hasattr(shape, "as_list"):  # tf.TensorShape
        if shape.rank is None:
            return None
        shape = shape.as_list()
    return tuple(
        int(d) if isinstance(d, numbers.Integral) else None for d in shape
    )


# ---------------------------------------------------------------------------
# The shared layer logic
# ---------------------------------------------------------------------------
class ContextBranchMixin:
    """One MS-CAM branch: [global average] -> 1x1 conv(C->c) -> BN -> ReLU ->
    1x1 conv(c->C) -> BN. A "global" branch first averages over the spatial
    axes (keeping them, so the result broadcasts back).

    The 1x1 convs and BNs always run channels_last: with
    `data_format="channels_first"` the branch transposes in and out. TF's
    CPU kernels cannot run NCHW convolutions (`UnimplementedError: The
    Conv2D op currently only supports the NHWC tensor format on the CPU`),
    and a 1x1 conv has the same kernel in either layout, so the weights do
    not depend on the data format.
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
        kernel_initializer,
        kernel_regularizer,
        data_format,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kind = kind
        self.rank = rank
        self.data_format = data_format
        kit = self._kit
        conv_cls = {
            3: kit.layers.Conv1D,
            4: kit.layers.Conv2D,
            5: kit.layers.Conv3D,
        }[rank]
        policy = kit.dtype_policy(self)

        def fresh(getter, serialized):
            # A new object per conv: a seeded initializer must not be shared.
            return getter(copy.deepcopy(serialized))

        common = dict(
            kernel_size=1,
            use_bias=use_bias,
            data_format="channels_last",
            dtype=policy,
        )
        init, reg = kernel_initializer, kernel_regularizer
        bn = dict(
            axis=-1, momentum=bn_momentum, epsilon=bn_epsilon, dtype=policy
        )
        self.conv1 = conv_cls(
            inter_channels,
            name="conv1",
            kernel_initializer=fresh(kit.initializers.get, init),
            kernel_regularizer=fresh(kit.regularizers.get, reg),
            **common,
        )
        self.bn1 = kit.layers.BatchNormalization(name="bn1", **bn)
        self.conv2 = conv_cls(
            channels,
            name="conv2",
            kernel_initializer=fresh(kit.initializers.get, init),
            kernel_regularizer=fresh(kit.regularizers.get, reg),
            **common,
        )
        self.bn2 = kit.layers.BatchNormalization(name="bn2", **bn)
        if data_format == "channels_last":
            self.spatial_axes = tuple(range(1, rank - 1))
            self._to_last = self._to_first = None
        else:
            self.spatial_axes = tuple(range(2, rank))
            self._to_last = (0,) + tuple(range(2, rank)) + (1,)
            self._to_first = (0, rank - 1) + tuple(range(1, rank - 1))

    def build(self, input_shape):
        kit = self._kit
        shape = list(self.compute_output_shape(input_shape))
        if self._to_last is not None:
            shape = [shape[i] for i in self._to_last]
        kit.build_child(self.conv1, tuple(shape))
        shape = list(self.conv1.compute_output_shape(tuple(shape)))
        kit.build_child(self.bn1, tuple(shape))
        kit.build_child(self.conv2, tuple(shape))
        shape = self.conv2.compute_output_shape(tuple(shape))
        kit.build_child(self.bn2, tuple(shape))

    def call(self, inputs, training=None):
        kit = self._kit
        z = inputs
        if self.kind == "global":
            z = kit.mean(z, self.spatial_axes)
        if self._to_last is not None:
            z = kit.transpose(z, self._to_last)
        z = self.conv1(z)
        z = self.bn1(z, training=training)
        z = kit.relu(z)
        z = self.conv2(z)
        z = self.bn2(z, training=training)
        if self._to_first is not None:
            z = kit.transpose(z, self._to_first)
        return z

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if self.kind == "global":
            for a in self.spatial_axes:
                shape[a] = 1
        return tuple(shape)


class GateMixin:
    """The MS-CAM gate M(z) = sigmoid(B1(z) + B2(z)); B1, B2 are the branches
    named in `branches` (default local and global)."""

    def __init__(self, branches, **kwargs):
        base_keys = ("name", "dtype", "trainable")
        super().__init__(**{k: v for k, v in kwargs.items() if k in base_keys})
        branch_kwargs = {k: v for k, v in kwargs.items() if k not in base_keys}
        branch_cls = self._branch_cls
        names = branch_layer_names(branches)
        policy = self._kit.dtype_policy(self)
        self.branch1 = branch_cls(
            kind=branches[0], name=names[0], dtype=policy, **branch_kwargs
        )
        self.branch2 = branch_cls(
            kind=branches[1], name=names[1], dtype=policy, **branch_kwargs
        )

    def build(self, input_shape):
        self._kit.build_child(self.branch1, input_shape)
        self._kit.build_child(self.branch2, input_shape)

    def call(self, inputs, training=None):
        a = self.branch1(inputs, training=training)
        b = self.branch2(inputs, training=training)
        return self._kit.sigmoid(a + b)

    def compute_output_shape(self, input_shape):
        return input_shape


class FusionMixin:
    """Arguments, build, call and config shared by MSCAM, AFF and IAFF.

    Subclasses set `_num_gates` (1 or 2), `_pairwise` (False for MSCAM),
    `_has_output_scale`, and a flavour sets `_kit` and `_gate_cls`. The
    mixins define the layer methods themselves, so a flavour's class is
    `class AFF(AFFMixin, <flavour>.layers.Layer)` plus its kit.
    """

    _num_gates = 1
    _pairwise = True
    _has_output_scale = True

    def __init__(
        self,
        reduction_ratio=4,
        output_scale=1.0,
        use_bias=True,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        data_format=None,
        branches=DEFAULT_BRANCHES,
        **kwargs,
    ):
        super().__init__(**kwargs)
        kit = self._kit
        self.reduction_ratio = validate_reduction_ratio(reduction_ratio)
        if self._has_output_scale:
            self.output_scale = validate_output_scale(output_scale)
        self.use_bias = validate_bool("use_bias", use_bias)
        self.bn_momentum = validate_bn_momentum(bn_momentum)
        self.bn_epsilon = validate_bn_epsilon(bn_epsilon)
        try:
            self.kernel_initializer = kit.initializers.get(kernel_initializer)
        except (ValueError, TypeError) as e:
            raise ValueError(
                "Could not interpret `kernel_initializer`. "
                f"Received: kernel_initializer={kernel_initializer!r} ({e})"
            ) from None
        try:
            self.kernel_regularizer = kit.regularizers.get(kernel_regularizer)
        except (ValueError, TypeError) as e:
            raise ValueError(
                "Could not interpret `kernel_regularizer`. "
                f"Received: kernel_regularizer={kernel_regularizer!r} ({e})"
            ) from None
        self.data_format = validate_data_format(
            data_format, kit.image_data_format()
        )
        self.branches = validate_branches(branches)
        self.supports_masking = False

    def _gate_names(self):
        if self._num_gates == 1:
            return ("attention",)
        return ("attention1", "attention2")

    def build(self, input_shape):
        if self._pairwise:
            shape = check_pair_shapes(self.name, input_shape)
        elif not (hasattr(input_shape, "as_list") or _is_shape(input_shape)):
            raise ValueError(
                f"Layer '{self.name}' must be called on a single tensor "
                "(use AFF or IAFF to fuse two). Received: input_shape="
                f"{input_shape}"
            )
        else:
            shape = _shape_tuple(input_shape)
        rank, channels = check_feature_shape(
            self.name, shape, self.data_format, self.reduction_ratio
        )
        self.channels = channels
        self.inter_channels = channels // self.reduction_ratio
        kit = self._kit
        gates = []
        for gate_name in self._gate_names():
            gate = self._gate_cls(
                branches=self.branches,
                channels=channels,
                inter_channels=self.inter_channels,
                rank=rank,
                use_bias=self.use_bias,
                bn_momentum=self.bn_momentum,
                bn_epsilon=self.bn_epsilon,
                kernel_initializer=kit.initializers.serialize(
                    self.kernel_initializer
                ),
                kernel_regularizer=kit.regularizers.serialize(
                    self.kernel_regularizer
                ),
                data_format=self.data_format,
                name=gate_name,
                dtype=kit.dtype_policy(self),
            )
            kit.build_child(gate, shape)
            gates.append(gate)
        if self._num_gates == 1:
            self.attention = gates[0]
        else:
            self.attention1, self.attention2 = gates

    def call(self, inputs, training=None):
        return self._fuse(inputs, training=training)

    def compute_output_shape(self, input_shape):
        if self._pairwise:
            return check_pair_shapes(self.name, input_shape)
        return input_shape

    def _blend(self, x, y, w):
        # y + w * (x - y) == x * w + y * (1 - w), one multiply fewer, and no
        # `1 - w` for the LiteRT NCHW converter bug to swap.
        out = y + w * (x - y)
        if self.output_scale != 1.0:
            out = out * self.output_scale
        return out

    def get_config(self):
        kit = self._kit
        config = super().get_config()
        config.update(
            {
                "reduction_ratio": self.reduction_ratio,
                "use_bias": self.use_bias,
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
                "kernel_initializer": kit.initializers.serialize(
                    self.kernel_initializer
                ),
                "kernel_regularizer": kit.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "data_format": self.data_format,
                "branches": list(self.branches),
            }
        )
        if self._has_output_scale:
            config["output_scale"] = self.output_scale
        return config


class MSCAMMixin(FusionMixin):
    _pairwise = False
    _has_output_scale = False

    def __init__(
        self,
        reduction_ratio=4,
        use_bias=True,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        data_format=None,
        branches=DEFAULT_BRANCHES,
        **kwargs,
    ):
        if "output_scale" in kwargs:
            # FusionMixin takes `output_scale`; without this check MSCAM
            # would accept it through **kwargs and silently ignore it.
            raise ValueError(
                f"Unrecognized keyword arguments passed to "
                f"{type(self).__name__}: MSCAM has no `output_scale` (only "
                "AFF and IAFF do). "
                f"Received: output_scale={kwargs['output_scale']!r}"
            )
        super().__init__(
            reduction_ratio=reduction_ratio,
            use_bias=use_bias,
            bn_momentum=bn_momentum,
            bn_epsilon=bn_epsilon,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            data_format=data_format,
            branches=branches,
            **kwargs,
        )

    def _fuse(self, x, training=None):
        return x * self.attention(x, training=training)

    def fusion_weights(self, inputs, training=False):
        return self.attention(inputs, training=training)


class AFFMixin(FusionMixin):
    def _fuse(self, inputs, training=None):
        x, y = check_pair_inputs(self.name, inputs)
        w = self.attention(x + y, training=training)
        return self._blend(x, y, w)

    def fusion_weights(self, inputs, training=False):
        x, y = check_pair_inputs(self.name, inputs)
        return self.attention(x + y, training=training)


class IAFFMixin(FusionMixin):
    _num_gates = 2

    def _fuse(self, inputs, training=None):
        x, y = check_pair_inputs(self.name, inputs)
        w1 = self.attention1(x + y, training=training)
        xi = y + w1 * (x - y)
        # The second gate has its OWN local and global branches (the official
        # PyTorch port reuses the first global branch here; we do not).
        w2 = self.attention2(xi, training=training)
        return self._blend(x, y, w2)

    def fusion_weights(self, inputs, training=False):
        x, y = check_pair_inputs(self.name, inputs)
        w1 = self.attention1(x + y, training=training)
        w2 = self.attention2(y + w1 * (x - y), training=training)
        return w1, w2
