"""The `keras-aff` parser, its exit statuses and `main`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Exit status: 0 success, 1 a failed export or verification (or any other
error while running), 2 a usage error (`UsageError`, or argparse's own),
130 interrupted.

Without `-v/--verbose` the command is quiet: TensorFlow's C++ log and the
converters' native output stay off the terminal (`keras_aff._quiet`) and
show only with the error of a step that fails.
"""

import argparse
import sys

from keras_aff import _quiet
from keras_aff.cli import convert
from keras_aff.cli import demo
from keras_aff.cli import export
from keras_aff.cli import info
from keras_aff.cli._common import UsageError

EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# One module per command; each adds its subparser and its handler.
COMMANDS = (convert, demo, export, info)


class _Parser(argparse.ArgumentParser):
    """Argparse errors become `UsageError`s: one line, exit status 2."""

    def error(self, message):
        self.print_usage(sys.stderr)
        raise UsageError(message)


def build_parser():
    """The `keras-aff` argument parser.

    Example:

    >>> keras_aff.cli.build_parser().parse_args(["info", "m.keras"]).model
    'm.keras'
    """
    parser = _Parser(
        prog="keras-aff",
        description=(
            "Attentional feature fusion (AFF / iAFF / MS-CAM) for Keras 3: "
            "a demo, verified exports, model info and the conversion of the "
            "official MXNet weights."
        ),
    )
    _add_verbose(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", parser_class=_Parser)
    for command in COMMANDS:
        # Before or after the command: `keras-aff -v demo`, `... demo -v`.
        _add_verbose(command.add_parser(subparsers), default=argparse.SUPPRESS)
    return parser


def _add_verbose(parser, default):
    parser.add_argument(
        *_quiet.VERBOSE_FLAGS,
        action="store_true",
        default=default,
        help="show TensorFlow's and the converters' own log lines (hidden "
        "by default)",
    )


def main(argv=None):
    """Runs `keras-aff` with `argv` (default: `sys.argv[1:]`); returns the
    exit status. Errors print `keras-aff: error: ...` to stderr.

    Example:

    >>> inputs = keras.Input((4, 4, 2), name="image")
    >>> fused = keras_aff.layers.MSCAM(reduction_ratio=2)(inputs)
    >>> keras.Model(inputs, fused, name="tiny").save("tiny.keras")
    >>> keras_aff.cli.main(["info", "tiny.keras"])
    model tiny (Functional, float32)
    ...
    fusion layers: 1
    ...
    0
    >>> keras_aff.cli.main(["info", "missing.keras"])
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        with _quiet.quiet_mode(not args.verbose):
            return args.func(args)
    except UsageError as e:
        print(f"keras-aff: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("keras-aff: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        from keras_aff.export import ExportVerificationError

        kind = (
            "verification failed"
            if isinstance(e, ExportVerificationError)
            else type(e).__name__
        )
        hidden = _quiet.native_output(e)
        if hidden:
            print(
                "keras-aff: the failed step's TensorFlow / converter output:\n"
                f"{hidden.rstrip()}",
                file=sys.stderr,
            )
        print(f"keras-aff: error: {kind}: {e}", file=sys.stderr)
        return EXIT_FAILURE
