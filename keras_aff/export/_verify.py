"""Shared machinery of the exporters (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

One place for each thing the three exporters share: the backend and
dependency checks, the sample inputs, the float32 rebuild of mixed-precision
models, the relaxation of spatial dimensions, the numerical check of an
artifact against its Keras model, batch-1 latency, and the report.

Tolerances (relative to the output scale `s = max(1, max |Keras output|)`):

| artifact                          | passes when                            |
|-----------------------------------|----------------------------------------|
| float32 (SavedModel, ONNX, LiteRT) | max abs error <= 1e-4 * s             |
| LiteRT float16 weights            | max abs error <= 1e-2 * s              |
| LiteRT dynamic-range int8         | max abs error <= 5e-2 * s              |
| LiteRT full int8                  | mean abs error <= 0.1 * s and, for a   |
|                                   | classifier output (rank 2, >= 2        |
|                                   | classes), top-1 agreement >= 0.9       |

`atol` (absolute, replaces the max-error bound; for int8 the mean-error
bound) and `min_top1_agreement` override them.
"""

import dataclasses
import json
import os
import shutil
import time

import numpy as np

# Relative tolerances on the max abs error, by what the artifact computes in.
RTOL = {"float32": 1e-4, "float16": 1e-2, "dynamic": 5e-2}
# Full integer: bound on the MEAN abs error (max errors of a few quantization
# steps on the largest logits are normal), plus top-1 agreement.
INT8_MEAN_RTOL = 0.1
MIN_TOP1_AGREEMENT = 0.9
# A float32 rebuild of a mixed-precision model must match the original
# within half-precision rounding.
HALF_RTOL = 5e-2
# None spatial dimensions are sampled at this size.
DEFAULT_SPATIAL = 32
LATENCY_RUNS = 30
LATENCY_WARMUP = 5
_HALF = ("float16", "bfloat16", "mixed_float16", "mixed_bfloat16")


class ExportVerificationError(RuntimeError):
    """An exported artifact does not reproduce its Keras model.

    Raised by `export_saved_model`, `export_litert` and `export_onnx` when
    the artifact's outputs differ from the Keras model's by more than the
    tolerance; the message gives the error, the tolerance and the inputs
    that failed. Nothing is left at the requested path.

    Example:

    >>> try:
    ...     keras_aff.export.export_litert(model, "m.tflite")
    ... except keras_aff.export.ExportVerificationError as e:
    ...     print(e)
    """


@dataclasses.dataclass
class ExportReport:
    """What an export wrote and how well it matches the Keras model.

    Attributes:
        format: "saved_model", "litert" or "onnx".
        path: where the artifact is.
        size_bytes: its size (a SavedModel: the whole directory).
        quantization: None (float32), "float16", "dynamic" or "int8".
        ops: op name -> count (LiteRT builtin ops, ONNX node types), or None
            (SavedModel).
        inputs: input name -> {"shape", "dtype"} as the artifact declares
            them (None for a dynamic dimension; quantization scale and zero
            point for int8 inputs).
        outputs: output name -> {"shape", "dtype"}.
        max_abs_error: largest |artifact - Keras| over the checked inputs.
        mean_abs_error: mean |artifact - Keras|.
        tolerance: the bound the check applied (on the max error; on the
            mean error for int8).
        output_scale: max |Keras output| over the checked inputs.
        top1_agreement: share of samples whose argmax agrees (classifier
            outputs), else None.
        num_samples: how many samples were checked.
        checked: what was checked, e.g. ["batch 4", "batch 1",
            "standalone process"].
        latency_ms: median wall time of one batch-1 call, in ms.
        notes: decisions taken on the way (float32 rebuild, dynamic spatial
            size, ...).
        batch_norm_folding: what `fold_batchnorm=True` did: BatchNorms
            folded and the TensorFlow inference graph's op count before and
            after (`keras_aff.export.folding`), or None.

    Example:

    >>> report = keras_aff.export.export_onnx(model, "model.onnx")
    >>> report.max_abs_error < report.tolerance
    True
    >>> report.to_dict()["size_bytes"] > 0
    True
    """

    format: str
    path: str
    size_bytes: int
    quantization: str | None
    ops: dict | None
    inputs: dict
    outputs: dict
    max_abs_error: float
    mean_abs_error: float
    tolerance: float
    output_scale: float
    top1_agreement: float | None
    num_samples: int
    checked: list
    latency_ms: float
    notes: list = dataclasses.field(default_factory=list)
    batch_norm_folding: dict | None = None

    def to_dict(self):
        """A JSON-serializable dict of every field.

        Example:

        >>> json.dumps(report.to_dict())
        """
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def summary(self):
        """One line: format, size, error, latency.

        Example:

        >>> print(report.summary())
        litert (int8): 24,520 B, max |err| 2.7e-03 (mean tol 1.0e-01), ...
        """
        kind = self.format + (
            f" ({self.quantization})" if self.quantization else ""
        )
        bound = "mean tol" if self.quantization == "int8" else "tol"
        text = (
            f"{kind}: {self.size_bytes:,} B, max |err| "
            f"{self.max_abs_error:.1e} ({bound} {self.tolerance:.1e})"
        )
        if self.top1_agreement is not None:
            text += f", top-1 agreement {self.top1_agreement:.3f}"
        return text + f", batch-1 latency {self.latency_ms:.2f} ms"


# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------
def require_tensorflow_backend(function_name):
    """Raises unless Keras runs on TensorFlow; returns the tf module."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"`keras_aff.export.{function_name}` needs the TensorFlow "
            "backend: SavedModel, LiteRT and tf2onnx all trace TensorFlow "
            "graphs. Set KERAS_BACKEND=tensorflow before importing keras. "
            f"Received: backend={backend!r}"
        )
    import tensorflow as tf

    return tf


def import_litert_interpreter():
    """The ai_edge_litert interpreter module, or an ImportError naming the
    extra to install."""
    try:
        from ai_edge_litert import interpreter
    except ImportError as e:
        raise ImportError(
            "LiteRT export and verification need the `ai-edge-litert` "
            'package. Install it with `pip install "keras-aff[litert]"`. '
            f"({e})"
        ) from e
    return interpreter


def import_onnx_tools():
    """(tf2onnx, onnxruntime), or an ImportError naming the extra."""
    try:
        import onnxruntime
        import tf2onnx
    except ImportError as e:
        raise ImportError(
            "ONNX export needs `tf2onnx`, `onnx` and `onnxruntime`. Install "
            'them with `pip install "keras-aff[onnx]"`. '
            f"({e})"
        ) from e
    return tf2onnx, onnxruntime


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
def check_model(model):
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(
            "Expected `model` to be a built `keras.Model`. "
            f"Received: model={model!r} (of type {type(model).__name__})"
        )
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            "Expected `model` to be a Functional or Sequential model with "
            "declared inputs. A subclassed model has none: wrap it, e.g. "
            "`inp = keras.Input(shape); keras.Model(inp, model(inp))`. "
            f"Received: model={model.name!r} without `inputs`"
        )
    return model


def validate_flag(name, value):
    if not isinstance(value, bool):
        raise TypeError(
            f"Expected `{name}` to be a bool. Received: {name}={value!r}"
        )
    return value


def input_names(model):
    """The serving names of the model's inputs, in `model.inputs` order."""
    return [t.name for t in model.inputs]


def input_specs(model):
    """[(name, shape, dtype)] of the model's inputs."""
    return [
        (t.name, tuple(t.shape), str(t.dtype).replace("tf.", ""))
        for t in model.inputs
    ]


def _walk_config(obj, fn):
    if isinstance(obj, dict):
        obj = fn(obj)
        return {k: _walk_config(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_walk_config(v, fn) for v in obj]
    return obj


def _rebuild(model, transform):
    """A new model from `transform(model.get_config())`, same weights."""
    import keras

    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # pragma: no cover - older/newer Keras
        import contextlib

        def SafeModeScope(_):  # noqa: N802
            return contextlib.nullcontext()

    config = transform(model.get_config())
    # The model is already in this process, so its Lambda layers are no
    # new code: rebuilding them is as safe as calling the model.
    with SafeModeScope(False):
        new = model.__class__.from_config(config)
    if not isinstance(new, keras.Model) or not new.built:
        raise ValueError("from_config did not return a built keras.Model")
    new.set_weights(model.get_weights())
    return new


def is_mixed_precision(model):
    return any(
        getattr(layer, "dtype_policy", None) is not None
        and layer.dtype_policy.name in _HALF
        for layer in model._flatten_layers(include_self=True, recursive=True)
    )


def float32_model(model):
    """`model` itself, or a float32 copy of a half / mixed-precision model.

    LiteRT cannot convert mixed-precision graphs (`'tf.Conv2D' op is neither
    a custom op nor a flex op`) and ONNX Runtime's CPU kernels want float32,
    so the exporters rebuild such a model from its config under the float32
    policy and copy the weights (variables are float32 under a mixed
    policy). `keras.models.clone_model` would keep the mixed policy.

    Returns:
        (model, note): `note` is None when nothing was rebuilt.
    """
    if not is_mixed_precision(model):
        return model, None

    def to_float32(cfg):
        def fix(d):
            if (
                d.get("class_name") in ("DTypePolicy", "FloatDTypePolicy")
                and isinstance(d.get("config"), dict)
                and d["config"].get("name") in _HALF
            ):
                d = dict(d, config=dict(d["config"], name="float32"))
            if d.get("dtype") in _HALF:
                d = dict(d, dtype="float32")
            return d

        return _walk_config(cfg, fix)

    try:
        new = _rebuild(model, to_float32)
    except Exception as e:
        raise ValueError(
            "The model uses a mixed-precision or half dtype policy, which "
            "LiteRT and ONNX cannot convert, and it could not be rebuilt in "
            "float32 from its config: the model needs a working "
            "`get_config()`/`from_config()`. Rebuild it yourself under "
            "`keras.mixed_precision.set_global_policy('float32')` and copy "
            f"the weights. Received: {type(e).__name__}: {e}"
        ) from e
    policies = sorted(
        {
            layer.dtype_policy.name
            for layer in model._flatten_layers(include_self=True)
            if layer.dtype_policy.name in _HALF
        }
    )
    return new, (
        f"rebuilt in float32 from a {'/'.join(policies)} model (same "
        "weights) before conversion"
    )


def prepare_float32(model, samples):
    """The float32 model to convert and its reference outputs on `samples`.

    A mixed-precision model is rebuilt in float32 (see `float32_model`) and
    the rebuild is checked against the original within half-precision
    rounding (`HALF_RTOL`), so a wrong weight mapping fails here.

    Returns:
        (model32, reference outputs of model32, notes)
    """
    model32, note = float32_model(model)
    reference = keras_outputs(model32, samples)
    if note is None:
        return model32, reference, []
    original = keras_outputs(model, samples)
    stats = error_stats(original, reference)
    tol = HALF_RTOL * max(1.0, stats.output_scale)
    if not stats.max_abs_error <= tol:
        raise ExportVerificationError(
            "The float32 rebuild of the mixed-precision model does not "
            f"match it: max |error| {stats.max_abs_error:.4g} > tolerance "
            f"{tol:.4g} (half-precision rounding). The model's config does "
            "not describe it faithfully."
        )
    return (
        model32,
        reference,
        [f"{note}; max |float32 - mixed| = {stats.max_abs_error:.2g}"],
    )


def relax_spatial_dims(model, samples):
    """A copy of `model` whose inputs accept any spatial size, or None.

    Tries the channels-last reading of each input of rank >= 3 (every axis
    but the batch and the last is spatial), then the channels-first one
    (every axis after 1). A reading is kept when the model rebuilds from
    its config with those axes set to None AND runs on inputs 8 larger
    along them (`samples` give the base sizes). Returns None otherwise:
    rank-2 inputs, subclassed models, layers that need a fixed size
    (Flatten -> Dense, Reshape, ...).

    Returns:
        None, or (relaxed model, the larger inputs, its outputs on them).
    """

    def relaxed(shape, keep):
        shape = list(shape)
        if len(shape) >= 3:
            lo, hi = (1, len(shape) - 1) if keep == "last" else (2, len(shape))
            shape[lo:hi] = [None] * (hi - lo)
        return shape

    rng = np.random.default_rng(1)
    for keep in ("last", "first"):
        if all(relaxed(t.shape, keep) == list(t.shape) for t in model.inputs):
            continue

        def transform(cfg, keep=keep):
            def fix(d):
                if d.get("class_name") == "InputLayer":
                    c = dict(d["config"])
                    for key in ("batch_shape", "batch_input_shape"):
                        if c.get(key) is not None:
                            c[key] = relaxed(c[key], keep)
                    d = dict(d, config=c)
                if "build_input_shape" in d:  # Sequential
                    d = {k: v for k, v in d.items() if k != "build_input_shape"}
                return d

            return _walk_config(cfg, fix)

        other = []
        for tensor, arr in zip(model.inputs, samples):
            shape = [2] + [
                a + 8 if r is None else a
                for r, a in zip(relaxed(tensor.shape, keep)[1:], arr.shape[1:])
            ]
            other.append(rng.standard_normal(shape).astype(arr.dtype))
        try:
            new = _rebuild(model, transform)
            outputs = keras_outputs(new, other)
        except Exception:
            continue
        return new, other, outputs
    return None


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------
def _as_list(data, model, arg_name):
    names = input_names(model)
    if isinstance(data, dict):
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(
                f"`{arg_name}` is a dict, so it needs one entry per model "
                f"input {names}; missing {missing}. "
                f"Received: {arg_name} keys={sorted(data)}"
            )
        data = [data[n] for n in names]
    elif isinstance(data, (list, tuple)) and (len(names) > 1 or len(data) == 1):
        data = list(data)  # one array per input
    else:
        data = [data]  # one input: an array, or a list of its samples
    if len(data) != len(names):
        raise ValueError(
            f"The model has {len(names)} inputs {names}, so `{arg_name}` "
            f"needs {len(names)} arrays. Received: {len(data)} arrays"
        )
    return [np.asarray(d) for d in data]


def normalize_inputs(model, data, arg_name="sample_inputs"):
    """Validates user data for the model's inputs; returns a list of
    float32 (or the input dtype) arrays in `model.inputs` order.

    `data`: an array (one input), a list/tuple of arrays (one per input), a
    dict name -> array, or a callable/iterable of samples (the
    `representative_dataset` convention: each item an array or a list of
    arrays, usually with a batch dimension of 1).
    """
    if data is None:
        raise ValueError(f"`{arg_name}` is required. Received: None")
    if callable(data) and not isinstance(data, np.ndarray):
        data = data()
    if not isinstance(data, (np.ndarray, list, tuple, dict)) and hasattr(
        data, "__iter__"
    ):
        items = [_as_list(item, model, arg_name) for item in data]
        if not items:
            raise ValueError(
                f"`{arg_name}` produced no samples. Received: an empty iterable"
            )
        data = [
            np.concatenate(
                [
                    it[i]
                    if it[i].ndim == len(model.inputs[i].shape)
                    else it[i][None]
                    for it in items
                ]
            )
            for i in range(len(model.inputs))
        ]
    arrays = _as_list(data, model, arg_name)
    n = None
    out = []
    for tensor, name, arr in zip(model.inputs, input_names(model), arrays):
        expected = tuple(tensor.shape)
        if arr.ndim == len(expected) - 1:
            arr = arr[None]
        ok = arr.ndim == len(expected) and all(
            e is None or e == a for e, a in zip(expected[1:], arr.shape[1:])
        )
        if not ok:
            raise ValueError(
                f"`{arg_name}` does not fit model input '{name}' of shape "
                f"{expected}. Received: {arg_name} shape={arr.shape}"
            )
        if n is not None and arr.shape[0] != n:
            raise ValueError(
                f"All arrays in `{arg_name}` need the same number of "
                f"samples. Received: {n} and {arr.shape[0]}"
            )
        n = arr.shape[0]
        if n == 0:
            raise ValueError(f"`{arg_name}` holds no samples. Received: 0")
        dtype = str(tensor.dtype).replace("tf.", "")
        out.append(arr.astype(dtype if dtype != "float16" else "float32"))
    return out


def random_inputs(model, batch_size=4, seed=0, spatial=None):
    """Reproducible random inputs for the model (standard normal floats,
    small integers for integer inputs); None dimensions become `spatial`
    (default 32)."""
    rng = np.random.default_rng(seed)
    out = []
    for tensor in model.inputs:
        shape = [batch_size] + [
            spatial or DEFAULT_SPATIAL if d is None else d
            for d in tensor.shape[1:]
        ]
        dtype = str(tensor.dtype).replace("tf.", "")
        if "int" in dtype:
            out.append(rng.integers(0, 10, size=shape).astype(dtype))
        else:
            out.append(rng.standard_normal(shape).astype("float32"))
    return out


def output_order(names):
    """Signature output names in model order: output_0, ..., output_10."""

    def key(name):
        tail = name.rsplit("_", 1)[-1]
        return (0, int(tail), name) if tail.isdigit() else (1, 0, name)

    return sorted(names, key=key)


def take(arrays, index):
    return [a[index] for a in arrays]


def keras_outputs(model, inputs):
    """The model's outputs (inference mode) as a list of float32 arrays."""
    import tensorflow as tf

    args = inputs if len(inputs) > 1 else inputs[0]
    try:
        out = model(args, training=False)
    except tf.errors.UnimplementedError:
        # e.g. NCHW Conv2D, which TF's CPU kernels lack; XLA runs it.
        out = tf.function(lambda a: model(a, training=False), jit_compile=True)(
            args
        )
    if isinstance(out, dict):
        out = [out[k] for k in sorted(out)]
    elif not isinstance(out, (list, tuple)):
        out = [out]
    return [np.asarray(o, dtype="float32") for o in out]


# ---------------------------------------------------------------------------
# Runners: one call convention for every artifact
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class Stats:
    max_abs_error: float
    mean_abs_error: float
    output_scale: float
    top1_agreement: float | None
    num_samples: int


def error_stats(reference, candidate):
    """Error statistics of `candidate` against `reference` (lists of
    arrays)."""
    if len(reference) != len(candidate):
        raise ExportVerificationError(
            f"The artifact returns {len(candidate)} outputs, the Keras "
            f"model {len(reference)}."
        )
    max_err, abs_sum, count, scale = 0.0, 0.0, 0, 0.0
    agree = []
    for ref, got in zip(reference, candidate):
        got = np.asarray(got, dtype="float32")
        if got.shape != ref.shape:
            raise ExportVerificationError(
                f"The artifact returns an output of shape {got.shape}, the "
                f"Keras model {ref.shape}."
            )
        if not np.all(np.isfinite(got)):
            return Stats(float("inf"), float("inf"), 0.0, None, len(ref))
        err = np.abs(got - ref)
        max_err = max(max_err, float(err.max()))
        abs_sum += float(err.sum())
        count += err.size
        scale = max(scale, float(np.abs(ref).max()))
        if ref.ndim == 2 and ref.shape[-1] >= 2:
            agree.append(ref.argmax(-1) == got.argmax(-1))
    top1 = float(np.concatenate(agree).mean()) if agree else None
    return Stats(
        max_err, abs_sum / max(count, 1), scale, top1, len(reference[0])
    )


def tolerance_for(mode, output_scale, atol=None):
    """The bound for `mode` ("float32", "float16", "dynamic", "int8")."""
    if atol is not None:
        return float(atol)
    scale = max(1.0, output_scale)
    if mode == "int8":
        return INT8_MEAN_RTOL * scale
    return RTOL[mode] * scale


def check(
    label,
    reference,
    candidate,
    mode="float32",
    atol=None,
    min_top1_agreement=None,
    where="",
):
    """Compares an artifact's outputs with Keras; raises
    ExportVerificationError with the error and the tolerance, or returns
    (Stats, tolerance)."""
    stats = error_stats(reference, candidate)
    tol = tolerance_for(mode, stats.output_scale, atol)
    where = f" on {where}" if where else ""
    if mode == "int8":
        min_agree = (
            MIN_TOP1_AGREEMENT
            if min_top1_agreement is None
            else min_top1_agreement
        )
        bad = not stats.mean_abs_error <= tol
        if stats.top1_agreement is not None:
            bad = bad or stats.top1_agreement < min_agree
        if bad:
            agree = (
                f"top-1 agreement {stats.top1_agreement:.3f} (minimum "
                f"{min_agree}), "
                if stats.top1_agreement is not None
                else ""
            )
            raise ExportVerificationError(
                f"{label} does not reproduce the Keras model{where}: "
                f"{agree}mean |error| {stats.mean_abs_error:.4g} (tolerance "
                f"{tol:.4g}), max |error| {stats.max_abs_error:.4g}, output "
                f"scale {stats.output_scale:.4g}, {stats.num_samples} "
                "samples. Check the calibration data (it should look like "
                "real inputs), or relax `min_top1_agreement` / `atol`."
            )
        return stats, tol
    if not stats.max_abs_error <= tol:
        raise ExportVerificationError(
            f"{label} does not reproduce the Keras model{where}: max |error| "
            f"{stats.max_abs_error:.4g} > tolerance {tol:.4g} ({mode}; mean "
            f"|error| {stats.mean_abs_error:.4g}, output scale "
            f"{stats.output_scale:.4g}, {stats.num_samples} samples). This "
            "is a converter or runtime bug, not rounding: do not ship the "
            "artifact. Pass `atol=` only if you know the error is expected."
        )
    return stats, tol


def merge_stats(parts):
    """Combines Stats of several checks (max of max, weighted mean...)."""
    n = sum(p.num_samples for p in parts)
    tops = [p for p in parts if p.top1_agreement is not None]
    return Stats(
        max(p.max_abs_error for p in parts),
        sum(p.mean_abs_error * p.num_samples for p in parts) / n,
        max(p.output_scale for p in parts),
        (
            sum(p.top1_agreement * p.num_samples for p in tops)
            / sum(p.num_samples for p in tops)
            if tops
            else None
        ),
        n,
    )


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


def path_size(path):
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, f))
            for root, _, files in os.walk(path)
            for f in files
        )
    return os.path.getsize(path)


class StagedPath:
    """Writes an artifact next to its destination and moves it into place
    only once it is verified; on failure nothing is left at `path`."""

    def __init__(self, path):
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path)) or "."
        os.makedirs(parent, exist_ok=True)
        base = os.path.basename(os.path.normpath(self.path))
        self.tmp = os.path.join(parent, f".{base}.unverified")
        self._remove(self.tmp)

    @staticmethod
    def _remove(p):
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)

    def __enter__(self):
        return self

    def commit(self):
        self._remove(self.path)
        os.replace(self.tmp, self.path)

    def __exit__(self, exc_type, exc, tb):
        self._remove(self.tmp)
        return False
