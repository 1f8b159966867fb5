"""Quiet mode of the `keras-aff` command: TensorFlow's C++ log and the
converters' native output kept off the terminal (stdlib only, so that the
package can import it before Keras and TensorFlow).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

TensorFlow, absl, the TFLite converter, tf2onnx's grappler pass and the
LiteRT interpreter write from C++ straight to file descriptor 2; Python's
`warnings` and `logging` cannot filter those lines. Quiet mode is OFF
unless the command turns it on, so a program that imports keras_aff keeps
TensorFlow's settings and output as they were:

- `command_startup()` runs in `keras_aff/__init__.py` around the imports
  of Keras and TensorFlow. Only in the `keras-aff` process (the console
  script or `python -m keras_aff.cli`) run without `-v/--verbose` does it
  set `QUIET_ENVIRONMENT` (each variable only where the user has not set
  it) and hide the import's own lines (TensorFlow prints its oneDNN and
  CUDA notices before it reads `TF_CPP_MIN_LOG_LEVEL`).
- `quiet_mode()` (the command's `main`, unless `--verbose`) makes
  `capture_native_stderr()`, which the exporters wrap around each
  converter and interpreter call, send fd 2 to a temporary file. Python's
  own writes to `sys.stderr` (warnings, tracebacks) still reach the
  terminal. When the wrapped call fails, the hidden text travels with the
  exception (`native_output`) and the command prints it with the error.
"""

import contextlib
import io
import os
import re
import sys
import tempfile

# Set (where unset) before TensorFlow is imported. 3 also hides the ERROR
# level: on a machine without a GPU driver TensorFlow logs "failed call to
# cuInit" as an error; real failures reach the command as exceptions.
# TF_ENABLE_ONEDNN_OPTS is left alone: it changes numerics, not just logs.
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3"}
VERBOSE_FLAGS = ("-v", "--verbose")
# Most of a failed step's native output that an exception carries.
MAX_CHARS = 20000
_ATTRIBUTE = "_keras_aff_native_output"
_COMMAND = "keras-aff"
_MODULES = ("keras_aff.cli", "keras_aff.cli.__main__")
_quiet = False


def command_arguments(argv=None, orig_argv=None):
    """The arguments after the command name when this process is the
    `keras-aff` command (its console script, or `python -m keras_aff.cli`),
    else None.

    Example:

    >>> from keras_aff import _quiet
    >>> _quiet.command_arguments(["/venv/bin/keras-aff", "demo"], [])
    ['demo']
    >>> _quiet.command_arguments(["-m"], ["python", "-m", "keras_aff.cli"])
    []
    >>> _quiet.command_arguments(["train.py"], ["python", "train.py"]) is None
    True
    """
    argv = sys.argv if argv is None else argv
    orig_argv = (
        getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    )
    script = os.path.basename(argv[0]) if argv else ""
    if re.sub(r"(-script\.pyw?|\.exe)$", "", script) == _COMMAND:
        return list(argv[1:])
    # `python [options] -m keras_aff.cli ...`: while the package imports,
    # sys.argv[0] is still "-m"; the interpreter's own argv names the module.
    if "-m" in orig_argv[1:]:
        at = orig_argv.index("-m", 1)
        if orig_argv[at + 1 : at + 2] and orig_argv[at + 1] in _MODULES:
            return list(orig_argv[at + 2 :])
    return None


def wants_verbose(arguments):
    """True when `arguments` ask for `-v/--verbose` (or an abbreviation
    argparse accepts, such as `--verb`).

    Example:

    >>> keras_aff._quiet.wants_verbose(["demo", "--verb"])
    True
    >>> keras_aff._quiet.wants_verbose(["demo", "--out", "v"])
    False
    """
    return any(
        arg == "-v" or (arg.startswith("--v") and "--verbose".startswith(arg))
        for arg in arguments
    )


def set_quiet_environment(environ=None):
    """Sets each `QUIET_ENVIRONMENT` variable that `environ` (default:
    `os.environ`) lacks; returns the names it set.

    Example:

    >>> env = {"TF_CPP_MIN_LOG_LEVEL": "1"}
    >>> keras_aff._quiet.set_quiet_environment(env), env
    ([], {'TF_CPP_MIN_LOG_LEVEL': '1'})
    >>> keras_aff._quiet.set_quiet_environment({})
    ['TF_CPP_MIN_LOG_LEVEL']
    """
    environ = os.environ if environ is None else environ
    names = [name for name in QUIET_ENVIRONMENT if name not in environ]
    for name in names:
        environ[name] = QUIET_ENVIRONMENT[name]
    return names


@contextlib.contextmanager
def command_startup():
    """Around the package's imports of Keras and TensorFlow: in a quiet
    `keras-aff` process, sets the quiet environment and hides the import's
    native lines (shown if the import fails); elsewhere it does nothing."""
    arguments = command_arguments()
    if arguments is None or wants_verbose(arguments):
        yield
        return
    set_quiet_environment()
    try:
        with quiet_mode(), capture_native_stderr():
            yield
    except BaseException as error:
        # Nothing above the package import catches it: show it now.
        sys.stderr.write(native_output(error))
        raise


def is_quiet():
    """Whether `capture_native_stderr()` hides native output now.

    Example:

    >>> keras_aff._quiet.is_quiet()
    False
    """
    return _quiet


@contextlib.contextmanager
def quiet_mode(quiet=True):
    """Turns quiet mode on (or off) for the `with` block, then restores it.

    Example:

    >>> from keras_aff import _quiet
    >>> with _quiet.quiet_mode():
    ...     _quiet.is_quiet()
    True
    >>> _quiet.is_quiet()
    False
    """
    global _quiet
    previous, _quiet = _quiet, quiet
    try:
        yield
    finally:
        _quiet = previous


@contextlib.contextmanager
def capture_native_stderr():
    """In quiet mode, sends file descriptor 2 to a temporary file for the
    `with` block (Python's `sys.stderr` keeps writing to the terminal);
    if the block raises, the hidden text goes with the exception (see
    `native_output`). Outside quiet mode it does nothing.

    Example:

    >>> from keras_aff import _quiet
    >>> with _quiet.quiet_mode():
    ...     try:
    ...         with _quiet.capture_native_stderr():
    ...             _ = os.write(2, b"E0000 converter: no kernel\\n")
    ...             raise RuntimeError("conversion failed")
    ...     except RuntimeError as e:
    ...         error = e
    >>> _quiet.native_output(error)
    'E0000 converter: no kernel\\n'
    """
    if not _quiet:
        yield
        return
    with _fd2_to_file() as log:
        try:
            yield
        except BaseException as error:
            _attach(error, log)
            raise


def native_output(error):
    """The native output hidden while the steps that raised `error` (or
    the exceptions it was raised from) ran; "" if none.

    Example:

    >>> keras_aff._quiet.native_output(ValueError("x"))
    ''
    """
    texts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        texts.extend(reversed(getattr(error, _ATTRIBUTE, ())))
        error = error.__cause__ or error.__context__
    return "".join(reversed(texts))


def _attach(error, log):
    sys.stderr.flush()
    log.seek(0)
    text = log.read().decode("utf-8", errors="replace")[-MAX_CHARS:]
    if text.strip():
        try:
            setattr(error, _ATTRIBUTE, getattr(error, _ATTRIBUTE, ()) + (text,))
        except AttributeError:  # an exception type with __slots__
            pass


@contextlib.contextmanager
def _fd2_to_file():
    """fd 2 -> a temporary file; sys.stderr, when it writes to fd 2,
    -> a new stream on the terminal's descriptor."""
    _flush(sys.stderr)
    terminal = os.dup(2)
    python_stderr = sys.stderr
    if _fileno(python_stderr) == 2:
        sys.stderr = io.TextIOWrapper(
            open(os.dup(terminal), "wb", buffering=0),  # noqa: SIM115
            encoding=python_stderr.encoding,
            errors=python_stderr.errors,
            line_buffering=True,
        )
    try:
        with tempfile.TemporaryFile() as log:
            os.dup2(log.fileno(), 2)
            try:
                yield log
            finally:
                _flush(python_stderr)
                os.dup2(terminal, 2)
    finally:
        if sys.stderr is not python_stderr:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.close(terminal)


def _fileno(stream):
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _flush(stream):
    with contextlib.suppress(AttributeError, OSError, ValueError):
        stream.flush()
