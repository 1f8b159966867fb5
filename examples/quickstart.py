"""Quickstart: MSCAM, AFF and IAFF in a small Keras model.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Builds a functional CNN on generated 32x32x3 images (10 classes, labelled
by a fixed random teacher), trains a few steps, saves a `.keras` file,
reloads it and checks that the reloaded model predicts the same values.
Exits non-zero if it does not. Runs in well under a minute on a CPU, on any
Keras backend (`KERAS_BACKEND=jax python examples/quickstart.py`).

    python examples/quickstart.py [--epochs 2] [--out DIR]
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_aff  # noqa: E402
from keras_aff.layers import AFF  # noqa: E402
from keras_aff.layers import IAFF  # noqa: E402
from keras_aff.layers import MSCAM  # noqa: E402

NUM_CLASSES = 10


def make_data(n, seed):
    """Noisy images of 10 classes: each class has a fixed random colour
    and a fixed random texture (the same for every call), plus noise."""
    teacher = np.random.default_rng(42)
    colours = teacher.normal(0.0, 0.5, size=(NUM_CLASSES, 1, 1, 3))
    textures = teacher.normal(0.0, 0.5, size=(NUM_CLASSES, 32, 32, 3))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, NUM_CLASSES, size=n).astype("int32")
    noise = rng.normal(0.0, 1.0, size=(n, 32, 32, 3))
    x = (colours[y] + textures[y] + noise).astype("float32")
    return x, y


def build_model():
    """Stem conv, two branches fused by AFF, gated by MSCAM, fused again
    with the 1x1 branch by IAFF, then a linear classifier."""
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(
        16, 3, padding="same", activation="relu", name="stem"
    )(inputs)
    a = keras.layers.Conv2D(16, 3, padding="same", name="branch_3x3")(x)
    b = keras.layers.Conv2D(16, 1, name="branch_1x1")(x)
    fused = AFF(reduction_ratio=4, name="aff")([a, b])
    fused = MSCAM(reduction_ratio=4, name="mscam")(fused)
    fused = IAFF(reduction_ratio=4, name="iaff")([fused, b])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(fused)
    outputs = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name="quickstart")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--out", default=None, help="directory for .keras")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    x_train, y_train = make_data(args.samples, seed=0)
    x_test, _ = make_data(64, seed=1)

    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        x_train, y_train, batch_size=32, epochs=args.epochs, verbose=0
    )
    losses = history.history["loss"]

    out_dir = args.out or tempfile.mkdtemp(prefix="keras_aff_quickstart_")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "quickstart.keras")
    model.save(path)
    # A file saved with registered keras_aff layers needs `import keras_aff`
    # before loading, and no custom_objects.
    reloaded = keras.saving.load_model(path)

    before = model.predict(x_test, verbose=0)
    after = reloaded.predict(x_test, verbose=0)
    diff = float(np.max(np.abs(np.asarray(before) - np.asarray(after))))
    kinds = sorted(
        type(layer).__name__
        for layer in reloaded.layers
        if type(layer).__module__.startswith("keras_aff")
    )

    print(f"keras_aff {keras_aff.__version__}, Keras {keras.__version__}, "
          f"backend {keras.backend.backend()}")  # fmt: skip
    print(f"params: {model.count_params()}")
    print(f"loss: {losses[0]:.4f} -> {losses[-1]:.4f} "
          f"({args.epochs} epochs of {args.samples // 32} steps)")  # fmt: skip
    print(f"accuracy: {history.history['accuracy'][-1]:.3f}")
    print(f"saved: {path}")
    print(f"reloaded keras_aff layers: {', '.join(kinds)}")
    print(f"max abs diff: {diff:.3g}")
    if kinds != ["AFF", "IAFF", "MSCAM"] or not diff <= 1e-6:
        print("FAILED: the reloaded model differs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
