"""MSCAM: the multi-scale channel attention module, `x * M(x)`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras

from keras_aff.layers import dispatch
from keras_aff.layers import gate
from keras_aff.layers import kit
from keras_aff.layers import shapes
from keras_aff.layers.kit import KERAS3


class MSCAMCore:
    """MSCAM's behaviour, for any Keras flavour (`kit`, `gate_cls`)."""

    def __init__(
        self,
        reduction_ratio=4,
        use_bias=True,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        bn_synchronized=False,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        data_format=None,
        branches=gate.DEFAULT_BRANCHES,
        use_batch_norm=True,
        implementation="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        gate.store_gate_arguments(self, locals())

    def build(self, input_shape):
        shape = shapes.check_single_shape(self.name, input_shape)
        self.attention = gate.build_gate(
            self, "attention", shape, self.gate_cls
        )
        self.channels = self.attention.branch1.conv2.filters
        self.inter_channels = self.attention.branch1.conv1.filters

    def fusion_weights(self, inputs, training=False):
        """The gate `M(x)`, in [0, 1], shaped like `inputs`.

        Example:

        >>> layer = keras_aff.layers.MSCAM(reduction_ratio=4)
        >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 16))
        >>> w = layer.fusion_weights(x.astype("float32"))
        >>> bool(keras.ops.all((w >= 0) & (w <= 1)))
        True
        """
        kit.ensure_built(self, inputs)
        return self.attention(inputs, training=training)

    def call(self, inputs, training=None):
        fused = dispatch.fused_kernels(self, inputs)
        if fused is not None:
            return fused.mscam(self, inputs, training)
        return inputs * self.attention(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(gate.gate_config(self))
        return config


@keras.saving.register_keras_serializable(package="keras_aff")
class MSCAM(MSCAMCore, keras.layers.Layer):
    """Multi-scale channel attention: `x * M(x)`.

    `M(x) = sigmoid(L(x) + G(x))` with

        L(x) = BN(Conv1x1(c -> C)(ReLU(BN(Conv1x1(C -> c)(x)))))
        G(x) = the same on the global average of x, broadcast back

    and `c = C // reduction_ratio`. This is the gate that `AFF` and `IAFF`
    apply to their inputs (`keras_aff.layers.gate`, written once).

    Args:
        reduction_ratio: int, default 4. `c = channels // reduction_ratio`.
        use_bias: bool, default True. Bias on the 1x1 convs.
        bn_momentum: float, default 0.9. BatchNormalization momentum.
        bn_epsilon: float, default 1e-5. BatchNormalization epsilon.
        bn_synchronized: bool, default False. Passed to every
            BatchNormalization as `synchronized`: under a TensorFlow
            `tf.distribute` strategy the batch statistics are computed over
            all replicas (see the "Scaling out" docs for other backends).
        kernel_initializer: initializer for the 1x1 conv kernels, default
            "glorot_uniform".
        kernel_regularizer: optional regularizer for the 1x1 conv kernels.
        data_format: "channels_last", "channels_first" or None (default:
            `keras.config.image_data_format()`).
        branches: tuple of two branch names, default ("local", "global");
            ("global", "global") and ("local", "local") are the paper's
            Table 3 ablation.
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

    kit = KERAS3
    gate_cls = gate.MSCAMGate
