"""The model side of a check: the model's inputs, the user's sample data
in their order, random samples, and the Keras outputs (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Works on Keras 3 models and on tf_keras models (`keras_aff.qat`).
"""

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


def _stack_samples(data, model, arg_name):
    """An iterable of samples (each an array or one array per input) as one
    array per input."""
    items = [_as_list(item, model, arg_name) for item in data]
    if not items:
        raise ValueError(
            f"`{arg_name}` produced no samples. Received: an empty iterable"
        )
    return [
        np.concatenate(
            [
                it[i] if it[i].ndim == len(tensor.shape) else it[i][None]
                for it in items
            ]
        )
        for i, tensor in enumerate(model.inputs)
    ]


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
        data = _stack_samples(data, model, arg_name)
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
        dtype = dtype_name(tensor.dtype)
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
    return [np.asarray(o, dtype="float32") for o in out]
