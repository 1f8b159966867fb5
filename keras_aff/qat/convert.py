"""A QAT (or float) tf_keras model to a verified, fully int8 LiteRT model.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The conversion, the runner, the checks and the report are
`keras_aff.export`'s (`litert.convert`, `litert.verify_litert`): a QAT
model and a post-training-quantized Keras 3 model pass the same int8
policy and get the same `ExportReport`.
"""

import tf_keras

from keras_aff._validation import check_bool
from keras_aff._validation import check_int
from keras_aff._validation import check_number
from keras_aff._validation import check_path
from keras_aff.export import checks
from keras_aff.export import litert
from keras_aff.export import model_io
from keras_aff.export import staging


def _is_qat(model):
    return any(
        type(layer).__module__.startswith("tensorflow_model_optimization")
        for layer in model.layers
    )


def _check_model(model, representative_dataset):
    if representative_dataset is None and not (
        isinstance(model, tf_keras.Model) and _is_qat(model)
    ):
        raise ValueError(
            "A float model needs a `representative_dataset` for int8 "
            "post-training quantization (only a QAT model from "
            "`keras_aff.qat.quantize_model` carries its own ranges). "
            "Received: representative_dataset=None"
        )
    if len(model.inputs) != 1:
        raise ValueError(
            "`convert_to_int8_litert` converts and checks single-input models. "
            f"Received: a model with {len(model.inputs)} inputs"
        )


def _calibration(model, representative_dataset, limit):
    """The converter's `representative_dataset`: the user's samples, read
    lazily up to `limit` and checked (dtype, shape, NaN / Inf) before the
    converter sees them, so an endless generator cannot hang it."""
    if representative_dataset is None:
        return None
    calibration = model_io.normalize_inputs(
        model, representative_dataset, "representative_dataset", limit
    )
    return model_io.calibration_dataset(
        model_io.input_names(model), calibration
    )


def convert_to_int8_litert(
    model,
    sample_inputs,
    representative_dataset=None,
    int8_io: bool = True,
    tolerance: float = 0.15,
    path=None,
    max_calibration_samples: int = litert.MAX_CALIBRATION_SAMPLES,
) -> tuple:
    """Converts to a fully int8 LiteRT model and verifies it.

    A QAT model (`quantize_model`) carries its own ranges and needs no
    representative dataset. A QAT model built with `unroll=False`, or a
    float tf_keras model (post-training quantization), needs
    `representative_dataset`. For post-training quantization of a Keras 3
    model, `keras_aff.export.export_litert(model, path, quantization="int8",
    representative_data=...)` is the project's exporter; both run the same
    checks and return the same kind of report.

    The flatbuffer has a `serving_default` signature (input named after the
    model's input layer), so `keras_aff.export.load_artifact(path)` runs it
    with float inputs and outputs.

    The checks of every int8 export (`keras_aff.export`'s int8 policy) run
    before anything is returned or written; each raises
    `keras_aff.export.ExportVerificationError` (a `ValueError` too, as in
    0.1.0) with the details:

    1. Fully int8 (`inspect_litert`): every tensor between ops is int8, no
       QUANTIZE/DEQUANTIZE inside the graph; builtin ops only.
    2. Numerics, on `sample_inputs` against the Keras model (QAT: the
       fake-quant model; PTQ: the float model): the mean absolute error
       must be at most `tolerance * max(1, max |Keras output|)`, and for a
       classifier output (2-D, >= 2 classes) the top-1 agreement at least
       0.9. The report also gives the max absolute error.

    Args:
        model: a tf_keras model (QAT or float) with one input.
        sample_inputs: numpy array, a batch of inputs for the numeric check
            (float or integer data, cast to the input dtype; complex, bool,
            string or object data is a `TypeError`, NaN / Inf a
            `ValueError` naming the sample; at most 500 samples are used).
        representative_dataset: optional callable yielding `[batch]` lists,
            as `TFLiteConverter.representative_dataset` (or an array, or
            any iterable of samples). Required for float models. Read
            lazily, at most `max_calibration_samples` samples (an endless
            generator is fine), and checked like `sample_inputs` before
            the converter sees it.
        int8_io: bool, default True: int8 input and output (the model is
            int8 end to end). False keeps float32 I/O (one QUANTIZE at the
            input, one DEQUANTIZE at the output).
        tolerance: float > 0, default 0.15. The int8 policy's bound on the
            mean absolute error, relative to `max(1, max |Keras output|)`
            (`export_litert` uses 0.1). Until 0.1.0 it bounded the max
            error relative to the output range; int8 max errors of a few
            quantization steps on the largest outputs are normal, so the
            one policy bounds the mean and checks the top-1 agreement, and
            a broken conversion (e.g. swapped operands) fails both.
        path: optional file path; the flatbuffer is written there, only
            after the checks pass. It must be absent or an existing LiteRT
            model (then replaced); anything else is a `ValueError` before
            any work (`keras_aff.export`'s rule, `docs/robustness.md`).
        max_calibration_samples: int, default 500. Samples read from
            `representative_dataset`.

    Returns:
        `(tflite_bytes, report)`: `report` is an `ExportReport` with the int8
        graph facts (`fully_int8`, `float_islands`, `inner_quantize_ops`,
        `tensor_dtypes`, `output_step`), the error statistics, `xnnpack`
        (False when the XNNPACK delegate refused the model, e.g. a
        requantization scale >= 256 after a dead ReLU, and the builtin
        kernels ran it) and `path`. It also answers the keys of 0.1.0's dict
        (`report["fully_int8"]`, `report["tolerance_abs"]`, ...).

    Example:

    >>> import tf_keras
    >>> from keras_aff import legacy, qat
    >>> x = tf_keras.Input((8, 8, 3), name="image")
    >>> a = tf_keras.layers.Conv2D(8, 3, padding="same", name="a")(x)
    >>> b = tf_keras.layers.Conv2D(8, 1, name="b")(x)
    >>> f = legacy.AFF(reduction_ratio=2, name="aff")([a, b])
    >>> pooled = tf_keras.layers.GlobalAveragePooling2D(name="gap")(f)
    >>> out = tf_keras.layers.Dense(1, name="head")(pooled)
    >>> q = qat.quantize_model(tf_keras.Model(x, out))
    >>> images = np.random.default_rng(0).uniform(size=(32, 8, 8, 3))
    >>> images = images.astype("float32")
    >>> _ = qat.calibrate_ranges(q, images)  # or fine-tune q with fit()
    >>> tflite, report = qat.convert_to_int8_litert(
    ...     q, images[:8], path="model_int8.tflite")
    >>> report.fully_int8, report.inner_quantize_ops, report.quantization
    (True, 0, 'int8')
    >>> report.to_dict()["max_abs_error"] == report.max_abs_error
    True
    """
    check_bool("int8_io", int8_io)
    tolerance = check_number("tolerance", tolerance, low=0.0, low_open=True)
    limit = check_int(
        "max_calibration_samples", max_calibration_samples, min_value=1
    )
    if path is not None:
        path = check_path("path", path)
        staging.check_destination(path, "litert")  # before any work
    _check_model(model, representative_dataset)
    samples = model_io.normalize_inputs(model, sample_inputs)
    reference = model_io.keras_outputs(model, samples)
    flatbuffer = litert.convert(
        litert.frozen_function_source(model),
        "int8",
        _calibration(model, representative_dataset, limit),
        float_io=not int8_io,
    )
    report = litert.verify_litert(
        flatbuffer,
        path,
        model,
        samples,
        reference,
        quantization="int8",
        policy=checks.Policy("int8", rtol=tolerance),
    )
    return flatbuffer, report
