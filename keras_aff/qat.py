"""Quantization-aware training of MS-CAM, AFF and iAFF with tfmot.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

tensorflow-model-optimization 0.8 only accepts tf_keras (Keras 2) models,
and Keras 3 has no convolution QAT. This module works on models built with
the tf_keras twin (`keras_aff.legacy`):

- `aff_block`, `iaff_block` and `mscam_block` express a fusion layer with
  stock tf_keras layers only (1x1 Conv2D, BatchNormalization, ReLU,
  GlobalAveragePooling2D, Add, sigmoid, Subtract, Multiply), so tfmot folds
  every Conv+BN and places a fake-quant at every op boundary. The layer
  structure, names, argument checks and child layer settings come from the
  legacy layer itself (the shared `keras_aff.layers._impl` code), and the
  variable paths are the layer's (`aff/attention/local/conv1/kernel`), so
  weights move between a fusion layer and its block with
  `keras_aff.legacy.copy_weights`.
- `unroll_fusion_layers(model)` replaces every legacy fusion layer of a
  functional model by its block and copies all weights by path.
- `quantize_model(model)` unrolls, annotates (`OutputQuantizeConfig` for
  Multiply, Subtract and Rescaling, which tfmot's default registry lacks) and
  applies tfmot's default 8-bit scheme.
- `convert_to_int8_litert(model, sample_inputs)` converts a QAT (or, with a
  representative dataset, a float) model to a fully int8 LiteRT flatbuffer,
  checks that no float tensor is left between ops (`inspect_litert`) and
  checks the outputs against the Keras model within a stated tolerance.

Importing this module imports tensorflow_model_optimization, which sets
`os.environ["TF_USE_LEGACY_KERAS"] = "1"` for the process (and its child
processes). keras_aff never reads that variable, so its own classes do not
change; but `tf.keras` resolves to tf_keras from then on if it was not used
before. It is not imported by `import keras_aff`.

QAT checkpoints: `model.save(path, save_format="tf")` (load inside
`quantize_scope()`) and `model.save_weights(prefix)` (TF checkpoint) work;
`.keras` and `.h5` do not (see the README).
"""

import contextlib
import os
import tempfile
import warnings

try:
    import tf_keras
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "`keras_aff.qat` needs the `tf_keras` package (Keras 2). Install the "
        'extra with: pip install "keras-aff[qat]". '
        f"Original error: {e}"
    ) from e
try:
    import tensorflow_model_optimization as tfmot
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "`keras_aff.qat` needs tensorflow-model-optimization (tfmot). Install "
        'the extra with: pip install "keras-aff[qat]". '
        f"Original error: {e}"
    ) from e

import numpy as np
import tensorflow as tf

from keras_aff import legacy
from keras_aff.layers import _impl

__all__ = [
    "OutputQuantizeConfig",
    "aff_block",
    "calibrate_ranges",
    "convert_to_int8_litert",
    "iaff_block",
    "inspect_litert",
    "mscam_block",
    "quantize_model",
    "quantize_scope",
    "unroll_fusion_layers",
]

_qk = tfmot.quantization.keras
_FUSION_CLASSES = (legacy.MSCAM, legacy.AFF, legacy.IAFF)


# ---------------------------------------------------------------------------
# QuantizeConfig
# ---------------------------------------------------------------------------
@tf_keras.saving.register_keras_serializable(package="keras_aff")
class OutputQuantizeConfig(_qk.QuantizeConfig):
    """Quantizes only a layer's output (8-bit, asymmetric, per tensor).

    tfmot's default 8-bit registry has no entry for `Multiply`, `Subtract`
    or `Rescaling`, so `quantize_model` of a model that uses them fails
    (`RuntimeError: Layer ...:<class '...Subtract'> is not supported`).
    These layers have no weights; quantizing their output (a moving-average
    min/max fake-quant, as tfmot does after an `Add`) is all LiteRT needs to
    run them in int8. `quantize_model` attaches this config to them; it can
    also be attached to a whole legacy fusion layer
    (`quantize_model(..., unroll=False)`), whose interior is then left to
    the converter's calibration.

    Example:

    >>> import tf_keras
    >>> import tensorflow_model_optimization as tfmot
    >>> from keras_aff import qat
    >>> layer = tfmot.quantization.keras.quantize_annotate_layer(
    ...     tf_keras.layers.Multiply(), qat.OutputQuantizeConfig()
    ... )
    """

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [
            _qk.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False
            )
        ]

    def get_config(self):
        return {}


def _custom_objects():
    objects = {"OutputQuantizeConfig": OutputQuantizeConfig}
    for cls in _FUSION_CLASSES:
        objects[cls.__name__] = cls
        objects[f"keras_aff>{cls.__name__}"] = cls
    objects["keras_aff>OutputQuantizeConfig"] = OutputQuantizeConfig
    return objects


@contextlib.contextmanager
def quantize_scope():
    """tfmot's `quantize_scope` with the keras_aff classes registered.

    Needed to load a saved QAT model (`tf_keras.models.load_model`) and for
    `quantize_apply` on models annotated by hand.

    Example:

    >>> import tf_keras
    >>> from keras_aff import qat
    >>> with qat.quantize_scope():  # doctest: +SKIP
    ...     model = tf_keras.models.load_model("qat_savedmodel")
    """
    with _qk.quantize_scope(_custom_objects()):
        yield


# ---------------------------------------------------------------------------
# Stock-layer blocks
# ---------------------------------------------------------------------------
def _is_tf_keras_tensor(value):
    try:
        return tf_keras.backend.is_keras_tensor(value)
    except ValueError:  # not a tensor at all (numpy, Keras 3 tensor, ...)
        return False


def _check_tf_keras_tensor(name, value, arg):
    if not _is_tf_keras_tensor(value):
        raise TypeError(
            f"`{name}` builds a tf_keras functional graph: `{arg}` must be a "
            "tf_keras symbolic tensor (from `tf_keras.Input` or a tf_keras "
            "layer). A Keras 3 tensor cannot be used here; build the model "
            "with tf_keras. "
            f"Received: {arg}={value!r} (of type {type(value).__name__})"
        )


def _spec(cls, name, shapes, kwargs):
    """The legacy fusion layer itself, built to validate and to read from.

    Its constructor and `build` run the shared argument and shape checks
    and create the gate sublayers (their names, kinds, conv and BN
    settings); the block copies those sublayers' configs.
    """
    spec = cls(name=name, **kwargs)
    spec.build(shapes)
    shape = shapes if cls is legacy.MSCAM else shapes[0]
    if len(shape) != 4 or spec.data_format != "channels_last":
        raise ValueError(
            f"The stock-layer block '{name}' supports 4-D channels_last "
            "inputs only: tfmot quantizes Conv2D but not Conv1D/Conv3D, and "
            "LiteRT runs NHWC. Use the layer (`keras_aff.legacy."
            f"{cls.__name__}`) otherwise. Received: input_shape="
            f"{tuple(shape)}, data_format={spec.data_format!r}"
        )
    return spec


def _clone(layer, path):
    config = layer.get_config()
    config["name"] = f"{path}/{layer.name}"
    return type(layer).from_config(config)


def _gate_block(z, gate, prefix):
    """sigmoid(B1(z) + B2(z)) from stock layers; `gate` is a built gate."""
    layers = tf_keras.layers
    path = f"{prefix}/{gate.name}"
    logits = []
    for branch in (gate.branch1, gate.branch2):
        bpath = f"{path}/{branch.name}"
        h = z
        if branch.kind == "global":
            h = layers.GlobalAveragePooling2D(
                keepdims=True, name=f"{bpath}/pool"
            )(h)
        h = _clone(branch.conv1, bpath)(h)
        h = _clone(branch.bn1, bpath)(h)
        h = layers.ReLU(name=f"{bpath}/relu")(h)
        h = _clone(branch.conv2, bpath)(h)
        h = _clone(branch.bn2, bpath)(h)
        logits.append(h)
    s = layers.Add(name=f"{path}/add")(logits)
    return layers.Activation("sigmoid", name=f"{path}/sigmoid")(s)


def _blend(x, y, d, w, prefix, tag):
    # y + w * (x - y), the shared blend (`FusionMixin._blend`).
    layers = tf_keras.layers
    wd = layers.Multiply(name=f"{prefix}/weighted{tag}")([w, d])
    return layers.Add(name=f"{prefix}/blend{tag}")([y, wd])


def _scale(out, spec):
    if spec.output_scale == 1.0:
        return out
    return tf_keras.layers.Rescaling(
        spec.output_scale, name=f"{spec.name}/scale"
    )(out)


def mscam_block(x, name="ms_cam", **kwargs):
    """`x * M(x)` (`keras_aff.legacy.MSCAM`) from stock tf_keras layers.

    Same arguments as the layer; the block checks them with the layer's own
    code, takes its sublayer settings from it and gives its weights the
    layer's variable paths (`ms_cam/attention/local/conv1/kernel`), so
    `keras_aff.legacy.copy_weights` moves weights between the two. Every
    layer is one tfmot supports (with `OutputQuantizeConfig` for the final
    Multiply), so the QAT model converts to fully int8 LiteRT.

    Args:
        x: tf_keras symbolic tensor, 4-D channels_last.
        name: str, default "ms_cam". Prefix of every layer name; use the
            fusion layer's name to port its weights.
        **kwargs: the arguments of `keras_aff.legacy.MSCAM`
            (`reduction_ratio`, `use_bias`, `bn_momentum`, ...).

    Returns:
        The output tensor.

    Example:

    >>> import tf_keras
    >>> from keras_aff import qat
    >>> x = tf_keras.Input((8, 8, 16))
    >>> qat.mscam_block(x, reduction_ratio=4).shape
    TensorShape([None, 8, 8, 16])
    """
    _check_tf_keras_tensor("mscam_block", x, "x")
    spec = _spec(legacy.MSCAM, name, x.shape, kwargs)
    w = _gate_block(x, spec.attention, name)
    return tf_keras.layers.Multiply(name=f"{name}/mul")([x, w])


def _pair(fn_name, cls, x, y, name, kwargs):
    _check_tf_keras_tensor(fn_name, x, "x")
    _check_tf_keras_tensor(fn_name, y, "y")
    spec = _spec(cls, name, [x.shape, y.shape], kwargs)
    layers = tf_keras.layers
    s = layers.Add(name=f"{name}/sum")([x, y])
    d = layers.Subtract(name=f"{name}/diff")([x, y])
    return spec, s, d


def aff_block(x, y, name="aff", **kwargs):
    """AFF (`keras_aff.legacy.AFF`) from stock tf_keras layers.

    `w = M(x + y)`, output `output_scale * (y + w * (x - y))`. Same
    arguments as the layer; the block checks them with the layer's own code,
    takes its sublayer settings from it and gives its weights the layer's
    variable paths (`aff/attention/local/conv1/kernel`), so
    `keras_aff.legacy.copy_weights` moves weights between a Keras 3 or
    tf_keras `AFF` and the block. Under tfmot every 1x1 Conv+BN is folded
    and every op boundary gets a fake-quant, so the QAT model converts to
    fully int8 LiteRT without a representative dataset.

    Args:
        x: tf_keras symbolic tensor, 4-D channels_last (weighted by `w`).
        y: tf_keras symbolic tensor of the same shape.
        name: str, default "aff". Prefix of every layer name; use the
            fusion layer's name to port its weights.
        **kwargs: the arguments of `keras_aff.legacy.AFF`
            (`reduction_ratio`, `output_scale`, `use_bias`, ...).

    Returns:
        The output tensor.

    Example:

    >>> import tf_keras
    >>> from keras_aff import qat
    >>> x = tf_keras.Input((8, 8, 16))
    >>> y = tf_keras.Input((8, 8, 16))
    >>> qat.aff_block(x, y, reduction_ratio=4).shape
    TensorShape([None, 8, 8, 16])
    """
    spec, s, d = _pair("aff_block", legacy.AFF, x, y, name, kwargs)
    w = _gate_block(s, spec.attention, name)
    return _scale(_blend(x, y, d, w, name, ""), spec)


def iaff_block(x, y, name="iaff", **kwargs):
    """iAFF (`keras_aff.legacy.IAFF`) from stock tf_keras layers.

    `w1 = M1(x + y)`, `xi = y + w1 * (x - y)`, `w2 = M2(xi)`, output
    `output_scale * (y + w2 * (x - y))`. See `aff_block`: same arguments
    as the layer, its checks, sublayer settings and variable paths
    (`iaff/attention2/global/conv1/kernel`).

    Args:
        x: tf_keras symbolic tensor, 4-D channels_last.
        y: tf_keras symbolic tensor of the same shape.
        name: str, default "iaff". Prefix of every layer name.
        **kwargs: the arguments of `keras_aff.legacy.IAFF`.

    Returns:
        The output tensor.

    Example:

    >>> import tf_keras
    >>> from keras_aff import qat
    >>> x = tf_keras.Input((8, 8, 16))
    >>> y = tf_keras.Input((8, 8, 16))
    >>> qat.iaff_block(x, y, reduction_ratio=4).shape
    TensorShape([None, 8, 8, 16])
    """
    spec, s, d = _pair("iaff_block", legacy.IAFF, x, y, name, kwargs)
    w1 = _gate_block(s, spec.attention1, name)
    xi = _blend(x, y, d, w1, name, "1")
    w2 = _gate_block(xi, spec.attention2, name)
    return _scale(_blend(x, y, d, w2, name, "2"), spec)


_BLOCKS = {
    legacy.MSCAM: mscam_block,
    legacy.AFF: aff_block,
    legacy.IAFF: iaff_block,
}


def _block_for(layer, inputs):
    config = layer.get_config()
    for key in ("name", "trainable", "dtype"):
        config.pop(key, None)
    return _BLOCKS[type(layer)](*_as_list(inputs), name=layer.name, **config)


def _as_list(inputs):
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    return [inputs]


# ---------------------------------------------------------------------------
# Model-level helpers
# ---------------------------------------------------------------------------
def _check_functional(fn_name, model):
    if not isinstance(model, tf_keras.Model):
        raise TypeError(
            f"`{fn_name}` needs a tf_keras (Keras 2) model: tfmot 0.8 rejects "
            "Keras 3 models. Build the same model with `tf_keras.layers` and "
            "`keras_aff.legacy` layers (same layer names) and move the "
            "weights with `keras_aff.legacy.copy_weights(keras3_model, "
            f"twin)`. Received: model of type {type(model).__module__}."
            f"{type(model).__name__}"
        )
    if not getattr(model, "_is_graph_network", False):
        raise TypeError(
            f"`{fn_name}` needs a functional or Sequential tf_keras model "
            "(tfmot cannot quantize subclassed models). Received: "
            f"model={model.name!r} of type {type(model).__name__}"
        )


def unroll_fusion_layers(model):
    """Rebuilds a tf_keras model with every fusion layer as stock layers.

    Each `keras_aff.legacy.MSCAM`, `AFF` and `IAFF` becomes its
    `mscam_block` / `aff_block` / `iaff_block`, named after the layer; every
    other layer is re-created from its config. All weights are then copied
    from `model` by variable path (`keras_aff.legacy.copy_weights`, strict),
    so the new model computes the same function and shares no state with
    `model`.

    Args:
        model: a functional or Sequential tf_keras model. Fusion layers must
            be 4-D channels_last, called once, and at the top level (not
            inside a nested model).

    Returns:
        A new functional tf_keras model.

    Example:

    >>> import tf_keras
    >>> from keras_aff import legacy, qat
    >>> x = tf_keras.Input((8, 8, 16))
    >>> y = tf_keras.Input((8, 8, 16))
    >>> m = tf_keras.Model([x, y], legacy.AFF(name="aff")([x, y]))
    >>> unrolled = qat.unroll_fusion_layers(m)
    >>> [l.name for l in unrolled.layers if "/local/" in l.name][:2]
    ['aff/attention/local/conv1', 'aff/attention/local/bn1']
    """
    _check_functional("unroll_fusion_layers", model)
    for layer in model.layers:
        if isinstance(layer, tf_keras.Model) and any(
            isinstance(sub, _FUSION_CLASSES) for sub in layer.submodules
        ):
            raise ValueError(
                "`unroll_fusion_layers` unrolls fusion layers at the top "
                "level of a model only; this nested model holds some. Build "
                "the model flat or unroll the nested model first. "
                f"Received: nested model {layer.name!r}"
            )
        if isinstance(layer, _FUSION_CLASSES) and len(layer.inbound_nodes) > 1:
            raise ValueError(
                "`unroll_fusion_layers` cannot unroll a fusion layer that is "
                "called more than once (shared weights). Received: layer "
                f"{layer.name!r} called {len(layer.inbound_nodes)} times"
            )
    tensors = {}
    new_inputs = []
    for old in model.inputs:
        input_layer = old._keras_history.layer
        new = tf_keras.Input(type_spec=old.type_spec, name=input_layer.name)
        tensors[id(old)] = new
        new_inputs.append(new)

    def mapped(t):
        if _is_tf_keras_tensor(t):
            return tensors[id(t)]
        return t

    clones = {}
    # tf_keras keeps the graph as nodes by depth (inputs deepest); this is
    # the order its own `Functional._run_internal_graph` uses.
    nodes_by_depth = model._nodes_by_depth
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            if node.is_input:
                continue
            layer = node.layer
            args = tf.nest.map_structure(mapped, node.call_args)
            kwargs = tf.nest.map_structure(mapped, node.call_kwargs)
            if isinstance(layer, _FUSION_CLASSES):
                kwargs.pop("training", None)
                if kwargs:
                    raise ValueError(
                        "`unroll_fusion_layers` supports fusion layers called "
                        f"with their inputs only. Received: layer "
                        f"{layer.name!r} called with {sorted(kwargs)}"
                    )
                outputs = _block_for(layer, args[0])
            else:
                if layer.name not in clones:
                    clones[layer.name] = type(layer).from_config(
                        layer.get_config()
                    )
                outputs = clones[layer.name](*args, **kwargs)
            for old, new in zip(
                tf.nest.flatten(node.outputs), tf.nest.flatten(outputs)
            ):
                tensors[id(old)] = new
    outputs = tf.nest.map_structure(
        lambda t: tensors[id(t)], model._nested_outputs
    )
    unrolled = tf_keras.Model(new_inputs, outputs, name=model.name)
    legacy.copy_weights(model, unrolled)
    return unrolled


def _annotate(layer):
    if isinstance(
        layer,
        (
            tf_keras.layers.Multiply,
            tf_keras.layers.Subtract,
            tf_keras.layers.Rescaling,
        )
        + _FUSION_CLASSES,
    ):
        return _qk.quantize_annotate_layer(layer, OutputQuantizeConfig())
    return layer


def quantize_model(model, unroll=True):
    """Quantization-aware training model (tfmot, default 8-bit scheme).

    With `unroll=True` (the default and the recommended path) every legacy
    fusion layer is first replaced by its stock-layer block
    (`unroll_fusion_layers`); the QAT model then converts to a fully int8
    LiteRT model without a representative dataset, and the int8 model
    tracks the QAT model closely. With `unroll=False` each fusion layer is
    kept and only its output is fake-quantized (`OutputQuantizeConfig`):
    the interior trains in float and its int8 ranges come from the
    converter's representative dataset (less faithful).

    Multiply, Subtract and Rescaling layers get `OutputQuantizeConfig`
    (tfmot's default registry lacks them); every other layer is annotated
    with tfmot's defaults. Weights carry over from `model`.

    Args:
        model: a functional or Sequential tf_keras model (use
            `keras_aff.legacy` layers; see `keras_aff.legacy.copy_weights`
            to bring weights from a Keras 3 model).
        unroll: bool, default True.

    Returns:
        A new tf_keras model ready for `compile`/`fit`. Save it with
        `save(path, save_format="tf")` or `save_weights`, and load it inside
        `quantize_scope()`.

    Example:

    >>> import tf_keras
    >>> from keras_aff import legacy, qat
    >>> x = tf_keras.Input((8, 8, 3))
    >>> a = tf_keras.layers.Conv2D(16, 3, padding="same", name="a")(x)
    >>> b = tf_keras.layers.Conv2D(16, 1, name="b")(x)
    >>> f = legacy.AFF(name="aff")([a, b])
    >>> out = tf_keras.layers.GlobalAveragePooling2D(name="gap")(f)
    >>> q = qat.quantize_model(tf_keras.Model(x, out))
    >>> q.layers[1].name
    'quantize_layer'
    """
    _check_functional("quantize_model", model)
    _impl.validate_bool("unroll", unroll)
    if unroll:
        model = unroll_fusion_layers(model)
    with quantize_scope():
        # `_annotate` returns the layers themselves (wrapped or not), so the
        # annotated model holds `model`'s weights; quantize_apply copies them.
        annotated = tf_keras.models.clone_model(model, clone_function=_annotate)
        annotated = _qk.quantize_annotate_model(annotated)
        return _qk.quantize_apply(annotated)


def calibrate_ranges(model, x):
    """Sets a QAT model's quantization ranges to those observed on `x`.

    tfmot starts every moving-average activation range at [-6, 6] and moves
    it with an EMA of decay 0.999: after 1,000 training steps it still
    holds 37 % of the initial value, so a short QAT fine-tune trains and
    converts with ranges far wider than the activations (coarse int8
    steps). This runs one training-mode pass over `x` with the EMA decay
    set to 0, so each activation range becomes the observed
    [min(batch), max(batch)] (with 0 included, as tfmot requires);
    fine-tuning then continues the EMA from there. The input range and the
    weight ranges are set as a training step would set them. Every other
    variable (BatchNormalization statistics, weights, tfmot's step
    counters) is restored afterwards.

    It works by wrapping tfmot 0.8's `quant_ops` range functions for the
    duration of the call (eager mode only).

    Args:
        model: a QAT model from `quantize_model` (or tfmot's
            `quantize_apply`).
        x: numpy array, one batch of representative inputs (a few hundred
            samples; BatchNormalization runs on batch statistics).

    Returns:
        The number of (min, max) range pairs set.

    Example:

    >>> from keras_aff import qat
    >>> q = qat.quantize_model(twin)  # doctest: +SKIP
    >>> qat.calibrate_ranges(q, x_train[:256])  # doctest: +SKIP
    58
    """
    from tensorflow_model_optimization.python.core.quantization.keras import (
        quant_ops,
    )

    if not tf.executing_eagerly():
        raise RuntimeError(
            "`calibrate_ranges` runs eagerly; call it outside tf.function. "
            "Received: a call in graph mode"
        )
    saved = [(v, v.numpy()) for v in model.weights]
    ranges = set()
    originals = {
        name: getattr(quant_ops, name)
        for name in (
            "MovingAvgQuantize",
            "LastValueQuantize",
            "AllValuesQuantize",
        )
    }

    def recording(name):
        def quantize(inputs, min_var, max_var, *args, **kwargs):
            if name == "MovingAvgQuantize":
                kwargs["ema_decay"] = 0.0
            ranges.update((id(min_var), id(max_var)))
            return originals[name](inputs, min_var, max_var, *args, **kwargs)

        return quantize

    for name in originals:
        setattr(quant_ops, name, recording(name))
    try:
        model(np.asarray(x, dtype=np.float32), training=True)
    finally:
        for name, fn in originals.items():
            setattr(quant_ops, name, fn)
    for variable, value in saved:
        if id(variable) not in ranges:
            variable.assign(value)
    return len(ranges) // 2


# ---------------------------------------------------------------------------
# LiteRT int8 conversion and checks
# ---------------------------------------------------------------------------
_INTEGER_AUX = ("int32", "int64")


def _interpreter(tflite_model):
    """An interpreter for inspection (builtin kernels: no delegate has to
    accept the model to list its tensors)."""
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError:  # pragma: no cover - depends on the environment
        from tensorflow.lite.python import interpreter as litert
    return litert.Interpreter(
        model_content=bytes(tflite_model),
        experimental_op_resolver_type=(
            litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )


def inspect_litert(tflite_model: bytes) -> dict:
    """Op counts and tensor dtypes of a LiteRT model; finds float islands.

    A tensor that flows between two ops (produced by one op, read by
    another) must be int8. Constant tensors may be int8 (weights) or int32
    (biases, axes, shapes). Float tensors are allowed only at the model's
    input and output, and only where a QUANTIZE op reads the input or a
    DEQUANTIZE op writes the output (float I/O); any other float tensor, or
    a QUANTIZE/DEQUANTIZE op elsewhere, is a float island.

    Args:
        tflite_model: bytes of a `.tflite` flatbuffer.

    Returns:
        A dict: `ops` (op name -> count), `tensor_dtypes` (dtype -> count),
        `float_islands` (list of "tensor 'name' (dtype) ..." strings; empty
        when the model is fully int8), `fully_int8` (bool), `input_dtypes`
        and `output_dtypes`, `output_step` (the output's quantization
        scale; 0.0 for a float output), `size_bytes`.

    Example:

    >>> from keras_aff import qat
    >>> with open("model.tflite", "rb") as f:  # doctest: +SKIP
    ...     report = qat.inspect_litert(f.read())
    >>> report["fully_int8"], report["ops"]["CONV_2D"]  # doctest: +SKIP
    (True, 17)
    """
    interp = _interpreter(tflite_model)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    inputs = {d["index"] for d in interp.get_input_details()}
    outputs = {d["index"] for d in interp.get_output_details()}
    producers, consumers = {}, {}
    for op in ops:
        for i in op["outputs"]:
            producers[i] = op["op_name"]
        for i in op["inputs"]:
            if i >= 0:
                consumers.setdefault(i, []).append(op["op_name"])
    islands = []

    def dtype(i):
        return np.dtype(tensors[i]["dtype"]).name

    for i in tensors:
        name, dt = tensors[i]["name"], dtype(i)
        if dt == "int8":
            continue
        if i in inputs and set(consumers.get(i, [])) <= {"QUANTIZE"}:
            continue
        if i in outputs and producers.get(i) == "DEQUANTIZE":
            continue
        constant = i not in producers and i not in inputs
        if constant and dt in _INTEGER_AUX:
            continue
        if i not in producers and i not in consumers and i not in outputs:
            continue  # unused tensor
        where = f"made by {producers.get(i, 'a constant')}, read by " + (
            ", ".join(sorted(set(consumers.get(i, [])))) or "nothing"
        )
        islands.append(f"tensor {name!r} ({dt}) {where}")
    for op in ops:
        if op["op_name"] == "QUANTIZE" and not set(op["inputs"]) <= inputs:
            islands.append(f"QUANTIZE op {op['index']} inside the graph")
        if op["op_name"] == "DEQUANTIZE" and not set(op["outputs"]) <= outputs:
            islands.append(f"DEQUANTIZE op {op['index']} inside the graph")
    # The quantization step of the output: of the output tensor itself
    # (int8 I/O) or of the tensor a final DEQUANTIZE reads (float I/O).
    step = 0.0
    for i in sorted(outputs):
        source = i
        for op in ops:
            if i in op["outputs"] and op["op_name"] == "DEQUANTIZE":
                source = op["inputs"][0]
        step = max(step, float(tensors[source]["quantization"][0]))
    op_counts, dtype_counts = {}, {}
    for op in ops:
        op_counts[op["op_name"]] = op_counts.get(op["op_name"], 0) + 1
    for i in tensors:
        dtype_counts[dtype(i)] = dtype_counts.get(dtype(i), 0) + 1
    return {
        "ops": dict(sorted(op_counts.items())),
        "tensor_dtypes": dict(sorted(dtype_counts.items())),
        "float_islands": islands,
        "fully_int8": not islands,
        "input_dtypes": [dtype(i) for i in sorted(inputs)],
        "output_dtypes": [dtype(i) for i in sorted(outputs)],
        "output_step": step,
        "size_bytes": len(tflite_model),
    }


def _convert(model, representative_dataset, int8_io):
    """Flatbuffer of `model(x, training=False)`, variables frozen.

    `from_keras_model` first writes and re-reads a full Keras SavedModel:
    ~20x slower for a tf_keras QAT model (592 traced functions for a small
    CNN), same flatbuffer. `from_concrete_functions` with the model as
    `trackable_obj` is as slow for tf_keras and leaves a Keras 3 model's
    variables unfrozen (NaN outputs); without any trackable it takes a
    deprecated path that writes no signature. So: freeze the function, and
    give an empty `tf.Module` as the trackable, which yields a
    `serving_default` signature (input named after the model's input) that
    `keras_aff.export.load_artifact` runs.
    """
    from tensorflow.python.framework import convert_to_constants

    x = model.inputs[0]
    name = getattr(getattr(x, "_keras_history", None), "layer", None)
    spec = tf.TensorSpec(
        [None] + list(x.shape[1:]),
        x.dtype,
        name=getattr(name, "name", None) or "inputs",
    )

    def serve(inputs):
        return model(inputs, training=False)

    # autograph=False: the model call needs no conversion (Keras converts
    # its layers itself).
    fn = tf.function(serve, autograph=False).get_concrete_function(spec)
    frozen = convert_to_constants.convert_variables_to_constants_v2(fn)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [frozen], tf.Module()
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if representative_dataset is not None:
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # A QAT model's input range comes from its QuantizeLayer; the
        # converter still warns that no input statistics were given.
        warnings.filterwarnings(
            "ignore", message="Statistics for quantized inputs were expected"
        )
        return converter.convert()


def _run(tflite_model, inputs):
    """(float outputs, whether XNNPACK ran them), through the project's
    LiteRT runner (int8 I/O quantized with the model's scales; builtin
    kernels where XNNPACK refuses the model)."""
    import keras_aff.export

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(tflite_model)
        predictor = keras_aff.export.load_artifact(path)
        (outputs,) = predictor(inputs)
        return np.asarray(outputs, dtype=np.float32), predictor.xnnpack


def _is_qat(model):
    return any(
        type(layer).__module__.startswith("tensorflow_model_optimization")
        for layer in model.layers
    )


def convert_to_int8_litert(
    model,
    sample_inputs,
    representative_dataset=None,
    int8_io: bool = True,
    tolerance: float = 0.15,
    path=None,
) -> tuple:
    """Converts to a fully int8 LiteRT model and verifies it.

    A QAT model (`quantize_model`) carries its own ranges and needs no
    representative dataset. A QAT model built with `unroll=False`, or a
    float tf_keras model (post-training quantization), needs
    `representative_dataset`. For post-training quantization of a Keras 3
    model, `keras_aff.export.export_litert(model, path, quantization="int8",
    representative_data=...)` is the project's exporter; `inspect_litert`
    checks its output is fully int8.

    The flatbuffer has a `serving_default` signature (input named after the
    model's input layer), so `keras_aff.export.load_artifact(path)` runs it
    with float inputs and outputs.

    Two checks run before anything is returned or written; each raises
    `ValueError` with the details:

    1. `inspect_litert`: every tensor between ops is int8, no
       QUANTIZE/DEQUANTIZE inside the graph.
    2. Numerics: on `sample_inputs`, the max absolute difference between
       the LiteRT output and the Keras model's output (QAT: the fake-quant
       model; PTQ: the float model) must be at most `tolerance * (max - min
       of the Keras output)`, and never less than 2 output quantization
       steps. int8 rounds every activation, so the tolerance is relative to
       the output range. The report also gives the mean absolute error and
       the top-1 agreement for class scores.

    Args:
        model: a tf_keras model (QAT or float) with one input.
        sample_inputs: numpy array, a batch of inputs for the numeric check.
        representative_dataset: optional callable yielding `[batch]` lists,
            as `TFLiteConverter.representative_dataset`. Required for float
            models.
        int8_io: bool, default True: int8 input and output (the model is
            int8 end to end). False keeps float32 I/O (one QUANTIZE at the
            input, one DEQUANTIZE at the output).
        tolerance: float, default 0.15. Allowed max absolute error as a
            fraction of the Keras output range. Measured on the digits
            example: QAT 0.4-8 % of the range (one outlier run), PTQ 3-8 %;
            the converter bugs this guards against (e.g. swapped operands)
            give 30 % and more.
        path: optional file path; the flatbuffer is written there after the
            checks pass.

    Returns:
        `(tflite_bytes, report)`: `report` is `inspect_litert`'s dict plus
        `max_abs_error`, `mean_abs_error`, `tolerance_abs`, `output_range`,
        `top1_agreement`
        (None for non-2-D outputs), `xnnpack` (False when the XNNPACK
        delegate refused the model, e.g. a requantization scale >= 256 after
        a dead ReLU, and the builtin kernels ran it) and `path`.

    Example:

    >>> from keras_aff import qat
    >>> q = qat.quantize_model(twin)  # doctest: +SKIP
    >>> q.compile("adam", loss)  # doctest: +SKIP
    >>> q.fit(x_train, y_train, epochs=2)  # doctest: +SKIP
    >>> tfl, report = qat.convert_to_int8_litert(q, x[:64])  # doctest: +SKIP
    >>> report["fully_int8"]  # doctest: +SKIP
    True
    """
    _impl.validate_bool("int8_io", int8_io)
    if not (isinstance(tolerance, (int, float)) and tolerance > 0):
        raise ValueError(
            "Expected `tolerance` to be a positive number. "
            f"Received: tolerance={tolerance!r}"
        )
    if representative_dataset is None and not (
        isinstance(model, tf_keras.Model) and _is_qat(model)
    ):
        raise ValueError(
            "A float model needs a `representative_dataset` for int8 "
            "post-training quantization (only a QAT model from "
            "`keras_aff.qat.quantize_model` carries its own ranges). "
            "Received: representative_dataset=None"
        )
    if len(model.inputs) != 1:
        raise ValueError(
            "`convert_to_int8_litert` converts and checks single-input models. "
            f"Received: a model with {len(model.inputs)} inputs"
        )
    tflite_model = _convert(model, representative_dataset, int8_io)
    report = inspect_litert(tflite_model)
    islands = report["float_islands"]
    if islands:
        shown = "; ".join(islands[:6])
        if len(islands) > 6:
            shown += f"; ... ({len(islands) - 6} more)"
        raise ValueError(
            f"The LiteRT model is not fully int8: {len(islands)} float "
            f"tensor(s) or (de)quantize op(s) inside the graph: {shown}. "
            f"Ops: {report['ops']}. Use `quantize_model(model)` (unroll="
            "True) or pass a `representative_dataset`. Received: "
            f"model={model.name!r}"
        )
    sample_inputs = np.asarray(sample_inputs, dtype=np.float32)
    expected = np.asarray(model(sample_inputs, training=False))
    got, xnnpack = _run(tflite_model, sample_inputs)
    error = float(np.max(np.abs(got - expected)))
    mean_error = float(np.mean(np.abs(got - expected)))
    output_range = float(expected.max() - expected.min())
    step = report["output_step"]
    allowed = max(tolerance * output_range, 2.0 * step)
    top1 = None
    if expected.ndim == 2 and expected.shape[1] > 1:
        top1 = float(
            np.mean(np.argmax(got, axis=1) == np.argmax(expected, axis=1))
        )
    report.update(
        max_abs_error=error,
        mean_abs_error=mean_error,
        output_range=output_range,
        tolerance=tolerance,
        tolerance_abs=allowed,
        top1_agreement=top1,
        xnnpack=xnnpack,
        path=None,
    )
    if not error <= allowed:
        raise ValueError(
            "The int8 LiteRT model does not match the Keras model: max abs "
            f"error {error:.4g} > tolerance {allowed:.4g} (the larger of "
            f"{tolerance} x output range {output_range:.4g} and 2 output "
            f"quantization steps of {step:.4g}) on {len(sample_inputs)} "
            f"samples. Received: tolerance={tolerance}"
        )
    if path is not None:
        with open(path, "wb") as f:
            f.write(tflite_model)
        report["path"] = str(path)
    return tflite_model, report
