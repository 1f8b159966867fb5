"""MSCAM: the multi-scale channel attention module.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras

from keras_aff.layers import _gate
from keras_aff.layers import _impl


@keras.saving.register_keras_serializable(package="keras_aff")
class MSCAM(_impl.MSCAMMixin, keras.layers.Layer):
    """Multi-scale channel attention: `x * M(x)`.

    `M(x) = sigmoid(L(x) + G(x))` with

        L(x) = BN(Conv1x1(c -> C)(ReLU(BN(Conv1x1(C -> c)(x)))))
        G(x) = the same on the global average of x, broadcast back

    and `c = C // reduction_ratio`. This is the gate that `AFF` and `IAFF`
    apply to their inputs; the gate is implemented once and shared.

    Args:
        reduction_ratio: int, default 4. `c = channels // reduction_ratio`.
        use_bias: bool, default True. Bias on the 1x1 convs.
        bn_momentum: float, default 0.9. BatchNormalization momentum.
        bn_epsilon: float, default 1e-5. BatchNormalization epsilon.
        kernel_initializer: initializer for the 1x1 conv kernels, default
            "glorot_uniform".
        kernel_regularizer: optional regularizer for the 1x1 conv kernels.
        data_format: "channels_last", "channels_first" or None (default:
            `keras.config.image_data_format()`).
        branches: tuple of two branch names, default ("local", "global").
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a tensor of rank 3 (batch, steps, C), 4 (batch, H, W, C) or
            5 (batch, D, H, W, C) (channels first with
            `data_format="channels_first"`).
        training: bool, passed to the BatchNormalization sublayers.

    Returns:
        A tensor of the same shape as `inputs`, in the compute dtype.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> tuple(keras_aff.layers.MSCAM(reduction_ratio=4)(x).shape)
    (2, 8, 8, 16)

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """

    _kit = _gate.Keras3Kit
    _gate_cls = _gate.MSCAMGate
