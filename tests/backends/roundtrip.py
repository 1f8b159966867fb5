"""One step of the cross-backend `.keras` chain of test_cross_backend.py,
run under the backend named on the command line:

    python tests/backends/roundtrip.py BACKEND DIR [--save]

Loads every `.keras` file listed in DIR/manifest.json that another backend
saved, predicts the saved inputs and records the largest difference from
the saving backend's outputs; with `--save`, builds the models, gives every
variable a seeded random value (BatchNorm statistics included), saves them
as DIR/<backend>_<model>.keras with their inputs and outputs, and adds them
to the manifest.
"""

import json
import os
import sys

BACKEND = sys.argv[1]
os.environ["KERAS_BACKEND"] = BACKEND
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if BACKEND == "torch":
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_aff  # noqa: E402


def small_net():
    """MSCAM, AFF and IAFF with channels_first in one of them."""
    image = keras.Input((12, 12, 3), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", name="stem")(image)
    h = keras.layers.BatchNormalization(name="stem_bn")(h)
    a = keras.layers.Conv2D(16, 3, padding="same", name="a")(h)
    b = keras.layers.Conv2D(16, 1, name="b")(h)
    h = keras_aff.layers.AFF(reduction_ratio=4, output_scale=2.0)([a, b])
    h = keras_aff.layers.MSCAM(reduction_ratio=2, name="mscam")(h)
    h = keras_aff.layers.IAFF(reduction_ratio=4, bn_synchronized=True)([h, b])
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(image, keras.layers.Dense(5, name="logits")(h))


def backbone():
    return keras_aff.models.AFFResNet32(
        input_shape=(16, 16, 3),
        classes=10,
        fusion="iaff",
        classifier_activation=None,
    )


MODELS = {"small_net": small_net, "aff_resnet32": backbone}


def randomize(model, seed):
    """Seeded random BatchNorm statistics, gammas, betas and biases (the
    kernels keep their initializers' values, so that the deep network's
    outputs stay of order 1)."""
    rng = np.random.default_rng(seed)
    for v in model.variables:
        shape = tuple(v.shape)
        kind = v.path.rsplit("/", 1)[-1]
        if kind in ("moving_variance", "gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        elif kind in ("moving_mean", "beta", "bias"):
            value = rng.normal(0.0, 0.1, shape)
        else:
            continue
        v.assign(value.astype(v.dtype))


def predict(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def main(directory, save):
    path = os.path.join(directory, "manifest.json")
    manifest = {"files": {}, "loads": []}
    if os.path.exists(path):
        with open(path) as f:
            manifest = json.load(f)
    done = {e["file"] for e in manifest["loads"] if e["loaded_on"] == BACKEND}
    for name, entry in manifest["files"].items():
        if entry["backend"] == BACKEND or name in done:
            continue
        data = np.load(os.path.join(directory, entry["data"]))
        model = keras.saving.load_model(os.path.join(directory, name))
        got = predict(model, data["x"])
        manifest["loads"].append(
            {
                "file": name,
                "saved_on": entry["backend"],
                "loaded_on": BACKEND,
                "max_abs_diff": float(np.max(np.abs(got - data["y"]))),
                "output_scale": float(np.max(np.abs(data["y"]))),
            }
        )
    if save:
        for i, (kind, build) in enumerate(MODELS.items()):
            model = build()
            randomize(model, seed=i)
            shape = (3, *model.input.shape[1:])
            x = np.random.default_rng(10 + i).normal(size=shape)
            x = x.astype("float32")
            name = f"{BACKEND}_{kind}.keras"
            model.save(os.path.join(directory, name))
            data = f"{BACKEND}_{kind}.npz"
            np.savez(os.path.join(directory, data), x=x, y=predict(model, x))
            manifest["files"][name] = {"backend": BACKEND, "data": data}
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[2], "--save" in sys.argv[3:])
