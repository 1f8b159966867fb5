"""What every `keras-aff` command shares: the usage error, printing,
loading a model file, sizes and tables.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import argparse
import os
import zipfile

from keras_aff._validation import regular_file_problem


class UsageError(Exception):
    """Bad input from the user (bad arguments, a missing file, a file that
    is not a Keras model, calibration data that does not fit): `keras-aff`
    prints `keras-aff: error: <message>` and exits with status 2.

    Example:

    >>> str(keras_aff.cli.UsageError("no such file: m.keras"))
    'no such file: m.keras'
    """


def echo(*args):
    """`print`, flushed at once, so progress shows through pipes too.

    Example:

    >>> keras_aff.cli._common.echo("wrote", "m.onnx")
    wrote m.onnx
    """
    print(*args, flush=True)


def positive_int(text):
    """An argparse `type`: an integer >= 1 (argparse turns the error into
    `argument --epochs: must be >= 1: 0` and keras-aff exits with 2).

    Example:

    >>> keras_aff.cli._common.positive_int("8")
    8
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {value}")
    return value


def load_model(path):
    """Loads a `.keras` / `.h5` model with every keras_aff class registered;
    raises `UsageError` for a missing or non-Keras file.

    Example:

    >>> inputs = keras.Input((4, 4, 2))
    >>> tiny = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    >>> tiny.save("tiny.keras")
    >>> keras_aff.cli._common.load_model("tiny.keras").count_params()
    6
    """
    import keras

    import keras_aff.layers  # noqa: F401  (registers MSCAM, AFF, IAFF)
    import keras_aff.models  # noqa: F401  (registers the backbones)

    check_model_path(path)
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        raise UsageError(
            f"{path} is not a loadable Keras model (.keras or .h5): not a "
            "zip archive, so a truncated or corrupt .keras file"
        )
    try:
        # safe_mode (the default): a Lambda's code is refused, not run.
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:
        raise UsageError(
            f"{path} is not a loadable Keras model (.keras or .h5): "
            f"{type(e).__name__}: {load_error_cause(e)}"
        ) from None
    if not isinstance(model, keras.Model):
        raise UsageError(f"{path} holds a {type(model).__name__}, not a model")
    return model


def check_input_file(path, what):
    """Raises `UsageError` unless `path` is an existing regular file: an
    empty path, a directory, a FIFO, a socket or a device is refused from
    `os.stat` alone (never opened, so nothing blocks). `what` names the
    expected file in the message.

    Example:

    >>> keras_aff.cli._common.check_input_file("/dev/null", "a .params file")
    Traceback (most recent call last):
    ...
    keras_aff.cli._common.UsageError: /dev/null is a character device, ...
    """
    if not path:
        raise UsageError(f"an empty path; expected {what}")
    problem = regular_file_problem(path)
    if problem == "no such file":
        raise UsageError(f"no such file: {path}")
    if problem:
        raise UsageError(f"{path} is {problem}; expected {what}")


def check_model_path(path):
    """`check_input_file` for a Keras model file, with the SavedModel
    advice for a directory.

    Example:

    >>> keras_aff.cli._common.check_model_path("missing.keras")
    Traceback (most recent call last):
    ...
    keras_aff.cli._common.UsageError: no such file: missing.keras
    """
    if path and os.path.isdir(path):
        raise UsageError(
            f"{path} is a directory; expected a Keras model file "
            "(.keras). A SavedModel cannot be re-exported: export from the "
            "Keras model it came from."
        )
    check_input_file(path, "a Keras model file (.keras)")


def load_error_cause(error):
    """The innermost cause in a Keras loading error: Keras wraps the error
    of each nested object in "... could not be deserialized properly ...
    Exception encountered: <cause>".

    Example:

    >>> e = TypeError("Model could not be deserialized properly. config="
    ...     "{...}. Exception encountered: Could not locate class 'Evil'.")
    >>> keras_aff.cli._common.load_error_cause(e)
    "Could not locate class 'Evil'."
    """
    text = str(error).strip()
    marker = "Exception encountered:"
    if marker in text:
        text = text.rsplit(marker, 1)[1].strip()
    return text.splitlines()[0][:500] if text else ""


def format_bytes(n):
    """A size in B, KiB or MiB.

    Example:

    >>> keras_aff.cli._common.format_bytes(66355)
    '64.8 KiB'
    """
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"
