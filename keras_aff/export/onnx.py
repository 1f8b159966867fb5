"""ONNX export through tf2onnx, verified with onnxruntime before it returns.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import collections
import logging
import os

from keras_aff.export import _verify
from keras_aff.export import folding

_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


class ONNXRunner(_verify.Runner):
    """Runs an ONNX model with onnxruntime on the CPU (private; see
    `keras_aff.export.load_artifact`).

    Example:

    >>> predict = keras_aff.export.load_artifact("model.onnx")
    >>> outputs = predict(x)  # a list of float32 arrays
    """

    format = "onnx"

    def __init__(self, path, input_names=None, num_threads=None):
        _, ort = _verify.import_onnx_tools()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        self.session = ort.InferenceSession(
            os.fspath(path), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = self._describe(self.session.get_inputs())
        self.outputs = self._describe(self.session.get_outputs())
        self.output_names = list(self.outputs)
        self._bind_names(self.inputs, input_names)

    @staticmethod
    def _describe(values):
        return {
            v.name: {
                "shape": [d if isinstance(d, int) else None for d in v.shape],
                "dtype": _ONNX_TYPES.get(v.type, v.type),
            }
            for v in values
        }

    def _run(self, feed):
        return self.session.run(self.output_names, feed)


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
        path: str or path-like, the `.onnx` file to write.
        opset: optional int, the ONNX opset (default: tf2onnx's, 15 for
            tf2onnx 1.17).
        sample_inputs: optional array, list of arrays or dict name -> array
            to check with; default 4 reproducible standard-normal samples.
        atol: optional float, absolute tolerance replacing the default.
        fold_batchnorm: bool, default True. Convert
            `keras_aff.optimize.fold_batchnorm(model)` (checked against
            `model` first); the report's `batch_norm_folding` gives the op
            counts before and after. False converts `model` as it is.

    Returns:
        An `ExportReport`; `ops` counts the ONNX node types.

    Raises:
        ImportError: tf2onnx / onnxruntime are missing
            (`pip install "keras-aff[onnx]"`).
        ExportVerificationError: the file does not reproduce the model
            (nothing is left at `path`).

    Example:

    >>> report = keras_aff.export.export_onnx(model, "model.onnx")
    >>> sess = onnxruntime.InferenceSession("model.onnx")
    >>> probs = sess.run(None, {"image": x})[0]
    """
    tf = _verify.require_tensorflow_backend("export_onnx")
    tf2onnx, _ = _verify.import_onnx_tools()
    _verify.check_model(model)
    if opset is not None and (
        isinstance(opset, bool) or not isinstance(opset, int) or opset < 7
    ):
        raise ValueError(
            "Expected `opset` to be None or an ONNX opset number (an int, "
            f"e.g. 13, 15 or 17). Received: opset={opset!r}"
        )
    if sample_inputs is None:
        samples = _verify.random_inputs(model)
    else:
        samples = _verify.normalize_inputs(model, sample_inputs)
    model, folded = folding.fold_for_export(model, samples, fold_batchnorm)
    model32, reference, notes = _verify.prepare_float32(model, samples)
    signature = [
        tf.TensorSpec((None,) + tuple(shape[1:]), dtype, name=name)
        for name, shape, dtype in _verify.input_specs(model32)
    ]
    names = [spec.name for spec in signature]
    with _verify.StagedPath(path) as stage:
        tf2onnx_logger = logging.getLogger("tf2onnx")
        level = tf2onnx_logger.level
        tf2onnx_logger.setLevel(logging.ERROR)
        try:
            proto, _ = tf2onnx.convert.from_keras(
                model32,
                input_signature=signature,
                opset=opset,
                output_path=stage.tmp,
            )
        finally:
            tf2onnx_logger.setLevel(level)
        runner = ONNXRunner(stage.tmp, names)
        label = "The ONNX model (onnxruntime)"
        n = len(samples[0])
        stats_n, tol = _verify.check(
            label, reference, runner(samples), atol=atol, where=f"batch {n}"
        )
        one = _verify.take(samples, slice(0, 1))
        stats_1, _ = _verify.check(
            label,
            _verify.take(reference, slice(0, 1)),
            runner(one),
            atol=atol,
            where="batch 1",
        )
        latency = runner.latency_ms(one)
        inputs, outputs = runner.inputs, runner.outputs
        stage.commit()
    ops = dict(
        sorted(
            collections.Counter(
                node.op_type for node in proto.graph.node
            ).items()
        )
    )
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    notes.append(f"opset {opsets.get('ai.onnx')}")
    stats = _verify.merge_stats([stats_n, stats_1])
    return _verify.ExportReport(
        format="onnx",
        path=os.fspath(path),
        size_bytes=os.path.getsize(path),
        quantization=None,
        ops=ops,
        inputs=inputs,
        outputs=outputs,
        max_abs_error=stats.max_abs_error,
        mean_abs_error=stats.mean_abs_error,
        tolerance=tol,
        output_scale=stats.output_scale,
        top1_agreement=stats.top1_agreement,
        num_samples=stats_n.num_samples,
        checked=[f"batch {n}", "batch 1"],
        latency_ms=latency,
        notes=notes,
        batch_norm_folding=folded,
    )
