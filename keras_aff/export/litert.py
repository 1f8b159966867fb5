"""LiteRT (TFLite) export for phones: float32, float16, dynamic-range and
full-integer int8, builtin ops only, verified before it returns.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The conversion (`convert`) and the LiteRT half of the pipeline
(`verify_litert`) serve `export_litert` (a Keras 3 model, through a
SavedModel) and `keras_aff.qat.convert_to_int8_litert` (a tf_keras QAT
model, through a frozen concrete function) alike: one converter setup, one
runner, one check policy, one report.
"""

import contextlib
import tempfile
import warnings

import numpy as np

from keras_aff import _quiet
from keras_aff._validation import check_bool
from keras_aff._validation import check_choice
from keras_aff._validation import check_int
from keras_aff._validation import check_number
from keras_aff._validation import check_tolerance
from keras_aff.export import checks
from keras_aff.export import environment
from keras_aff.export import folding
from keras_aff.export import litert_ops
from keras_aff.export import model_io
from keras_aff.export import pipeline
from keras_aff.export import rebuild
from keras_aff.export import staging
from keras_aff.export.runners import LiteRTRunner

QUANTIZATIONS = (None, "float16", "dynamic", "int8")
MAX_CALIBRATION_SAMPLES = 500
_CONVERTER_NOISE = (
    # The calibrator uses the deprecated tf.lite.Interpreter.
    r"(?s).*tf\.lite\.Interpreter is deprecated",
    # A QAT model's input range comes from its QuantizeLayer; the converter
    # still warns that no input statistics were given.
    "Statistics for quantized inputs were expected",
)
_XNNPACK_NOTE = (
    "the XNNPACK delegate (LiteRT's default CPU backend) refused this model "
    "('failed to create XNNPACK runtime'), so it was verified and timed on "
    "the builtin kernels; on a phone it runs slower. Usual cause: "
    "calibration data on which a tensor is constant (a dead ReLU branch in "
    "an untrained model); calibrate on real inputs."
)


# ---------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def saved_model_source(model):
    """A TFLiteConverter of a Keras 3 model, through a temporary SavedModel
    (`model.export`; signature inputs named after the model's inputs).

    `TFLiteConverter.from_concrete_functions(..., trackable_obj=model)`
    is NOT used: with a Keras 3 model on TF 2.21 it leaves the variables
    unfrozen and the outputs are NaN.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        yield tf.lite.TFLiteConverter.from_saved_model(tmp)


@contextlib.contextmanager
def frozen_function_source(model):
    """A TFLiteConverter of `model(x, training=False)` with its variables
    frozen into constants (single-input models, tf_keras or Keras 3).

    `from_keras_model` first writes and re-reads a full Keras SavedModel:
    ~20x slower for a tf_keras QAT model (592 traced functions for a small
    CNN), same flatbuffer. `from_concrete_functions` with the model as
    `trackable_obj` is as slow for tf_keras and leaves a Keras 3 model's
    variables unfrozen (NaN outputs); without any trackable it takes a
    deprecated path that writes no signature. So: freeze the function, and
    give an empty `tf.Module` as the trackable, which yields a
    `serving_default` signature (input named after the model's input).
    """
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants

    (name, shape, dtype), *_ = model_io.input_specs(model)
    spec = tf.TensorSpec([None] + list(shape[1:]), dtype, name=name)

    def serve(inputs):
        return model(inputs, training=False)

    # autograph=False: the model call needs no conversion (Keras converts
    # its layers itself).
    fn = tf.function(serve, autograph=False).get_concrete_function(spec)
    frozen = convert_to_constants.convert_variables_to_constants_v2(fn)
    yield tf.lite.TFLiteConverter.from_concrete_functions([frozen], tf.Module())


def _configure(converter, quantization, representative_dataset, float_io):
    import tensorflow as tf

    int8_ops = quantization == "int8" and representative_dataset is not None
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        if int8_ops
        else tf.lite.OpsSet.TFLITE_BUILTINS
    ]
    converter.allow_custom_ops = False
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if representative_dataset is not None:
        converter.representative_dataset = representative_dataset
    if quantization == "int8" and not float_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8


def convert(
    source, quantization=None, representative_dataset=None, float_io=False
):
    """LiteRT flatbuffer bytes, builtin ops only.

    Args:
        source: `saved_model_source(model)` or
            `frozen_function_source(model)`.
        quantization: None, "float16", "dynamic" or "int8". "int8" with a
            `representative_dataset` calibrates and allows int8 builtin ops
            only; without one the ranges must come from the model (QAT).
        representative_dataset: optional callable yielding samples, as
            `TFLiteConverter.representative_dataset`.
        float_io: bool. For "int8", keep float32 input and output.

    Raises:
        RuntimeError: the converter failed (e.g. it needs Flex ops).
    """
    with source as converter:
        _configure(converter, quantization, representative_dataset, float_io)
        with warnings.catch_warnings():
            for message in _CONVERTER_NOISE:
                warnings.filterwarnings("ignore", message=message)
            try:
                with _quiet.capture_native_stderr():
                    return converter.convert()
            except Exception as e:
                lines = [ln for ln in str(e).splitlines() if ln.strip()]
                detail = "\n".join(
                    ln for ln in lines if not ln.startswith("loc(")
                )[-2000:]
                raise RuntimeError(
                    "TFLiteConverter could not convert the model to builtin "
                    "LiteRT ops (Flex / SELECT_TF_OPS and custom ops are not "
                    "allowed: they do not run on a stock LiteRT runtime). "
                    f"Converter said: {type(e).__name__}: {detail}"
                ) from e


# ---------------------------------------------------------------------------
# Verification: the LiteRT half of the pipeline
# ---------------------------------------------------------------------------
def _xnnpack_fields(runner, notes):
    if not runner.xnnpack:
        notes.append(_XNNPACK_NOTE)
        # Points at the caller of export_litert / convert_to_int8_litert.
        warnings.warn(_XNNPACK_NOTE, stacklevel=6)
    return {"xnnpack": runner.xnnpack}


def verify_litert(
    flatbuffer,
    path,
    model,
    samples,
    reference,
    quantization=None,
    policy=None,
    num_threads=None,
    notes=None,
    about="",
    report_fields=None,
):
    """Checks a LiteRT flatbuffer against its Keras model and writes it to
    `path` (None: writes nothing); returns its `ExportReport`.

    Builtin ops only; int8: fully int8 (`inspect_litert`), and the int8
    policy on `samples` (batch n only); other modes: `policy` at batch n
    and batch 1.

    Raises:
        ExportVerificationError: a check failed (nothing is at `path`).
    """
    mode = quantization or "float32"
    policy = policy or checks.Policy(mode)
    label = f"The LiteRT model ({mode})"
    notes = [] if notes is None else notes
    fields = litert_ops.graph_fields(flatbuffer, quantization, label)
    names = model_io.input_names(model)

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(flatbuffer)
        return fields

    artifact = pipeline.Artifact(
        format="litert",
        label=label,
        write=write,
        open_runner=lambda tmp: LiteRTRunner(flatbuffer, names, num_threads),
        policy=policy,
        quantization=quantization,
        notes=notes,
        after_checks=lambda runner: _xnnpack_fields(runner, notes),
        report_fields=dict(report_fields or {}),
    )
    found = pipeline.batch_checks(
        samples, reference, batch_one=mode != "int8", about=about
    )
    return pipeline.verify_and_commit(path, artifact, found)


# ---------------------------------------------------------------------------
# The exporter
# ---------------------------------------------------------------------------
def _check_arguments(model, quantization, representative_data, float_io):
    model_io.check_model(model)
    quantization = check_choice("quantization", quantization, QUANTIZATIONS)
    check_bool("float_io", float_io)
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "quantization='int8' (full integer) needs calibration data to "
            "choose the activation ranges: pass `representative_data=`, "
            "about 100-500 real input samples (an array shaped like a batch "
            "of model inputs). Use quantization='dynamic' for int8 weights "
            "without calibration. Received: representative_data=None"
        )
    return quantization


def _data(model, quantization, representative_data, sample_inputs, limit):
    """(calibration or None, the samples to check on)."""
    calibration = None
    if representative_data is not None:
        calibration = model_io.normalize_inputs(
            model, representative_data, "representative_data", limit
        )
    if sample_inputs is not None:
        # int8 too: held-out samples, when given, are what is checked.
        return calibration, model_io.normalize_inputs(model, sample_inputs)
    if calibration is not None:
        return calibration, calibration
    return calibration, model_io.random_inputs(model)


def export_litert(
    model,
    path,
    quantization=None,
    representative_data=None,
    sample_inputs=None,
    float_io=False,
    atol=None,
    min_top1_agreement=None,
    num_threads=None,
    max_calibration_samples=MAX_CALIBRATION_SAMPLES,
    fold_batchnorm=True,
):
    """Exports `model` as a verified LiteRT (`.tflite`) model.

    Conversion goes through a temporary SavedModel
    (`TFLiteConverter.from_saved_model`) with builtin ops only: no Flex /
    SELECT_TF_OPS and no custom ops, so the file runs on the stock LiteRT
    runtime (Android, iOS, Linux). A mixed-precision model is rebuilt in
    float32 with the same weights first (LiteRT cannot convert mixed
    graphs).

    Quantization:
        - None: float32 weights and math.
        - "float16": float16 weights, float math (about half the size).
        - "dynamic": int8 weights, activations quantized on the fly.
        - "int8": full integer (every op int8, as NPUs and the int8 XNNPACK
          paths want); calibrated on `representative_data`, which is
          required. Input and output are int8 unless `float_io=True`; read
          their `scale`/`zero_point` from the report's `inputs`/`outputs`.

    Verification, with ai_edge_litert's interpreter through the serving
    signature, before the file is moved into place:
        - float modes: max abs error against the (float32) Keras model on
          the sample inputs, at their batch size and at batch 1, within
          `1e-4`, `1e-2` (float16) or `5e-2` (dynamic) times
          `max(1, max |output|)`;
        - int8 (the int8 policy `keras_aff.qat.convert_to_int8_litert`
          applies too): the graph is fully int8 (`inspect_litert`: no
          float tensor between ops, no QUANTIZE / DEQUANTIZE inside), and
          on the calibration data top-1 agreement >= 0.9 for classifier
          outputs (rank 2) and mean abs error <= 0.1 times
          `max(1, max |output|)`; max error and mean error are reported.
    The interpreter uses its default XNNPACK delegate, as apps do; if
    XNNPACK refuses the model (it does for some int8 models calibrated on
    data that leaves a tensor constant) the check runs on the builtin
    kernels, warns, and adds a note to the report.

    Args:
        model: a built `keras.Model` (TensorFlow backend).
        path: str or path-like, the `.tflite` file to write: absent, or an
            existing LiteRT model (replaced once the new one is verified);
            anything else is a `ValueError` before any work.
        quantization: None, "float16", "dynamic" or "int8".
        representative_data: calibration inputs, required for "int8": an
            array (N, ...) for one input, a list of arrays (one per input),
            a dict name -> array, or an iterable of samples or a callable
            returning one (the TFLite `representative_dataset` convention;
            a generator, a `tf.data.Dataset`). Use 100-500 real samples
            (fewer than 10 warn and add a report note). At most
            `max_calibration_samples` are read, lazily: an endless
            generator or a `.repeat()`ed dataset is fine. Float or integer
            data (e.g. uint8 images), cast to the input dtype; complex,
            bool, string and object data is a `TypeError`, NaN / Inf a
            `ValueError` naming the sample (and the input). In other modes
            it is used as `sample_inputs` when those are not given.
        sample_inputs: optional inputs to check with (same forms and
            rules; at most 500 samples are used). Default: for "int8" the
            calibration data, else `representative_data` if given, else 4
            reproducible standard-normal samples. For "int8" held-out
            samples check more than the calibration data (they used to
            be ignored in that mode).
        float_io: bool, default False. For "int8", keep float32 input and
            output (quantize / dequantize ops inside the model).
        atol: optional finite float >= 0, absolute tolerance replacing the
            default (on the max error; on the mean error for "int8").
            `inf`, NaN or a negative value is a `ValueError` before any
            work.
        min_top1_agreement: optional float in [0, 1], default 0.9 ("int8").
        num_threads: optional int, interpreter threads for the check and
            the latency (default: LiteRT's choice).
        max_calibration_samples: int, default 500. Calibration samples read
            from `representative_data` (the first ones).
        fold_batchnorm: bool, default True. Convert
            `keras_aff.optimize.fold_batchnorm(model)` (checked against
            `model` first); the report's `batch_norm_folding` gives the op
            counts before and after. False converts `model` as it is.

    Returns:
        An `ExportReport` with the op counts and `xnnpack`; for "int8" also
        `fully_int8`, `float_islands`, `inner_quantize_ops`,
        `tensor_dtypes` and `output_step`.

    Raises:
        TypeError: `model` is not a Keras 3 model; an argument of the
            wrong type; complex, bool, string or object data.
        ValueError: `path` may not be written (`docs/robustness.md`;
            checked first); unknown `quantization`; "int8" without
            `representative_data`; data that does not fit the model or
            holds NaN / Inf; `atol` not finite or negative.
        RuntimeError: the converter needs non-builtin ops, or the backend
            is not TensorFlow.
        ExportVerificationError: the file does not reproduce the model
            (nothing is left at `path`).

    Example:

    >>> inp = keras.Input((8, 8, 3), name="image")
    >>> a = keras.layers.Conv2D(4, 3, padding="same")(inp)
    >>> b = keras.layers.Conv2D(4, 1)(inp)
    >>> fused = keras_aff.layers.AFF(reduction_ratio=2)([a, b])
    >>> pooled = keras.layers.GlobalAveragePooling2D()(fused)
    >>> model = keras.Model(inp, keras.layers.Dense(3)(pooled))  # logits
    >>> x = np.random.default_rng(0).normal(size=(64, 8, 8, 3))
    >>> report = keras_aff.export.export_litert(
    ...     model, "model_int8.tflite", quantization="int8",
    ...     representative_data=x.astype("float32"))
    >>> report.ops
    {'ADD': 3, 'CONV_2D': 6, 'FULLY_CONNECTED': 1, 'LOGISTIC': 1, ...}
    >>> report.fully_int8, report.inner_quantize_ops, report.float_islands
    (True, 0, [])
    >>> report.inputs["image"]["dtype"]
    'int8'
    >>> report.mean_abs_error <= report.tolerance
    True
    """
    environment.require_tensorflow_backend("export_litert")
    quantization = _check_arguments(
        model, quantization, representative_data, float_io
    )
    atol = check_tolerance("atol", atol)
    if min_top1_agreement is not None:
        min_top1_agreement = check_number(
            "min_top1_agreement", min_top1_agreement, low=0.0, high=1.0
        )
    if num_threads is not None:
        num_threads = check_int("num_threads", num_threads, min_value=1)
    limit = check_int(
        "max_calibration_samples", max_calibration_samples, min_value=1
    )
    if path is not None:
        staging.check_destination(path, "litert")
    calibration, samples = _data(
        model, quantization, representative_data, sample_inputs, limit
    )
    model, folded = folding.fold_for_export(model, samples, fold_batchnorm)
    model32, reference, notes = rebuild.prepare_float32(model, samples)
    dataset = None
    if quantization == "int8":
        model_io.few_samples_note(len(calibration[0]), notes)
        if model32 is not model:
            calibration = [np.asarray(a, "float32") for a in calibration]
        names = model_io.input_names(model32)
        dataset = model_io.calibration_dataset(names, calibration)
    flatbuffer = convert(
        saved_model_source(model32), quantization, dataset, float_io
    )
    policy = checks.Policy(
        quantization or "float32",
        atol=atol,
        min_top1_agreement=min_top1_agreement,
    )
    return verify_litert(
        flatbuffer,
        path,
        model32,
        samples,
        reference,
        quantization=quantization,
        policy=policy,
        num_threads=num_threads,
        notes=notes,
        about=(
            " (the calibration data)"
            if quantization == "int8" and sample_inputs is None
            else ""
        ),
        report_fields={"batch_norm_folding": folded},
    )
