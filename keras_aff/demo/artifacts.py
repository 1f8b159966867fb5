"""The demo's artifacts: the `.keras` file and the four verified exports
(through `keras_aff.export`), each run on the held-out digits.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import os

import numpy as np

from keras_aff import _validation
from keras_aff.export.runners import median_latency_ms

KERAS_FILE = "aff_digits.keras"
KERAS_LABEL = "Keras (tf.function)"
# Label -> file under the output directory, in the order of the table.
ARTIFACTS = {
    "SavedModel": os.path.join("aff_digits", "1"),
    "LiteRT float32": "aff_digits_float32.tflite",
    "LiteRT int8": "aff_digits_int8.tflite",
    "ONNX": "aff_digits.onnx",
}
CHECK_SAMPLES = 32  # held-out images each export is verified on
CALIBRATION_SAMPLES = 300  # training images that calibrate int8


def export_artifact(model, label, out, samples, calibration=None):
    """Exports `model` as the demo artifact `label` under `out`, verified
    against Keras by `keras_aff.export` (SavedModel, LiteRT and ONNX on
    `samples`; int8 calibrated and checked on `calibration`).

    Args:
        model: a `keras.Model`.
        label: one of "SavedModel", "LiteRT float32", "LiteRT int8", "ONNX".
        out: str, the output directory; the file name is `ARTIFACTS[label]`.
        samples: inputs the float exports are checked on.
        calibration: inputs for int8 (required for "LiteRT int8").

    Returns:
        The `keras_aff.export.ExportReport`.

    Example:

    >>> model = keras_aff.demo.build_demo_model()
    >>> x = np.random.default_rng(0).random((4, 16, 16, 1), "float32")
    >>> report = keras_aff.demo.export_artifact(model, "ONNX", "demo", x)
    >>> report.path, report.max_abs_error < report.tolerance
    ('demo/aff_digits.onnx', True)
    """
    from keras_aff import export

    label = _validation.check_choice("label", label, tuple(ARTIFACTS))
    path = os.path.join(_validation.check_path("out", out), ARTIFACTS[label])
    if label == "SavedModel":
        return export.export_saved_model(model, path, sample_inputs=samples)
    if label == "LiteRT float32":
        return export.export_litert(model, path, sample_inputs=samples)
    if label == "LiteRT int8":
        if calibration is None:
            raise ValueError(
                "Expected `calibration` inputs for the int8 export. "
                + _validation.received("calibration", calibration)
            )
        return export.export_litert(
            model, path, quantization="int8", representative_data=calibration
        )
    return export.export_onnx(model, path, sample_inputs=samples)


def evaluate_keras(model, path, x, y, root="."):
    """The Keras row of the demo table: accuracy on `(x, y)` and the
    batch-1 latency of the model under `tf.function`, with its file at
    `path` (named relative to `root`); and the model's outputs, which the
    artifacts are compared with.

    Returns:
        (row, probs): row a dict with "format", "file", "size_bytes",
        "accuracy", "max_abs_error" (None) and "latency_ms"; probs the
        model's softmax outputs on `x`.

    Example:

    >>> model = keras_aff.demo.build_demo_model()
    >>> model.save("m.keras")
    >>> x = np.zeros((3, 16, 16, 1), "float32")
    >>> row, probs = keras_aff.demo.evaluate_keras(
    ...     model, "m.keras", x, [0, 1, 2]
    ... )
    >>> row["format"], row["file"], probs.shape
    ('Keras (tf.function)', 'm.keras', (3, 10))
    """
    import tensorflow as tf

    probs = model.predict(x, verbose=0)
    call = tf.function(lambda t: model(t, training=False))
    one = x[:1]
    row = {
        "format": KERAS_LABEL,
        "file": os.path.relpath(path, root),
        "size_bytes": os.path.getsize(path),
        "accuracy": accuracy(probs, y),
        "max_abs_error": None,
        "latency_ms": median_latency_ms(lambda: call(one)),
    }
    return row, probs


def evaluate_artifact(label, report, x, y, reference, root="."):
    """One row of the demo table: the exported artifact of `report` run on
    `(x, y)` through `keras_aff.export.load_artifact`: accuracy, largest
    difference from the Keras outputs `reference`, and the export's own
    batch-1 latency (`report.latency_ms`); its file named relative to
    `root`.

    Returns:
        A dict with "format" (`label`), "file", "size_bytes", "accuracy",
        "max_abs_error" and "latency_ms".

    Example:

    >>> model = keras_aff.demo.build_demo_model()
    >>> x = np.random.default_rng(0).random((4, 16, 16, 1), "float32")
    >>> report = keras_aff.demo.export_artifact(model, "ONNX", "demo", x)
    >>> row = keras_aff.demo.evaluate_artifact(
    ...     "ONNX", report, x, [0, 1, 2, 3], model.predict(x, verbose=0),
    ...     root="demo",
    ... )
    >>> row["file"], row["max_abs_error"] < 1e-4
    ('aff_digits.onnx', True)
    """
    from keras_aff import export

    probs = export.load_artifact(report.path)(x)[0]
    return {
        "format": label,
        "file": os.path.relpath(report.path, root),
        "size_bytes": report.size_bytes,
        "accuracy": accuracy(probs, y),
        "max_abs_error": float(np.abs(probs - reference).max()),
        "latency_ms": report.latency_ms,
    }


def accuracy(probs, y):
    """Share of rows of `probs` whose argmax is the label in `y`.

    Example:

    >>> keras_aff.demo.accuracy(np.eye(3), [0, 1, 1])
    0.6666666666666666
    """
    return float((np.argmax(probs, -1) == np.asarray(y)).mean())
