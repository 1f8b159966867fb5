"""Runners: one call convention for every exported artifact, and
`load_artifact`, which opens any of them (private, but for
`load_artifact`).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

A runner takes float inputs (an array, a list in `input_names` order or a
dict) and returns float32 outputs in model order, whatever the format
computes in: int8 LiteRT inputs are quantized and int8 outputs dequantized
with the model's own scales.
"""

import os
import time

import numpy as np

from keras_aff import _quiet
from keras_aff._validation import check_path
from keras_aff._validation import regular_file_problem
from keras_aff.export import environment

LATENCY_RUNS = 30
LATENCY_WARMUP = 5


def median_latency_ms(fn, runs=LATENCY_RUNS, warmup=LATENCY_WARMUP):
    """Median wall time of `fn()` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def output_order(names):
    """Signature output names in model order: output_0, ..., output_10."""

    def key(name):
        tail = name.rsplit("_", 1)[-1]
        return (0, int(tail), name) if tail.isdigit() else (1, 0, name)

    return sorted(names, key=key)


class Runner:
    """Runs an exported artifact on float inputs and returns float32
    outputs in model order (a format subclass sets the attributes and
    `_run`).

    Attributes:
        format: "saved_model", "litert" or "onnx".
        input_names: the artifact's input names, in the order a list of
            inputs is read.
        inputs / outputs: name -> {"shape", "dtype", ...} as declared.
    """

    format = None
    input_names = ()
    inputs = None
    outputs = None

    def _bind_names(self, artifact_names, wanted=None):
        """Orders the artifact's inputs like `wanted` (the model's names)."""
        artifact_names = list(artifact_names)
        if wanted is None or sorted(wanted) == sorted(artifact_names):
            self.input_names = list(wanted or artifact_names)
        elif len(wanted) == len(artifact_names) == 1:
            self.input_names = artifact_names
        else:
            raise ValueError(
                f"Cannot map the model inputs onto the {self.format} "
                f"artifact's inputs. Received: model inputs {list(wanted)}, "
                f"artifact inputs {artifact_names}"
            )

    def arrange(self, inputs):
        """An array, a list (in `input_names` order) or a dict -> a dict."""
        names = self.input_names
        if isinstance(inputs, dict):
            return {n: np.asarray(inputs[n]) for n in names}
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        if len(inputs) != len(names):
            raise ValueError(
                f"The artifact has {len(names)} inputs {names}. "
                f"Received: {len(inputs)} arrays"
            )
        return {n: np.asarray(a) for n, a in zip(names, inputs)}

    def __call__(self, inputs):
        """Runs the artifact; returns a list of float32 arrays."""
        return [
            np.asarray(o, dtype="float32")
            for o in self._run(self.arrange(inputs))
        ]

    def latency_ms(self, inputs):
        """Median wall time of one call on `inputs`, in milliseconds."""
        feed = self.arrange(inputs)
        return median_latency_ms(lambda: self._run(feed))

    def _run(self, feed):  # pragma: no cover - abstract
        raise NotImplementedError


def _describe(specs):
    return {
        name: {"shape": list(spec.shape), "dtype": spec.dtype.name}
        for name, spec in specs.items()
    }


class SavedModelRunner(Runner):
    """Runs a SavedModel's `serving_default` signature (private; see
    `keras_aff.export.load_artifact`)."""

    format = "saved_model"

    def __init__(self, path, input_names=None):
        import tensorflow as tf

        self._tf = tf
        self.path = os.fspath(path)
        self._loaded = tf.saved_model.load(self.path)
        if "serving_default" not in self._loaded.signatures:
            raise ValueError(
                "The SavedModel has no `serving_default` signature. "
                f"Received: signatures {list(self._loaded.signatures)}"
            )
        self.signature = self._loaded.signatures["serving_default"]
        specs = self.signature.structured_input_signature[1]
        self._bind_names(specs, input_names)
        self.inputs = _describe(specs)
        self.outputs = _describe(self.signature.structured_outputs)
        self.output_names = output_order(self.outputs)

    def _run(self, feed):
        tf = self._tf
        out = self.signature(**{k: tf.constant(v) for k, v in feed.items()})
        return [out[k].numpy() for k in self.output_names]


class LiteRTRunner(Runner):
    """Runs a LiteRT model through its serving signature with float inputs
    and outputs, quantizing int8 inputs and dequantizing int8 outputs
    (private; see `keras_aff.export.load_artifact`)."""

    format = "litert"

    def __init__(self, model_content, input_names=None, num_threads=None):
        self._module = environment.import_litert_interpreter()
        self._content = model_content
        self._threads = num_threads
        # True while the default XNNPACK delegate runs the model; False
        # once it refused it (see `_run`).
        self.xnnpack = True
        self._start()
        self.input_details = self.runner.get_input_details()
        self.output_details = self.runner.get_output_details()
        self._bind_names(self.input_details, input_names)
        self.output_names = output_order(self.output_details)
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
            # The first call applies the XNNPACK delegate, which announces
            # itself on fd 2 ("INFO: Created TensorFlow Lite XNNPACK ...").
            with _quiet.capture_native_stderr():
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
        return median_latency_ms(interpreter.invoke)


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


class ONNXRunner(Runner):
    """Runs an ONNX model with onnxruntime on the CPU (private; see
    `keras_aff.export.load_artifact`)."""

    format = "onnx"

    def __init__(self, path, input_names=None, num_threads=None):
        _, ort = environment.import_onnx_tools()
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


def load_artifact(path, input_names=None, num_threads=None):
    """Loads an exported artifact as a predictor with float inputs and
    outputs, whatever its format.

    A directory is a SavedModel (its `serving_default` signature, run with
    TensorFlow), a `.tflite` file a LiteRT model (run with ai_edge_litert;
    int8 inputs are quantized and int8 outputs dequantized with the
    model's scales), an `.onnx` file an ONNX model (run with onnxruntime).

    Args:
        path: str or path-like.
        input_names: optional list, the order in which a list of inputs is
            read (default: the artifact's own order, `predictor.input_names`).
        num_threads: optional int, threads for LiteRT / onnxruntime.

    Returns:
        A callable: `predictor(inputs)` takes an array (one input), a list
        of arrays or a dict name -> array, and returns a list of float32
        arrays in model output order. It has `format`, `input_names`,
        `inputs` and `outputs` (declared shapes and dtypes) and
        `latency_ms(inputs)`.

    Example:

    >>> from keras_aff.demo import build_demo_model
    >>> model = build_demo_model()  # AFF + iAFF on 16x16x1 images
    >>> _ = keras_aff.export.export_litert(model, "model.tflite")
    >>> predict = keras_aff.export.load_artifact("model.tflite")
    >>> predict.format, predict.input_names
    ('litert', ['image'])
    >>> x = np.zeros((2, 16, 16, 1), "float32")
    >>> [o.shape for o in predict(x)]
    [(2, 10)]
    """
    path = check_path("path", path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No exported artifact at this path. Received: path={path!r}"
        )
    problem = regular_file_problem(path)
    if problem not in (None, "a directory"):  # a FIFO would block
        raise ValueError(
            f"Expected `path` to be a SavedModel directory or a model file; "
            f"it is {problem}. Received: path={path!r}"
        )
    kinds = {".tflite": "a LiteRT", ".onnx": "an ONNX"}
    kind = "a SavedModel" if os.path.isdir(path) else None
    kind = kind or next((v for k, v in kinds.items() if path.endswith(k)), 0)
    if kind:
        try:
            return _open(path, input_names, num_threads)
        except ImportError:
            raise
        except Exception as e:  # every runtime has its own error types
            cause = str(e).strip().splitlines()[0][:300] if str(e) else ""
            raise ValueError(
                f"Expected `path` to be {kind} model, but it cannot be "
                f"loaded (corrupt or truncated?): {type(e).__name__}: "
                f"{cause}. Received: path={path!r}"
            ) from None
    raise ValueError(
        "Expected a SavedModel directory, a `.tflite` or an `.onnx` file. "
        f"Received: path={path!r}"
    )


def _open(path, input_names, num_threads):
    if os.path.isdir(path):
        return SavedModelRunner(path, input_names)
    if path.endswith(".tflite"):
        with open(path, "rb") as f:
            return LiteRTRunner(f.read(), input_names, num_threads)
    return ONNXRunner(path, input_names, num_threads)
