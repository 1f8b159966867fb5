"""IAFF: iterative attentional feature fusion of two feature maps.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras

from keras_aff import _validation
from keras_aff.layers import align
from keras_aff.layers import arguments
from keras_aff.layers import dispatch
from keras_aff.layers import gate
from keras_aff.layers import shapes


@keras.saving.register_keras_serializable(package="keras_aff")
class IAFF(keras.layers.Layer):
    """Iterative attentional feature fusion of two same-shape feature maps.

    Two MS-CAM gates `M1` and `M2`, each with its OWN local and global
    branches:

        w1 = M1(x + y)
        xi = x * w1 + y * (1 - w1)
        w2 = M2(xi)
        output = output_scale * (x * w2 + y * (1 - w2))

    where `M(z) = sigmoid(L(z) + G(z))` (L: per-position bottleneck of 1x1
    convs with `c = C // reduction_ratio` hidden channels, G: the same on
    the global average, broadcast back). Both blends are computed as
    `y + w * (x - y)`. The weights multiply the FIRST input `x`
    (`fusion_weights([x, y])` returns `(w1, w2)`).

    The official PyTorch port (and LAION-CLAP, which copied it) computes the
    second gate with the FIRST gate's global branch (`global_att` instead of
    `global_att2`, open-aff issue #31); the official MXNet code and this
    layer use the second gate's own global branch. The official code does
    not scale the iAFF output (`output_scale=1.0`, the default), unlike AFF.

    Arguments: the arguments of `AFF`, with the same defaults and meaning:
    reduction_ratio=4, output_scale=1.0, use_bias=True,
    bn_momentum=0.9, bn_epsilon=1e-5, bn_synchronized=False,
    kernel_initializer="glorot_uniform", kernel_regularizer=None,
    data_format=None, branches=("local", "global") (for both gates),
    align_inputs=False, resize_interpolation="bilinear",
    use_batch_norm=True, implementation="auto" (see `AFF`), plus the
    base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list `[x, y]` of two tensors of the same shape, rank 3, 4
            or 5 (see `AFF`); with `align_inputs=True`, of the same rank.
        training: bool, passed to the BatchNormalization sublayers.

    Returns:
        A tensor of the same shape as `x`, in the compute dtype.

    Batch size 1 in training: see `AFF` (the global BatchNorms output their
    `beta`; no error, no NaN).

    Example:

    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> y = keras.random.normal((2, 8, 8, 16))
    >>> tuple(keras_aff.layers.IAFF(reduction_ratio=4)([x, y]).shape)
    (2, 8, 8, 16)

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """

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
            "kernel_initializer", kernel_initializer, keras.initializers.get
        )
        self.kernel_regularizer = check.check_keras_object(
            "kernel_regularizer", kernel_regularizer, keras.regularizers.get
        )
        self.data_format = check.check_data_format(data_format)
        self.branches = arguments.check_branches(branches)
        self.use_batch_norm = check.check_bool("use_batch_norm", use_batch_norm)
        self.implementation = dispatch.check_implementation(
            implementation, self.data_format, self.branches
        )
        self.output_scale = arguments.check_output_scale(output_scale)
        self.align_inputs = check.check_bool("align_inputs", align_inputs)
        self.resize_interpolation = arguments.check_interpolation(
            "resize_interpolation", resize_interpolation
        )

    def build(self, input_shape):
        # With align_inputs, `projection` (y to x's channels) comes first.
        shape = align.build_pair(self, input_shape)
        self.attention1 = gate.build_gate(self, "attention1", shape)
        self.attention2 = gate.build_gate(self, "attention2", shape)
        self.channels = self.attention1.channels
        self.inter_channels = self.attention1.inter_channels

    def call(self, inputs, training=None):
        x, y = align.aligned_pair(self, inputs, training)
        fused = dispatch.fused_kernels(self)
        if fused is not None:
            return fused.iaff(self, x, y, training)
        _, w2 = self._weights(x, y, training)
        out = y + w2 * (x - y)
        if self.output_scale != 1.0:
            out = out * self.output_scale
        return out

    def _weights(self, x, y, training):
        w1 = self.attention1(x + y, training=training)
        xi = y + w1 * (x - y)
        # The second gate has its OWN local and global branches (the
        # official PyTorch port reuses the first global branch here).
        w2 = self.attention2(xi, training=training)
        return w1, w2

    def fusion_weights(self, inputs, training=False):
        """The weights `(w1, w2)` of the first input: `w1 = M1(x + y)` and
        `w2 = M2(xi)` with `xi = y + w1 * (x - y)`.

        Example:

        >>> layer = keras_aff.layers.IAFF(reduction_ratio=4)
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(2, 2, 8, 8, 16)).astype("float32")
        >>> w1, w2 = layer.fusion_weights([x, y])
        >>> w2 = keras.ops.convert_to_numpy(w2)
        >>> out = keras.ops.convert_to_numpy(layer([x, y]))
        >>> np.allclose(out, y + w2 * (x - y), atol=1e-6)
        True
        """
        x, y = align.aligned_pair(self, inputs, training)
        return self._weights(x, y, training)

    def compute_output_shape(self, input_shape):
        if self.align_inputs:
            return align.aligned_shape(self.name, input_shape)
        return shapes.check_pair_shapes(self.name, input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            arguments.gate_config(self, keras.initializers, keras.regularizers)
        )
        config["implementation"] = self.implementation
        config["output_scale"] = self.output_scale
        config["align_inputs"] = self.align_inputs
        config["resize_interpolation"] = self.resize_interpolation
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(arguments.check_config(cls, config))
