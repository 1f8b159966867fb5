"""`keras-aff convert`: an official MXNet `.params` file to a Keras model
(`.keras`) or weights file (`.weights.h5`), run once on a fixed input and
checked to be finite before anything is written.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import os
import tempfile

import numpy as np

from keras_aff import _validation
from keras_aff.cli._common import UsageError
from keras_aff.cli._common import echo
from keras_aff.cli._common import format_bytes
from keras_aff.cli._common import positive_int

OUTPUT_SUFFIXES = (".keras", ".weights.h5")
CHECK_SEED = 0


def add_parser(subparsers):
    """Adds `convert IN.params --model NAME (--out OUT | --preset DIR)
    [--classes N]`.

    Example:

    >>> import argparse
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> parser = keras_aff.cli.convert.add_parser(sub)
    >>> args = parser.parse_args(
    ...     ["w.params", "--model", "aff_resnet32", "--out", "m.keras"]
    ... )
    >>> args.params, args.model, args.out, args.classes, args.preset
    ('w.params', 'aff_resnet32', 'm.keras', None, None)
    """
    parser = subparsers.add_parser(
        "convert",
        help="convert an official MXNet .params file to .keras or .weights.h5",
    )
    parser.add_argument("params", help="an official open-aff .params file")
    parser.add_argument(
        "--model",
        required=True,
        help="registry name of the network (keras_aff.models.list_models():"
        " aff_resnet50, iaff_resnet50, aff_resnext50_32x4d, "
        "iaff_resnext50_32x4d, aff_resnet32, aff_resnext38_32x4d, "
        "aff_resnext47_32x4d)",
    )
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument(
        "--out",
        help="the Keras model (.keras) or weights file (.weights.h5) to write",
    )
    out.add_argument(
        "--preset",
        help="a KerasHub classifier preset directory to create instead "
        '(needs `pip install "keras-aff[hub]"`; see keras_aff.hub)',
    )
    parser.add_argument(
        "--classes",
        type=positive_int,
        help="classes of the file's classifier when not the model's default"
        " (e.g. 20 for a CIFAR-100 network trained on the superclasses)",
    )
    parser.set_defaults(func=_run)
    return parser


def check_output(model, seed=CHECK_SEED):
    """Runs `model` once on a fixed standard-normal batch of one (its
    default input size) and returns the output; raises `RuntimeError` when
    it is not finite.

    Example:

    >>> inputs = keras.Input((4, 4, 3))
    >>> tiny = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    >>> keras_aff.cli.convert.check_output(tiny).shape
    (1, 4, 4, 2)
    """
    shape = (1,) + tuple(model.input_shape[1:])
    x = np.random.default_rng(seed).normal(size=shape).astype("float32")
    y = np.asarray(model(x, training=False))
    if not np.isfinite(y).all():
        raise RuntimeError(
            f"the converted model's output on a fixed input (seed {seed}) is "
            f"not finite: {int((~np.isfinite(y)).sum())} of {y.size} values"
        )
    return y


def _check_arguments(args):
    from keras_aff import models
    from keras_aff.interop import mxnet_format

    if not os.path.isfile(args.params):
        raise UsageError(f"no such file: {args.params}")
    if not mxnet_format.is_mxnet_params(args.params):
        raise UsageError(
            f"{args.params} is not an MXNet .params file (it does not start "
            "with the NDArray list magic 0x112)"
        )
    if args.model not in models.list_models():
        raise UsageError(
            f"unknown model {args.model!r}; choose from "
            f"{', '.join(models.list_models())}"
        )
    if not args.out.endswith(OUTPUT_SUFFIXES):
        raise UsageError(
            f"--out must end with .keras (a model) or .weights.h5 (weights): "
            f"{args.out}"
        )
    try:
        _validation.check_writable_path("out", args.out)
    except ValueError:
        raise UsageError(
            f"cannot write {args.out}: no such directory"
        ) from None


def _convert(args):
    from keras_aff import interop
    from keras_aff import models
    from keras_aff.interop import mxnet_names

    try:
        arrays = interop.read_mxnet_params(args.params)
    except ValueError as e:
        raise UsageError(str(e)) from None
    kwargs = {} if args.classes is None else {"classes": args.classes}
    model = models.get_model(args.model, **kwargs)
    family = mxnet_names.file_family(arrays)
    weight = arrays.get(f"{family.classifier}.weight") if family else None
    classes = model.get_layer("predictions").units
    if weight is not None and weight.ndim == 2 and weight.shape[0] != classes:
        raise UsageError(
            f"{args.params} holds a {weight.shape[0]}-way classifier, the "
            f"model {classes} classes: pass --classes {weight.shape[0]}"
        )
    try:
        report = interop.load_mxnet_params(model, arrays)
    except ValueError as e:
        raise UsageError(
            f"{args.params} does not fit {args.model}: {e}"
        ) from None
    report.source = args.params
    return model, report


def _save(model, out):
    """Writes next to `out`, then renames: never a half-written file."""
    suffix = ".keras" if out.endswith(".keras") else ".weights.h5"
    fd, tmp = tempfile.mkstemp(
        suffix=suffix, prefix=".convert-", dir=os.path.dirname(out) or "."
    )
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would create it
    try:
        if suffix == ".keras":
            model.save(tmp)
        else:
            model.save_weights(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _run(args):
    if args.preset is not None:
        from keras_aff.hub import presets

        return presets.run_convert(args, UsageError, echo)
    _check_arguments(args)
    model, report = _convert(args)
    y = check_output(model)
    _save(model, args.out)
    echo(report)
    echo(
        f"\ncheck: {model.name} on a fixed input (seed {CHECK_SEED}, shape "
        f"{(1,) + tuple(model.input_shape[1:])}): output {y.shape}, finite, "
        f"top-1 class {int(np.argmax(y[0]))}"
    )
    echo(f"wrote {args.out} ({format_bytes(os.path.getsize(args.out))})")
    return 0
