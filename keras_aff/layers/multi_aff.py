"""MultiAFF: attentional feature fusion of N >= 2 feature maps.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras
from keras import ops

from keras_aff import _validation
from keras_aff.layers import arguments
from keras_aff.layers import gate
from keras_aff.layers import shapes


def softmax_over_inputs(logits, num_inputs, data_format):
    """The `num_inputs` weights of a `MultiAFF` gate's logits: the logits
    split along the channel axis (input-major), a softmax across them per
    channel and position. Computed in float32 for half-precision logits
    (cast back to their dtype), on a (positions * channels, num_inputs)
    matrix (TensorFlow's softmax takes at most 5 dimensions; LiteRT's int8
    SOFTMAX wants the last axis).

    Example:

    >>> from keras_aff.layers import multi_aff
    >>> logits = np.array([[[0.0, 1.0, 0.0, -1.0]]], "float32")  # N=2, C=2
    >>> w = multi_aff.softmax_over_inputs(logits, 2, "channels_last")
    >>> np.round(keras.ops.convert_to_numpy(w[0]), 4)
    array([[[0.5   , 0.8808]]], dtype=float32)
    """
    axis = -1 if data_format == "channels_last" else 1
    dtype = keras.backend.standardize_dtype(logits.dtype)
    z = ops.stack(ops.split(logits, num_inputs, axis=axis), axis=-1)
    if dtype in ("float16", "bfloat16"):
        z = ops.cast(z, "float32")
    w = ops.reshape(ops.softmax(ops.reshape(z, (-1, num_inputs))), ops.shape(z))
    return [ops.cast(t, dtype) for t in ops.unstack(w, num_inputs, axis=-1)]


@keras.saving.register_keras_serializable(package="keras_aff")
class MultiAFF(keras.layers.Layer):
    """Attentional feature fusion of N >= 2 same-shape feature maps.

    With `s = x_1 + ... + x_N`, an MS-CAM-style gate on `s` (local and
    global branches of 1x1 convs with `c = C // reduction_ratio` hidden
    channels, as in `AFF`) whose last convs produce `N * C` logits `z`
    (input-major: `z_i` is channels `i * C` to `(i + 1) * C - 1`), the
    weights are a softmax over the inputs per channel and position, and

        w_i = exp(z_i) / (exp(z_1) + ... + exp(z_N))
        output = output_scale * (w_1 * x_1 + ... + w_N * x_N)

    With N = 2 and the second input's logits zero, `w_1 = sigmoid(z_1)`:
    MultiAFF is `AFF` with the same first logits. The number of inputs is
    fixed when the layer is built.

    Arguments: the arguments of `AFF` except `align_inputs` and
    `resize_interpolation`, with the same defaults and meaning:
    reduction_ratio=4, output_scale=1.0 (`output_scale=N` makes a gate
    of uniform weights an N-way sum), use_bias=True, bn_momentum=0.9,
    bn_epsilon=1e-5, bn_synchronized=False,
    kernel_initializer="glorot_uniform", kernel_regularizer=None,
    data_format=None, branches=("local", "global"),
    use_batch_norm=True, implementation="auto" or "xla" (both compute
    with `keras.ops`; there is no fused kernel for N inputs), plus the
    base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list `[x_1, ..., x_N]` of N >= 2 tensors of the same
            shape, rank 3, 4 or 5 (see `AFF`).
        training: bool, passed to the BatchNormalization sublayers.

    Returns:
        A tensor of the inputs' shape, in the compute dtype.

    Example:

    >>> xs = [keras.random.normal((2, 8, 8, 16)) for _ in range(3)]
    >>> fuse = keras_aff.layers.MultiAFF(reduction_ratio=4)
    >>> tuple(fuse(xs).shape)
    (2, 8, 8, 16)
    >>> w = [keras.ops.convert_to_numpy(t) for t in fuse.fusion_weights(xs)]
    >>> len(w), bool(np.allclose(w[0] + w[1] + w[2], 1.0, atol=1e-6))
    (3, True)

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
        self.implementation = check.check_choice(
            "implementation", implementation, ("auto", "xla")
        )
        self.output_scale = arguments.check_output_scale(output_scale)

    def build(self, input_shape):
        shape = shapes.check_same_shapes(self.name, input_shape)
        self.num_inputs = len(input_shape)
        self.attention = gate.build_gate(
            self, "attention", shape, num_inputs=self.num_inputs
        )
        self.channels = self.attention.channels
        self.inter_channels = self.attention.inter_channels

    def call(self, inputs, training=None):
        xs = self._checked(inputs)
        weights = self._weights(xs, training)
        out = weights[0] * xs[0]
        for w, x in zip(weights[1:], xs[1:]):
            out = out + w * x
        if self.output_scale != 1.0:
            out = out * self.output_scale
        return out

    def _weights(self, xs, training):
        s = xs[0]
        for x in xs[1:]:
            s = s + x
        logits = self.attention(s, training=training)
        return softmax_over_inputs(logits, len(xs), self.data_format)

    def fusion_weights(self, inputs, training=False):
        """The weights `[w_1, ..., w_N]` of the inputs, each shaped like
        them, in [0, 1] and summing to 1.

        Example:

        >>> layer = keras_aff.layers.MultiAFF(reduction_ratio=4)
        >>> rng = np.random.default_rng(0)
        >>> xs = list(rng.normal(size=(3, 2, 8, 8, 16)).astype("float32"))
        >>> w = layer.fusion_weights(xs)
        >>> w = [keras.ops.convert_to_numpy(t) for t in w]
        >>> out = sum(wi * xi for wi, xi in zip(w, xs))
        >>> np.allclose(keras.ops.convert_to_numpy(layer(xs)), out, atol=1e-6)
        True
        """
        xs = [ops.convert_to_tensor(x) for x in self._checked(inputs)]
        if not self.built:
            self.build([tuple(x.shape) for x in xs])
        return self._weights(xs, training)

    def _checked(self, inputs):
        xs = list(
            shapes.check_input_shapes(
                self.name, inputs, shapes.check_same_shapes
            )
        )
        if self.built and len(xs) != self.num_inputs:
            raise ValueError(
                f"Layer '{self.name}' was built for {self.num_inputs} "
                f"inputs. Received: {len(xs)} inputs"
            )
        return xs

    def compute_output_shape(self, input_shape):
        return shapes.check_same_shapes(self.name, input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            arguments.gate_config(self, keras.initializers, keras.regularizers)
        )
        config["implementation"] = self.implementation
        config["output_scale"] = self.output_scale
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(arguments.check_config(cls, config))
