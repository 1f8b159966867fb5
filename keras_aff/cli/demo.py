"""`keras-aff demo`: runs the `keras_aff.demo` pipeline and shows its
progress (a line per epoch and per export) and its table.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import os
import time

from keras_aff import demo
from keras_aff._tables import markdown_table
from keras_aff.cli._common import echo
from keras_aff.cli._common import format_bytes
from keras_aff.cli._common import positive_int
from keras_aff.demo import artifacts
from keras_aff.demo.summary import REPORT_FILE
from keras_aff.demo.train import EPOCHS

TABLE_HEADERS = [
    "format",
    "file",
    "size",
    "accuracy",
    "max abs err vs Keras",
    "batch-1 ms",
]
PLOT_DIGITS = (0, 2, 4, 6, 8)


def add_parser(subparsers):
    """Adds `demo [--out DIR] [--epochs N] [--seed S] [--no-png]`.

    Example:

    >>> import argparse
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> args = keras_aff.cli.demo.add_parser(sub).parse_args(["--epochs", "2"])
    >>> args.out, args.epochs, args.seed, args.no_png
    ('savedmodels/demo', 2, 0, False)
    """
    parser = subparsers.add_parser(
        "demo",
        help="train a small AFF network on bundled digits, export and "
        "verify every format, print a table, plot the fusion weights",
    )
    parser.add_argument(
        "--out",
        default=os.path.join("savedmodels", "demo"),
        help="output directory (default: savedmodels/demo)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=EPOCHS,
        help=f"training epochs (default: {EPOCHS})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--no-png", action="store_true", help="skip the fusion-weight plot"
    )
    parser.set_defaults(func=_run)
    return parser


def _run(args):
    start = time.perf_counter()
    out = args.out
    os.makedirs(out, exist_ok=True)
    echo(
        "keras-aff demo: an AFF/iAFF CNN on scikit-learn's handwritten "
        f"digits (16x16), exported and verified into {out}/"
    )
    x_train, x_test, y_train, y_test = demo.load_demo_data(args.seed)
    model = _train(args, x_train, y_train)
    keras_path = os.path.join(out, artifacts.KERAS_FILE)
    model.save(keras_path)
    held_out = demo.accuracy(model.predict(x_test, verbose=0), y_test)
    echo(f"held-out accuracy (Keras): {held_out:.4f}")
    reports = _export(model, out, x_train, x_test)
    echo(f"\n[3/4] running every artifact on {len(x_test)} held-out digits")
    # The Keras row is timed with the others, once training and exports
    # are done.
    keras_row, reference = demo.evaluate_keras(
        model, keras_path, x_test, y_test, root=out
    )
    results = [keras_row] + [
        demo.evaluate_artifact(label, report, x_test, y_test, reference, out)
        for label, report in reports.items()
    ]
    png = None if args.no_png else os.path.join(out, "fusion_weights.png")
    _plot(model, x_test, y_test, png)
    summary = demo.DemoSummary(
        epochs=args.epochs,
        seed=args.seed,
        train_images=len(x_train),
        test_images=len(x_test),
        results=results,
        reports=reports,
        png=png,
        seconds=time.perf_counter() - start,
    )
    summary.write_json(os.path.join(out, REPORT_FILE))
    _print_table(summary, out)
    return 0


def _train(args, x_train, y_train):
    import keras

    keras.utils.set_random_seed(args.seed)
    model = demo.build_demo_model()
    echo(
        f"\n[1/4] training {model.count_params():,} parameters for "
        f"{args.epochs} epochs on {len(x_train)} images"
    )
    return demo.train_demo_model(model, x_train, y_train, epochs=args.epochs)


def _export(model, out, x_train, x_test):
    echo("\n[2/4] exporting; each artifact is verified against Keras")
    samples = x_test[: artifacts.CHECK_SAMPLES]
    calibration = x_train[: artifacts.CALIBRATION_SAMPLES]
    reports = {}
    for label in artifacts.ARTIFACTS:
        t0 = time.perf_counter()
        report = demo.export_artifact(model, label, out, samples, calibration)
        reports[label] = report
        echo(
            f"  {label:<15} {report.summary()} "
            f"[{time.perf_counter() - t0:.1f} s]"
        )
        for note in report.notes:
            echo(f"  {'':<15} note: {note}")
    return reports


def _plot(model, x_test, y_test, png):
    if png is None:
        echo("\n[4/4] --no-png: skipped the fusion-weight plot")
        return
    echo("\n[4/4] plotting the fusion weights")
    picks = [int((y_test == d).nonzero()[0][0]) for d in PLOT_DIGITS]
    mean_aff, mean_iaff = demo.save_fusion_weight_png(
        model, x_test[picks], y_test[picks], png
    )
    echo(
        f"  wrote {png}: mean w = {mean_aff:.2f} (AFF, 3x3 vs 1x1 "
        f"branch), {mean_iaff:.2f} (iAFF, conv path vs shortcut)"
    )


def _print_table(summary, out):
    rows = [
        [
            r["format"],
            r["file"],
            format_bytes(r["size_bytes"]),
            f"{r['accuracy']:.4f}",
            "-" if r["max_abs_error"] is None else f"{r['max_abs_error']:.2e}",
            f"{r['latency_ms']:.3f}",
        ]
        for r in summary.results
    ]
    echo(f"\n{markdown_table(TABLE_HEADERS, rows)}\n")
    echo(
        f"accuracy on {summary.test_images} held-out digits; max abs err = "
        "largest softmax difference from the Keras model over them; batch-1 "
        "ms = median of one call (LiteRT: a bare invoke with the XNNPACK "
        "delegate unless a note says otherwise)."
    )
    echo(f"done in {summary.seconds:.0f} s; report: {out}/{REPORT_FILE}")
