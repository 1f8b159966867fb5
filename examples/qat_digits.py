"""Float, PTQ int8 and QAT int8 of a small AFF/iAFF CNN on sklearn digits.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The workflow of `keras_aff.qat`, end to end:

1. train a float model in Keras 3 (`keras_aff.layers.AFF` / `IAFF`);
2. post-training quantization (PTQ) of it to int8 LiteRT with
   `keras_aff.export.export_litert`, for comparison;
3. build its tf_keras twin with `keras_aff.legacy` (same layer names) and
   copy the trained weights by variable path;
4. `keras_aff.qat.quantize_model` (fusion layers unrolled into stock layers,
   tfmot's 8-bit scheme), fine-tune a few epochs;
5. convert the QAT model to a fully int8 LiteRT model (checked as the PTQ
   model is: no float tensor between ops, outputs within tolerance of the
   QAT model);
6. checkpoint the QAT model with `save_weights` (TF checkpoint) and
   restore it into a fresh QAT model (with `--savedmodel`, also save the
   whole model with `save_format="tf"` and reload it); copy the fine-tuned
   weights back into the Keras 3 model.

Digits: 1,797 8x8 images, 10 classes, upsampled to 16x16; a stratified
80/20 split. Prints one JSON object with every figure.

    python examples/qat_digits.py
    python examples/qat_digits.py --out /tmp/qat --json /tmp/qat.json
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def load_digits_16(seed=0):
    """sklearn digits as (N, 16, 16, 1) float32 in [0, 1], split 80/20."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.images.astype("float32") / 16.0
    x = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)[..., None]
    return train_test_split(
        x, data.target, test_size=0.2, random_state=seed, stratify=data.target
    )


def build_model(kl, aff_cls, iaff_cls, model_cls):
    """The same CNN for Keras 3 (`keras.layers`, `keras_aff.layers.*`,
    `keras.Model`) or tf_keras (`tf_keras.layers`, `keras_aff.legacy.*`,
    `tf_keras.Model`). Every layer is named, so variable paths match."""

    def conv_bn(h, filters, kernel, name, strides=1):
        h = kl.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            use_bias=False,
            name=name,
        )(h)
        h = kl.BatchNormalization(momentum=0.9, name=f"{name}_bn")(h)
        return kl.ReLU(name=f"{name}_relu")(h)

    x = kl.Input((16, 16, 1), name="image")
    h = conv_bn(x, 16, 3, "stem")
    a = conv_bn(h, 16, 3, "branch3")
    b = conv_bn(h, 16, 1, "branch1")
    h = aff_cls(reduction_ratio=4, name="aff")([a, b])
    h = conv_bn(h, 32, 3, "down", strides=2)
    c = conv_bn(h, 32, 3, "res")
    h = iaff_cls(reduction_ratio=4, name="iaff")([c, h])
    h = kl.GlobalAveragePooling2D(name="gap")(h)
    out = kl.Dense(10, name="head")(h)
    return model_cls(x, out, name="digits_aff")


def shuffled_epochs(x, y, epochs, seed):
    """`epochs` passes over (x, y), each in a fresh seeded order, as one
    array: `fit(shuffle=True)` draws its order from an unseeded op, so two
    runs with the same seed would train on different batches."""
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(x)) for _ in range(epochs)])
    return x[order], y[order]


def predict_litert(path, x):
    """Float scores of a `.tflite` model (int8 I/O handled)."""
    import keras_aff.export

    return keras_aff.export.load_artifact(path)(x)[0]


def accuracy(scores, labels):
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--float-epochs", type=int, default=10)
    parser.add_argument("--qat-epochs", type=int, default=5)
    parser.add_argument(
        "--savedmodel",
        action="store_true",
        help="also save/reload the QAT model as a SavedModel (slow)",
    )
    parser.add_argument("--out", default=None, help="folder for artifacts")
    parser.add_argument("--json", default=None, help="write figures here")
    return parser.parse_args(argv)


def max_abs_difference(model, reference, x):
    return float(
        np.max(
            np.abs(
                np.asarray(model(x, training=False))
                - np.asarray(reference(x, training=False))
            )
        )
    )


def train_float(args, data):
    """1. Float training in Keras 3; returns (model, test accuracy)."""
    import keras_aff

    x_train, x_test, y_train, y_test = data
    keras.utils.set_random_seed(args.seed)
    model = build_model(
        keras.layers, keras_aff.layers.AFF, keras_aff.layers.IAFF, keras.Model
    )
    steps = int(np.ceil(len(x_train) / 32))
    # Cosine decay to 0: with a constant rate the BN moving statistics never
    # settle and inference accuracy jumps between 0.66 and 0.91 from epoch
    # to epoch while training accuracy is 0.99.
    model.compile(
        keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(
                3e-3, args.float_epochs * steps
            )
        ),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    xs, ys = shuffled_epochs(x_train, y_train, args.float_epochs, args.seed)
    model.fit(xs, ys, batch_size=32, epochs=1, verbose=0, shuffle=False)
    return model, accuracy(model.predict(x_test, verbose=0), y_test)


def export_ptq(float_model, data, out_dir, check):
    """2. PTQ int8 of the float model with the project's Keras 3 exporter
    (calibration: 200 images). It runs the same int8 checks as the QAT
    conversion: fully int8, and the outputs against the float model; its
    report counts ops, tensor dtypes and float islands. Also the float32
    LiteRT file, for its size."""
    import keras_aff.export

    x_train, x_test, _, y_test = data
    ptq_path = os.path.join(out_dir, "digits_ptq_int8.tflite")
    report = keras_aff.export.export_litert(
        float_model,
        ptq_path,
        quantization="int8",
        representative_data=x_train[:200],
    )
    acc = accuracy(predict_litert(ptq_path, x_test), y_test)
    float_export = keras_aff.export.export_litert(
        float_model,
        os.path.join(out_dir, "digits_float32.tflite"),
        sample_inputs=check,
    )
    return report, acc, float_export


def make_twin(float_model, check):
    """3. The tf_keras twin, weights copied by variable path."""
    import tf_keras

    from keras_aff import legacy
    from keras_aff import porting

    twin = build_model(tf_keras.layers, legacy.AFF, legacy.IAFF, tf_keras.Model)
    copied = porting.copy_weights(float_model, twin)
    twin_error = max_abs_difference(twin, float_model, check)
    if not twin_error <= 1e-4:
        raise RuntimeError(f"twin differs from the Keras 3 model: {twin_error}")
    return twin, copied, twin_error


def train_qat(args, twin, data):
    """4. QAT: unroll + tfmot 8-bit, calibrate the ranges, fine-tune;
    returns (QAT model, ranges calibrated, its Keras test accuracy)."""
    import tf_keras

    from keras_aff import qat

    x_train, x_test, y_train, y_test = data
    tf_keras.utils.set_random_seed(args.seed)
    model = qat.quantize_model(twin)
    # Start the activation ranges at what the data shows, not tfmot's
    # [-6, 6] (which a 225-step fine-tune would only shrink by 20 %).
    calibrated = qat.calibrate_ranges(model, x_train[:256])
    steps = int(np.ceil(len(x_train) / 32))
    model.compile(
        tf_keras.optimizers.Adam(
            tf_keras.optimizers.schedules.CosineDecay(
                5e-4, args.qat_epochs * steps
            )
        ),
        tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    xs, ys = shuffled_epochs(x_train, y_train, args.qat_epochs, args.seed + 1)
    model.fit(xs, ys, batch_size=32, epochs=1, verbose=0, shuffle=False)
    acc = accuracy(model.predict(x_test, verbose=0, batch_size=256), y_test)
    return model, calibrated, acc


def checkpoints(args, qat_model, twin, out_dir, check):
    """6. `save_weights` and restore into a fresh QAT model (and, with
    --savedmodel, the whole model as a SavedModel); returns the errors."""
    import tf_keras

    from keras_aff import qat

    prefix = os.path.join(out_dir, "qat_ckpt", "ckpt")
    qat_model.save_weights(prefix)
    restored = qat.quantize_model(twin)
    # The checkpoint also holds the optimizer state, which an uncompiled
    # model does not restore: expect_partial() says that is intended.
    restored.load_weights(prefix).expect_partial()
    errors = {
        "save_weights_restore_max_abs_error": max_abs_difference(
            restored, qat_model, check
        )
    }
    if args.savedmodel:
        saved = os.path.join(out_dir, "digits_qat_savedmodel")
        qat_model.save(saved, save_format="tf")
        with qat.quantize_scope():
            reloaded = tf_keras.models.load_model(saved)
        errors["savedmodel_reload_max_abs_error"] = max_abs_difference(
            reloaded, qat_model, check
        )
    return errors


def summary(report, acc, checked_on):
    """The figures of an int8 `ExportReport`, its accuracy and its data."""
    keep = (
        "size_bytes",
        "ops",
        "tensor_dtypes",
        "fully_int8",
        "float_islands",
        "max_abs_error",
        "mean_abs_error",
        "tolerance",
        "top1_agreement",
        "xnnpack",
        "path",
    )
    return dict(
        {k: getattr(report, k) for k in keep},
        checked_on=checked_on,
        accuracy=acc,
    )


def provenance(args):
    """The command, versions and machine of a run, as the benchmarks
    record them (`benchmarks/_bench.py`)."""
    import ai_edge_litert
    import tensorflow as tf

    import keras_aff

    command = f"python examples/qat_digits.py --seed {args.seed}"
    if (args.float_epochs, args.qat_epochs) != (10, 5):
        command += f" --float-epochs {args.float_epochs}"
        command += f" --qat-epochs {args.qat_epochs}"
    if args.json:
        command += f" --json {args.json}"
    return {
        "command": command,
        "versions": {
            "keras_aff": keras_aff.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?"),
        },
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "device": "gpu"
            if tf.config.list_physical_devices("GPU")
            else "cpu",
        },
    }


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    from keras_aff import porting
    from keras_aff import qat

    # Same seed, same figures (with `shuffled_epochs`): without this, runs
    # with one seed differed by up to 1.1 points of QAT int8 accuracy.
    tf.config.experimental.enable_op_determinism()
    out_dir = args.out or tempfile.mkdtemp(prefix="qat_digits_")
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.time()
    timings = {}
    data = load_digits_16(args.seed)
    x_test, y_test = data[1], data[3]
    check = x_test[:64]

    float_model, float_acc = train_float(args, data)
    timings["float_train_s"] = time.time() - t0
    t = time.time()
    ptq_report, ptq_acc, float_export = export_ptq(
        float_model, data, out_dir, check
    )
    timings["ptq_s"] = time.time() - t
    t = time.time()
    twin, copied, twin_error = make_twin(float_model, check)
    qat_model, calibrated, qat_keras_acc = train_qat(args, twin, data)
    timings["qat_train_s"] = time.time() - t

    # 5. Fully int8 LiteRT from the QAT model (no representative dataset).
    t = time.time()
    _, qat_report = qat.convert_to_int8_litert(
        qat_model, check, path=os.path.join(out_dir, "digits_qat_int8.tflite")
    )
    qat_int8_acc = accuracy(predict_litert(qat_report.path, x_test), y_test)
    timings["qat_convert_s"] = time.time() - t

    t = time.time()
    errors = checkpoints(args, qat_model, twin, out_dir, check)
    # The fine-tuned weights back into the Keras 3 model.
    porting.copy_weights(qat_model, float_model)
    float_after_qat_acc = accuracy(
        float_model.predict(x_test, verbose=0), y_test
    )
    timings["checkpoint_s"] = time.time() - t

    results = {
        **provenance(args),
        "seed": args.seed,
        "train_samples": int(len(data[0])),
        "test_samples": int(len(x_test)),
        "params": int(float_model.count_params()),
        "float": {
            "accuracy": float_acc,
            "litert_fp32_size_bytes": float_export.size_bytes,
        },
        "ptq_int8": summary(
            ptq_report, ptq_acc, f"{ptq_report.num_samples} calibration images"
        ),
        "qat_keras_accuracy": qat_keras_acc,
        "qat_int8": summary(
            qat_report, qat_int8_acc, f"{len(check)} test images"
        ),
        "qat_minus_float_points": 100 * (qat_int8_acc - float_acc),
        "twin_max_abs_error": twin_error,
        "copied_variables": len(copied),
        "calibrated_ranges": calibrated,
        **errors,
        "float_after_qat_weights_accuracy": float_after_qat_acc,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "total_s": round(time.time() - t0, 1),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
