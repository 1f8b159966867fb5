"""LiteRT (TFLite) export for phones: float32, float16, dynamic-range and
full-integer int8, builtin ops only, verified before it returns.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import collections
import os
import re
import tempfile
import warnings

import numpy as np

from keras_aff.export import _verify
from keras_aff.export import folding

QUANTIZATIONS = (None, "float16", "dynamic", "int8")
MAX_CALIBRATION_SAMPLES = 500
_BUILTIN_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _validate_quantization(quantization):
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            "Expected `quantization` to be one of None (float32), "
            "'float16', 'dynamic' or 'int8'. "
            f"Received: quantization={quantization!r}"
        )
    return quantization


def _convert(tf, model32, quantization, calibration, float_io):
    """TFLite flatbuffer bytes, converted from a SavedModel of `model32`.

    `TFLiteConverter.from_concrete_functions(..., trackable_obj=model)`
    is NOT used: with a Keras 3 model on TF 2.21 it leaves the variables
    unfrozen and the outputs are NaN.
    """
    with tempfile.TemporaryDirectory() as tmp:
        model32.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
            if quantization == "int8"
            else tf.lite.OpsSet.TFLITE_BUILTINS
        ]
        converter.allow_custom_ops = False
        if quantization is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantization == "int8":
            names = _verify.input_names(model32)
            n = len(calibration[0])

            def representative_dataset():
                for i in range(n):
                    yield {
                        name: arr[i : i + 1]
                        for name, arr in zip(names, calibration)
                    }

            converter.representative_dataset = representative_dataset
            if not float_io:
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        with warnings.catch_warnings():
            # The calibrator uses the deprecated tf.lite.Interpreter.
            warnings.filterwarnings(
                "ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated"
            )
            try:
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


def list_ops(flatbuffer):
    """Op name -> count of a LiteRT model (builtin names such as CONV_2D;
    a custom or Flex op appears under its custom code, e.g. FlexConv2D).

    Example:

    >>> keras_aff.export.litert.list_ops(open("model.tflite", "rb").read())
    {'ADD': 8, 'CONV_2D': 15, 'FULLY_CONNECTED': 1, ...}
    """
    interpreter_mod = _verify.import_litert_interpreter()
    interpreter = interpreter_mod.Interpreter(
        model_content=flatbuffer,
        experimental_op_resolver_type=(
            interpreter_mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )
    counts = collections.Counter(
        op["op_name"] for op in interpreter._get_ops_details()
    )
    return dict(sorted(counts.items()))


def _non_builtin(ops):
    return sorted(
        name
        for name in ops
        if name == "CUSTOM"
        or name.startswith("Flex")
        or not _BUILTIN_NAME.match(name)
    )


class LiteRTRunner(_verify.Runner):
    """Runs a LiteRT model through its serving signature with float inputs
    and outputs, quantizing int8 inputs and dequantizing int8 outputs
    (private; see `keras_aff.export.load_artifact`).

    Example:

    >>> predict = keras_aff.export.load_artifact("model_int8.tflite")
    >>> outputs = predict(x)  # a list of float32 arrays
    """

    format = "litert"

    def __init__(self, model_content, input_names=None, num_threads=None):
        self._module = _verify.import_litert_interpreter()
        self._content = model_content
        self._threads = num_threads
        # True while the default XNNPACK delegate runs the model; False
        # once it refused it (see `_run`).
        self.xnnpack = True
        self._start()
        self.input_details = self.runner.get_input_details()
        self.output_details = self.runner.get_output_details()
        self.input_details = self.runner.get_input_details()
        self.output_details = self.runner.get_output_details()
        self._bind_names(self.input_details, input_names)
        self.output_names = _verify.output_order(self.output_details)
        self.inputs = self._describe(self.input_details)
        self.outputs = self._describe(self.output_details)

    def _make(self):
        kwargs = {}
        if not self.xnnpack:
            kwargs["experimental_op_resolver_type"] = (
                self._module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        return self._module.Interpreter(
            model_content=self._content, num_threads=self._threads, **kwargs
        )

    def _start(self):
        self.interpreter = self._make()
        self.runner = self.interpreter.get_signature_runner()

    @staticmethod
    def _describe(details):
        out = {}
        for name, d in details.items():
            info = {
                "shape": [
                    None if s < 0 else int(s) for s in d["shape_signature"]
                ],
                "dtype": np.dtype(d["dtype"]).name,
            }
            if d["quantization"][0]:
                info["scale"] = float(d["quantization"][0])
                info["zero_point"] = int(d["quantization"][1])
            out[name] = info
        return out

    def _quantize(self, feed):
        out = {}
        for name, arr in feed.items():
            d = self.input_details[name]
            if np.issubdtype(d["dtype"], np.integer) and d["quantization"][0]:
                scale, zero = d["quantization"]
                info = np.iinfo(d["dtype"])
                arr = np.clip(np.round(arr / scale + zero), info.min, info.max)
            out[name] = np.asarray(arr).astype(d["dtype"])
        return out

    def _run(self, feed):
        try:
            out = self.runner(**self._quantize(feed))
        except RuntimeError as e:
            # XNNPACK (the default CPU delegate) refuses some int8 models,
            # e.g. when calibration saw a constant tensor (a dead ReLU
            # branch) and gave it a ~1e-8 scale: "failed to create XNNPACK
            # runtime". The builtin kernels run them; say so in the report.
            if not self.xnnpack or "XNNPACK" not in str(e):
                raise
            self.xnnpack = False
            self._start()
            out = self.runner(**self._quantize(feed))
        result = []
        for name in self.output_names:
            d = self.output_details[name]
            value = out[name]
            if np.issubdtype(d["dtype"], np.integer) and d["quantization"][0]:
                scale, zero = d["quantization"]
                value = (value.astype(np.float32) - zero) * scale
            result.append(value)
        return result

    def latency_ms(self, inputs):
        """Median time of a bare `invoke()` on `inputs`, on an interpreter
        of its own, as an app calls it (no resize or copy per call)."""
        interpreter = self._make()
        feed = self._quantize(self.arrange(inputs))
        for name, arr in feed.items():
            index = self.input_details[name]["index"]
            interpreter.resize_tensor_input(index, arr.shape)
        interpreter.allocate_tensors()
        for name, arr in feed.items():
            interpreter.set_tensor(self.input_details[name]["index"], arr)
        return _verify.median_latency_ms(interpreter.invoke)


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
    runtime (Android, iOS, Linux). A
    mixed-precision model is rebuilt in float32 with the same weights
    first (LiteRT cannot convert mixed graphs).

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
        - int8: on the calibration data, top-1 agreement >= 0.9 for
          classifier outputs (rank 2) and mean abs error <= 0.1 times the
          output scale; max error and mean error are reported.
    The interpreter uses its default XNNPACK delegate, as apps do; if
    XNNPACK refuses the model (it does for some int8 models calibrated on
    data that leaves a tensor constant) the check runs on the builtin
    kernels, warns, and adds a note to the report.

    Args:
        model: a built `keras.Model` (TensorFlow backend).
        path: str or path-like, the `.tflite` file to write.
        quantization: None, "float16", "dynamic" or "int8".
        representative_data: calibration inputs, required for "int8": an
            array (N, ...) for one input, a list of arrays (one per input),
            a dict name -> array, or a callable returning an iterable of
            samples (the TFLite `representative_dataset` convention). Use
            100-500 real samples. In other modes it is used as
            `sample_inputs` when those are not given.
        sample_inputs: optional inputs to check float modes with (same
            forms); default 4 reproducible standard-normal samples.
        float_io: bool, default False. For "int8", keep float32 input and
            output (quantize / dequantize ops inside the model).
        atol: optional float, absolute tolerance replacing the default (on
            the max error; on the mean error for "int8").
        min_top1_agreement: optional float in [0, 1], default 0.9 ("int8").
        num_threads: optional int, interpreter threads for the check and
            the latency (default: LiteRT's choice).
        max_calibration_samples: int, default 500. Calibration samples used.
        fold_batchnorm: bool, default True. Convert
            `keras_aff.optimize.fold_batchnorm(model)` (checked against
            `model` first); the report's `batch_norm_folding` gives the op
            counts before and after. False converts `model` as it is.

    Returns:
        An `ExportReport` with the op counts.

    Raises:
        ValueError: unknown `quantization`; "int8" without
            `representative_data`; data that does not fit the model.
        RuntimeError: the converter needs non-builtin ops, or the backend
            is not TensorFlow.
        ExportVerificationError: the file does not reproduce the model
            (nothing is left at `path`).

    Example:

    >>> report = keras_aff.export.export_litert(
    ...     model, "model_int8.tflite", quantization="int8",
    ...     representative_data=x_train[:200])
    >>> report.ops
    {'ADD': 8, 'CONV_2D': 15, 'FULLY_CONNECTED': 1, 'LOGISTIC': 3, ...}
    """
    tf = _verify.require_tensorflow_backend("export_litert")
    _verify.check_model(model)
    _validate_quantization(quantization)
    _verify.validate_flag("float_io", float_io)
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "quantization='int8' (full integer) needs calibration data to "
            "choose the activation ranges: pass `representative_data=`, "
            "about 100-500 real input samples (an array shaped like a batch "
            "of model inputs). Use quantization='dynamic' for int8 weights "
            "without calibration. Received: representative_data=None"
        )
    calibration = None
    if representative_data is not None:
        calibration = _verify.normalize_inputs(
            model, representative_data, "representative_data"
        )
        calibration = _verify.take(
            calibration, slice(0, int(max_calibration_samples))
        )
    if quantization == "int8":
        samples = calibration
    elif sample_inputs is not None:
        samples = _verify.normalize_inputs(model, sample_inputs)
    elif calibration is not None:
        samples = calibration
    else:
        samples = _verify.random_inputs(model)
    model, folded = folding.fold_for_export(model, samples, fold_batchnorm)
    model32, reference, notes = _verify.prepare_float32(model, samples)
    if calibration is not None and model32 is not model:
        calibration = [np.asarray(a, dtype="float32") for a in calibration]
    flatbuffer = _convert(tf, model32, quantization, calibration, float_io)
    ops = list_ops(flatbuffer)
    bad = _non_builtin(ops)
    if bad:
        raise _verify.ExportVerificationError(
            f"The LiteRT model contains non-builtin ops {bad}; only builtin "
            "ops run on a stock LiteRT runtime."
        )
    mode = quantization or "float32"
    kind = f"The LiteRT model ({mode})"
    with _verify.StagedPath(path) as stage:
        with open(stage.tmp, "wb") as f:
            f.write(flatbuffer)
        runner = LiteRTRunner(
            flatbuffer, _verify.input_names(model32), num_threads
        )
        n = len(samples[0])
        stats_all, tol = _verify.check(
            kind,
            reference,
            runner(samples),
            mode=mode,
            atol=atol,
            min_top1_agreement=min_top1_agreement,
            where=f"batch {n}"
            + (" (the calibration data)" if mode == "int8" else ""),
        )
        one = _verify.take(samples, slice(0, 1))
        got_one = runner(one)
        if mode != "int8":
            stats_one, _ = _verify.check(
                kind,
                _verify.take(reference, slice(0, 1)),
                got_one,
                mode=mode,
                atol=atol,
                where="batch 1",
            )
            stats = _verify.merge_stats([stats_all, stats_one])
        else:
            stats = stats_all
        latency = runner.latency_ms(one)
        if not runner.xnnpack:
            message = (
                "the XNNPACK delegate (LiteRT's default CPU backend) refused "
                "this model ('failed to create XNNPACK runtime'), so it was "
                "verified and timed on the builtin kernels; on a phone it "
                "runs slower. Usual cause: calibration data on which a "
                "tensor is constant (a dead ReLU branch in an untrained "
                "model); calibrate on real inputs."
            )
            notes.append(message)
            warnings.warn(message, stacklevel=2)
        inputs, outputs = runner.inputs, runner.outputs
        stage.commit()
    return _verify.ExportReport(
        format="litert",
        path=os.fspath(path),
        size_bytes=os.path.getsize(path),
        quantization=quantization,
        ops=ops,
        inputs=inputs,
        outputs=outputs,
        max_abs_error=stats.max_abs_error,
        mean_abs_error=stats.mean_abs_error,
        tolerance=tol,
        output_scale=stats.output_scale,
        top1_agreement=stats.top1_agreement,
        num_samples=stats_all.num_samples,
        checked=[f"batch {n}"] + (["batch 1"] if mode != "int8" else []),
        latency_ms=latency,
        notes=notes,
        batch_norm_folding=folded,
    )
