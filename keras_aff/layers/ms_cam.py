"""MSCAM: the multi-scale channel attention module, `x * M(x)`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import warnings

import keras
from keras import ops

from keras_aff import _validation
from keras_aff.layers import arguments
from keras_aff.layers import dispatch
from keras_aff.layers import gate
from keras_aff.layers import shapes


@keras.saving.register_keras_serializable(package="keras_aff")
class MSCAM(keras.layers.Layer):
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
        implementation: "auto" (default), "xla" or "fused" (see
            `keras_aff.layers.dispatch`). "auto" and "xla" compute with
            `keras.ops` on every backend; "fused" (opt-in) runs the fused
            Pallas kernel of `keras_aff.kernels` (JAX backend,
            channels_last, the default branches; off GPUs in Pallas
            interpret mode: exact but slow). Same weights and outputs.
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
        branches=arguments.DEFAULT_BRANCHES,
        use_batch_norm=True,
        implementation="auto",
        **kwargs,
    ):
        if "output_scale" in kwargs:
            _deprecated_output_scale(kwargs.pop("output_scale"))
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

    def build(self, input_shape):
        shape = shapes.check_single_shape(self.name, input_shape)
        self.attention = gate.build_gate(self, "attention", shape)
        self.channels = self.attention.channels
        self.inter_channels = self.attention.inter_channels

    def call(self, inputs, training=None):
        shapes.check_float_dtypes(self.name, [inputs.dtype])
        fused = dispatch.fused_kernels(self)
        if fused is not None:
            return fused.mscam(self, inputs, training)
        return inputs * self.attention(inputs, training=training)

    def fusion_weights(self, inputs, training=False):
        """The gate `M(x)`, in [0, 1], shaped like `inputs`.

        Example:

        >>> layer = keras_aff.layers.MSCAM(reduction_ratio=4)
        >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 16))
        >>> w = layer.fusion_weights(x.astype("float32"))
        >>> bool(keras.ops.all((w >= 0) & (w <= 1)))
        True
        """
        x = ops.convert_to_tensor(inputs, self.compute_dtype)
        if not self.built:
            self.build(tuple(x.shape))
        return self.attention(x, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            arguments.gate_config(self, keras.initializers, keras.regularizers)
        )
        config["implementation"] = self.implementation
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(arguments.check_config(cls, config))


def _deprecated_output_scale(value):
    """0.1.0 accepted `MSCAM(output_scale=1.0)` (MSCAM has no scale) and
    rejected any other value."""
    if value != 1.0:
        raise ValueError(
            "Expected no `output_scale`: MSCAM has no `output_scale` "
            "(`x * M(x)`; AFF, IAFF and MultiAFF take one). "
            + _validation.received("output_scale", value)
        )
    warnings.warn(
        "`MSCAM(output_scale=...)` is deprecated since keras_aff 0.2.0 and "
        "will be removed in 0.4.0: MSCAM has no output scale (`x * M(x)`); "
        "drop the argument (AFF, IAFF and MultiAFF take `output_scale`). "
        f"Received: output_scale={value!r}",
        DeprecationWarning,
        stacklevel=3,
    )
