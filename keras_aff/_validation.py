"""Argument checks shared by every part of keras_aff (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

One message shape everywhere, as in Keras:

    Expected `reduction_ratio` to be an integer >= 1.
    Received: reduction_ratio=4.0 (of type float)

A value of the wrong type raises `TypeError`; a value of the right type
that is out of range or not among the choices raises `ValueError`. Every
check returns the value in its canonical form (an `int`, a `float`, a
lower-case string, ...), so callers store what the check returns. Layers,
models, `retrofit`, the exporters and the CLI all call these functions;
none of them writes its own.

Example:

>>> check_int("reduction_ratio", 4, min_value=1)
4
>>> check_int("reduction_ratio", 0, min_value=1)
Traceback (most recent call last):
...
ValueError: Expected `reduction_ratio` ... Received: reduction_ratio=0
"""

import math
import numbers
import os

DATA_FORMATS = ("channels_last", "channels_first")


def received(name, value, with_type=False):
    """The `Received: name=value` tail of every message.

    Example:

    >>> received("output_scale", "2", with_type=True)
    "Received: output_scale='2' (of type str)"
    """
    text = f"Received: {name}={value!r}"
    if with_type:
        text += f" (of type {type(value).__name__})"
    return text


def _fail(error, name, value, expected, with_type=None):
    with_type = error is TypeError if with_type is None else with_type
    raise error(
        f"Expected `{name}` to be {expected}. "
        + received(name, value, with_type)
    )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _range_text(low, high, low_open, high_open):
    if low is not None and high is not None:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f"in {left}{low}, {high}{right}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def check_int(name, value, min_value=None, max_value=None):
    """An integer (not a bool) within `[min_value, max_value]`.

    Example:

    >>> check_int("depth", 3, min_value=1, max_value=6)
    3
    """
    bounds = _range_text(min_value, max_value, False, False)
    expected = "an integer" + (f" {bounds}" if bounds else "")
    if not _is_int(value):
        _fail(TypeError, name, value, expected)
    if (min_value is not None and value < min_value) or (
        max_value is not None and value > max_value
    ):
        _fail(ValueError, name, value, expected)
    return int(value)


def check_number(
    name, value, low=None, high=None, low_open=False, high_open=False
):
    """A finite real number (not a bool) within the given bounds.

    Example:

    >>> check_number("bn_momentum", 0.9, low=0.0, high=1.0, high_open=True)
    0.9
    """
    bounds = _range_text(low, high, low_open, high_open)
    expected = "a finite number" + (f" {bounds}" if bounds else "")
    if not _is_real(value):
        _fail(TypeError, name, value, expected)
    value = float(value)
    ok = math.isfinite(value)
    if low is not None:
        ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        _fail(ValueError, name, value, expected)
    return value


def check_bool(name, value):
    """A bool (not 0 / 1, not a string).

    Example:

    >>> check_bool("use_bias", True)
    True
    """
    if not isinstance(value, bool):
        _fail(TypeError, name, value, "a bool (True or False)")
    return value


def check_choice(name, value, choices):
    """One of `choices`; strings are matched case-insensitively and returned
    as the matching choice.

    Example:

    >>> check_choice("fusion", "AFF", ("aff", "iaff", "add"))
    'aff'
    """
    expected = f"one of {tuple(choices)}"
    for choice in choices:
        if value is choice or (
            isinstance(value, str)
            and isinstance(choice, str)
            and value.lower() == choice.lower()
        ):
            return choice
    if (
        value is not None
        and not isinstance(value, str)
        and all(isinstance(c, str) or c is None for c in choices)
    ):
        _fail(TypeError, name, value, expected)
    _fail(ValueError, name, value, expected)


def check_data_format(value, default=None):
    """The data format: `"channels_last"` or `"channels_first"`; None means
    `default` (by default `keras.config.image_data_format()`).

    Example:

    >>> check_data_format("channels_first")
    'channels_first'
    """
    if value is None:
        if default is None:
            import keras

            default = keras.config.image_data_format()
        value = default
    return check_choice("data_format", value, DATA_FORMATS)


def check_one_of_types(name, value, types, expected):
    """An instance of `types`; `expected` describes them in words.

    Example:

    >>> check_one_of_types("model", 3, (str,), "a path")
    Traceback (most recent call last):
    ...
    TypeError: Expected `model` to be a path. Received: model=3 (of type int)
    """
    if not isinstance(value, types):
        _fail(TypeError, name, value, expected)
    return value


def check_keras_object(name, value, getter, serializer=None):
    """An initializer, regularizer or activation that `getter` (e.g.
    `keras.initializers.get`) can interpret; returns the object. `getter`
    may be the tf_keras one. An uninterpretable value is a `ValueError`.

    Example:

    >>> import keras
    >>> check_keras_object(
    ...     "kernel_initializer", "he_normal", keras.initializers.get
    ... ).__class__.__name__
    'HeNormal'
    """
    try:
        obj = getter(value)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"Could not interpret `{name}` ({e}). " + received(name, value)
        ) from None
    if serializer is not None:
        return serializer(obj)
    return obj


def check_path(name, value):
    """A str or path-like; returns the `str` path.

    Example:

    >>> check_path("path", "model.keras")
    'model.keras'
    """
    if not isinstance(value, (str, os.PathLike)):
        _fail(TypeError, name, value, "a str or path-like")
    return os.fspath(value)


def check_existing_file(name, value):
    """The path of an existing file (not a directory).

    Example:

    >>> check_existing_file("weights", "/no/such/file.h5")
    Traceback (most recent call last):
    ...
    ValueError: Expected `weights` ... Received: weights='/no/such/file.h5'
    """
    path = check_path(name, value)
    if not os.path.isfile(path):
        what = "a directory, not a file" if os.path.isdir(path) else ""
        expected = "the path of an existing file"
        if what:
            expected += f" ({path!r} is {what})"
        _fail(ValueError, name, path, expected)
    return path


def check_writable_path(name, value):
    """A path whose parent directory exists and is writable, and that is
    not itself an existing directory when a file is meant. Returns it.

    Example:

    >>> check_writable_path("path", "/no/such/dir/model.tflite")
    Traceback (most recent call last):
    ...
    ValueError: Expected `path` ... Received: path='/no/such/dir/model.tflite'
    """
    path = check_path(name, value)
    parent = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        _fail(
            ValueError, name, path, "a path in an existing, writable directory"
        )
    return path


# ---------------------------------------------------------------------------
# Layer inputs: what `build` and `call` of the fusion layers accept
# ---------------------------------------------------------------------------
def is_shape(shape):
    """True for one shape (a TensorShape, or a tuple/list of ints / None).

    Example:

    >>> is_shape((None, 8, 8, 16)), is_shape([(2, 3), (2, 3)])
    (True, False)
    """
    if hasattr(shape, "as_list"):  # tf.TensorShape (tf_keras)
        return True
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
    if hasattr(shape, "as_list"):  # tf.TensorShape
        if shape.rank is None:
            return None
        shape = shape.as_list()
    if shape is None:
        return None
    return tuple(d if _is_int(d) else None for d in shape)


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
    check(layer_name, [shape_tuple(t.shape) for t in tensors])
    return inputs


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
