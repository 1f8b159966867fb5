"""Writes the compatibility fixtures of this keras_aff version.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

    python savedmodels/make_fixtures.py            # fixtures/v<version>/
    python savedmodels/make_fixtures.py --out DIR  # elsewhere (a dry run)

A small trained model that uses every fusion layer and the non-default
settings users save (AFF with output_scale=2, iAFF with local+local
branches, MSCAM; from 0.2.0 also AFF with align_inputs=True on maps of
different channels and sizes, Align and MultiAFF), saved as `.keras`,
exported as a SavedModel and as LiteRT float32 and int8 files by
`keras_aff.export` (each verified), with fixed inputs
and the outputs each artifact gave when it was written.
`tests/export/test_fixtures.py` loads every `fixtures/v*/` directory with the
current code and checks that those outputs come back.

An existing version directory is never overwritten: fixtures record what a
released version wrote, and regenerating them would hide a compatibility
break. Run this once per release, then commit the new directory.
"""

import argparse
import hashlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_aff  # noqa: E402
from keras_aff import export  # noqa: E402
from keras_aff.layers import AFF  # noqa: E402
from keras_aff.layers import IAFF  # noqa: E402
from keras_aff.layers import MSCAM  # noqa: E402
from keras_aff.layers import Align  # noqa: E402
from keras_aff.layers import MultiAFF  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20240101
NUM_INPUTS = 16
NUM_CALIBRATION = 128


def build_model():
    """8x8x3 -> AFF(x2) -> iAFF(local+local) -> MSCAM, then (0.2.0) a
    coarser 4x4x16 map merged by AFF(align_inputs=True) and by Align, the
    three maps fused by MultiAFF -> 4 logits."""
    layers = keras.layers
    image = keras.Input((8, 8, 3), name="image")
    h = layers.Conv2D(8, 3, padding="same", name="stem")(image)
    h = layers.BatchNormalization(momentum=0.9, name="stem_bn")(h)
    h = layers.ReLU(name="stem_relu")(h)
    a = layers.Conv2D(8, 3, padding="same", activation="relu", name="a")(h)
    b = layers.Conv2D(8, 1, activation="relu", name="b")(h)
    f = AFF(reduction_ratio=2, output_scale=2.0, name="aff")([a, b])
    f = IAFF(reduction_ratio=2, branches=("local", "local"), name="iaff")(
        [f, b]
    )
    f = MSCAM(reduction_ratio=4, name="mscam")(f)
    c = layers.Conv2D(
        16, 3, strides=2, padding="same", activation="relu", name="coarse"
    )(h)
    g = AFF(reduction_ratio=2, align_inputs=True, name="aff_aligned")([f, c])
    u = Align(interpolation="nearest", name="align")([f, c])
    f = MultiAFF(reduction_ratio=2, output_scale=3.0, name="multi_aff")(
        [f, g, u]
    )
    f = layers.GlobalAveragePooling2D(name="gap")(f)
    return keras.Model(image, layers.Dense(4, name="logits")(f), name="fx")


def make_data(rng, n):
    """Four classes of 8x8 images: a bright quadrant on noise."""
    labels = rng.integers(0, 4, size=n)
    x = 0.3 * rng.standard_normal((n, 8, 8, 3)).astype("float32")
    for i, c in enumerate(labels):
        r, q = divmod(int(c), 2)
        x[i, 4 * r : 4 * r + 4, 4 * q : 4 * q + 4] += 1.0
    return x, labels


def sha256(path):
    if os.path.isdir(path):
        digest = hashlib.sha256()
        for root, _, files in sorted(os.walk(path)):
            for name in sorted(files):
                digest.update(name.encode())
                with open(os.path.join(root, name), "rb") as f:
                    digest.update(f.read())
        return digest.hexdigest()
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def make(out):
    if os.path.exists(out):
        raise SystemExit(
            f"make_fixtures: {out} exists; fixtures of a version are never "
            "overwritten (they record what that version wrote). Bump "
            "keras_aff.__version__ or pass another --out."
        )
    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)
    x_train, y_train = make_data(rng, 512)
    inputs, _ = make_data(rng, NUM_INPUTS)
    calibration, _ = make_data(rng, NUM_CALIBRATION)

    model = build_model()
    epochs = 8
    model.compile(
        keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(1e-2, epochs * 16)
        ),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    trained = model
    model = keras.models.clone_model(trained)  # no optimizer state
    model.set_weights(trained.get_weights())

    os.makedirs(out)
    model.save(os.path.join(out, "model.keras"))
    np.save(os.path.join(out, "inputs.npy"), inputs)
    expected = np.asarray(model.predict(inputs, verbose=0), "float32")
    np.save(os.path.join(out, "expected.npy"), expected)
    reports = [
        export.export_saved_model(
            model, os.path.join(out, "saved_model"), sample_inputs=inputs
        ),
        export.export_litert(
            model,
            os.path.join(out, "model_float32.tflite"),
            sample_inputs=inputs,
        ),
        export.export_litert(
            model,
            os.path.join(out, "model_int8.tflite"),
            quantization="int8",
            representative_data=calibration,
        ),
    ]
    int8 = export.load_artifact(os.path.join(out, "model_int8.tflite"))
    np.save(os.path.join(out, "expected_int8.npy"), int8(inputs)[0])
    files = sorted(os.listdir(out))
    import tensorflow as tf

    manifest = {
        "keras_aff": keras_aff.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "description": (
            build_model.__doc__.replace("\n   ", "").rstrip(".")
            + "; trained 8 epochs on a synthetic quadrant task"
        ),
        "files": {name: sha256(os.path.join(out, name)) for name in files},
        "exports": [
            {
                k: v
                for k, v in r.to_dict().items()
                if k not in ("path", "latency_ms")
            }
            | {"file": os.path.basename(r.path)}
            for r in reports
        ],
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        default=os.path.join(HERE, "fixtures", f"v{keras_aff.__version__}"),
        help="directory to create (default: fixtures/v<version>)",
    )
    args = parser.parse_args(argv)
    out = make(args.out)
    size = sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(out)
        for f in files
    )
    print(f"wrote {out} ({size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
