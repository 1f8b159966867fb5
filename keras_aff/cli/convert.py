"""`keras-aff convert`: an official MXNet `.params` file to a Keras model
(`.keras`) or weights file (`.weights.h5`), run once on a fixed input and
checked to be finite before anything is written.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import os
import re

import numpy as np

from keras_aff.cli._common import UsageError
from keras_aff.cli._common import check_input_file
from keras_aff.cli._common import echo
from keras_aff.cli._common import format_bytes
from keras_aff.cli._common import positive_int

OUTPUT_SUFFIXES = (".keras", ".weights.h5")
CHECK_SEED = 0
# --classes without a classifier in the file to compare with: a typo must
# not become a multi-gigabyte Dense kernel (2048 x 100,000 floats: 0.8 GB).
MAX_CLASSES = 100_000


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
        " (e.g. 20 for a CIFAR-100 network trained on the superclasses); "
        "checked against the file before the model is built",
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

    check_input_file(args.params, "an MXNet .params file")
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
    if args.classes is not None and args.classes > MAX_CLASSES:
        raise UsageError(
            f"--classes {args.classes}: expected at most {MAX_CLASSES:,}"
        )
    if args.out is not None:
        _check_out(args)


def _check_out(args):
    from keras_aff.export import staging

    if not args.out.endswith(OUTPUT_SUFFIXES):
        raise UsageError(
            f"--out must end with .keras (a model) or .weights.h5 (weights): "
            f"{args.out!r}"
        )
    try:
        staging.check_destination(
            args.out, _kind(args.out), [args.params], name="out"
        )
    except ValueError as e:
        reason = getattr(e, "reason", e)
        raise UsageError(
            f"--out {args.out}: {reason} (nothing was written or removed)"
        ) from None


def _kind(out):
    return "keras" if out.endswith(".keras") else "weights"


def _classes(args, arrays):
    """The classifier size: the file's when it has one (a --classes that
    differs is a usage error, before the model is built), else --classes
    or the model's default (None)."""
    from keras_aff import models
    from keras_aff.interop import mxnet_names

    family = mxnet_names.file_family(arrays)
    weight = arrays.get(f"{family.classifier}.weight") if family else None
    if weight is None or weight.ndim != 2:
        return args.classes
    found = weight.shape[0]
    default = models.model_info(args.model).classes
    wanted = default if args.classes is None else args.classes
    if wanted is not None and found != wanted:
        raise UsageError(
            f"{args.params} holds a {found}-way classifier, the model "
            f"{wanted} classes: pass --classes {found}"
        )
    return args.classes


def _convert(args):
    from keras_aff import interop
    from keras_aff import models

    try:
        arrays = interop.read_mxnet_params(args.params)
    except ValueError as e:
        raise UsageError(str(e)) from None
    classes = _classes(args, arrays)
    kwargs = {} if classes is None else {"classes": classes}
    model = models.get_model(args.model, **kwargs)
    try:
        report = interop.load_mxnet_params(model, arrays)
    except ValueError as e:
        # The CLI names the file it read, not the dict the API was given.
        reason = re.sub(r" ?Received: params=a dict of \d+ arrays", "", str(e))
        raise UsageError(
            f"{args.params} does not fit {args.model}: {reason} "
            f"Received: params={args.params!r}"
        ) from None
    report.source = args.params
    return model, report


def _save(model, out, params):
    """Writes beside `out`, then renames (`staging`): never a half-written
    file, and nothing replaced but a previous file of the same kind."""
    from keras_aff.export import staging

    kind = _kind(out)
    try:
        stage = staging.StagedPath(out, kind, [params])
    except ValueError as e:  # the destination changed since the check
        raise UsageError(f"--out {out}: {getattr(e, 'reason', e)}") from None
    try:
        with stage:
            if kind == "keras":
                model.save(stage.tmp)
            else:
                model.save_weights(stage.tmp)
            stage.commit()
    except OSError as e:
        raise OSError(
            e.errno,
            f"cannot write {out}: {e.strerror or e} (nothing was left at the "
            "path; a file that was there is untouched)",
        ) from None


def _run(args):
    _check_arguments(args)
    if args.preset is not None:
        from keras_aff import interop
        from keras_aff.hub import presets

        # --classes against the file before any network is built.
        try:
            arrays = interop.read_mxnet_params(args.params)
        except ValueError as e:
            raise UsageError(str(e)) from None
        _classes(args, arrays)
        return presets.run_convert(args, UsageError, echo)
    model, report = _convert(args)
    y = check_output(model)
    _save(model, args.out, args.params)
    echo(report)
    echo(
        f"\ncheck: {model.name} on a fixed input (seed {CHECK_SEED}, shape "
        f"{(1,) + tuple(model.input_shape[1:])}): output {y.shape}, finite, "
        f"top-1 class {int(np.argmax(y[0]))}"
    )
    echo(f"wrote {args.out} ({format_bytes(os.path.getsize(args.out))})")
    return 0
