"""AFF: attentional feature fusion of two feature maps.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras

from keras_aff import _validation
from keras_aff.layers import gate
from keras_aff.layers.kit import KERAS3


class AFFCore:
    """AFF's behaviour, for any Keras flavour (`kit`, `gate_cls`).

    `IAFFCore` extends it: same arguments and config, two gates.
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
        branches=gate.DEFAULT_BRANCHES,
        **kwargs,
    ):
        super().__init__(**kwargs)
        arguments = gate.gate_arguments(
            self.kit,
            reduction_ratio,
            use_bias,
            bn_momentum,
            bn_epsilon,
            bn_synchronized,
            kernel_initializer,
            kernel_regularizer,
            data_format,
            branches,
        )
        for name, value in arguments.items():
            setattr(self, name, value)
        self.output_scale = _validation.check_number(
            "output_scale", output_scale, low=0.0, low_open=True
        )

    def build(self, input_shape):
        shape = _validation.check_pair_shapes(self.name, input_shape)
        self.attention = gate.build_gate(
            self, "attention", shape, self.gate_cls
        )
        self.channels = self.attention.branch1.conv2.filters
        self.inter_channels = self.attention.branch1.conv1.filters

    def fusion_weights(self, inputs, training=False):
        """The weight `w = M(x + y)` of the first input, in [0, 1].

        Example:

        >>> layer = keras_aff.layers.AFF(reduction_ratio=4)
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(2, 2, 8, 8, 16)).astype("float32")
        >>> w = keras.ops.convert_to_numpy(layer.fusion_weights([x, y]))
        >>> out = keras.ops.convert_to_numpy(layer([x, y]))
        >>> np.allclose(out, y + w * (x - y), atol=1e-6)
        True
        """
        x, y = _validation.check_pair_inputs(self.name, inputs)
        gate.ensure_built(self, [x, y])
        x, y = gate.as_tensors(self, [x, y])
        return self.attention(x + y, training=training)

    def call(self, inputs, training=None):
        x, y = _validation.check_pair_inputs(self.name, inputs)
        w = self.fusion_weights([x, y], training=training)
        return self.blend(x, y, w)

    def blend(self, x, y, w):
        # y + w * (x - y) == x * w + y * (1 - w), with one multiply fewer and
        # no `1 - w` for LiteRT's NCHW converter bug to swap.
        out = y + w * (x - y)
        if self.output_scale != 1.0:
            out = out * self.output_scale
        return out

    def compute_output_shape(self, input_shape):
        return _validation.check_pair_shapes(self.name, input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(gate.gate_config(self))
        config["output_scale"] = self.output_scale
        return config


@keras.saving.register_keras_serializable(package="keras_aff")
class AFF(AFFCore, keras.layers.Layer):
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
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list `[x, y]` of two tensors of the same shape, rank 3
            (batch, steps, C), 4 (batch, H, W, C) or 5 (batch, D, H, W, C)
            (channels first when `data_format="channels_first"`).
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

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """

    kit = KERAS3
    gate_cls = gate.MSCAMGate
