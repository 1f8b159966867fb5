"""IAFF: iterative attentional feature fusion of two feature maps.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras

from keras_aff.layers import align
from keras_aff.layers import dispatch
from keras_aff.layers import gate
from keras_aff.layers.aff import AFFCore
from keras_aff.layers.kit import KERAS3


class IAFFCore(AFFCore):
    """IAFF's behaviour: AFF's arguments and config, two gates."""

    def build(self, input_shape):
        shape = align.build_pair(self, input_shape)
        self.attention1 = gate.build_gate(
            self, "attention1", shape, self.gate_cls
        )
        self.attention2 = gate.build_gate(
            self, "attention2", shape, self.gate_cls
        )
        self.channels = self.attention1.branch1.conv2.filters
        self.inter_channels = self.attention1.branch1.conv1.filters

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
        return super().fusion_weights(inputs, training=training)

    def _gate_weights(self, x, y, training):
        w1 = self.attention1(x + y, training=training)
        xi = y + w1 * (x - y)
        # The second gate has its OWN local and global branches (the
        # official PyTorch port reuses the first global branch here).
        w2 = self.attention2(xi, training=training)
        return w1, w2

    def call(self, inputs, training=None):
        x, y = align.aligned_pair(self, inputs, training)
        fused = dispatch.fused_kernels(self, x)
        if fused is not None:
            return fused.iaff(self, x, y, training)
        _, w2 = self._gate_weights(x, y, training)
        return self.blend(x, y, w2)


@keras.saving.register_keras_serializable(package="keras_aff")
class IAFF(IAFFCore, keras.layers.Layer):
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

    Args:
        reduction_ratio: int, default 4. `c = channels // reduction_ratio`
            hidden channels in each branch.
        output_scale: float, default 1.0. Multiplies the fused output.
        use_bias: bool, default True. Bias on the 1x1 convs.
        bn_momentum: float, default 0.9. BatchNormalization momentum.
        bn_epsilon: float, default 1e-5. BatchNormalization epsilon.
        bn_synchronized: bool, default False. Passed to every
            BatchNormalization as `synchronized`.
        kernel_initializer: initializer for the 1x1 conv kernels, default
            "glorot_uniform".
        kernel_regularizer: optional regularizer for the 1x1 conv kernels.
        data_format: "channels_last", "channels_first" or None (default:
            `keras.config.image_data_format()`).
        branches: tuple of two branch names for both gates, default
            ("local", "global"); ("global", "global") and ("local", "local")
            are the paper's Table 3 ablation.
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
        implementation: "auto" (default), "xla" or "fused". "xla" computes
            with `keras.ops`; "fused" with the fused Pallas kernel of
            `keras_aff.kernels` (JAX backend, channels_last, the default
            branches; off GPUs in Pallas interpret mode: exact but slow);
            "auto" uses the kernel on JAX with a GPU when the shapes allow
            and `keras.ops` everywhere else. Same weights and outputs.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

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

    kit = KERAS3
    gate_cls = gate.MSCAMGate
