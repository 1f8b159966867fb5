"""AFF: attentional feature fusion of two feature maps.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras

from keras_aff.layers import _gate
from keras_aff.layers import _impl


@keras.saving.register_keras_serializable(package="keras_aff")
class AFF(_impl.AFFMixin, keras.layers.Layer):
    """Attentional feature fusion of two same-shape feature maps.

    With `w = M(x + y)`, where `M(z) = sigmoid(L(z) + G(z))` is the MS-CAM
    gate (L: per-position bottleneck of 1x1 convs with `c = C //
    reduction_ratio` hidden channels, G: the same on the global average,
    broadcast back), the output is

        output_scale * (x * w + y * (1 - w))

    computed as `output_scale * (y + w * (x - y))`. The weight `w` multiplies
    the FIRST input `x`. In the official ResNets `x` is the residual branch
    and `y` the shortcut (`fuse(out, identity)`).

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
    (the normalised value is 0; equal to `beta` up to float rounding), with
    no error and no NaN (PyTorch raises here), and its moving variance
    decays towards 0. Train with batches of at least 2, or freeze the
    layer's BatchNorms.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> y = keras.random.normal((2, 8, 8, 16))
    >>> tuple(keras_aff.layers.AFF(reduction_ratio=4)([x, y]).shape)
    (2, 8, 8, 16)

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """

    _kit = _gate.Keras3Kit
    _gate_cls = _gate.MSCAMGate
