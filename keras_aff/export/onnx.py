"""ONNX export through tf2onnx, verified with onnxruntime before it returns.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import collections
import logging

from keras_aff import _quiet
from keras_aff._validation import check_int
from keras_aff._validation import check_tolerance
from keras_aff.export import checks
from keras_aff.export import environment
from keras_aff.export import folding
from keras_aff.export import model_io
from keras_aff.export import pipeline
from keras_aff.export import rebuild
from keras_aff.export import staging
from keras_aff.export.runners import ONNXRunner

# The opsets tf2onnx 1.17 converts to (its OPSET_TO_IR_VERSION ends at 18;
# 7 is the oldest with the IR it needs); tested: 13, 15, 18.
OPSETS = (7, 18)


def _convert(tf2onnx, model32, signature, opset, path, notes):
    """Writes the ONNX file; returns its op counts and notes the opset."""
    tf2onnx_logger = logging.getLogger("tf2onnx")
    level = tf2onnx_logger.level
    tf2onnx_logger.setLevel(logging.ERROR)
    try:
        with _quiet.capture_native_stderr():
            proto, _ = tf2onnx.convert.from_keras(
                model32,
                input_signature=signature,
                opset=opset,
                output_path=path,
            )
    finally:
        tf2onnx_logger.setLevel(level)
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    notes.append(f"opset {opsets.get('ai.onnx')}")
    ops = collections.Counter(node.op_type for node in proto.graph.node)
    return {"ops": dict(sorted(ops.items()))}


def export_onnx(
    model, path, opset=None, sample_inputs=None, atol=None, fold_batchnorm=True
):
    """Exports `model` as a verified ONNX model (dynamic batch).

    Converted with `tf2onnx.convert.from_keras` (BatchNormalization folds
    into the convolutions; the AFF global branch becomes
    `GlobalAveragePool`). Inputs keep the model's `Input` names and a
    dynamic batch dimension; spatial sizes are the model's. A
    mixed-precision model is rebuilt in float32 with the same weights
    first.

    Before the file is moved into place, onnxruntime (CPU) runs it at the
    sample batch size and at batch 1, and its max abs error against the
    Keras model must stay within `1e-4 * max(1, max |output|)` (or `atol`).

    Args:
        model: a built `keras.Model` (TensorFlow backend).
        path: str or path-like, the `.onnx` file to write: absent, or an
            existing ONNX model (replaced once the new one is verified);
            anything else is a `ValueError` before any work.
        opset: optional int, the ONNX opset (default: tf2onnx's, 15 for
            tf2onnx 1.17).
        sample_inputs: optional array, list of arrays, dict name -> array
            or an iterable of samples (read lazily, at most 500) to check
            with; default 4 reproducible standard-normal samples. Float or
            integer data, cast to the input dtype; complex, bool, string or
            object data is a `TypeError`, NaN / Inf a `ValueError` naming
            the sample.
        atol: optional finite float >= 0, absolute tolerance replacing
            the default (`inf`, NaN or a negative value: `ValueError`).
        fold_batchnorm: bool, default True. Convert
            `keras_aff.optimize.fold_batchnorm(model)` (checked against
            `model` first); the report's `batch_norm_folding` gives the op
            counts before and after. False converts `model` as it is.

    Returns:
        An `ExportReport`; `ops` counts the ONNX node types.

    Raises:
        TypeError: `opset` is not an int.
        ValueError: `opset` outside 7-18 (what tf2onnx 1.17 converts to);
            `path` may not be written (`docs/robustness.md`).
        ImportError: tf2onnx / onnxruntime are missing
            (`pip install "keras-aff[onnx]"`).
        ExportVerificationError: the file does not reproduce the model
            (nothing is left at `path`).

    Example:

    >>> from keras_aff.demo import build_demo_model
    >>> model = build_demo_model()  # AFF + iAFF on 16x16x1 images
    >>> report = keras_aff.export.export_onnx(model, "model.onnx")
    >>> report.ops["Conv"], report.notes
    (17, ['opset 15'])
    >>> import onnxruntime
    >>> session = onnxruntime.InferenceSession("model.onnx")
    >>> x = np.zeros((2, 16, 16, 1), "float32")
    >>> session.run(None, {"image": x})[0].shape
    (2, 10)
    """
    tf = environment.require_tensorflow_backend("export_onnx")
    tf2onnx, _ = environment.import_onnx_tools()
    model_io.check_model(model)
    if opset is not None:
        opset = check_int("opset", opset, *OPSETS)
    atol = check_tolerance("atol", atol)
    if path is not None:
        staging.check_destination(path, "onnx")
    if sample_inputs is None:
        samples = model_io.random_inputs(model)
    else:
        samples = model_io.normalize_inputs(model, sample_inputs)
    model, folded = folding.fold_for_export(model, samples, fold_batchnorm)
    model32, reference, notes = rebuild.prepare_float32(model, samples)
    signature = [
        tf.TensorSpec((None,) + tuple(shape[1:]), dtype, name=name)
        for name, shape, dtype in model_io.input_specs(model32)
    ]
    names = [spec.name for spec in signature]
    artifact = pipeline.Artifact(
        format="onnx",
        label="The ONNX model (onnxruntime)",
        write=lambda tmp: _convert(
            tf2onnx, model32, signature, opset, tmp, notes
        ),
        open_runner=lambda tmp: ONNXRunner(tmp, names),
        policy=checks.Policy(atol=atol),
        notes=notes,
        report_fields={"batch_norm_folding": folded},
    )
    return pipeline.verify_and_commit(
        path, artifact, pipeline.batch_checks(samples, reference)
    )
