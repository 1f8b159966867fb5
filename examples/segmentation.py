"""Segment generated shapes with AFF-UNet and its plain-addition twin.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The data set is generated, so the example needs no download: RGB images of
discs, squares and triangles (classes 1-3; background 0) on textured
backgrounds, with per-pixel class masks. Every shape is filled with the
same kind of texture as the background, in a random colour, so a pixel's
class is told from the shape's outline and extent (context from the coarse
decoder levels) as much as from its neighbourhood (the skips): the long-skip
fusion the paper's AFF-UNet / AFF-FPN is about.

`keras_aff.models.AFFUNet` is trained with `fusion="aff"` and `"add"` (the
same network, the same skip alignment, `skip + upsampled`) from the same
seeds on the same data for the same fixed budget; the script reports the
mean IoU (over the 4 classes, on held-out images) per seed, exports the
AFF-UNet of the first seed to LiteRT int8 and ONNX with `keras_aff.export`
(verified against the Keras model), scores the int8 file too, and writes a
PNG of inputs, masks and predictions and a JSON of the figures.

A run with the defaults (3 seeds) takes about seven minutes on two CPU cores;
`--smoke` runs a few steps of everything (a CI smoke test, under a minute).

Example:

    python examples/segmentation.py                 # the docs table
    python examples/segmentation.py --seeds 1 --epochs 4
    python examples/segmentation.py --smoke --out-dir /tmp/seg
"""

import argparse
import functools
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_aff  # noqa: E402

CLASSES = ("background", "disc", "square", "triangle")
FUSIONS = ("aff", "add")


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
def _texture(rng, yy, xx):
    """A random oriented grating plus fine noise, in [-1, 1]-ish."""
    angle = rng.uniform(0, np.pi)
    freq = rng.uniform(0.15, 0.45)
    wave = np.sin(
        freq * (xx * np.cos(angle) + yy * np.sin(angle))
        + rng.uniform(0, 2 * np.pi)
    )
    return 0.6 * wave + rng.normal(0, 0.35, yy.shape)


def _shape_mask(kind, rng, yy, xx, size):
    """A boolean mask of one shape of class `kind` (1 disc, 2 square,
    3 triangle), of random size and place."""
    r = rng.uniform(0.14, 0.26) * size
    cy, cx = rng.uniform(r, size - r, 2)
    if kind == 1:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    if kind == 2:
        a = rng.uniform(0, np.pi / 2)
        u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
        v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
        return (np.abs(u) <= r * 0.85) & (np.abs(v) <= r * 0.85)
    angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2, 4]) * np.pi / 3
    py, px = cy + r * 1.2 * np.sin(angles), cx + r * 1.2 * np.cos(angles)
    inside = np.ones_like(yy, bool)
    for i in range(3):
        j = (i + 1) % 3
        k = (i + 2) % 3
        edge = (px[j] - px[i]) * (yy - py[i]) - (py[j] - py[i]) * (xx - px[i])
        side = (px[j] - px[i]) * (py[k] - py[i]) - (py[j] - py[i]) * (
            px[k] - px[i]
        )
        inside &= edge * side >= 0
    return inside


def make_dataset(n, size=64, seed=0):
    """`n` images (float32 in [0, 1], channels last) and int32 masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype("float32")
    images = np.empty((n, size, size, 3), "float32")
    masks = np.zeros((n, size, size), "int32")
    for i in range(n):
        base = rng.uniform(0.3, 0.7, 3)
        img = base + 0.15 * _texture(rng, yy, xx)[..., None]
        for _ in range(rng.integers(1, 4)):
            kind = int(rng.integers(1, 4))
            mask = _shape_mask(kind, rng, yy, xx, size)
            colour = rng.uniform(0.1, 0.9, 3)
            fill = colour + 0.15 * _texture(rng, yy, xx)[..., None]
            img = np.where(mask[..., None], fill, img)
            masks[i][mask] = kind
        images[i] = np.clip(img, 0.0, 1.0)
    return images, masks


# ---------------------------------------------------------------------------
# Training and scores
# ---------------------------------------------------------------------------
def mean_iou(masks, predicted, num_classes=4):
    """Mean over the classes of |prediction & truth| / |prediction | truth|
    over all pixels (a class absent from both is skipped)."""
    ious = []
    for c in range(num_classes):
        truth, pred = masks == c, predicted == c
        union = np.sum(truth | pred)
        if union:
            ious.append(np.sum(truth & pred) / union)
    return float(np.mean(ious))


def build(fusion, args):
    return keras_aff.models.AFFUNet(
        (args.image_size, args.image_size, 3),
        num_classes=len(CLASSES),
        depth=args.depth,
        base_filters=args.base_filters,
        fusion=fusion,
    )


def train(fusion, data, args, seed):
    (x_train, y_train), _ = data
    keras.utils.set_random_seed(seed)
    model = build(fusion, args)
    steps = args.epochs * int(np.ceil(len(x_train) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        run_eagerly=args.smoke,  # no graph tracing for a few steps
    )
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=0,
    )
    return model, time.perf_counter() - start


def predict_classes(predict, x, batch_size=64):
    """Per-pixel argmax of `predict` (a Keras model's `predict` or an
    exported artifact's runner) over `x` in batches."""
    out = [
        np.argmax(np.asarray(predict(x[i : i + batch_size])), axis=-1)
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out)


def export(model, data, out_dir):
    """LiteRT int8 and ONNX files of `model`, verified by keras_aff.export;
    returns the reports and the int8 file's mean IoU on the test images."""
    (x_train, _), (x_test, y_test) = data
    tflite = os.path.join(out_dir, f"{model.name}_int8.tflite")
    onnx = os.path.join(out_dir, f"{model.name}.onnx")
    reports = {
        "litert_int8": keras_aff.export.export_litert(
            model,
            tflite,
            quantization="int8",
            representative_data=x_train[:200],
        ),
        "onnx": keras_aff.export.export_onnx(
            model, onnx, sample_inputs=x_test[:8]
        ),
    }
    runner = keras_aff.export.load_artifact(tflite)
    int8 = predict_classes(lambda b: runner(b)[0], x_test)
    return reports, mean_iou(y_test, int8)


def write_png(path, x, y, predictions, rows=4):
    """Inputs, masks and each network's prediction, one image per row."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            'The figure needs matplotlib: pip install "keras-aff[demo]". '
            f"Original error: {e}"
        ) from e
    cols = 2 + len(predictions)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows))
    titles = ["input", "mask"] + [f"{k} prediction" for k in predictions]
    for r in range(rows):
        panels = [x[r], y[r]] + [p[r] for p in predictions.values()]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            if c == 0:
                ax.imshow(panel)
            else:
                ax.imshow(panel, vmin=0, vmax=len(CLASSES) - 1, cmap="tab10")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--train-size", type=int, default=1500)
    parser.add_argument("--test-size", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--base-filters", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out-dir", default="segmentation_out")
    parser.add_argument(
        "--smoke", action="store_true", help="a few steps of everything"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.epochs, args.train_size, args.test_size = 1, 1, 32, 8
        args.image_size, args.depth, args.base_filters = 32, 2, 8
    return args


def main(argv=None):
    args = _parse(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    data = (
        make_dataset(args.train_size, args.image_size, seed=1),
        make_dataset(args.test_size, args.image_size, seed=2),
    )
    x_test, y_test = data[1]
    print(
        f"data: {args.train_size} train / {args.test_size} test images "
        f"{args.image_size}x{args.image_size}, classes {CLASSES}; AFFUNet "
        f"depth {args.depth}, base_filters {args.base_filters}; "
        f"{args.epochs} epochs, batch {args.batch_size}, Adam {args.lr}"
    )
    results = {f: [] for f in FUSIONS}
    shown, exported = {}, None
    for seed in range(args.seeds):
        for fusion in FUSIONS:
            model, seconds = train(fusion, data, args, seed)
            pred = predict_classes(
                functools.partial(model.predict, verbose=0), x_test
            )
            results[fusion].append(mean_iou(y_test, pred))
            print(
                f"seed {seed} {fusion:>3}: mIoU {results[fusion][-1]:.4f} "
                f"({model.count_params():,} params, {seconds:.0f} s)"
            )
            if seed == 0:
                shown[fusion] = pred
                if fusion == "aff":
                    exported = export(model, data, args.out_dir)
    reports, int8_miou = exported
    for report in reports.values():
        print(report.summary())
    print(f"AFF-UNet LiteRT int8 mIoU (seed 0): {int8_miou:.4f}")
    seeds = " | ".join(f"seed {s}" for s in range(args.seeds))
    print(f"\n| fusion | {seeds} | mean ± std |")
    print("|---|" + "---|" * args.seeds + "---|")
    for fusion in FUSIONS:
        v = results[fusion]
        cells = " | ".join(f"{m:.3f}" for m in v)
        print(f"| {fusion} | {cells} | {np.mean(v):.3f} ± {np.std(v):.3f} |")
    write_png(
        os.path.join(args.out_dir, "segmentation.png"), x_test, y_test, shown
    )
    summary = {
        "args": vars(args),
        "mean_iou": results,
        "int8_mean_iou_seed0": int8_miou,
        "exports": {k: r.to_dict() for k, r in reports.items()},
    }
    with open(os.path.join(args.out_dir, "segmentation.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


if __name__ == "__main__":
    main()
