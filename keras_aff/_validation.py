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
    if not os.path.isfile(path):  # stat only: a FIFO is never opened
        what = "a directory, not a file" if os.path.isdir(path) else ""
        if not what and os.path.exists(path):
            what = f"{file_type(path)}, not a regular file"
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


def check_tolerance(name, value):
    """None, or a finite number >= 0 (not a bool, not a string): a
    verification tolerance such as `atol`. `inf` would switch the check
    off and a negative bound would fail every artifact, so both are
    refused before any work.

    Example:

    >>> check_tolerance("atol", 1e-3)
    0.001
    >>> check_tolerance("atol", float("inf"))
    Traceback (most recent call last):
    ...
    ValueError: Expected `atol` to be a finite number >= 0. Received: atol=inf
    """
    if value is None:
        return None
    return check_number(name, value, low=0)


def file_type(path):
    """What `path` is ("a FIFO", "a socket", "a character device", "a
    directory", "a regular file", ...), from `os.stat`: never opens it,
    so a FIFO cannot block.

    Example:

    >>> file_type("/dev/null")
    'a character device'
    """
    import stat

    mode = os.stat(path).st_mode
    for test, kind in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def regular_file_problem(path):
    """None when `path` is an existing regular file (through symlinks),
    else why not: "no such file", "a directory", "a FIFO, not a regular
    file", ... Stats, never opens: a FIFO or a device cannot block.

    Example:

    >>> regular_file_problem("/dev/null")
    'a character device, not a regular file'
    >>> regular_file_problem("/no/such/file")
    'no such file'
    """
    if not os.path.exists(path):
        return "no such file"
    kind = file_type(path)
    if kind == "a regular file":
        return None
    if kind == "a directory":
        return kind
    return f"{kind}, not a regular file"
