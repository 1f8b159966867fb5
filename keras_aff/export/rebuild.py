"""Rebuilds of a model from its config, with the same weights (private):
a float32 copy of a mixed-precision model, and a copy whose inputs accept
any spatial size.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import numpy as np

from keras_aff.export import checks
from keras_aff.export import model_io
from keras_aff.export.report import ExportVerificationError

# A float32 rebuild of a mixed-precision model must match the original
# within half-precision rounding.
HALF_RTOL = 5e-2
_HALF = ("float16", "bfloat16", "mixed_float16", "mixed_bfloat16")


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
    """Whether any layer computes in float16 / bfloat16."""
    return any(
        getattr(layer, "dtype_policy", None) is not None
        and layer.dtype_policy.name in _HALF
        for layer in model._flatten_layers(include_self=True, recursive=True)
    )


def _float32_config(config):
    """`config` with every half / mixed dtype policy set to float32."""

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

    return _walk_config(config, fix)


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

    try:
        new = _rebuild(model, _float32_config)
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
    reference = model_io.keras_outputs(model32, samples)
    if note is None:
        return model32, reference, []
    original = model_io.keras_outputs(model, samples)
    stats = checks.error_stats(original, reference)
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


def _relaxed(shape, keep):
    """`shape` with its spatial axes None: every axis but the batch and the
    channels (the last for keep="last", axis 1 for keep="first")."""
    shape = list(shape)
    if len(shape) >= 3:
        lo, hi = (1, len(shape) - 1) if keep == "last" else (2, len(shape))
        shape[lo:hi] = [None] * (hi - lo)
    return shape


def _relax_config(config, keep):
    def fix(d):
        if d.get("class_name") == "InputLayer":
            c = dict(d["config"])
            for key in ("batch_shape", "batch_input_shape"):
                if c.get(key) is not None:
                    c[key] = _relaxed(c[key], keep)
            d = dict(d, config=c)
        if "build_input_shape" in d:  # Sequential
            d = {k: v for k, v in d.items() if k != "build_input_shape"}
        return d

    return _walk_config(config, fix)


def _larger_inputs(model, samples, keep, rng):
    """Two random samples 8 larger than `samples` along the relaxed axes."""
    other = []
    for tensor, arr in zip(model.inputs, samples):
        shape = [2] + [
            a + 8 if r is None else a
            for r, a in zip(_relaxed(tensor.shape, keep)[1:], arr.shape[1:])
        ]
        other.append(rng.standard_normal(shape).astype(arr.dtype))
    return other


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
    rng = np.random.default_rng(1)
    for keep in ("last", "first"):
        if all(_relaxed(t.shape, keep) == list(t.shape) for t in model.inputs):
            continue
        other = _larger_inputs(model, samples, keep, rng)
        try:
            new = _rebuild(model, lambda c, keep=keep: _relax_config(c, keep))
            outputs = model_io.keras_outputs(new, other)
        except Exception:
            continue
        return new, other, outputs
    return None
