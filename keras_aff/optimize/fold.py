"""Folding inference-mode BatchNormalization into the preceding conv.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

In inference a BatchNormalization is a per-channel affine map,
`z * scale + shift` with `scale = gamma / sqrt(moving_variance + epsilon)`
and `shift = beta - moving_mean * scale`; after a conv (or a Dense) it
folds into that conv's kernel and bias. `fold_batchnorm` rewrites a model
so: every such pair of the graph, and every gate branch of the MSCAM, AFF
and IAFF layers (which become `use_batch_norm=False` layers with folded
convs).
"""

import dataclasses

import keras
import numpy as np

from keras_aff import _validation
from keras_aff.layers import AFF
from keras_aff.layers import IAFF
from keras_aff.layers import MSCAM
from keras_aff.layers import MultiAFF

FUSION_LAYERS = (MSCAM, AFF, IAFF, MultiAFF)
GATES = ("attention", "attention1", "attention2")


@dataclasses.dataclass
class FoldReport:
    """What `fold_batchnorm(..., return_report=True)` folded.

    Attributes:
        pairs: list of `(conv_name, batch_norm_name)` folded in the graph
            (nested models' pairs with the nested model's name as a
            prefix, `"inner/conv"`).
        fusion_layers: names of the MSCAM/AFF/IAFF layers whose gates were
            folded (4 BatchNormalizations per gate).
        batch_norms_before, batch_norms_after: BatchNormalization layers
            in the model (those inside fusion layers included).

    Example:

    >>> from keras_aff.optimize import FoldReport
    >>> FoldReport([("conv", "bn")], [], 1, 0).batch_norms_folded
    1
    """

    pairs: list
    fusion_layers: list
    batch_norms_before: int
    batch_norms_after: int

    @property
    def batch_norms_folded(self):
        return self.batch_norms_before - self.batch_norms_after


def _foldable_producer(layer):
    """The kernel layout of a layer a following BN folds into, else None:
    "conv" (out channels last), "depthwise" (in * multiplier) or None."""
    layers = keras.layers
    convs = (layers.Conv1D, layers.Conv2D, layers.Conv3D, layers.Dense)
    depthwise = (layers.DepthwiseConv1D, layers.DepthwiseConv2D)
    if isinstance(layer, (layers.Conv1DTranspose, layers.Conv2DTranspose)):
        return None
    if isinstance(layer, layers.Conv3DTranspose):
        return None
    if not isinstance(layer, convs + depthwise):
        return None
    if keras.activations.serialize(layer.activation) != "linear":
        return None  # the BN follows the activation: nothing to fold
    return "depthwise" if isinstance(layer, depthwise) else "conv"


def _channel_axis(layer, rank):
    fmt = getattr(layer, "data_format", "channels_last")
    return 1 if fmt == "channels_first" else rank - 1


def _graph_nodes(model):
    return [n for nodes in model._nodes_by_depth.values() for n in nodes]


def _foldable_pairs(model):
    """`{id(bn): (bn, conv)}` for every BN of `model`'s own graph that is the
    only consumer of a linear conv's output and normalizes its channels."""
    nodes = _graph_nodes(model)
    calls, consumers = {}, {}
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        for t in node.input_tensors:
            consumers[id(t)] = consumers.get(id(t), 0) + 1
    outputs = {id(t) for t in model.outputs}
    pairs = {}
    for node in nodes:
        bn = node.operation
        if not isinstance(bn, keras.layers.BatchNormalization):
            continue
        if calls[id(bn)] != 1 or len(node.input_tensors) != 1:
            continue
        if node.arguments.kwargs.get("training") is not None:
            continue  # a pinned training mode: keep the BN
        tensor = node.input_tensors[0]
        conv = tensor._keras_history.operation
        if (
            _foldable_producer(conv) is None
            or calls.get(id(conv)) != 1
            or consumers[id(tensor)] != 1
            or id(tensor) in outputs
        ):
            continue
        rank = len(tensor.shape)
        if bn.axis % rank != _channel_axis(conv, rank):
            continue
        pairs[id(bn)] = (bn, conv)
    return pairs


def _bn_affine(bn):
    """`(scale, shift)` float64 arrays of an inference-mode BN."""
    get = keras.ops.convert_to_numpy
    mean = get(bn.moving_mean).astype(np.float64)
    var = get(bn.moving_variance).astype(np.float64)
    # A negative variance (a corrupt checkpoint) gives NaN, as the BN
    # itself does; the exporters name the model's NaN outputs.
    with np.errstate(invalid="ignore"):
        scale = 1.0 / np.sqrt(var + bn.epsilon)
    if bn.scale:
        scale = scale * get(bn.gamma).astype(np.float64)
    shift = -mean * scale
    if bn.center:
        shift = shift + get(bn.beta).astype(np.float64)
    return scale, shift


def _folded(conv, bn, layout):
    """`[kernel, bias]` of `conv` with `bn` folded in (float64)."""
    get = keras.ops.convert_to_numpy
    kernel = get(conv.kernel).astype(np.float64)
    scale, shift = _bn_affine(bn)
    if layout == "depthwise":  # (*k, in, multiplier): out = in * m + j
        kernel = kernel * scale.reshape(kernel.shape[-2:])
    else:
        kernel = kernel * scale
    bias = np.zeros_like(scale)
    if conv.use_bias:
        bias = get(conv.bias).astype(np.float64)
    return [kernel, bias * scale + shift]


def _assign(layer, values):
    for variable, value in zip((layer.kernel, layer.bias), values):
        variable.assign(value.astype(variable.dtype))


def _copy_fusion(old, new):
    """Folds every gate branch of fusion layer `old` into `new` (built,
    `use_batch_norm=False`); an alignment projection (`align_inputs=True`)
    is copied as it is."""
    projection = getattr(old, "projection", None)
    if projection is not None:
        for target, source in zip(new.projection.weights, projection.weights):
            target.assign(source)
    for name in GATES:
        if not hasattr(old, name):
            continue
        for branch in ("branch1", "branch2"):
            src = getattr(getattr(old, name), branch)
            dst = getattr(getattr(new, name), branch)
            for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
                src_conv, src_bn = getattr(src, conv), getattr(src, bn)
                _assign(getattr(dst, conv), _folded(src_conv, src_bn, "conv"))


def count_batch_norms(model):
    """BatchNormalization layers in `model`, those inside fusion layers and
    nested models included.

    Example:

    >>> from keras_aff.optimize import fold
    >>> x = keras.Input((8, 8, 16))
    >>> y = keras_aff.layers.AFF()([x, x])
    >>> fold.count_batch_norms(keras.Model(x, y))  # 2 branches x 2 BNs
    4
    """
    return sum(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in model._flatten_layers(include_self=False)
    )


def fold_batchnorm(model, return_report=False):
    """Returns an equivalent inference model with every BatchNormalization
    that follows a conv folded into that conv.

    In inference a BatchNormalization is a per-channel affine map
    (`gamma * (z - moving_mean) / sqrt(moving_variance + epsilon) +
    beta`); after a conv it folds into the conv's kernel and bias. Folded
    here:

    - every `BatchNormalization` of the graph that is the only consumer of
      a `Conv1D`/`Conv2D`/`Conv3D`, `DepthwiseConv1D`/`DepthwiseConv2D` or
      `Dense` with a linear activation, called once, over the conv's
      channel axis (the conv gets a bias; the BN disappears);
    - the MS-CAM gates of every `MSCAM`, `AFF`, `IAFF` and `MultiAFF`
      layer (the attention branches): the layer becomes the same layer
      with `use_batch_norm=False, use_bias=True` and folded 1x1 convs (the
      projection of an `align_inputs=True` layer keeps its BatchNorm).

    Everything else is copied with its weights; nested functional and
    Sequential models are folded recursively. Outputs equal the original
    model's inference outputs (`training=False`) to float rounding, on
    every backend; the original model is left untouched. The folded model
    is for inference and export: trained further, it no longer normalizes.
    It saves and loads as `.keras` like any model of keras_aff layers.

    A Sequential model comes back as a Sequential model (it must be built);
    a functional model as a functional model. A subclassed model has no
    graph to rewrite: `TypeError` (fold the functional models it is made
    of instead).

    Args:
        model: a built Keras 3 functional or Sequential `keras.Model`.
        return_report: bool, default False. Also return a `FoldReport`.

    Returns:
        The folded model, or `(model, report)` with `return_report=True`.

    Example:

    >>> from keras_aff.optimize import fold_batchnorm
    >>> x = keras.Input((8, 8, 16))
    >>> h = keras.layers.Conv2D(16, 3, padding="same")(x)
    >>> h = keras.layers.BatchNormalization()(h)
    >>> model = keras.Model(x, keras_aff.layers.AFF()([h, x]))
    >>> folded, report = fold_batchnorm(model, return_report=True)
    >>> report.batch_norms_before, report.batch_norms_after
    (5, 0)
    >>> data = np.random.default_rng(0).normal(size=(2, 8, 8, 16))
    >>> np.allclose(folded(data), model(data), atol=1e-5)
    True
    """
    _validation.check_one_of_types(
        "model",
        model,
        (keras.Model,),
        "a Keras 3 functional or Sequential `keras.Model`",
    )
    return_report = _validation.check_bool("return_report", return_report)
    pairs, fusions = [], []
    folded = _fold_model(model, pairs, fusions, "")
    if not return_report:
        return folded
    report = FoldReport(
        pairs=pairs,
        fusion_layers=fusions,
        batch_norms_before=count_batch_norms(model),
        batch_norms_after=count_batch_norms(folded),
    )
    return folded, report


def _fold_model(model, pairs, fusions, prefix):
    if isinstance(model, keras.Sequential):
        return _fold_sequential(model, pairs, fusions, prefix)
    if not hasattr(model, "_nodes_by_depth"):
        raise TypeError(
            "Expected `model` to be a functional or Sequential keras.Model: "
            "a subclassed model's `call()` has no graph to rewrite (fold "
            "the functional models it is built from). "
            + _validation.received("model", type(model).__name__)
        )
    return _fold_functional(model, pairs, fusions, prefix)


def _fold_sequential(model, pairs, fusions, prefix):
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            "Expected `model` to be a built Sequential model (with an "
            "`Input`): its graph is what gets folded. "
            + _validation.received("model", model.name)
        )
    graph = keras.Model(inputs, outputs, name=model.name)
    folded = _fold_functional(graph, pairs, fusions, prefix)
    spec = inputs[0]
    layers = [keras.Input(batch_shape=spec.shape, dtype=spec.dtype)]
    layers += [
        layer
        for layer in folded.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    return keras.Sequential(layers, name=model.name)


def _fold_functional(model, pairs, fusions, prefix):
    bn_conv = _foldable_pairs(model)
    conv_bn = {id(conv): bn for bn, conv in bn_conv.values()}
    jobs = []

    def clone(layer):
        if id(layer) in bn_conv or not isinstance(layer, keras.layers.Layer):
            return layer  # a folded BN is never called; ops are stateless
        if isinstance(layer, keras.Model):
            return _fold_model(layer, pairs, fusions, f"{prefix}{layer.name}/")
        config = layer.get_config()
        kind = "copy"
        if id(layer) in conv_bn:
            config["use_bias"] = True
            kind = "conv"
            pairs.append(
                (prefix + layer.name, prefix + conv_bn[id(layer)].name)
            )
        elif isinstance(layer, FUSION_LAYERS) and layer.use_batch_norm:
            config.update(use_batch_norm=False, use_bias=True)
            kind = "fusion"
            fusions.append(prefix + layer.name)
        new = type(layer).from_config(config)
        jobs.append((kind, layer, new))
        return new

    def call(layer, *args, **kwargs):
        if id(layer) in bn_conv:
            return args[0]
        return layer(*args, **kwargs)

    new_model = keras.models.clone_model(
        model, clone_function=clone, call_function=call
    )
    for kind, old, new in jobs:
        if kind == "conv":
            layout = _foldable_producer(old)
            _assign(new, _folded(old, conv_bn[id(old)], layout))
        elif kind == "fusion":
            _copy_fusion(old, new)
        else:
            new.set_weights(old.get_weights())
    return new_model
