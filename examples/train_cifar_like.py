"""Train a small AFF-ResNet and its plain-addition twin on generated images.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The data set is generated, so the example needs no download: 32x32 colour
images of 10 classes, each class a sum of two oriented gratings (one fine,
one coarse) under random phase, colour, contrast and noise, so that a class
is told apart only by combining local detail with the global layout, the
kind of fusion AFF is for. Both networks come from the same builder as
`keras_aff.models.AFFResNet32` (pre-activation blocks, the official CIFAR
layout) at a reduced depth and width; they differ only in `fusion`
("aff" or "add"), and train from the same seed on the same data for the
same fixed budget. The script prints both test accuracies.

A run with the defaults takes a few minutes on two CPU cores; the numbers
of one run are noisy (a few points between seeds), so use `--seeds` to
average over several.

Example:

    python examples/train_cifar_like.py
    python examples/train_cifar_like.py --blocks 2 --width 32 --epochs 8
    python examples/train_cifar_like.py --quick      # a smoke test, seconds
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

# The CIFAR ResNet family builder: `keras_aff.models.AFFResNet32` is this
# builder with 5 blocks per stage and widths 64/128/256; it takes the
# arguments of `AFFResNet32` as a dict.
from keras_aff.models.cifar import cifar_resnet  # noqa: E402

NUM_CLASSES = 10


def make_dataset(n, size=32, seed=0):
    """`n` images (float32 in [0, 1], channels last) and integer labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype("float32") / size
    labels = rng.integers(0, NUM_CLASSES, n)
    images = np.empty((n, size, size, 3), "float32")
    for i, c in enumerate(labels):
        # Class c: a fine grating at angle (c % 5) * 36 deg, modulated by a
        # coarse grating whose angle is set by c // 5 (two families sharing
        # the fine angles), under jittered angles and frequencies, random
        # phase, colour and contrast, and strong pixel noise.
        a_fine = np.pi * (c % 5) / 5 + rng.normal(0, 0.12)
        a_coarse = np.pi / 4 + (c // 5) * np.pi / 2 + rng.normal(0, 0.25)
        f_fine = rng.uniform(4, 7)
        fine = np.sin(
            2 * np.pi * f_fine * (xx * np.cos(a_fine) + yy * np.sin(a_fine))
            + rng.uniform(0, 2 * np.pi)
        )
        coarse = np.sin(
            2 * np.pi * (xx * np.cos(a_coarse) + yy * np.sin(a_coarse))
            + rng.uniform(0, 2 * np.pi)
        )
        pattern = rng.uniform(0.15, 0.5) * fine * (0.5 + 0.5 * coarse)
        pattern += 0.4 * coarse
        colour = rng.uniform(0.3, 1.0, 3)
        img = 0.5 + 0.5 * pattern[..., None] * colour
        img += rng.normal(0, 0.3, img.shape)
        images[i] = np.clip(img, 0, 1)
    return images, labels


def build(fusion, blocks, width, size):
    """The AFF-ResNet-32 network with `blocks` blocks per stage and widths
    `width`, `2 * width`, `4 * width`."""
    arguments = dict(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=(size, size, 3),
        pooling=None,
        classes=NUM_CLASSES,
        classifier_activation="softmax",
        name=f"{fusion}_resnet{6 * blocks + 2}_w{width}",
        fusion=fusion,
        fusion_stages=(1, 2, 3),
        reduction_ratio=4,
        kernel_initializer="glorot_uniform",
    )
    return cifar_resnet(
        arguments,
        blocks_per_stage=blocks,
        widths=(width, 2 * width, 4 * width),
        stem_width=width,
    )


def train_and_evaluate(fusion, data, args, seed):
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = build(fusion, args.blocks, args.width, x_train.shape[1])
    steps = args.epochs * int(np.ceil(len(x_train) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        args.lr, decay_steps=steps, warmup_target=None
    )
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=args.jit,
        run_eagerly=args.quick,  # no graph tracing for a smoke run
    )
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    _, acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    return acc, model.count_params(), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1, help="per stage")
    parser.add_argument("--width", type=int, default=16, help="stage-1 width")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument(
        "--jit", action="store_true", help="XLA (faster on GPU, not on CPU)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny run (smoke test)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.train_size, args.test_size = 1, 128, 64
        args.image_size, args.width = 16, 8
    data = (
        make_dataset(args.train_size, args.image_size, seed=1),
        make_dataset(args.test_size, args.image_size, seed=2),
    )
    print(
        f"data: {args.train_size} train / {args.test_size} test images "
        f"{args.image_size}x{args.image_size}, {NUM_CLASSES} classes; "
        f"model: {args.blocks} block(s) per stage, widths "
        f"{args.width}/{2 * args.width}/{4 * args.width}; "
        f"{args.epochs} epochs, batch {args.batch_size}"
    )
    results = {}
    for fusion in ("add", "aff"):
        accs = []
        for seed in range(args.seeds):
            acc, params, seconds = train_and_evaluate(fusion, data, args, seed)
            accs.append(acc)
            print(
                f"  {fusion:>3} seed {seed}: test accuracy {acc:.4f} "
                f"({params:,} parameters, {seconds:.0f} s)"
            )
        results[fusion] = float(np.mean(accs))
    print(
        f"plain add test accuracy: {results['add']:.4f}\n"
        f"AFF       test accuracy: {results['aff']:.4f}"
    )
    return results


if __name__ == "__main__":
    main()
