"""IAFF: iterative attentional feature fusion of two feature maps.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras

from keras_aff.layers import _gate
from keras_aff.layers import _impl


@keras.saving.register_keras_serializable(package="keras_aff")
class IAFF(_impl.IAFFMixin, keras.layers.Layer):
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
    `y + w * (x - y)`. The weights multiply the FIRST input `x`.

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
        kernel_initializer: initializer for the 1x1 conv kernels, default
            "glorot_uniform".
        kernel_regularizer: optional regularizer for the 1x1 conv kernels.
        data_format: "channels_last", "channels_first" or None (default:
            `keras.config.image_data_format()`).
        branches: tuple of two branch names for both gates, default
            ("local", "global"); ("global", "global") and ("local", "local")
            are the paper's Table 3 ablation.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list `[x, y]` of two tensors of the same shape, rank 3, 4
            or 5 (see `AFF`).
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

    _kit = _gate.Keras3Kit
    _gate_cls = _gate.MSCAMGate
