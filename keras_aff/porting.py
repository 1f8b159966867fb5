"""Weight porting by variable path between Keras 3, tf_keras and tfmot.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

A Keras 3 model, its tf_keras twin (`keras_aff.legacy`) and a tfmot
quantization-aware copy of that twin (`keras_aff.qat`) hold the same
weights under the same flavour-neutral paths
(`aff/attention/local/conv1/kernel`), but order `get_weights()`
differently, so `set_weights` cannot move weights between them.
`weight_paths` names every weight by path and `copy_weights` copies by
path. Neither imports tf_keras: a tf_keras object is recognised only when
tf_keras is already loaded.
"""

import re
import sys

import keras
import numpy as np

__all__ = ["copy_weights", "weight_paths"]

_SUFFIX = re.compile(r":\d+$")


def _variable_name(variable):
    # Keras 3 variables have `.path` ("aff/attention/local/conv1/kernel");
    # tf.Variables (tf_keras) have `.name` with a ":0" suffix.
    name = getattr(variable, "path", None) or variable.name
    return _SUFFIX.sub("", name)


def _relative_path(name, scopes):
    """The part of `name` after the first component equal to a scope."""
    for scope in scopes:
        if name.startswith(scope + "/"):
            return name[len(scope) + 1 :]
        i = name.find("/" + scope + "/")
        if i >= 0:
            return name[i + len(scope) + 2 :]
    return name


def _is_model(obj):
    if isinstance(obj, keras.Model):
        return True
    tf_keras = sys.modules.get("tf_keras")
    return tf_keras is not None and isinstance(obj, tf_keras.Model)


def _unwrap(layer):
    """(inner layer, its variables, scope names); (None, (), ()) to skip.

    tfmot's QuantizeWrapper takes the quantized kernels out of the wrapped
    layer's `weights` (it assigns the fake-quantized tensor to
    `layer.kernel`) and keeps them in its own list (`_weight_vars`), next to
    its quantizer state, which is left out here.
    """
    module = type(layer).__module__ or ""
    if module.startswith("tensorflow_model_optimization"):
        inner = getattr(layer, "layer", None)
        if inner is None:
            # e.g. the input QuantizeLayer: quantizer state only.
            return None, (), ()
        own = {id(v) for v in inner.weights}
        own.update(id(w) for w, _, _ in getattr(layer, "_weight_vars", ()))
        variables = [v for v in layer.weights if id(v) in own]
        seen = {id(v) for v in variables}
        variables += [v for v in inner.weights if id(v) not in seen]
        return inner, variables, (inner.name, layer.name)
    return layer, layer.weights, (layer.name,)


def _collect(layer, prefix, out, owners):
    inner, variables, scopes = _unwrap(layer)
    if inner is None:
        return
    if _is_model(inner):
        for sub in inner.layers:
            _collect(sub, f"{prefix}{inner.name}/", out, owners)
        return
    for variable in variables:
        key = prefix + inner.name + "/"
        key += _relative_path(_variable_name(variable), scopes)
        if key in out and out[key] is not variable:
            raise ValueError(
                f"Two variables map to the path '{key}' (in layers "
                f"'{owners[key]}' and '{inner.name}'). Give the layers unique "
                "names. Received: duplicate path"
            )
        out[key] = variable
        owners[key] = inner.name


def weight_paths(obj) -> dict:
    """Maps each weight of a model or layer to a flavour-neutral path.

    Works on Keras 3 and tf_keras models and layers, including models made
    by tfmot's `quantize_apply`. For a model, a path is
    `<layer name>/<path inside the layer>`, e.g.
    `aff/attention/local/conv1/kernel`: Keras 3's `Variable.path`, or the
    tf_keras variable name without its `:0` suffix. tfmot's quantize
    wrappers (`quant_aff`) are looked through, and their quantizer state
    (`*_min`, `*_max`, `optimizer_step`) is left out. Nested models add
    their name as a prefix. For a single layer, the paths are relative to
    the layer (`attention/local/conv1/kernel`), so two layers with
    different names can exchange weights.

    Args:
        obj: a Keras 3 or tf_keras `Model` or `Layer`.

    Returns:
        A dict from path (str) to variable, in the model's layer order.

    Example:

    >>> import keras
    >>> import keras_aff
        >>> layer = keras_aff.layers.AFF(name="aff")
    >>> layer.build([(None, 8, 8, 16), (None, 8, 8, 16)])
    >>> sorted(keras_aff.porting.weight_paths(layer))[0]
    'attention/global/bn1/beta'
    """
    out, owners = {}, {}
    if _is_model(obj):
        for layer in obj.layers:
            _collect(layer, "", out, owners)
        return out
    inner, variables, scopes = _unwrap(obj)
    for variable in variables:
        out[_relative_path(_variable_name(variable), scopes)] = variable
    return out


def _value(variable):
    if hasattr(variable, "numpy"):
        return np.asarray(variable.numpy())
    return np.asarray(variable)


def copy_weights(source, target, strict: bool = True) -> list:
    """Copies weights from `source` to `target`, matched by variable path.

    Use it to move trained weights between a Keras 3 model and its tf_keras
    twin (in either direction), or between a legacy fusion layer and the
    stock-layer block of `keras_aff.qat` that unrolls it. The two flavours
    order `get_weights()` differently, so `set_weights` would fail or, worse,
    mix up same-shaped weights; paths do not depend on the order. Paths come
    from `weight_paths`: build both models with the same layer names.

    Args:
        source: Keras 3 or tf_keras `Model` or `Layer` to read from.
        target: Keras 3 or tf_keras `Model` or `Layer` to write to (built).
        strict: bool, default True. When True, every path must exist on both
            sides. When False, paths present on one side only are skipped
            (shapes must still agree).

    Returns:
        The list of copied paths.

    Raises:
        ValueError: listing every path missing on either side (when
            `strict`) and every shape mismatch, before anything is written.

    Example:

    >>> import keras
    >>> import keras_aff
    >>> from keras_aff import legacy
    >>> k3 = keras_aff.layers.AFF(name="aff")
    >>> k3.build([(None, 8, 8, 16), (None, 8, 8, 16)])
    >>> k2 = legacy.AFF(name="aff")
    >>> k2.build([(None, 8, 8, 16), (None, 8, 8, 16)])
    >>> len(keras_aff.porting.copy_weights(k3, k2))
    24
    """
    src = weight_paths(source)
    dst = weight_paths(target)
    if not dst:
        raise ValueError(
            "The target has no weights; build it first (call it on inputs "
            f"or call `build`). Received: target={getattr(target, 'name', 0)}"
        )
    missing = [p for p in src if p not in dst]
    extra = [p for p in dst if p not in src]
    shapes = [
        f"{p}: source {tuple(_value(src[p]).shape)} vs target "
        f"{tuple(dst[p].shape)}"
        for p in src
        if p in dst and tuple(_value(src[p]).shape) != tuple(dst[p].shape)
    ]
    problems = []
    if strict and missing:
        problems.append(
            f"{len(missing)} source path(s) not in the target: "
            + ", ".join(missing)
        )
    if strict and extra:
        problems.append(
            f"{len(extra)} target path(s) not in the source: "
            + ", ".join(extra)
        )
    if shapes:
        problems.append(
            f"{len(shapes)} shape mismatch(es): " + "; ".join(shapes)
        )
    if problems:
        raise ValueError(
            "Cannot copy weights by variable path. Layers must have the same "
            "names (and the same structure) on both sides. "
            + " | ".join(problems)
            + f". Received: source={getattr(source, 'name', source)!r}, "
            f"target={getattr(target, 'name', target)!r}"
        )
    copied = []
    for path, variable in src.items():
        if path in dst:
            dst[path].assign(_value(variable))
            copied.append(path)
    return copied
