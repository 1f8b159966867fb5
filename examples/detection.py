"""Detect generated shapes with RetinaNet: an AFF-FPN neck against the
plain add-FPN.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The data set is generated, so the example needs no download: 64x64 RGB
images on textured backgrounds with one to three discs and squares
(classes 0 and 1) of sizes 10 to 36 pixels, so objects land on different
pyramid levels. Both detectors are KerasHub `RetinaNetObjectDetector`s
(`keras_aff.hub.AFFRetinaNetObjectDetector`) on the same small KerasHub
`ResNetBackbone` encoder and the same neck (`keras_aff.models.AFFFPN`,
levels P3-P7), differing only in the FPN's top-down merge: `fusion="aff"`
against `"add"` (the plain FPN). They train from the same seeds on the same
data for the same budget; the score is the mean average precision at IoU
0.5 on held-out images, computed by pycocotools' `COCOeval` (its AP@0.5,
over both classes). The script prints a table, writes a JSON of the
figures and a PNG of the first seed's predictions.

A run with the defaults (1536 images, 10 epochs, 3 seeds) took 13.5
minutes on two shared CPU cores; at that budget neither neck wins (see the
KerasHub docs page). `--smoke` runs a few steps of everything (the CI
smoke test).

Example:

    python examples/detection.py                 # the docs table
    python examples/detection.py --smoke --out-dir /tmp/det
"""

import argparse
import contextlib
import io
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

CLASSES = ("disc", "square")
FUSIONS = ("aff", "add")
SIZE = 64
MAX_OBJECTS = 3


def _draw(rng, image, yy, xx, kind, box):
    y0, x0, y1, x1 = box
    if kind == 0:
        cy, cx, r = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    else:
        mask = (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
    image[mask] = rng.uniform(0.2, 1.0, 3)


def make_dataset(n, size=SIZE, seed=0):
    """`n` images (float32 in [0, 1]) and their boxes (yxyx pixels,
    padded with -1) and labels (padded with -1), one to three objects of
    10-36 pixels each; deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype("float32")
    images = np.zeros((n, size, size, 3), "float32")
    boxes = -np.ones((n, MAX_OBJECTS, 4), "float32")
    labels = -np.ones((n, MAX_OBJECTS), "float32")
    for i in range(n):
        image = 0.35 + 0.15 * rng.normal(size=(size, size, 3))
        image += 0.1 * np.sin(rng.uniform(0.2, 0.6) * xx)[..., None]
        for j in range(rng.integers(1, MAX_OBJECTS + 1)):
            side = rng.integers(10, 37)
            y0, x0 = rng.integers(0, size - side, 2)
            kind = int(rng.integers(0, 2))
            box = (y0, x0, y0 + side, x0 + side)
            _draw(rng, image, yy, xx, kind, box)
            boxes[i, j], labels[i, j] = box, kind
        images[i] = np.clip(image, 0, 1)
    return images, {"boxes": boxes, "labels": labels}


def build(fusion, seed, fpn_channels=64):
    """The detector: a small KerasHub ResNet encoder, the AFF-FPN (or
    add-FPN) neck, one conv per head, square anchors of 1.5x the stride
    (3 scales)."""
    import keras_hub

    import keras_aff.hub

    keras.utils.set_random_seed(seed)
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 64, 96, 128],
        stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
        image_shape=(SIZE, SIZE, 3),
    )
    neck = keras_aff.hub.AFFRetinaNetBackbone(
        encoder,
        fpn_channels=fpn_channels,
        fusion=fusion,
        image_shape=(SIZE, SIZE, 3),
    )
    anchors = keras_hub.layers.AnchorGenerator(
        "yxyx",
        min_level=3,
        max_level=7,
        num_scales=3,
        aspect_ratios=[1.0],
        anchor_size=1.5,
    )
    detector = keras_aff.hub.AFFRetinaNetObjectDetector(
        neck,
        num_classes=len(CLASSES),
        anchor_generator=anchors,
        pre_logits_num_conv_layers=1,
        prediction_decoder=keras_hub.layers.NonMaxSuppression(
            "yxyx",
            from_logits=True,
            confidence_threshold=0.05,
            max_detections=20,
        ),
    )
    detector.compile(optimizer=keras.optimizers.Adam(1e-3))
    return detector


def _coco(y, predictions):
    gt, results, images = [], [], []
    for i in range(len(y["labels"])):
        images.append({"id": i, "height": SIZE, "width": SIZE})
        for (y0, x0, y1, x1), c in zip(y["boxes"][i], y["labels"][i]):
            if c < 0:
                continue
            gt.append(
                {
                    "id": len(gt) + 1,
                    "image_id": i,
                    "category_id": int(c),
                    "bbox": [
                        float(x0),
                        float(y0),
                        float(x1 - x0),
                        float(y1 - y0),
                    ],
                    "area": float((x1 - x0) * (y1 - y0)),
                    "iscrowd": 0,
                }
            )
        count = int(predictions["num_detections"][i])
        for k in range(count):
            y0, x0, y1, x1 = (float(v) for v in predictions["boxes"][i, k])
            results.append(
                {
                    "image_id": i,
                    "category_id": int(predictions["labels"][i, k]),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(predictions["confidence"][i, k]),
                }
            )
    categories = [{"id": c, "name": n} for c, n in enumerate(CLASSES)]
    return {
        "images": images,
        "annotations": gt,
        "categories": categories,
    }, results


def map50(y, predictions):
    """Mean AP at IoU 0.5 over the classes, by pycocotools' COCOeval."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, results = _coco(y, predictions)
    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = dataset
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[1])


def run(fusion, seed, data, args):
    (x, y), (x_test, y_test) = data
    detector = build(fusion, seed)
    start = time.time()
    detector.fit(
        x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0
    )
    predictions = detector.predict(x_test, batch_size=32, verbose=0)
    # Decoded boxes may reach past the image (or be huge for an untrained
    # head): clip to it, as an evaluation of image boxes would.
    boxes = np.nan_to_num(np.asarray(predictions["boxes"], "float64"))
    predictions["boxes"] = np.clip(boxes, 0, SIZE)
    return map50(y_test, predictions), time.time() - start, predictions


def _figure(path, x, y, predictions, fusion):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 6, figsize=(15, 3))
    for i, ax in enumerate(axes):
        ax.imshow(x[i])
        for (y0, x0, y1, x1), c in zip(y["boxes"][i], y["labels"][i]):
            if c >= 0:
                ax.add_patch(
                    plt.Rectangle(
                        (x0, y0), x1 - x0, y1 - y0, fill=False, color="lime"
                    )
                )
        for k in range(int(predictions["num_detections"][i])):
            if predictions["confidence"][i, k] < 0.3:
                continue
            y0, x0, y1, x1 = predictions["boxes"][i, k]
            label = CLASSES[int(predictions["labels"][i, k])]
            ax.add_patch(
                plt.Rectangle(
                    (x0, y0), x1 - x0, y1 - y0, fill=False, color="red"
                )
            )
            ax.text(x0, y0, label, color="red", fontsize=7)
        ax.axis("off")
    fig.suptitle(
        f"RetinaNet, {fusion}-FPN: truth (green), predictions "
        "with confidence >= 0.3 (red)"
    )
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train", type=int, default=1536)
    parser.add_argument("--test", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out-dir", default="detection_out")
    parser.add_argument(
        "--smoke", action="store_true", help="a few steps of everything (CI)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.epochs, args.train, args.test = 1, 1, 32, 16
    return args


def main(argv=None):
    """Runs the comparison; returns the summary that is written as JSON."""
    args = parse(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    data = (
        make_dataset(args.train, seed=100),
        make_dataset(args.test, seed=200),
    )
    scores = {f: [] for f in FUSIONS}
    seconds = {f: [] for f in FUSIONS}
    for seed in range(args.seeds):
        for fusion in FUSIONS:
            score, took, predictions = run(fusion, seed, data, args)
            scores[fusion].append(score)
            seconds[fusion].append(round(took, 1))
            print(
                f"seed {seed}, {fusion}-FPN: mAP@0.5 {score:.3f} "
                f"({took:.0f} s)",
                flush=True,
            )
            if seed == 0 and fusion == "aff":
                x_test, y_test = data[1]
                _figure(
                    os.path.join(args.out_dir, "detection.png"),
                    x_test,
                    y_test,
                    predictions,
                    fusion,
                )
    summary = {
        "map50": scores,
        "seconds": seconds,
        "settings": {
            k: getattr(args, k)
            for k in ("seeds", "epochs", "train", "test", "batch_size")
        },
    }
    print("| neck | mAP@0.5 per seed | mean |")
    print("|---|---|---|")
    for fusion in FUSIONS:
        values = ", ".join(f"{v:.3f}" for v in scores[fusion])
        print(f"| {fusion} | {values} | {np.mean(scores[fusion]):.3f} |")
    with open(os.path.join(args.out_dir, "detection.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


if __name__ == "__main__":
    main()
