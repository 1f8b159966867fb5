"""The model side of a check: the model's inputs, the user's sample data
in their order, random samples, and the Keras outputs (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Works on Keras 3 models and on tf_keras models (`keras_aff.qat`).
"""

import warnings

import numpy as np

# None spatial dimensions are sampled at this size.
DEFAULT_SPATIAL = 32


def check_model(model):
    """A built Keras 3 model with declared inputs (Functional, Sequential)."""
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


def dtype_name(dtype):
    """The name ("float32") of a Keras 3 dtype string or a `tf.DType`."""
    if isinstance(dtype, str):
        return dtype.replace("tf.", "")
    return getattr(dtype, "name", str(dtype))


def _input_name(tensor):
    # A tf_keras QAT model's input tensors have no name; their input
    # layers do.
    layer = getattr(getattr(tensor, "_keras_history", None), "layer", None)
    return tensor.name or getattr(layer, "name", None) or "inputs"


def input_names(model):
    """The serving names of the model's inputs, in `model.inputs` order."""
    return [_input_name(t) for t in model.inputs]


def input_specs(model):
    """[(name, shape, dtype)] of the model's inputs."""
    return [
        (_input_name(t), tuple(t.shape), dtype_name(t.dtype))
        for t in model.inputs
    ]


# At most this many samples are read from `sample_inputs` (every
# exporter); `representative_data` reads `max_calibration_samples`.
MAX_SAMPLES = 500
# Fewer int8 calibration samples than this: a warning and a report note.
FEW_CALIBRATION_SAMPLES = 10
# Real numbers: float, signed and unsigned integer arrays.
_NUMERIC_KINDS = "fiu"
_PAIR_HINT = (
    " (an (inputs, labels) pair? Pass the inputs only, e.g. "
    "`dataset.map(lambda x, y: x)`)"
)


def _as_list(data, model, arg_name):
    """The per-input parts of `data` (not converted yet), in `model.inputs`
    order."""
    names = input_names(model)
    if isinstance(data, dict):
        missing = [n for n in names if n not in data]
        # A key that is no input (a typo, a label) would be dropped.
        extra = sorted(str(k) for k in data if k not in names)
        if missing or extra:
            raise ValueError(
                f"`{arg_name}` is a dict, so it needs one entry per model "
                f"input {names} and nothing else; missing {missing}, not "
                f"inputs {extra}. Received: {arg_name} keys="
                f"{sorted(map(str, data))}"
            )
        data = [data[n] for n in names]
    elif isinstance(data, (list, tuple)) and (len(names) > 1 or len(data) == 1):
        data = list(data)  # one array per input
    else:
        data = [data]  # one input: an array, or a list of its samples
    if len(data) != len(names):
        hint = _PAIR_HINT if len(data) == 2 else ""
        raise ValueError(
            f"The model has {len(names)} inputs {names}, so `{arg_name}` "
            f"needs {len(names)} arrays{hint}. Received: {len(data)} arrays"
        )
    return data


def _where(model, name):
    return f" (input '{name}')" if len(model.inputs) > 1 else ""


def _numeric(value, tensor, name, model, arg_name):
    """`value` as a numpy array of real numbers (bool too for a bool input);
    complex, bool, string and object data is a TypeError naming the
    dtype."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"`{arg_name}`{_where(model, name)} is not an array: {e}"
            f"{_PAIR_HINT}. Received: {type(value).__name__}"
        ) from None
    kinds = _NUMERIC_KINDS + ("b" if dtype_name(tensor.dtype) == "bool" else "")
    if arr.dtype.kind not in kinds:
        raise TypeError(
            f"Expected `{arg_name}`{_where(model, name)} to hold real numbers "
            "(a float or integer array; integers are cast to the input "
            "dtype). Complex, bool, string and object data is refused, "
            "never cast silently (the imaginary part or the text would be "
            f"lost). Received: {arg_name} dtype={arr.dtype}"
        )
    return arr


def _fit(arr, tensor, name, model, arg_name):
    """`arr` with a batch axis, checked against the input's shape."""
    expected, given = tuple(tensor.shape), arr.shape
    if arr.ndim == len(expected) - 1:
        arr = arr[None]
    ok = arr.ndim == len(expected) and all(
        e is None or e == a for e, a in zip(expected[1:], arr.shape[1:])
    )
    if not ok:
        raise ValueError(
            f"`{arg_name}` does not fit model input '{name}' of shape "
            f"{expected}. Received: {arg_name} shape={given}"
        )
    return arr


def _same_count(arrays, arg_name, where=""):
    counts = [a.shape[0] for a in arrays]
    if len(set(counts)) > 1:
        raise ValueError(
            f"All arrays in `{arg_name}` need the same number of "
            f"samples{where}. Received: {' and '.join(map(str, counts))}"
        )
    return counts[0]


def _arrays(data, model, arg_name):
    """One checked array per input, each with a batch axis."""
    return [
        _fit(_numeric(part, t, n, model, arg_name), t, n, model, arg_name)
        for t, n, part in zip(
            model.inputs, input_names(model), _as_list(data, model, arg_name)
        )
    ]


def _read_samples(data, model, arg_name, limit):
    """Reads an iterable of samples lazily, item by item, and stops as soon
    as `limit` samples are in: an endless generator or a repeated
    `tf.data.Dataset` is never read further."""
    parts, count = [[] for _ in model.inputs], 0
    for index, item in enumerate(data):
        arrays = _arrays(item, model, arg_name)
        rows = _same_count(arrays, arg_name, f" (item {index})")
        for part, arr in zip(parts, arrays):
            part.append(arr)
        count += rows
        if limit is not None and count >= limit:
            break
    if count == 0:
        raise ValueError(
            f"`{arg_name}` produced no samples. Received: an empty iterable"
        )
    return [np.concatenate(part)[:limit] for part in parts]


def _cast(arr, tensor, name, model, arg_name):
    """`arr` in the input's dtype (float32 for float16 inputs); integer
    inputs take integral values within the dtype's range only."""
    dtype = dtype_name(tensor.dtype)
    dtype = "float32" if dtype == "float16" else dtype
    kind = np.dtype(dtype).kind
    if kind in "iu" and arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        bad = ~finite | (arr != np.round(np.where(finite, arr, 0)))
        info = np.iinfo(dtype)
        bad |= finite & ((arr < info.min) | (arr > info.max))
        if bad.any():
            index = int(np.argwhere(bad)[0][0])
            raise ValueError(
                f"Model input '{name}' is {dtype}, so `{arg_name}` must "
                f"hold whole numbers in [{info.min}, {info.max}]. Received: "
                f"{arg_name}[{index}] holds {arr[bad].flat[0]!r}"
            )
    with np.errstate(over="ignore", invalid="ignore"):
        return arr.astype(dtype, copy=False)


def _bad_rows(arr):
    """A bool per sample: whether it holds NaN or Inf."""
    return (~np.isfinite(arr)).any(axis=tuple(range(1, arr.ndim)))


def _check_finite(arr, source, name, model, arg_name):
    """Names the first sample holding NaN or Inf (in the data, or after
    the cast to the input dtype) before anything runs on it."""
    if arr.dtype.kind != "f":
        return
    rows = _bad_rows(arr)
    if not rows.any():
        return
    index = int(np.flatnonzero(rows)[0])
    row = arr[index]
    kind = "NaN" if np.isnan(row).any() else "Inf"
    cause = ""
    if np.isfinite(np.asarray(source[index], dtype="float64")).all():
        cause = f" after the cast to {arr.dtype} (values beyond its range)"
    raise ValueError(
        f"`{arg_name}` holds {kind}{cause} at sample {index}"
        f"{_where(model, name)}: {int(rows.sum())} of {len(arr)} samples are "
        "not finite. Calibration and verification need finite inputs: drop "
        "or repair those samples (the model and the converter are not at "
        f"fault). Received: {arg_name}[{index}] with {kind}"
    )


def normalize_inputs(model, data, arg_name="sample_inputs", limit=MAX_SAMPLES):
    """Validates user data for the model's inputs; returns a list of
    arrays in `model.inputs` order, in each input's dtype (float32 for
    float16 inputs), at most `limit` samples each (None: all).

    `data`: an array (one input), a list/tuple of arrays (one per input), a
    dict name -> array, or a callable/iterable of samples (the
    `representative_dataset` convention: each item an array, a list of
    arrays or a dict, with or without a batch dimension; a generator, any
    iterator, a `tf.data.Dataset`). An iterable is read lazily and only
    until `limit` samples are in, so an endless one is fine; of an array
    the first `limit` samples are taken.

    Raises:
        TypeError: complex, bool (unless the input is bool), string or
            object data, or a string instead of data.
        ValueError: data that does not fit the inputs, no samples, NaN or
            Inf (named with the sample index and the input), non-integral
            data for an integer input.
    """
    if data is None:
        raise ValueError(f"`{arg_name}` is required. Received: None")
    if isinstance(data, (str, bytes)):
        raise TypeError(
            f"Expected `{arg_name}` to be an array, a list or dict of "
            "arrays, or an iterable of samples (load files first). "
            f"Received: {arg_name}={data!r} (of type {type(data).__name__})"
        )
    if callable(data) and not isinstance(data, np.ndarray):
        data = data()
    if not isinstance(data, (np.ndarray, list, tuple, dict)) and hasattr(
        data, "__iter__"
    ):
        arrays = _read_samples(data, model, arg_name, limit)
    else:
        arrays = [a[:limit] for a in _arrays(data, model, arg_name)]
    if _same_count(arrays, arg_name) == 0:
        raise ValueError(f"`{arg_name}` holds no samples. Received: 0")
    out = []
    for tensor, name, arr in zip(model.inputs, input_names(model), arrays):
        cast = _cast(arr, tensor, name, model, arg_name)
        _check_finite(cast, arr, name, model, arg_name)
        out.append(cast)
    return out


def calibration_dataset(names, calibration):
    """A `representative_dataset` yielding each sample of `calibration`
    (one array per input) as a dict name -> batch of 1."""

    def representative_dataset():
        for i in range(len(calibration[0])):
            yield {
                name: arr[i : i + 1] for name, arr in zip(names, calibration)
            }

    return representative_dataset


def few_samples_note(n, notes):
    """Warns, and notes in the report, when int8 is calibrated on fewer
    than `FEW_CALIBRATION_SAMPLES` samples: its ranges (and the top-1
    agreement, checked on them by default) then say little about real
    inputs."""
    if n >= FEW_CALIBRATION_SAMPLES:
        return
    note = (
        f"calibrated on {n} sample(s) only: int8 ranges (and a top-1 "
        "agreement) from so few samples say little about real inputs; use "
        "100-500 real samples"
    )
    notes.append(note)
    # Points at the caller of export_litert.
    warnings.warn(note, stacklevel=3)


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
        dtype = dtype_name(tensor.dtype)
        if "int" in dtype:
            out.append(rng.integers(0, 10, size=shape).astype(dtype))
        else:
            out.append(rng.standard_normal(shape).astype("float32"))
    return out


def take(arrays, index):
    """`index` (an int or a slice) of every array."""
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
    outputs = [np.asarray(o, dtype="float32") for o in out]
    check_finite_outputs(outputs)
    return outputs


def check_finite_outputs(outputs):
    """Raises `ExportVerificationError` when the Keras model's own outputs
    (on finite inputs) hold NaN or Inf: there is nothing to verify an
    artifact against, and no converter or folding is at fault."""
    from keras_aff.export.report import ExportVerificationError

    for i, out in enumerate(outputs):
        out = np.atleast_1d(out)
        rows = _bad_rows(out)
        if rows.any():
            index = int(np.flatnonzero(rows)[0])
            kind = "NaN" if np.isnan(out[index]).any() else "Inf"
            raise ExportVerificationError(
                f"The Keras model itself outputs {kind} (output {i}, sample "
                f"{index}; {int(rows.sum())} of {len(out)} samples) on finite "
                "inputs, so no artifact can be verified against it. Fix the "
                "model first (diverged or untrained weights, a log or a "
                "division by zero, a float16 overflow)."
            )
