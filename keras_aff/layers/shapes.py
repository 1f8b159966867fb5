"""What the fusion layers accept as inputs: ranks, channels, shape lists.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`build` and `call` of every fusion layer check their inputs here (argument
checks are `keras_aff._validation`'s and `keras_aff.layers.arguments`').
A message names the layer and what it received. Pure functions of tuples
(a tf_keras twin converts its `TensorShape`s first), shared by both
flavours, with the layout rules: spatial axes, NCHW permutations, the conv
class of a rank.
"""

import numbers


def is_shape(shape):
    """True for one shape (a tuple/list of ints / None).

    Example:

    >>> is_shape((None, 8, 8, 16)), is_shape([(2, 3), (2, 3)])
    (True, False)
    """
    return isinstance(shape, (list, tuple)) and all(
        d is None or isinstance(d, numbers.Integral) for d in shape
    )


def shape_tuple(shape):
    """A shape as a tuple of ints / None; every dim that is not a plain int
    (None, a symbolic dim) becomes None; an unknown rank gives None.

    Example:

    >>> shape_tuple([None, 4.0, 3])
    (None, None, 3)
    """
    if shape is None:
        return None
    return tuple(d if _is_int(d) else None for d in shape)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_feature_shape(layer_name, shape, data_format, reduction_ratio):
    """One feature map: rank 3, 4 or 5, known channels, at least one hidden
    channel; returns `(rank, channels)`.

    Example:

    >>> check_feature_shape("aff", (None, 8, 8, 16), "channels_last", 4)
    (4, 16)
    """
    shape = shape_tuple(shape)
    if shape is None or len(shape) not in (3, 4, 5):
        raise ValueError(
            f"Layer '{layer_name}' expects a 1-D, 2-D or 3-D feature map: "
            "an input of rank 3 (batch, steps, channels), 4 (batch, height, "
            "width, channels) or 5 (batch, depth, height, width, channels) "
            "(channels first when data_format='channels_first'). "
            f"Received: input_shape={shape}"
        )
    axis = -1 if data_format == "channels_last" else 1
    channels = shape[axis]
    if channels is None:
        raise ValueError(
            f"Layer '{layer_name}' needs a known channel dimension (axis "
            f"{axis} for data_format='{data_format}'). "
            f"Received: input_shape={shape}"
        )
    if channels < 1:
        raise ValueError(
            f"Layer '{layer_name}' needs at least one channel (axis {axis} "
            f"for data_format='{data_format}'). "
            f"Received: input_shape={shape}"
        )
    if channels // reduction_ratio < 1:
        raise ValueError(
            f"Layer '{layer_name}': `reduction_ratio` is too large for "
            f"{channels} channels; channels // reduction_ratio must be at "
            f"least 1, so use a reduction_ratio between 1 and {channels}. "
            f"Received: reduction_ratio={reduction_ratio} with "
            f"input_shape={shape}"
        )
    return len(shape), channels


def check_single_shape(layer_name, input_shape):
    """A single tensor's shape (MSCAM), not a list of them.

    Example:

    >>> check_single_shape("ms_cam", [(2, 3, 4), (2, 3, 4)])
    Traceback (most recent call last):
    ...
    ValueError: Layer 'ms_cam' must be called on a single tensor ...
    """
    if not is_shape(input_shape):
        raise ValueError(
            f"Layer '{layer_name}' must be called on a single tensor (use "
            "AFF or IAFF to fuse two). "
            f"Received: input_shape={input_shape}"
        )
    return shape_tuple(input_shape)


def _check_shape_list(layer_name, input_shape, what, count=None):
    """A list of shapes: exactly `count` of them, or at least two when
    `count` is None; `what` names them in the message ("[x, y]")."""
    wanted = "exactly two" if count == 2 else "at least two"
    if is_shape(input_shape):
        raise ValueError(
            f"Layer '{layer_name}' must be called on a list of {wanted} "
            f"tensors {what}. Received: a single input with shape "
            f"{shape_tuple(input_shape)}"
        )
    n = len(input_shape) if isinstance(input_shape, (list, tuple)) else 1
    if n == 1 or (count is not None and n != count):
        raise ValueError(
            f"Layer '{layer_name}' must be called on a list of {wanted} "
            f"tensors {what}. Received: {n} input(s)"
        )
    return [shape_tuple(s) for s in input_shape]


def _agree(a, b):
    if a is None or b is None or len(a) != len(b):
        return False
    return all(p is None or q is None or p == q for p, q in zip(a, b))


def _merge(a, b):
    return tuple(p if p is not None else q for p, q in zip(a, b))


def check_pair_shapes(layer_name, input_shape):
    """A list of exactly two shapes that agree wherever both are known;
    returns the merged shape.

    Example:

    >>> check_pair_shapes("aff", [(None, 4, 4, 8), (2, 4, None, 8)])
    (2, 4, 4, 8)
    """
    sx, sy = _check_shape_list(layer_name, input_shape, "[x, y]", count=2)
    if not _agree(sx, sy):
        raise ValueError(
            f"Layer '{layer_name}' needs two inputs of the same shape. "
            f"Received: x.shape={sx} and y.shape={sy}"
        )
    return _merge(sx, sy)


def check_pair_ranks(layer_name, input_shape):
    """A list of exactly two shapes of the same rank, whose sizes may
    differ (a layer that aligns `y` to `x`); returns `(x_shape, y_shape)`.

    Example:

    >>> check_pair_ranks("aff", [(None, 8, 8, 16), (None, 4, 4, 32)])
    ((None, 8, 8, 16), (None, 4, 4, 32))
    """
    sx, sy = _check_shape_list(layer_name, input_shape, "[x, y]", count=2)
    if sx is None or sy is None or len(sx) != len(sy):
        raise ValueError(
            f"Layer '{layer_name}' needs two inputs of the same rank (their "
            "channels and sizes may differ). "
            f"Received: x.shape={sx} and y.shape={sy}"
        )
    return sx, sy


def check_same_shapes(layer_name, input_shape):
    """A list of at least two shapes that agree wherever known; returns
    the merged shape.

    Example:

    >>> check_same_shapes("multi", [(None, 4, 8), (2, None, 8), (2, 4, 8)])
    (2, 4, 8)
    """
    shapes = _check_shape_list(layer_name, input_shape, "[x1, x2, ...]")
    merged = shapes[0]
    for i, shape in enumerate(shapes[1:], start=1):
        if not _agree(merged, shape):
            raise ValueError(
                f"Layer '{layer_name}' needs inputs of one shape. Received: "
                f"inputs[0].shape={shapes[0]} and inputs[{i}].shape={shape}"
            )
        merged = _merge(merged, shape)
    return merged


def check_input_shapes(layer_name, inputs, check):
    """At call time, `check` (`check_pair_shapes`, `check_pair_ranks` or
    `check_same_shapes`) on the shapes of the tensors `inputs` (a built
    layer called again on other shapes would broadcast silently); returns
    `inputs`.

    Example:

    >>> x = np.zeros((2, 4, 8), "float32")
    >>> len(check_input_shapes("multi", [x, x, x], check_same_shapes))
    3
    """
    tensors = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    check_float_dtypes(layer_name, [t.dtype for t in tensors])
    check(layer_name, [shape_tuple(t.shape) for t in tensors])
    return inputs


def dtype_name(dtype):
    """A dtype's name ("float32"), from a string, a NumPy, TensorFlow or
    JAX dtype (`.name`) or a torch dtype ("torch.float32").

    Example:

    >>> dtype_name(np.dtype("int64")), dtype_name("bool")
    ('int64', 'bool')
    """
    name = getattr(dtype, "name", None) or str(dtype)
    return name.replace("torch.", "")


def check_float_dtypes(layer_name, dtypes):
    """Inputs must be floating point: the gate's convs and the blend are
    float math (an integer or boolean input would fail deep inside a
    conv).

    Example:

    >>> check_float_dtypes("aff", ["float32", "int32"])
    Traceback (most recent call last):
    ...
    TypeError: Layer 'aff' expects floating-point inputs ...
    """
    names = [dtype_name(d) for d in dtypes]
    bad = [n for n in names if "float" not in n]
    if bad:
        raise TypeError(
            f"Layer '{layer_name}' expects floating-point inputs (cast "
            "integer or boolean tensors first, e.g. with keras.ops.cast). "
            f"Received: inputs with dtype {', '.join(names)}"
        )


def spatial_axes(rank, data_format):
    """The spatial axes of a feature map of rank `rank`.

    Example:

    >>> spatial_axes(4, "channels_last"), spatial_axes(5, "channels_first")
    ((1, 2), (2, 3, 4))
    """
    if data_format == "channels_last":
        return tuple(range(1, rank - 1))
    return tuple(range(2, rank))


def channel_permutations(rank, data_format):
    """`(to_last, to_first)`: the axes of the transposes to channels_last
    and back for `channels_first` maps; `(None, None)` otherwise.

    Example:

    >>> channel_permutations(4, "channels_first")
    ((0, 2, 3, 1), (0, 3, 1, 2))
    """
    if data_format == "channels_last":
        return None, None
    return (0, *range(2, rank), 1), (0, rank - 1, *range(1, rank - 1))


def conv_class(layers, rank):
    """The conv class of `layers` (`keras.layers`, `tf_keras.layers`)
    for a feature map of rank 3, 4 or 5.

    Example:

    >>> conv_class(keras.layers, 4).__name__
    'Conv2D'
    """
    return {3: layers.Conv1D, 4: layers.Conv2D, 5: layers.Conv3D}[rank]


def check_pair_inputs(layer_name, inputs, same_shape=True):
    """`[x, y]` at call time: two tensors of matching shapes, or of the
    same rank only with `same_shape=False`.

    Example:

    >>> x = np.zeros((2, 4, 4, 8), "float32")
    >>> len(check_pair_inputs("aff", [x, x]))
    2
    """
    check = check_pair_shapes if same_shape else check_pair_ranks
    return check_input_shapes(layer_name, inputs, check)
