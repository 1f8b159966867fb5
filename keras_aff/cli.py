"""The `keras-aff` command: `demo`, `export` and `info`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

    keras-aff demo [--out DIR] [--epochs N] [--seed S] [--no-png]
    keras-aff export MODEL.keras --format saved_model|litert|onnx
        [--quantize float16|dynamic|int8] [--calibration DIR_OR_NPY]
        [--out PATH] [--float-io] [--opset N] [--atol X] [--json]
    keras-aff info MODEL.keras [--json]

Errors print `keras-aff: error: ...` to stderr. Exit status: 0 success, 1 a
failed export or verification, 2 a usage error (bad arguments, a missing
file, a file that is not a Keras model, calibration data that does not fit).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

EXIT_FAILURE = 1
EXIT_USAGE = 2
FORMATS = ("saved_model", "litert", "onnx")
QUANTIZATIONS = ("float16", "dynamic", "int8")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
DEMO_EPOCHS = 8
DEMO_CALIBRATION = 300


class UsageError(Exception):
    """Bad input from the user: exit status 2."""


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------
def _print(*args):
    print(*args, flush=True)


def _load_model(path):
    """Loads a `.keras` / `.h5` model with every keras_aff class
    registered; raises UsageError for a missing or non-Keras file."""
    import keras

    import keras_aff.layers  # noqa: F401  (registers MSCAM, AFF, IAFF)

    try:  # registers the backbones, when that subpackage is present
        import keras_aff.models  # noqa: F401
    except ImportError:
        pass
    if not os.path.exists(path):
        raise UsageError(f"no such file: {path}")
    if os.path.isdir(path):
        raise UsageError(
            f"{path} is a directory; expected a Keras model file "
            "(.keras). A SavedModel cannot be re-exported: export from the "
            "Keras model it came from."
        )
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:
        raise UsageError(
            f"{path} is not a loadable Keras model (.keras or .h5): "
            f"{type(e).__name__}: {str(e).strip().splitlines()[0][:500]}"
        ) from None
    if not isinstance(model, keras.Model):
        raise UsageError(f"{path} holds a {type(model).__name__}, not a model")
    return model


def _format_bytes(n):
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def _table(headers, rows):
    """A GitHub-markdown table with aligned columns."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


# ---------------------------------------------------------------------------
# keras-aff export
# ---------------------------------------------------------------------------
def _load_calibration(path, model):
    """Calibration / sample inputs from a `.npy`, an `.npz` or a directory
    of images or `.npy` files, validated against the model's inputs."""
    from keras_aff.export import _verify

    if not os.path.exists(path):
        raise UsageError(f"no such calibration file or directory: {path}")
    names = _verify.input_names(model)
    try:
        if os.path.isdir(path):
            data = _load_calibration_dir(path, model)
        elif path.endswith(".npz"):
            with np.load(path) as f:
                keys = list(f.files)
                if sorted(keys) == sorted(names):
                    data = {k: f[k] for k in keys}
                else:
                    data = [f[k] for k in keys]
        else:
            data = np.load(path, allow_pickle=False)
    except UsageError:
        raise
    except Exception as e:
        raise UsageError(
            f"cannot read calibration data {path}: {type(e).__name__}: {e}"
        ) from None
    try:
        return _verify.normalize_inputs(model, data, "calibration")
    except ValueError as e:
        raise UsageError(f"calibration data {path} does not fit: {e}") from None


def _load_calibration_dir(path, model):
    import keras

    files = sorted(os.listdir(path))
    arrays = [f for f in files if f.endswith(".npy")]
    images = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    if arrays:
        # One sample or one batch per file, for a single-input model.
        rank = len(model.inputs[0].shape)
        loaded = [np.load(os.path.join(path, f)) for f in arrays]
        return np.concatenate(
            [a[None] if a.ndim == rank - 1 else a for a in loaded]
        )
    if not images:
        raise UsageError(
            f"calibration directory {path} holds no .npy or image files "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
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
    return np.stack(
        [
            keras.utils.img_to_array(
                keras.utils.load_img(
                    os.path.join(path, f), color_mode=mode, target_size=size
                )
            )
            for f in images
        ]
    ).astype("float32")


def _default_out(model_path, fmt, quantize):
    stem = os.path.splitext(os.path.basename(model_path))[0]
    if fmt == "saved_model":
        return os.path.join("savedmodels", stem, "1")
    if fmt == "onnx":
        return os.path.join("savedmodels", f"{stem}.onnx")
    return os.path.join("savedmodels", f"{stem}_{quantize or 'float32'}.tflite")


def _report_rows(reports):
    rows = []
    for r in reports:
        fmt = r.format + (f" {r.quantization}" if r.quantization else "")
        if r.format == "litert" and not r.quantization:
            fmt += " float32"
        agree = "" if r.top1_agreement is None else f"{r.top1_agreement:.3f}"
        rows.append(
            [
                fmt,
                r.path,
                _format_bytes(r.size_bytes),
                f"{r.max_abs_error:.2e}",
                f"{r.mean_abs_error:.2e}",
                f"{r.tolerance:.1e}",
                agree,
                f"{r.latency_ms:.3f}",
            ]
        )
    return rows


def _cmd_export(args):
    from keras_aff import export

    if args.quantize and args.format != "litert":
        raise UsageError(
            f"--quantize applies to --format litert only; received "
            f"--format {args.format} --quantize {args.quantize}"
        )
    if args.float_io and args.quantize != "int8":
        raise UsageError("--float-io applies to --quantize int8 only")
    if args.opset is not None and args.format != "onnx":
        raise UsageError("--opset applies to --format onnx only")
    if args.quantize == "int8" and not args.calibration:
        raise UsageError(
            "--quantize int8 needs --calibration DIR_OR_NPY: about 100-500 "
            "real input samples (an .npy shaped like a batch of inputs, an "
            ".npz with one array per input, or a directory of images)"
        )
    model = _load_model(args.model)
    calibration = (
        _load_calibration(args.calibration, model) if args.calibration else None
    )
    out = args.out or _default_out(args.model, args.format, args.quantize)
    if args.format == "saved_model":
        report = export.export_saved_model(
            model, out, sample_inputs=calibration, atol=args.atol
        )
    elif args.format == "onnx":
        report = export.export_onnx(
            model,
            out,
            opset=args.opset,
            sample_inputs=calibration,
            atol=args.atol,
        )
    else:
        report = export.export_litert(
            model,
            out,
            quantization=args.quantize,
            representative_data=calibration,
            float_io=args.float_io,
            atol=args.atol,
        )
    if args.json:
        _print(json.dumps(report.to_dict(), indent=2))
        return 0
    _print(f"wrote {report.path} (verified: {', '.join(report.checked)})")
    _print(
        _table(
            [
                "format",
                "path",
                "size",
                "max abs err",
                "mean abs err",
                "tolerance",
                "top-1 agree",
                "batch-1 ms",
            ],
            _report_rows([report]),
        )
    )
    for name, spec in report.inputs.items():
        _print(f"input  {name}: {spec}")
    for name, spec in report.outputs.items():
        _print(f"output {name}: {spec}")
    if report.ops:
        _print("ops: " + ", ".join(f"{k} {v}" for k, v in report.ops.items()))
    for note in report.notes:
        _print(f"note: {note}")
    return 0


# ---------------------------------------------------------------------------
# keras-aff info
# ---------------------------------------------------------------------------
def _fusion_classes():
    from keras_aff.layers import AFF
    from keras_aff.layers import IAFF
    from keras_aff.layers import MSCAM

    return (MSCAM, AFF, IAFF)


def model_info(model):
    """A JSON-serializable description of a model: inputs, outputs,
    parameter counts, top-level layers and every fusion layer (at any
    depth) with its settings.

    Example:

    >>> info = keras_aff.cli.model_info(model)
    >>> [f["class"] for f in info["fusion_layers"]]
    ['AFF', 'IAFF']
    """
    fusion_cls = _fusion_classes()

    def count(weights):
        return int(sum(np.prod(w.shape) for w in weights))

    def shape_of(layer):
        try:
            out = layer.output
        except (AttributeError, ValueError):
            return None
        if isinstance(out, (list, tuple)):
            return [list(o.shape) for o in out]
        return list(out.shape)

    fusion = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, fusion_cls):
            continue
        config = layer.get_config()
        entry = {
            "name": layer.name,
            "class": type(layer).__name__,
            "params": count(layer.weights),
            "channels": getattr(layer, "channels", None),
            "inter_channels": getattr(layer, "inter_channels", None),
        }
        for key in (
            "reduction_ratio",
            "output_scale",
            "branches",
            "data_format",
            "use_bias",
            "bn_momentum",
            "bn_epsilon",
        ):
            if key in config:
                entry[key] = config[key]
        entry["dtype_policy"] = layer.dtype_policy.name
        fusion.append(entry)
    return {
        "name": model.name,
        "class": type(model).__name__,
        "inputs": [
            {"name": t.name, "shape": list(t.shape), "dtype": str(t.dtype)}
            for t in model.inputs
        ],
        "outputs": [
            {"shape": list(t.shape), "dtype": str(t.dtype)}
            for t in model.outputs
        ],
        "params": {
            "total": count(model.weights),
            "trainable": count(model.trainable_weights),
            "non_trainable": count(model.non_trainable_weights),
        },
        "dtype_policy": model.dtype_policy.name,
        "layers": [
            {
                "name": layer.name,
                "class": type(layer).__name__,
                "output_shape": shape_of(layer),
                "params": count(layer.weights),
            }
            for layer in model.layers
        ],
        "fusion_layers": fusion,
    }


def _cmd_info(args):
    model = _load_model(args.model)
    info = model_info(model)
    if args.json:
        _print(json.dumps(info, indent=2))
        return 0
    p = info["params"]
    _print(f"model {info['name']} ({info['class']}, {info['dtype_policy']})")
    for t in info["inputs"]:
        _print(f"  input  {t['name']}: {tuple(t['shape'])} {t['dtype']}")
    for t in info["outputs"]:
        _print(f"  output {tuple(t['shape'])} {t['dtype']}")
    _print(
        f"  parameters: {p['total']:,} ({p['trainable']:,} trainable, "
        f"{p['non_trainable']:,} non-trainable)"
    )
    _print("\nlayers:")
    _print(
        _table(
            ["name", "class", "output shape", "params"],
            [
                [
                    layer["name"],
                    layer["class"],
                    layer["output_shape"],
                    f"{layer['params']:,}",
                ]
                for layer in info["layers"]
            ],
        )
    )
    _print(f"\nfusion layers: {len(info['fusion_layers'])}")
    if info["fusion_layers"]:
        _print(
            _table(
                [
                    "name",
                    "class",
                    "channels",
                    "r",
                    "hidden",
                    "output_scale",
                    "branches",
                    "data_format",
                    "bn momentum / eps",
                    "params",
                ],
                [
                    [
                        f["name"],
                        f["class"],
                        f["channels"],
                        f["reduction_ratio"],
                        f["inter_channels"],
                        f.get("output_scale", "-"),
                        "+".join(f["branches"]),
                        f["data_format"],
                        f"{f['bn_momentum']} / {f['bn_epsilon']:g}",
                        f"{f['params']:,}",
                    ]
                    for f in info["fusion_layers"]
                ],
            )
        )
    return 0


# ---------------------------------------------------------------------------
# keras-aff demo
# ---------------------------------------------------------------------------
def load_demo_data(seed=0):
    """scikit-learn's handwritten digits (1,797 8x8 grey images, shipped
    with scikit-learn; no download), upsampled to 16x16 in [0, 1] and split
    80/20 (stratified).

    Returns:
        (x_train, x_test, y_train, y_test); x: float32 (N, 16, 16, 1).

    Example:

    >>> x_train, x_test, y_train, y_test = keras_aff.cli.load_demo_data()
    >>> x_train.shape, x_test.shape
    ((1437, 16, 16, 1), (360, 16, 16, 1))
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise RuntimeError(
            "The demo trains on scikit-learn's bundled digits dataset. "
            'Install it with `pip install "keras-aff[demo]"`. '
            f"({e})"
        ) from e
    data = load_digits()
    x = data.images.astype("float32") / 16.0
    x = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)[..., None]
    y = data.target.astype("int32")
    return train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)


def build_demo_model():
    """The demo network: two conv branches fused by AFF, then a block
    whose conv path and projection shortcut are fused by iAFF; softmax over
    10 digits. 12 k parameters.

    Example:

    >>> model = keras_aff.cli.build_demo_model()
    >>> model.get_layer("aff"), model.get_layer("iaff")
    """
    import keras

    from keras_aff.layers import AFF
    from keras_aff.layers import IAFF

    layers = keras.layers

    def conv_bn(h, filters, kernel, name, relu=True):
        h = layers.Conv2D(
            filters, kernel, padding="same", use_bias=False, name=name
        )(h)
        h = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(h)
        return layers.ReLU(name=f"{name}_relu")(h) if relu else h

    image = keras.Input((16, 16, 1), name="image")
    h = conv_bn(image, 16, 3, "stem")
    x = conv_bn(h, 16, 3, "branch3x3")  # AFF's x: w weighs this one
    y = conv_bn(h, 16, 1, "branch1x1")  # AFF's y: 1 - w weighs this one
    h = AFF(reduction_ratio=4, name="aff")([x, y])
    h = layers.MaxPooling2D(2, name="pool")(h)
    x = conv_bn(h, 32, 3, "block2_conv")
    y = conv_bn(h, 32, 1, "block2_proj", relu=False)
    h = IAFF(reduction_ratio=4, name="iaff")([x, y])
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    probs = layers.Dense(10, activation="softmax", name="probs")(h)
    return keras.Model(image, probs, name="aff_digits")


def fusion_weight_model(model):
    """A probe model: the demo model's input -> the fusion weights `w` of
    its AFF layer and the second-stage `w2` of its iAFF layer (channel
    maps; `w` multiplies the FIRST input x, `1 - w` the second, y).

    Example:

    >>> probe = keras_aff.cli.fusion_weight_model(model)
    >>> w_aff, w_iaff = probe(images)
    """
    import keras

    ops = keras.ops
    aff = model.get_layer("aff")
    x, y = aff.input
    w = aff.attention(ops.add(x, y))
    iaff = model.get_layer("iaff")
    x, y = iaff.input
    w1 = iaff.attention1(ops.add(x, y))
    xi = ops.add(y, ops.multiply(w1, ops.subtract(x, y)))
    w2 = iaff.attention2(xi)
    return keras.Model(model.input, [w, w2], name="fusion_weights")


def _save_weight_png(model, images, labels, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w_aff, w_iaff = fusion_weight_model(model).predict(images, verbose=0)
    w_aff, w_iaff = w_aff.mean(-1), w_iaff.mean(-1)
    # Channel means sit near 0.5: centre the colours there and stretch them
    # to the largest deviation so the structure shows.
    spread = max(
        0.05,
        float(
            np.abs(np.concatenate([w_aff.ravel(), w_iaff.ravel()]) - 0.5).max()
        ),
    )
    lo, hi = 0.5 - spread, 0.5 + spread
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.9 * n + 1.2, 6.2))
    for i in range(n):
        axes[0, i].imshow(images[i, ..., 0], cmap="gray_r")
        axes[0, i].set_title(f"digit {labels[i]}", fontsize=9)
        im = axes[1, i].imshow(w_aff[i], cmap="RdBu_r", vmin=lo, vmax=hi)
        axes[2, i].imshow(w_iaff[i], cmap="RdBu_r", vmin=lo, vmax=hi)
        for row in range(3):
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=9)
    axes[1, 0].set_ylabel("AFF w (16x16)\nx=3x3, y=1x1", fontsize=9)
    axes[2, 0].set_ylabel("iAFF w2 (8x8)\nx=conv, y=proj", fontsize=9)
    bar = fig.colorbar(im, ax=axes[1:, :].ravel().tolist(), shrink=0.9)
    bar.set_label("mean w over channels: red prefers x, blue prefers y")
    fig.suptitle(
        "Where attentional feature fusion prefers which input "
        "(output = y + w * (x - y))",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return float(w_aff.mean()), float(w_iaff.mean())


def _demo_table_rows(results):
    return [
        [
            r["format"],
            r["file"],
            _format_bytes(r["size_bytes"]),
            f"{r['accuracy']:.4f}",
            "-" if r["max_abs_error"] is None else f"{r['max_abs_error']:.2e}",
            f"{r['latency_ms']:.3f}",
        ]
        for r in results
    ]


def _cmd_demo(args):
    import keras
    import tensorflow as tf

    from keras_aff import export

    out = args.out
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    _print(
        "keras-aff demo: an AFF/iAFF CNN on scikit-learn's handwritten "
        f"digits (16x16), exported and verified into {out}/"
    )
    x_train, x_test, y_train, y_test = load_demo_data(args.seed)
    keras.utils.set_random_seed(args.seed)
    model = build_demo_model()
    steps = int(np.ceil(len(x_train) / 32)) * args.epochs
    # Cosine decay to 0: with a constant rate the global branches'
    # BatchNorm statistics lag the moving weights and held-out accuracy
    # swings between 0.4 and 0.9 from epoch to epoch.
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, max(steps, 1))
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    _print(
        f"\n[1/4] training {model.count_params():,} parameters for "
        f"{args.epochs} epochs on {len(x_train)} images"
    )
    # A progress bar on a terminal; one line per epoch in logs and pipes.
    verbose = 1 if sys.stdout.isatty() else 2
    model.fit(
        x_train, y_train, batch_size=32, epochs=args.epochs, verbose=verbose
    )
    # Deploy an uncompiled copy: no optimizer state in the .keras file.
    trained = model
    model = keras.models.clone_model(trained)
    model.set_weights(trained.get_weights())
    keras_path = os.path.join(out, "aff_digits.keras")
    model.save(keras_path)
    reference = model.predict(x_test, verbose=0)
    keras_acc = float((reference.argmax(-1) == y_test).mean())
    _print(f"held-out accuracy (Keras): {keras_acc:.4f}")

    _print("\n[2/4] exporting; each artifact is verified against Keras")
    samples = x_test[:32]
    calibration = x_train[:DEMO_CALIBRATION]
    jobs = [
        (
            "SavedModel",
            os.path.join(out, "aff_digits", "1"),
            lambda p: export.export_saved_model(
                model, p, sample_inputs=samples
            ),
        ),
        (
            "LiteRT float32",
            os.path.join(out, "aff_digits_float32.tflite"),
            lambda p: export.export_litert(model, p, sample_inputs=samples),
        ),
        (
            "LiteRT int8",
            os.path.join(out, "aff_digits_int8.tflite"),
            lambda p: export.export_litert(
                model, p, quantization="int8", representative_data=calibration
            ),
        ),
        (
            "ONNX",
            os.path.join(out, "aff_digits.onnx"),
            lambda p: export.export_onnx(model, p, sample_inputs=samples),
        ),
    ]
    reports = {}
    for label, path, run in jobs:
        t0 = time.perf_counter()
        report = run(path)
        reports[label] = report
        _print(
            f"  {label:<15} {report.summary()} "
            f"[{time.perf_counter() - t0:.1f} s]"
        )
        for note in report.notes:
            _print(f"  {'':<15} note: {note}")

    _print(f"\n[3/4] running every artifact on {len(x_test)} held-out digits")
    keras_fn = tf.function(lambda t: model(t, training=False))
    keras_ms = export._verify.median_latency_ms(lambda: keras_fn(x_test[:1]))
    results = [
        {
            "format": "Keras (tf.function)",
            "file": os.path.relpath(keras_path, out),
            "size_bytes": os.path.getsize(keras_path),
            "accuracy": keras_acc,
            "max_abs_error": None,
            "latency_ms": keras_ms,
        }
    ]
    for label, report in reports.items():
        probs = export.load_artifact(report.path)(x_test)[0]
        results.append(
            {
                "format": label,
                "file": os.path.relpath(report.path, out),
                "size_bytes": report.size_bytes,
                "accuracy": float((probs.argmax(-1) == y_test).mean()),
                "max_abs_error": float(np.abs(probs - reference).max()),
                "latency_ms": report.latency_ms,
            }
        )

    png = None
    if not args.no_png:
        _print("\n[4/4] plotting the fusion weights")
        png = os.path.join(out, "fusion_weights.png")
        picks = [int(np.flatnonzero(y_test == d)[0]) for d in range(0, 10, 2)]
        mean_aff, mean_iaff = _save_weight_png(
            model, x_test[picks], y_test[picks], png
        )
        _print(
            f"  wrote {png}: mean w = {mean_aff:.2f} (AFF, 3x3 vs 1x1 "
            f"branch), {mean_iaff:.2f} (iAFF, conv path vs shortcut)"
        )
    else:
        _print("\n[4/4] --no-png: skipped the fusion-weight plot")

    elapsed = time.perf_counter() - start
    headers = [
        "format",
        "file",
        "size",
        "accuracy",
        "max abs err vs Keras",
        "batch-1 ms",
    ]
    table = _table(headers, _demo_table_rows(results))
    summary = {
        "epochs": args.epochs,
        "seed": args.seed,
        "train_images": len(x_train),
        "test_images": len(x_test),
        "results": results,
        "reports": {k: r.to_dict() for k, r in reports.items()},
        "png": png,
        "seconds": elapsed,
    }
    with open(os.path.join(out, "demo_report.json"), "w") as f:
        json.dump(summary, f, indent=2)
    _print(f"\n{table}\n")
    _print(
        f"accuracy on {len(x_test)} held-out digits; max abs err = largest "
        "softmax difference from the Keras model over them; batch-1 ms = "
        "median of one call (LiteRT: a bare invoke with the XNNPACK "
        "delegate unless a note says otherwise)."
    )
    _print(f"done in {elapsed:.0f} s; report: {out}/demo_report.json")
    return 0


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {value}")
    return value


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
            "a demo, verified exports and model info."
        ),
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        help="train a small AFF network on bundled digits, export and "
        "verify every format, print a table, plot the fusion weights",
    )
    demo.add_argument(
        "--out",
        default=os.path.join("savedmodels", "demo"),
        help="output directory (default: savedmodels/demo)",
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=DEMO_EPOCHS,
        help=f"training epochs (default: {DEMO_EPOCHS})",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument(
        "--no-png", action="store_true", help="skip the fusion-weight plot"
    )
    demo.set_defaults(func=_cmd_demo)

    exp = sub.add_parser(
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
    exp.add_argument("--opset", type=_positive_int, help="ONNX opset")
    exp.add_argument(
        "--atol", type=float, help="absolute tolerance of the check"
    )
    exp.add_argument("--json", action="store_true", help="print the report")
    exp.set_defaults(func=_cmd_export)

    info = sub.add_parser(
        "info", help="layers, fusion layers and parameter counts"
    )
    info.add_argument("model", help="a Keras model file (.keras)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv=None):
    """Runs `keras-aff`; returns the exit status.

    Example:

    >>> keras_aff.cli.main(["info", "savedmodels/demo/aff_digits.keras"])
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return args.func(args)
    except UsageError as e:
        print(f"keras-aff: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("keras-aff: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        from keras_aff.export import ExportVerificationError

        kind = (
            "verification failed"
            if isinstance(e, ExportVerificationError)
            else type(e).__name__
        )
        print(f"keras-aff: error: {kind}: {e}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
