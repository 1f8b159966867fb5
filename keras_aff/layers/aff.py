"""AFF: attentional feature fusion of two feature maps.

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
class AFF(keras.layers.Layer):
    """Attentional feature fusion of two same-shape feature maps.

    With `w = M(x + y)`, where `M(z) = sigmoid(L(z) + G(z))` is the MS-CAM
    gate (L: per-position bottleneck of 1x1 convs with `c = C //
    reduction_ratio` hidden channels, G: the same on the global average,
    broadcast back), the output is

        output_scale * (x * w + y * (1 - w))

    computed as `output_scale * (y + w * (x - y))`. The weight `w` multiplies
    the FIRST input `x` (`fusion_weights([x, y])` returns it). In the
    official ResNets `x` is the residual branch and `y` the shortcut
    (`fuse(out, identity)`).

    `output_scale=1.0` is the paper's equation (4). The official MXNet and
    PyTorch code multiplies the AFF output by 2 ("so that the weights sum to
    2 like x + y"); use `output_scale=2.0` to reproduce the official
    networks or to load their weights.

    Args:
        reduction_ratio: int, default 4. `c = channels // reduction_ratio`
            hidden channels in each branch (the paper uses 4 on CIFAR and 16
            on ImageNet).
        output_scale: float, default 1.0. Multiplies the fused output.
        use_bias: bool, default True. Bias on the 1x1 convs (as the official
            attention convs).
        bn_momentum: float, default 0.9. BatchNormalization momentum (the
            official PyTorch 0.1 is Keras 0.9; Keras' 0.99 lags badly here).
        bn_epsilon: float, default 1e-5. BatchNormalization epsilon.
        bn_synchronized: bool, default False. Passed to every
            BatchNormalization as `synchronized` (cross-replica statistics
            under a TensorFlow `tf.distribute` strategy).
        kernel_initializer: initializer for the 1x1 conv kernels, default
            "glorot_uniform".
        kernel_regularizer: optional regularizer for the 1x1 conv kernels.
        data_format: "channels_last", "channels_first" or None (default:
            `keras.config.image_data_format()`).
        branches: tuple of two branch names, default ("local", "global").
            ("global", "global") and ("local", "local") reproduce the
            paper's Table 3 ablation.
        align_inputs: bool, default False. If True, `x` and `y` may differ
            in channels and spatial size (same rank): `y` is projected to
            `x`'s channels by a 1x1 conv + BatchNormalization (the sublayer
            `projection`, created only when the channels differ) and
            resized to `x`'s size (see `keras_aff.layers.Align`). With
            equal shapes nothing is added and the output is that of
            `align_inputs=False`.
        resize_interpolation: "bilinear" (default) or "nearest", the resize
            of `y` when `align_inputs=True`.
        use_batch_norm: bool, default True. False leaves the gates'
            BatchNormalizations out (1x1 conv -> ReLU -> 1x1 conv per
            branch): the form in which `keras_aff.optimize.fold_batchnorm`
            returns a trained layer, its BNs folded into the convs (with
            `use_bias=True`).
        implementation: "auto" (default), "xla" or "fused" (see
            `keras_aff.layers.dispatch`). "auto" and "xla" compute with
            `keras.ops` on every backend; "fused" (opt-in) runs the fused
            Pallas kernel of `keras_aff.kernels` (JAX backend,
            channels_last, the default branches; off GPUs in Pallas
            interpret mode: exact but slow). Same weights and outputs.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list `[x, y]` of two tensors of the same shape, rank 3
            (batch, steps, C), 4 (batch, H, W, C) or 5 (batch, D, H, W, C)
            (channels first when `data_format="channels_first"`); with
            `align_inputs=True`, of the same rank only.
        training: bool, passed to the BatchNormalization sublayers.

    Returns:
        A tensor of the same shape as `x`, in the compute dtype.

    Batch size 1 in training: the global branch's BatchNormalization sees a
    single value per channel, so it outputs its `beta` whatever the input
    (the normalised value is 0), with no error and no NaN (PyTorch raises
    here), and its moving variance decays towards 0. Train with batches of
    at least 2, or freeze the layer's BatchNorms.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> y = keras.random.normal((2, 8, 8, 16))
    >>> tuple(keras_aff.layers.AFF(reduction_ratio=4)([x, y]).shape)
    (2, 8, 8, 16)

    A skip connection and a coarser map with more channels (an FPN or
    U-Net merge):

    >>> skip = keras.random.normal((2, 16, 16, 32))
    >>> coarse = keras.random.normal((2, 8, 8, 64))
    >>> aff = keras_aff.layers.AFF(align_inputs=True)
    >>> tuple(aff([skip, coarse]).shape)
    (2, 16, 16, 32)

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
        self.attention = gate.build_gate(self, "attention", shape)
        self.channels = self.attention.channels
        self.inter_channels = self.attention.inter_channels

    def call(self, inputs, training=None):
        x, y = align.aligned_pair(self, inputs, training)
        fused = dispatch.fused_kernels(self)
        if fused is not None:
            return fused.aff(self, x, y, training)
        w = self.attention(x + y, training=training)
        # y + w * (x - y) == x * w + y * (1 - w), with one multiply fewer
        # and no `1 - w` for LiteRT's NCHW converter bug to swap.
        out = y + w * (x - y)
        if self.output_scale != 1.0:
            out = out * self.output_scale
        return out

    def fusion_weights(self, inputs, training=False):
        """The weight `w = M(x + y)` of the first input, in [0, 1].

        Example:

        >>> layer = keras_aff.layers.AFF(reduction_ratio=4)
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(2, 2, 8, 8, 16)).astype("float32")
        >>> w = layer.fusion_weights([x, y])
        >>> w = keras.ops.convert_to_numpy(w)
        >>> out = keras.ops.convert_to_numpy(layer([x, y]))
        >>> np.allclose(out, y + w * (x - y), atol=1e-6)
        True
        """
        x, y = align.aligned_pair(self, inputs, training)
        return self.attention(x + y, training=training)

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
