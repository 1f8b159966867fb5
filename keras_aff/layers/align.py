"""Align: a second feature map brought to the first one's channels and size.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

AFF needs two maps of one shape; in an FPN top-down path or a U-Net
decoder they differ, and the paper's AFF-FPN aligns them with a point-wise
convolution and a bilinear resize (the author's answer in open-aff issue
10). This module owns that alignment, with `x` the reference:

- `Projection`: a 1x1 conv (no bias) + BatchNormalization from `y`'s
  channels to `x`'s, created only when they differ;
- `resize_like(y, x, ...)`: `y` resized to `x`'s spatial size, bilinear
  (half-pixel centres, as `tf.image.resize` and `jax.image.resize` without
  antialiasing) or nearest, for ranks 3, 4 and 5, with sizes known only at
  run time; nothing is done along an axis whose sizes are statically equal;
- `Align`: the public layer `[x, y] -> y` aligned;
- `build_pair` and `aligned_pair`: what `AFF` and `IAFF` call in `build`
  and `call` (with `align_inputs=True`, they align).

The projection runs before the resize (upsampling, the common case, then
projects the smaller map). The resize is written with `keras.ops` gathers
and a linear interpolation, one axis at a time: `keras.ops.image.resize`
needs sizes known when the graph is traced, which dynamic spatial sizes on
TensorFlow are not. It runs under XLA and converts to builtin LiteRT ops
(GATHER, SUB, MUL, ADD).
"""

import copy

import keras
from keras import ops

from keras_aff import _validation
from keras_aff.layers import arguments
from keras_aff.layers import gate
from keras_aff.layers import shapes


def _resize_axis(z, axis, size, interpolation):
    """`z` resized along `axis` to `size` (an int or a scalar tensor)."""
    last = ops.shape(z)[axis] - 1
    scale = ops.cast(last + 1, "float32") / ops.cast(size, "float32")
    centres = (ops.cast(ops.arange(size), "float32") + 0.5) * scale
    if interpolation == "nearest":
        index = ops.minimum(ops.cast(ops.floor(centres), "int32"), last)
        return ops.take(z, index, axis=axis)
    position = ops.maximum(centres - 0.5, 0.0)
    low = ops.floor(position)
    shape = [1] * len(z.shape)
    shape[axis] = -1
    frac = ops.cast(ops.reshape(position - low, shape), z.dtype)
    low = ops.minimum(ops.cast(low, "int32"), last)
    high = ops.minimum(low + 1, last)
    a = ops.take(z, low, axis=axis)
    return a + (ops.take(z, high, axis=axis) - a) * frac


def resize_like(y, x, interpolation="bilinear", data_format="channels_last"):
    """`y` resized to the spatial size of `x` (same rank, any channels).

    Example:

    >>> from keras_aff.layers import align
    >>> y = np.arange(4, dtype="float32").reshape(1, 4, 1)
    >>> x = np.zeros((1, 2, 1), "float32")
    >>> keras.ops.convert_to_numpy(align.resize_like(y, x))[0, :, 0]
    array([0.5, 2.5], dtype=float32)
    >>> keras.ops.convert_to_numpy(align.resize_like(y, x, "nearest"))[0, :, 0]
    array([1., 3.], dtype=float32)
    """
    target = None
    for axis in shapes.spatial_axes(len(x.shape), data_format):
        a, b = x.shape[axis], y.shape[axis]
        if isinstance(a, int) and isinstance(b, int) and a == b:
            continue
        if target is None:
            target = ops.shape(x)
        y = _resize_axis(y, axis, target[axis], interpolation)
    return y


class Projection(keras.layers.Layer):
    """1x1 conv (no bias, BatchNormalization follows) + BatchNormalization
    to `filters` channels (built by `Align`, `AFF` and `IAFF`).

    The conv and the BatchNormalization run channels_last; with
    `channels_first` the layer transposes in and out (TensorFlow's CPU
    kernels cannot run NCHW convolutions).

    Example:

    >>> from keras_aff.layers import align
    >>> p = align.Projection(8, 4, "channels_last", "glorot_uniform", None,
    ...                      0.9, 1e-5, False)
    >>> tuple(p(np.ones((2, 4, 4, 32), "float32")).shape)
    (2, 4, 4, 8)
    """

    def __init__(
        self,
        filters,
        rank,
        data_format,
        kernel_initializer,
        kernel_regularizer,
        bn_momentum,
        bn_epsilon,
        bn_synchronized,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.conv = shapes.conv_class(keras.layers, rank)(
            filters,
            1,
            use_bias=False,
            kernel_initializer=copy.deepcopy(kernel_initializer),
            kernel_regularizer=copy.deepcopy(kernel_regularizer),
            name="conv",
            dtype=self.dtype_policy,
        )
        self.bn = keras.layers.BatchNormalization(
            axis=-1,
            momentum=bn_momentum,
            epsilon=bn_epsilon,
            synchronized=gate.synchronized_bn(bn_synchronized),
            name="bn",
            dtype=self.dtype_policy,
        )
        self.filters = filters
        self.to_last, self.to_first = shapes.channel_permutations(
            rank, data_format
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.to_last is not None:
            shape = tuple(shape[i] for i in self.to_last)
        self.input_channels = shape[-1]
        self.conv.build(shape)
        self.bn.build(self.conv.compute_output_shape(shape))

    def call(self, inputs, training=None):
        z = inputs
        if self.to_last is not None:
            z = ops.transpose(z, self.to_last)
        z = self.bn(self.conv(z), training=training)
        if self.to_first is not None:
            z = ops.transpose(z, self.to_first)
        return z

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape[1 if self.to_last is not None else -1] = self.filters
        return tuple(shape)


# ---------------------------------------------------------------------------
# What a layer that aligns its inputs calls (AFF, IAFF, Align)
# ---------------------------------------------------------------------------
def make_projection(layer, input_shape):
    """Checks `[x_shape, y_shape]` (one rank, known channels); returns
    `(x_shape, projection)`, the `Projection` of `y` to `x`'s channels
    built, or None when the channels are equal.

    Example:

    >>> from keras_aff.layers import align
    >>> layer = keras_aff.layers.Align()
    >>> _, p = align.make_projection(layer, [(None, 8, 16), (None, 4, 32)])
    >>> tuple(p.conv.kernel.shape)
    (1, 32, 16)
    """
    sx, sy = shapes.check_pair_ranks(layer.name, input_shape)
    fmt = layer.data_format
    rank, cx = shapes.check_feature_shape(layer.name, sx, fmt, 1)
    _, cy = shapes.check_feature_shape(layer.name, sy, fmt, 1)
    if cx == cy:
        return sx, None
    projection = Projection(
        cx,
        rank,
        fmt,
        layer.kernel_initializer,
        layer.kernel_regularizer,
        layer.bn_momentum,
        layer.bn_epsilon,
        layer.bn_synchronized,
        name="projection",
        dtype=layer.dtype_policy,
    )
    projection.build(sy)
    return sx, projection


def build_pair(layer, input_shape):
    """Checks `[x_shape, y_shape]`; returns the shape the fusion works on.

    Without alignment the two shapes must agree (their merged shape is
    returned). With `layer.align_inputs` they need one rank only: the
    layer's `projection` is created when the channels differ (None
    otherwise), and `x`'s shape is returned.

    Example:

    >>> from keras_aff.layers import align
    >>> layer = keras_aff.layers.AFF(align_inputs=True)
    >>> align.build_pair(layer, [(None, 8, 8, 16), (None, 4, 4, 32)])
    (None, 8, 8, 16)
    >>> tuple(layer.projection.conv.kernel.shape)
    (1, 1, 32, 16)
    """
    if not layer.align_inputs:
        return shapes.check_pair_shapes(layer.name, input_shape)
    shape, layer.projection = make_projection(layer, input_shape)
    return shape


def aligned_shape(layer_name, input_shape):
    """The shape of `y` aligned to `x`: `x`'s shape (its batch size taken
    from `y` when only `y`'s is known).

    Example:

    >>> from keras_aff.layers import align
    >>> align.aligned_shape("aff", [(None, 8, 8, 16), (2, 4, 4, 32)])
    (2, 8, 8, 16)
    """
    sx, sy = shapes.check_pair_ranks(layer_name, input_shape)
    return (sx[0] if sx[0] is not None else sy[0],) + tuple(sx[1:])


def align_to(layer, x, y, interpolation, training=None):
    """`y` through the layer's `projection` (if any) and resized to `x`,
    after checking both channel counts against those it was built for."""
    axis = -1 if layer.data_format == "channels_last" else 1
    projection = layer.projection
    want = (layer.channels, getattr(projection, "input_channels", None))
    got = (x.shape[axis], y.shape[axis])
    if got != (want[0], want[1] or want[0]):
        raise ValueError(
            f"Layer '{layer.name}' was built for inputs with {want[0]} and "
            f"{want[1] or want[0]} channels. Received: "
            f"x.shape={tuple(x.shape)} and y.shape={tuple(y.shape)}"
        )
    if projection is not None:
        y = projection(y, training=training)
    return resize_like(y, x, interpolation, layer.data_format)


def aligned_pair(layer, inputs, training=None):
    """`[x, y]` checked and as tensors (the layer built if it is not yet,
    for `fusion_weights`), with `y` aligned to `x` when
    `layer.align_inputs`.

    Example:

    >>> from keras_aff.layers import align
    >>> layer = keras_aff.layers.AFF(align_inputs=True)
    >>> x = np.ones((2, 8, 8, 16), "float32")
    >>> y = np.ones((2, 4, 4, 32), "float32")
    >>> [tuple(t.shape) for t in align.aligned_pair(layer, [x, y])]
    [(2, 8, 8, 16), (2, 8, 8, 16)]
    """
    same = not layer.align_inputs
    x, y = shapes.check_pair_inputs(layer.name, inputs, same_shape=same)
    x, y = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
    if not layer.built:
        layer.build([tuple(x.shape), tuple(y.shape)])
    if same:
        return x, y
    return x, align_to(layer, x, y, layer.resize_interpolation, training)


@keras.saving.register_keras_serializable(package="keras_aff")
class Align(keras.layers.Layer):
    """Aligns `y` to `x`: projected to `x`'s channels, resized to its size.

    With `x` the reference, the output is

        resize(BN(Conv1x1(y)), size of x)

    where the 1x1 conv (no bias) and BatchNormalization exist only when the
    channel counts differ, and the resize (bilinear with half-pixel centres,
    as `tf.image.resize`, or nearest; downsizing too) runs only along axes
    whose sizes differ or are unknown. With equal shapes the output is `y`
    and the layer has no weights. This is what `AFF(align_inputs=True)` and
    `IAFF(align_inputs=True)` do to their second input; use `Align` to give
    another merge (e.g. `keras.layers.Add`) the same alignment.

    Args:
        interpolation: "bilinear" (default) or "nearest".
        kernel_initializer: initializer for the 1x1 conv kernel, default
            "glorot_uniform".
        kernel_regularizer: optional regularizer for the 1x1 conv kernel.
        bn_momentum: float, default 0.9. BatchNormalization momentum.
        bn_epsilon: float, default 1e-5. BatchNormalization epsilon.
        bn_synchronized: bool, default False. Passed to the
            BatchNormalization as `synchronized`.
        data_format: "channels_last", "channels_first" or None (default:
            `keras.config.image_data_format()`).
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list `[x, y]` of two tensors of the same rank (3, 4 or
            5); their channels and spatial sizes may differ (and may be
            unknown, except the channels).
        training: bool, passed to the BatchNormalization.

    Returns:
        `y` with `x`'s channels and spatial size, in the compute dtype.

    Example:

    >>> x = keras.Input((32, 32, 64))
    >>> y = keras.Input((16, 16, 256))
    >>> up = keras_aff.layers.Align()([x, y])
    >>> up.shape
    (None, 32, 32, 64)
    >>> fused = keras.layers.Add()([x, up])

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """

    def __init__(
        self,
        interpolation="bilinear",
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        bn_synchronized=False,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check = _validation
        self.interpolation = arguments.check_interpolation(
            "interpolation", interpolation
        )
        self.kernel_initializer = check.check_keras_object(
            "kernel_initializer", kernel_initializer, keras.initializers.get
        )
        self.kernel_regularizer = check.check_keras_object(
            "kernel_regularizer", kernel_regularizer, keras.regularizers.get
        )
        self.bn_momentum = arguments.check_momentum(bn_momentum)
        self.bn_epsilon = arguments.check_epsilon(bn_epsilon)
        self.bn_synchronized = check.check_bool(
            "bn_synchronized", bn_synchronized
        )
        self.data_format = check.check_data_format(data_format)

    def build(self, input_shape):
        shape, self.projection = make_projection(self, input_shape)
        self.channels = shape[-1 if self.data_format == "channels_last" else 1]

    def call(self, inputs, training=None):
        x, y = shapes.check_pair_inputs(self.name, inputs, same_shape=False)
        return align_to(self, x, y, self.interpolation, training)

    def compute_output_shape(self, input_shape):
        return aligned_shape(self.name, input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "interpolation": self.interpolation,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
                "bn_synchronized": self.bn_synchronized,
                "data_format": self.data_format,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(arguments.check_config(cls, config))
