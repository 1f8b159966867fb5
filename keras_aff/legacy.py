"""tf_keras (Keras 2) twin of the MS-CAM, AFF and iAFF layers.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`keras_aff.legacy.MSCAM`, `AFF` and `IAFF` are built from the same mixins as
the Keras 3 layers in `keras_aff.layers` (`keras_aff.layers._impl`): the
math, the argument checks, the config keys and the variable paths
(`aff/attention/local/conv1/kernel`) are shared, not copied. Only the base
class (`tf_keras.layers.Layer`), the registry
(`tf_keras.saving.register_keras_serializable`) and the ops (plain
TensorFlow instead of `keras.ops`) differ. Use them where Keras 2 is
required, chiefly for quantization-aware training with
tensorflow-model-optimization (see `keras_aff.qat`).

This module imports `tf_keras` explicitly. It never looks at
`TF_USE_LEGACY_KERAS` and never uses `tf.keras`, so which classes you get does
not depend on import order. It is not imported by `import keras_aff`.

It also moves weights between a Keras 3 model and its tf_keras twin by
variable path (`copy_weights`); the `get_weights()` orders of the two
flavours differ, so `set_weights` cannot be used for that.
"""

import copy
import inspect
import re

try:
    import tf_keras
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "`keras_aff.legacy` needs the `tf_keras` package (Keras 2), which is "
        'not installed. Install the extra with: pip install "keras-aff[qat]" '
        f"(or: pip install tf-keras). Original error: {e}"
    ) from e

import keras
import numpy as np
import tensorflow as tf

from keras_aff.layers import _impl

__all__ = [
    "AFF",
    "IAFF",
    "MSCAM",
    "copy_weights",
    "weight_paths",
]


class LegacyKit:
    """What the shared mixins need from tf_keras (Keras 2).

    The math uses TensorFlow ops, which run in either flavour; `keras.ops`
    would tie the layer to `KERAS_BACKEND=tensorflow` and `tf_keras` has no
    `ops` module.
    """

    layers = tf_keras.layers
    initializers = tf_keras.initializers
    regularizers = tf_keras.regularizers

    @staticmethod
    def relu(x):
        return tf.nn.relu(x)

    @staticmethod
    def sigmoid(x):
        return tf.math.sigmoid(x)

    @staticmethod
    def transpose(x, axes):
        return tf.transpose(x, perm=list(axes))

    @staticmethod
    def mean(x, axis):
        # tf.reduce_mean in float16 on CPU is wrong for large maps (2.0 comes
        # back as 0.653 at 224x224), and so is tf_keras' GlobalAveragePooling
        # under mixed_float16: accumulate in float32 for half types.
        axis = list(axis)
        if x.dtype in (tf.float16, tf.bfloat16):
            m = tf.reduce_mean(tf.cast(x, tf.float32), axis=axis, keepdims=True)
            return tf.cast(m, x.dtype)
        return tf.reduce_mean(x, axis=axis, keepdims=True)

    @staticmethod
    def image_data_format():
        return tf_keras.backend.image_data_format()

    @staticmethod
    def build_child(layer, shape):
        # tf_keras names variables by name scope only; a sublayer built
        # directly (not through __call__) needs its own scope, or every
        # variable is called `aff/kernel:0` and h5 files collide.
        with tf.name_scope(layer.name):
            layer.build(shape)
        # Mark it built the way tf_keras' __call__ does (the shared build()
        # methods do not call super().build()).
        tf_keras.layers.Layer.build(layer, shape)

    @staticmethod
    def dtype_policy(layer):
        return layer.dtype_policy


class _ContextBranch(_impl.ContextBranchMixin, tf_keras.layers.Layer):
    """One local or global MS-CAM branch (private; built by its gate)."""

    _kit = LegacyKit


class _MSCAMGate(_impl.GateMixin, tf_keras.layers.Layer):
    """M(z) = sigmoid(L(z) + G(z)) (private; built by MSCAM, AFF, IAFF)."""

    _kit = LegacyKit
    _branch_cls = _ContextBranch


def _accepted_args(cls):
    params = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def _legacy_initializer(value):
    """A Keras 3 initializer config, trimmed to what tf_keras accepts."""
    if not isinstance(value, dict) or "class_name" not in value:
        return value
    try:
        tf_keras.initializers.get(copy.deepcopy(value))
        return value
    except (TypeError, ValueError):
        pass
    value = copy.deepcopy(value)
    cls = tf_keras.initializers.get(value["class_name"]).__class__
    accepted = _accepted_args(cls)
    if accepted is not None:
        # Keras 3 added arguments (e.g. GlorotUniform's `input_axes`); drop
        # them only when they hold their neutral value None.
        config = value.get("config", {})
        for key in list(config):
            if key not in accepted and config[key] is None:
                del config[key]
    return value


class _LegacyMixin:
    """A clear error for Keras 3 tensors, and a `from_config` that also
    accepts the config of the Keras 3 twin."""

    def __call__(self, inputs, *args, **kwargs):
        if any(
            isinstance(t, keras.KerasTensor) for t in tf.nest.flatten(inputs)
        ):
            raise TypeError(
                f"Layer '{self.name}' is the tf_keras (Keras 2) "
                f"`keras_aff.legacy.{type(self).__name__}` and cannot take "
                "Keras 3 symbolic tensors. Use "
                f"`keras_aff.layers.{type(self).__name__}` in a Keras 3 "
                "model, or `tf_keras.Input` with this layer. Received: "
                f"inputs={inputs!r}"
            )
        return super().__call__(inputs, *args, **kwargs)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        dtype = config.get("dtype")
        if isinstance(dtype, dict) and dtype.get("class_name") in (
            "DTypePolicy",
            "FloatDTypePolicy",
        ):
            # Keras 3 serializes the dtype policy as an object; tf_keras
            # takes the policy name.
            config["dtype"] = dtype["config"]["name"]
        if "kernel_initializer" in config:
            config["kernel_initializer"] = _legacy_initializer(
                config["kernel_initializer"]
            )
        config.pop("autocast", None)
        config.pop("activity_regularizer", None)
        return cls(**config)


@tf_keras.saving.register_keras_serializable(package="keras_aff")
class MSCAM(_LegacyMixin, _impl.MSCAMMixin, tf_keras.layers.Layer):
    """tf_keras twin of `keras_aff.layers.MSCAM`: `x * M(x)`.

    `M(x) = sigmoid(L(x) + G(x))`, the multi-scale channel attention gate
    (L: per-position bottleneck of 1x1 convs with `C // reduction_ratio`
    hidden channels, G: the same on the global average, broadcast back).
    Arguments, config keys and variable paths are those of the Keras 3
    layer, whose docstring has the details; the implementation is the same
    shared code (`keras_aff.layers._impl`), run on tf_keras.

    Args:
        reduction_ratio: int, default 4.
        use_bias: bool, default True.
        bn_momentum: float, default 0.9.
        bn_epsilon: float, default 1e-5.
        kernel_initializer: initializer, default "glorot_uniform".
        kernel_regularizer: optional regularizer.
        data_format: "channels_last", "channels_first" or None (default:
            `tf_keras.backend.image_data_format()`).
        branches: two branch names, default ("local", "global").
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a tensor of rank 3, 4 or 5.
        training: bool, passed to the BatchNormalization sublayers.

    Returns:
        A tensor of the same shape as `inputs`.

    Example:

    >>> import tf_keras
    >>> from keras_aff import legacy
    >>> x = tf_keras.Input((8, 8, 16))
    >>> legacy.MSCAM(reduction_ratio=4)(x).shape
    TensorShape([None, 8, 8, 16])

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """

    _kit = LegacyKit
    _gate_cls = _MSCAMGate


@tf_keras.saving.register_keras_serializable(package="keras_aff")
class AFF(_LegacyMixin, _impl.AFFMixin, tf_keras.layers.Layer):
    """tf_keras twin of `keras_aff.layers.AFF`.

    With `w = M(x + y)` (the MS-CAM gate), the output is
    `output_scale * (x * w + y * (1 - w))`, computed as
    `output_scale * (y + w * (x - y))`. Arguments, config keys and variable
    paths are those of the Keras 3 layer (see its docstring); the
    implementation is the same shared code (`keras_aff.layers._impl`), run on
    tf_keras.

    Args:
        reduction_ratio: int, default 4.
        output_scale: float, default 1.0 (2.0 reproduces the official
            networks).
        use_bias: bool, default True.
        bn_momentum: float, default 0.9.
        bn_epsilon: float, default 1e-5.
        kernel_initializer: initializer, default "glorot_uniform".
        kernel_regularizer: optional regularizer.
        data_format: "channels_last", "channels_first" or None (default:
            `tf_keras.backend.image_data_format()`).
        branches: two branch names, default ("local", "global").
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list `[x, y]` of two tensors of the same shape, rank 3, 4
            or 5.
        training: bool, passed to the BatchNormalization sublayers.

    Returns:
        A tensor of the same shape as `x`.

    Example:

    >>> import tf_keras
    >>> from keras_aff import legacy
    >>> x = tf_keras.Input((8, 8, 16))
    >>> y = tf_keras.Input((8, 8, 16))
    >>> legacy.AFF(reduction_ratio=4)([x, y]).shape
    TensorShape([None, 8, 8, 16])

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """

    _kit = LegacyKit
    _gate_cls = _MSCAMGate


@tf_keras.saving.register_keras_serializable(package="keras_aff")
class IAFF(_LegacyMixin, _impl.IAFFMixin, tf_keras.layers.Layer):
    """tf_keras twin of `keras_aff.layers.IAFF`.

    `w1 = M1(x + y)`, `xi = x * w1 + y * (1 - w1)`, `w2 = M2(xi)`, output
    `output_scale * (x * w2 + y * (1 - w2))`, with two MS-CAM gates that
    each have their own local and global branches. Arguments, config keys
    and variable paths are those of the Keras 3 layer (see its docstring);
    the implementation is the same shared code (`keras_aff.layers._impl`),
    run on tf_keras.

    Args:
        reduction_ratio: int, default 4.
        output_scale: float, default 1.0.
        use_bias: bool, default True.
        bn_momentum: float, default 0.9.
        bn_epsilon: float, default 1e-5.
        kernel_initializer: initializer, default "glorot_uniform".
        kernel_regularizer: optional regularizer.
        data_format: "channels_last", "channels_first" or None (default:
            `tf_keras.backend.image_data_format()`).
        branches: two branch names for both gates, default
            ("local", "global").
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list `[x, y]` of two tensors of the same shape, rank 3, 4
            or 5.
        training: bool, passed to the BatchNormalization sublayers.

    Returns:
        A tensor of the same shape as `x`.

    Example:

    >>> import tf_keras
    >>> from keras_aff import legacy
    >>> x = tf_keras.Input((8, 8, 16))
    >>> y = tf_keras.Input((8, 8, 16))
    >>> legacy.IAFF(reduction_ratio=4)([x, y]).shape
    TensorShape([None, 8, 8, 16])

    Reference:
        Dai et al., Attentional Feature Fusion, WACV 2021,
        https://arxiv.org/abs/2009.14082
    """

    _kit = LegacyKit
    _gate_cls = _MSCAMGate


# ---------------------------------------------------------------------------
# Weight porting by variable path
# ---------------------------------------------------------------------------
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
    return isinstance(obj, (keras.Model, tf_keras.Model))


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
    >>> from keras_aff import legacy
    >>> layer = keras_aff.layers.AFF(name="aff")
    >>> layer.build([(None, 8, 8, 16), (None, 8, 8, 16)])
    >>> sorted(legacy.weight_paths(layer))[0]
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
    >>> import tf_keras
    >>> import keras_aff
    >>> from keras_aff import legacy
    >>> k3 = keras_aff.layers.AFF(name="aff")
    >>> k3.build([(None, 8, 8, 16), (None, 8, 8, 16)])
    >>> k2 = legacy.AFF(name="aff")
    >>> k2.build([(None, 8, 8, 16), (None, 8, 8, 16)])
    >>> len(legacy.copy_weights(k3, k2))
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
