"""Retrofit AFF into keras.applications' ResNet50 and fine-tune it.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`keras_aff.models.retrofit` replaces the 16 residual `Add` layers of
ResNet50 by AFF layers that start as exactly `x + y`, keeping every other
layer and weight. The script shows that the new model computes the same
function as the original, prints the retrofit report, fine-tunes a few
steps on generated images and shows that the weights moved.

Pretrained weights: this example uses `weights=None` (it must run offline).
With network access pass `--weights imagenet`: keras.applications
downloads the ImageNet weights and the retrofitted model starts with the
same ImageNet accuracy.

Example:

    python examples/retrofit_resnet50.py
    python examples/retrofit_resnet50.py --fusion iaff --size 128
    python examples/retrofit_resnet50.py --weights imagenet --size 224
    python examples/retrofit_resnet50.py --quick     # a smoke test
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_aff  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="None or imagenet")
    parser.add_argument("--fusion", default="aff", choices=("aff", "iaff"))
    parser.add_argument("--reduction-ratio", type=int, default=16)
    parser.add_argument("--min-channels", type=int, default=None)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--quick", action="store_true", help="tiny run (smoke test)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.steps, args.batch_size = 32, 1, 4
    keras.utils.set_random_seed(0)

    base = keras.applications.ResNet50(
        weights=args.weights, input_shape=(args.size, args.size, 3)
    )
    model, report = keras_aff.models.retrofit(
        base,
        fusion=args.fusion,
        reduction_ratio=args.reduction_ratio,
        min_channels=args.min_channels,
        return_report=True,
    )
    print(report)

    # 1. The same function before fine-tuning.
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch_size, args.size, args.size, 3))
    x = keras.applications.resnet50.preprocess_input(images.astype("float32"))
    y_base = keras.ops.convert_to_numpy(base(x, training=False))
    y_new = keras.ops.convert_to_numpy(model(x, training=False))
    rel = np.max(np.abs(y_new - y_base)) / np.max(np.abs(y_base))
    print(f"max |new - original| / max |original| = {rel:.2e}")
    same_top1 = np.mean(y_new.argmax(-1) == y_base.argmax(-1))
    print(f"same top-1 class on {same_top1:.0%} of the images")

    # 2. Fine-tune: the zero-initialised gate BatchNorms start learning
    # first, then the whole gate; the pretrained layers train as usual.
    labels = rng.integers(0, 1000, args.batch_size)
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        # XLA does not speed up training on CPU and compiling ResNet50
        # takes a minute; on a GPU leave the default ("auto").
        jit_compile=False,
        run_eagerly=args.quick,  # no graph tracing for a one-step smoke run
    )
    gate = model.get_layer(report.replaced[-1]["fusion_layer"])
    # The last gate's local branch: its last BatchNorm starts at gamma = 0.
    gamma = [w for w in gate.weights if w.path.endswith("local/bn2/gamma")][-1]
    kernel = model.get_layer("conv5_block3_3_conv").kernel
    before = (
        keras.ops.convert_to_numpy(gamma).copy(),
        keras.ops.convert_to_numpy(kernel).copy(),
    )
    history = model.fit(
        x,
        labels,
        epochs=args.steps,
        batch_size=args.batch_size,
        verbose=0,
    )
    print(
        "fine-tuning losses: "
        + ", ".join(f"{v:.3f}" for v in history.history["loss"])
    )
    print(
        f"{gate.name} local bn2 gamma moved by "
        f"{np.abs(keras.ops.convert_to_numpy(gamma) - before[0]).max():.2e}"
        " (it started at 0); conv5_block3_3_conv kernel moved by "
        f"{np.abs(keras.ops.convert_to_numpy(kernel) - before[1]).max():.2e}"
    )
    return rel


if __name__ == "__main__":
    main()
