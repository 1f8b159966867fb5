"""`keras-aff export`: a `.keras` model to a SavedModel, LiteRT or ONNX
artifact, verified against Keras by `keras_aff.export`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import argparse
import json
import os

import numpy as np

from keras_aff._tables import markdown_table
from keras_aff._validation import regular_file_problem
from keras_aff.cli._common import UsageError
from keras_aff.cli._common import check_model_path
from keras_aff.cli._common import echo
from keras_aff.cli._common import format_bytes
from keras_aff.cli._common import load_model
from keras_aff.cli._common import positive_int

FORMATS = ("saved_model", "litert", "onnx")
QUANTIZATIONS = ("float16", "dynamic", "int8")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# What a full disk or a file size limit (RLIMIT_FSIZE) says, in OSError's
# strerror and in TensorFlow's messages (ENOSPC, EFBIG, EDQUOT).
DISK_FULL = ("No space left on device", "File too large", "Disk quota exceeded")
REPORT_HEADERS = [
    "format",
    "path",
    "size",
    "max abs err",
    "mean abs err",
    "tolerance",
    "top-1 agree",
    "batch-1 ms",
]


def add_parser(subparsers):
    """Adds `export MODEL.keras --format ...` and its flags.

    Example:

    >>> import argparse
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> parser = keras_aff.cli.export.add_parser(sub)
    >>> args = parser.parse_args(["m.keras", "--format", "onnx"])
    >>> args.format, args.opset, args.json
    ('onnx', None, False)
    """
    exp = subparsers.add_parser(
        "export", help="export a .keras model, verified against Keras"
    )
    exp.add_argument("model", help="a Keras model file (.keras)")
    exp.add_argument("--format", required=True, choices=FORMATS)
    exp.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        help="LiteRT quantization (default: float32)",
    )
    exp.add_argument(
        "--calibration",
        metavar="DIR_OR_NPY",
        help="inputs for int8 calibration and for the check: .npy (a batch "
        "of inputs), .npz (one array per input) or a directory of images "
        "or .npy files",
    )
    exp.add_argument(
        "--out",
        help="artifact path (default: savedmodels/<name>/1, "
        "savedmodels/<name>_<quantization>.tflite, savedmodels/<name>.onnx)",
    )
    exp.add_argument(
        "--float-io",
        action="store_true",
        help="int8: keep float32 input and output",
    )
    exp.add_argument("--opset", type=positive_int, help="ONNX opset")
    exp.add_argument(
        "--atol", type=_tolerance, help="absolute tolerance of the check"
    )
    exp.add_argument("--json", action="store_true", help="print the report")
    exp.set_defaults(func=_run)
    return exp


def _tolerance(text):
    """An argparse `type`: a finite number >= 0, the exporters' check."""
    from keras_aff._validation import check_tolerance

    try:
        return check_tolerance("atol", float(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def default_out(model_path, fmt, quantize):
    """Where `keras-aff export` writes when `--out` is not given.

    Example:

    >>> keras_aff.cli.export.default_out("models/m.keras", "litert", "int8")
    'savedmodels/m_int8.tflite'
    """
    stem = os.path.splitext(os.path.basename(model_path))[0]
    if fmt == "saved_model":
        return os.path.join("savedmodels", stem, "1")
    if fmt == "onnx":
        return os.path.join("savedmodels", f"{stem}.onnx")
    return os.path.join("savedmodels", f"{stem}_{quantize or 'float32'}.tflite")


def load_calibration(path, model):
    """Calibration / sample inputs from a `.npy`, an `.npz` or a directory
    of images or `.npy` files, checked against the model's inputs; a list
    of arrays in `model.inputs` order. Raises `UsageError` when the data is
    missing, unreadable or does not fit.

    Example:

    >>> inputs = keras.Input((4, 4, 2), name="image")
    >>> tiny = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    >>> np.save("x.npy", np.zeros((3, 4, 4, 2), "float32"))
    >>> [a.shape for a in keras_aff.cli.export.load_calibration("x.npy", tiny)]
    [(3, 4, 4, 2)]
    """
    # The check shared with the exporters, so that data that does not fit
    # is a usage error (exit 2) before anything is converted.
    from keras_aff.export import model_io

    _check_calibration_path(path)
    try:
        data = _read_calibration(path, model)
    except UsageError:
        raise
    except Exception as e:
        raise UsageError(
            f"cannot read calibration data {path}: {type(e).__name__}: {e}"
        ) from None
    try:
        return model_io.normalize_inputs(model, data, "calibration")
    except (TypeError, ValueError) as e:
        raise UsageError(f"calibration data {path} does not fit: {e}") from None


def _check_calibration_path(path):
    if not path:
        raise UsageError("--calibration: an empty path")
    if not os.path.exists(path):
        raise UsageError(f"no such calibration file or directory: {path}")
    problem = None if os.path.isdir(path) else regular_file_problem(path)
    if problem:
        raise UsageError(f"calibration data {path} is {problem}")


def _read_calibration(path, model):
    if os.path.isdir(path):
        return _read_calibration_dir(path, model)
    if not path.endswith(".npz"):
        return np.load(path, allow_pickle=False)
    names = [t.name for t in model.inputs]
    with np.load(path, allow_pickle=False) as f:
        keys = list(f.files)
        if sorted(keys) == sorted(names):
            return {k: f[k] for k in keys}
        if keys == [f"arr_{i}" for i in range(len(keys))]:
            return [f[k] for k in keys]  # np.savez(path, *arrays)
    raise UsageError(
        f"the arrays of calibration data {path} are named {sorted(keys)}; "
        f"expected the model's input names {sorted(names)} (or arr_0, "
        "arr_1, ... in input order, as np.savez(path, *arrays) writes)"
    )


def _dir_file(path, name, read):
    """`read(file)` for one file of a calibration directory; an error
    names the file."""
    file = os.path.join(path, name)
    problem = regular_file_problem(file)
    if problem:
        raise UsageError(f"calibration file {file} is {problem}")
    try:
        return read(file)
    except Exception as e:
        raise UsageError(
            f"cannot read calibration file {file}: {type(e).__name__}: {e}"
        ) from None


def _read_calibration_dir(path, model):
    files = sorted(os.listdir(path))
    arrays = [f for f in files if f.endswith(".npy")]
    if arrays:
        # One sample or one batch per file, for a single-input model.
        rank = len(model.inputs[0].shape)
        loaded = [
            _dir_file(path, f, lambda p: np.load(p, allow_pickle=False))
            for f in arrays
        ]
        if len({a.shape[-(rank - 1) :] for a in loaded}) > 1:
            shapes = {f: a.shape for f, a in zip(arrays, loaded)}
            raise UsageError(
                f"the .npy files of calibration directory {path} do not "
                f"have one sample shape: {shapes}"
            )
        return np.concatenate(
            [a[None] if a.ndim == rank - 1 else a for a in loaded]
        )
    images = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not images:
        raise UsageError(
            f"calibration directory {path} holds no .npy or image files "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
    return _read_images(path, images, model)


def _read_images(path, images, model):
    import keras

    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise UsageError(
            "a directory of images calibrates single-image-input models "
            "only; use an .npz with one array per input"
        )
    _, height, width, channels = model.inputs[0].shape
    mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
    if mode is None:
        raise UsageError(
            f"images need 1, 3 or 4 channels (channels last); the model "
            f"input is {tuple(model.inputs[0].shape)}"
        )
    size = None if height is None or width is None else (height, width)

    # Raw pixel values in [0, 255], as keras.utils.image_dataset_from_
    # directory yields them: the model is expected to hold its own
    # preprocessing (e.g. a Rescaling layer).
    def read(file):
        image = keras.utils.load_img(file, color_mode=mode, target_size=size)
        return keras.utils.img_to_array(image)

    arrays = [_dir_file(path, f, read) for f in images]
    if len({a.shape for a in arrays}) > 1:
        shapes = {f: a.shape for f, a in zip(images, arrays)}
        raise UsageError(
            f"the images of calibration directory {path} differ in size "
            f"and the model input {tuple(model.inputs[0].shape)} does not "
            f"fix one: {shapes}"
        )
    return np.stack(arrays).astype("float32")


def _check_flags(args):
    if args.quantize and args.format != "litert":
        raise UsageError(
            f"--quantize applies to --format litert only; received "
            f"--format {args.format} --quantize {args.quantize}"
        )
    if args.float_io and args.quantize != "int8":
        raise UsageError("--float-io applies to --quantize int8 only")
    if args.opset is not None and args.format != "onnx":
        raise UsageError("--opset applies to --format onnx only")
    if args.opset is not None:
        from keras_aff.export.onnx import OPSETS

        low, high = OPSETS
        if not low <= args.opset <= high:
            raise UsageError(
                f"--opset {args.opset}: tf2onnx converts to opsets {low}-{high}"
            )
    if args.quantize == "int8" and not args.calibration:
        raise UsageError(
            "--quantize int8 needs --calibration DIR_OR_NPY: about 100-500 "
            "real input samples (an .npy shaped like a batch of inputs, an "
            ".npz with one array per input, or a directory of images)"
        )


def _export(model, out, args, calibration):
    from keras_aff import export

    if args.format == "saved_model":
        return export.export_saved_model(
            model, out, sample_inputs=calibration, atol=args.atol
        )
    if args.format == "onnx":
        return export.export_onnx(
            model,
            out,
            opset=args.opset,
            sample_inputs=calibration,
            atol=args.atol,
        )
    return export.export_litert(
        model,
        out,
        quantization=args.quantize,
        representative_data=calibration,
        float_io=args.float_io,
        atol=args.atol,
    )


def _run(args):
    _check_flags(args)
    check_model_path(args.model)
    if args.calibration is not None:
        _check_calibration_path(args.calibration)
    out = default_out(args.model, args.format, args.quantize)
    out = out if args.out is None else args.out
    _check_out(out, args.format, [args.model, args.calibration])
    model = load_model(args.model)
    calibration = (
        load_calibration(args.calibration, model) if args.calibration else None
    )
    try:
        report = _export(model, out, args, calibration)
    except Exception as e:
        full = next((m for m in DISK_FULL if m in str(e)), None)
        if full is None:
            raise
        # TensorFlow's own writers raise their errors with the text only.
        raise OSError(
            f"{full} while writing the export of {args.model}: the disk "
            "is full or a file size limit was reached; nothing was left at "
            f"{out} and what was there is untouched"
        ) from None
    if args.json:
        echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    return 0


def _check_out(out, fmt, inputs):
    """A destination that may not take the artifact (`staging`'s rule:
    nothing but a previous artifact of the format is replaced, never an
    input) is a usage error (exit 2), found before the model is loaded."""
    from keras_aff.export.staging import check_destination

    if not out:
        raise UsageError("--out: an empty path")
    try:
        check_destination(out, fmt, inputs, name="out")
    except ValueError as e:
        reason = getattr(e, "reason", e)
        raise UsageError(
            f"--out {out}: {reason} (nothing was written or removed)"
        ) from None


def _print_report(report):
    echo(f"wrote {report.path} (verified: {', '.join(report.checked)})")
    echo(markdown_table(REPORT_HEADERS, [_report_row(report)]))
    for name, spec in report.inputs.items():
        echo(f"input  {name}: {spec}")
    for name, spec in report.outputs.items():
        echo(f"output {name}: {spec}")
    if report.ops:
        echo("ops: " + ", ".join(f"{k} {v}" for k, v in report.ops.items()))
    for note in report.notes:
        echo(f"note: {note}")


def _report_row(report):
    """An `ExportReport` as one row of the table."""
    fmt = report.format + (
        f" {report.quantization}" if report.quantization else ""
    )
    if report.format == "litert" and not report.quantization:
        fmt += " float32"
    agree = (
        "" if report.top1_agreement is None else f"{report.top1_agreement:.3f}"
    )
    return [
        fmt,
        report.path,
        format_bytes(report.size_bytes),
        f"{report.max_abs_error:.2e}",
        f"{report.mean_abs_error:.2e}",
        f"{report.tolerance:.1e}",
        agree,
        f"{report.latency_ms:.3f}",
    ]
