"""Retrofit AFF / iAFF into the residual additions of any functional model.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import dataclasses
import numbers

import keras
import numpy as np

from keras_aff.layers import AFF
from keras_aff.layers import IAFF

try:  # the Operation behind `x + y` / `keras.ops.add` on symbolic tensors
    from keras.src.ops.numpy import Add as _OpsAdd
except ImportError:  # pragma: no cover - a future Keras moved it
    _OpsAdd = None

_FUSIONS = ("aff", "iaff")
_FUSION_CLASSES = {"aff": AFF, "iaff": IAFF}


@dataclasses.dataclass
class AddSite:
    """One two-input addition found in the model graph.

    Attributes:
        name: the Add layer's (or `keras.ops.add` operation's) name.
        path: `name` prefixed by the names of the nested models holding it,
            e.g. "resnet50/conv2_block1_add".
        kind: "Add layer" (`keras.layers.Add`) or "ops.add" (`x + y` on
            symbolic tensors, as ConvNeXt writes its residuals).
        shapes: static shapes of the inputs.
        channels: channel count (None if unknown).
    """

    name: str
    path: str
    kind: str
    shapes: tuple
    channels: object


@dataclasses.dataclass
class RetrofitReport:
    """What `retrofit` replaced and what it left alone.

    Attributes:
        replaced: list of dicts, one per replaced addition: "path", "kind",
            "shape", "channels", "inter_channels", "fusion_layer" (name of
            the new layer) and "params" (its weight count, moving
            statistics included).
        skipped: list of dicts, one per addition left as it was: "path",
            "kind", "shape" and "reason".
        fusion: "aff" or "iaff".
        reduction_ratio: the attention bottleneck ratio used.
        params_before: weight count of the original model.
        params_after: weight count of the new model.
    """

    replaced: list
    skipped: list
    fusion: str
    reduction_ratio: int
    params_before: int = 0
    params_after: int = 0

    @property
    def params_added(self):
        return self.params_after - self.params_before

    def __str__(self):
        lines = [
            f"retrofit: {len(self.replaced)} addition(s) replaced by "
            f"{self.fusion.upper()} (reduction_ratio={self.reduction_ratio}), "
            f"{len(self.skipped)} left as they were; parameters "
            f"{self.params_before:,} -> {self.params_after:,} "
            f"(+{self.params_added:,})"
        ]
        for r in self.replaced:
            lines.append(
                f"  replaced {r['path']} ({r['kind']}, {r['shape']}) -> "
                f"{r['fusion_layer']} (+{r['params']:,})"
            )
        for s in self.skipped:
            lines.append(
                f"  skipped  {s['path']} ({s['kind']}, {s['shape']}): "
                f"{s['reason']}"
            )
        return "\n".join(lines)


def _count(model):
    return int(sum(int(np.prod(w.shape)) for w in model.weights))


def _is_sequential(obj):
    return isinstance(obj, keras.Sequential)


def _is_functional(obj):
    # Functional models (including subclasses of Functional, e.g. keras-hub
    # backbones) expose their graph; subclassed models do not.
    return (
        isinstance(obj, keras.Model)
        and not _is_sequential(obj)
        and hasattr(obj, "_nodes_by_depth")
        and getattr(obj, "_is_graph_network", True) is not False
        and hasattr(obj, "_run_through_graph")
    )


def _is_ops_add(op):
    if _OpsAdd is not None:
        return isinstance(op, _OpsAdd)
    return (  # pragma: no cover
        type(op).__name__ == "Add"
        and type(op).__module__.startswith("keras.")
        and not isinstance(op, keras.layers.Layer)
    )


def _graph_nodes(model):
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.operation is None or node.is_input:
                continue
            yield node


def _shape(t):
    return tuple(None if d is None else int(d) for d in t.shape)


def _add_inputs(node):
    """The input tensors of an addition node, or None if it is not a plain
    addition of symbolic tensors."""
    op = node.operation
    if isinstance(op, keras.layers.Add):
        return list(node.input_tensors)
    if _is_ops_add(op):
        args = node.arguments.args
        if node.arguments.kwargs or len(args) != 2:
            return None
        if not all(isinstance(a, keras.KerasTensor) for a in args):
            return None
        return list(args)
    return None


def _find_sites(model, prefix=""):
    """Yields (op, node, AddSite) for every addition in the graph, nested
    functional and sequential models included."""
    if _is_sequential(model):
        for layer in model.layers:
            if _is_functional(layer) or _is_sequential(layer):
                yield from _find_sites(layer, f"{prefix}{layer.name}/")
        return
    for node in _graph_nodes(model):
        op = node.operation
        if _is_functional(op) or _is_sequential(op):
            yield from _find_sites(op, f"{prefix}{op.name}/")
            continue
        inputs = _add_inputs(node)
        if inputs is None:
            continue
        kind = "Add layer" if isinstance(op, keras.layers.Layer) else "ops.add"
        shapes = tuple(_shape(t) for t in inputs)
        yield (
            op,
            node,
            AddSite(
                name=op.name,
                path=f"{prefix}{op.name}",
                kind=kind,
                shapes=shapes,
                channels=None,
            ),
        )


def _merged_shape(shapes):
    """The common shape of the inputs, or None when they differ."""
    first = shapes[0]
    merged = []
    for dims in zip(*shapes):
        known = {d for d in dims if d is not None}
        if len(known) > 1:
            return None
        merged.append(known.pop() if known else None)
    if any(len(s) != len(first) for s in shapes):
        return None
    return tuple(merged)


def _validate_select(select):
    if select is None or callable(select):
        return select
    if isinstance(select, str):
        return (select,)
    try:
        names = tuple(select)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise ValueError(
            "Expected `select` to be None, a list of Add layer names (or "
            "paths), or a callable taking an `AddSite` and returning a "
            f"bool. Received: select={select!r}"
        )
    return names


def _fusion_dtype(op, inputs):
    if isinstance(op, keras.layers.Layer):
        return op.dtype_policy
    dtype = keras.backend.standardize_dtype(inputs[0].dtype)
    if dtype == "float16":
        return "mixed_float16"
    if dtype == "bfloat16":
        return "mixed_bfloat16"
    return dtype


def _unique_name(base, taken):
    name, i = base, 1
    while name in taken:
        name = f"{base}_{i}"
        i += 1
    taken.add(name)
    return name


def _zero_last_bn(fusion_layer):
    """Zero gamma and beta of the last BN of every gate branch, so that
    every gate outputs sigmoid(0) = 0.5 in training and inference."""
    gates = [
        getattr(fusion_layer, n)
        for n in ("attention", "attention1", "attention2")
        if hasattr(fusion_layer, n)
    ]
    for gate in gates:
        for branch in (gate.branch1, gate.branch2):
            bn = branch.bn2
            bn.gamma.assign(keras.ops.zeros_like(bn.gamma))
            bn.beta.assign(keras.ops.zeros_like(bn.beta))


def retrofit(
    model,
    fusion="aff",
    reduction_ratio=16,
    select=None,
    min_channels=None,
    use_bias=True,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    kernel_initializer="glorot_uniform",
    data_format=None,
    return_report=False,
):
    """Replaces the residual additions of a functional model by AFF or iAFF.

    Returns a new functional model in which every selected two-input
    addition `a + b` -- a `keras.layers.Add` layer, or `x + y` /
    `keras.ops.add` on symbolic tensors (ConvNeXt writes its residuals so)
    -- becomes `AFF([a, b])` (or `IAFF`), and every other layer is a copy
    of the original with the original's weights (BatchNorm moving
    statistics included). Nested functional and Sequential models are
    retrofitted recursively; the original model is left untouched.

    At initialisation the new model computes the same function as the
    original: the last BatchNorm (gamma and beta) of every gate branch
    starts at zero, so every gate outputs `w = sigmoid(0) = 0.5`, and the
    fusion's `output_scale=2.0` turns `2 * (b + 0.5 * (a - b))` into
    exactly `a + b` (up to float rounding), in training and inference mode.
    Pretrained weights keep their accuracy and fine-tuning starts from
    them. For iAFF both gates start at 0.5, so `output_scale=2.0` too
    (the official iAFF networks use 1.0; an identity start needs 2.0).
    Until the zeroed gammas move, the gate convs receive no gradient: the
    first steps train the zeroed BatchNorms, then the whole gate.

    The attention weight `w` multiplies the FIRST input of each addition
    (keras.applications' ResNet, MobileNetV2 and ConvNeXt put the shortcut
    first; EfficientNet the residual branch).

    Args:
        model: a functional `keras.Model` (including subclasses of the
            functional model such as keras-hub backbones; the result is a
            plain functional `keras.Model`). Sequential-only and subclassed
            models raise a `ValueError`.
        fusion: "aff" (default) or "iaff".
        reduction_ratio: int, default 16 (the paper's ImageNet setting).
            Hidden channels of each gate branch: `channels //
            reduction_ratio`.
        select: which additions to replace. None (default): every
            two-input addition of a rank-3, -4 or -5 tensor with at least
            `min_channels` channels. A list of names or paths (as in the
            report, e.g. "conv4_block6_add" or "base/conv4_block6_add"):
            exactly those, and an error if one cannot be fused. A callable
            `select(site) -> bool` taking an `AddSite` (name, path, kind,
            shapes, channels).
        min_channels: int, default `reduction_ratio`. Additions with fewer
            channels are skipped (and reported).
        use_bias, bn_momentum, bn_epsilon, kernel_initializer: passed to
            the new fusion layers (defaults as `keras_aff.layers.AFF`).
        data_format: "channels_last", "channels_first" or None (default:
            `keras.config.image_data_format()`): where the channels are.
        return_report: bool, default False. Also return a
            `RetrofitReport` of what was replaced and what was skipped.

    Returns:
        The new `keras.Model`, or `(model, report)` when `return_report` is
        True. The new model is compiled from the original's compile config
        if the original was compiled.

    Raises:
        ValueError: for a Sequential-only or subclassed model, an unknown
            `fusion`, a name in `select` that is not an addition of the
            model, or a selected addition whose inputs differ in shape,
            whose channel count is unknown, whose rank AFF cannot fuse, or
            that has more than two inputs.

    Example:

    >>> base = keras.applications.ResNet50(weights=None,
    ...                                    input_shape=(64, 64, 3))
    >>> new, report = keras_aff.models.retrofit(base, return_report=True)
    >>> len(report.replaced)
    16
    >>> x = np.random.rand(2, 64, 64, 3).astype("float32")
    >>> np.allclose(base.predict(x), new.predict(x), rtol=1e-4, atol=1e-6)
    True
    """
    if fusion not in _FUSIONS:
        raise ValueError(
            f"Expected `fusion` to be one of {_FUSIONS}. "
            f"Received: fusion={fusion!r}"
        )
    if (
        isinstance(reduction_ratio, bool)
        or not isinstance(reduction_ratio, numbers.Integral)
        or reduction_ratio < 1
    ):
        raise ValueError(
            "Expected `reduction_ratio` to be a positive integer. "
            f"Received: reduction_ratio={reduction_ratio!r}"
        )
    if min_channels is None:
        min_channels = reduction_ratio
    if (
        isinstance(min_channels, bool)
        or not isinstance(min_channels, numbers.Integral)
        or min_channels < reduction_ratio
    ):
        raise ValueError(
            "Expected `min_channels` to be an integer >= reduction_ratio "
            f"({reduction_ratio}), so that every gate has at least one "
            f"hidden channel. Received: min_channels={min_channels!r}"
        )
    if data_format is None:
        data_format = keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "Expected `data_format` to be 'channels_last', 'channels_first' "
            f"or None. Received: data_format={data_format!r}"
        )
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Expected `model` to be a functional keras.Model. "
            f"Received: model={model!r} (of type {type(model).__name__})"
        )
    if _is_sequential(model):
        raise ValueError(
            "retrofit needs a functional model: a Sequential model passes "
            "one tensor from layer to layer, so it holds no two-input "
            "residual addition to replace. Build the model with the "
            "functional API (keras.Model(inputs, outputs)). "
            f"Received: a Sequential model named '{model.name}'"
        )
    if not _is_functional(model):
        raise ValueError(
            "retrofit needs a functional model (keras.Model(inputs, "
            "outputs)): a subclassed model computes its output in Python "
            "`call()`, so its graph and its additions cannot be rewritten. "
            f"Received: a subclassed model of type "
            f"'{type(model).__name__}' named '{model.name}'"
        )
    select = _validate_select(select)

    channel_index = -1 if data_format == "channels_last" else 1
    plan = {}  # id(op) -> dict(name, dtype, kind)
    replaced, skipped = [], []
    found_names = set()
    taken = {layer.name for layer in _all_layers(model)}
    seen_ops = {}
    for op, node, site in _find_sites(model):
        found_names.update((site.name, site.path))
        inputs = _add_inputs(node)
        merged = _merged_shape(site.shapes) if len(site.shapes) == 2 else None
        if merged is not None and len(merged) in (3, 4, 5):
            site.channels = merged[channel_index]
        if select is None:
            requested, explicit = True, False
        elif callable(select):
            requested, explicit = bool(select(site)), False
        else:
            requested = site.name in select or site.path in select
            explicit = requested
        shape_str = " + ".join(str(s) for s in site.shapes)
        row = {"path": site.path, "kind": site.kind, "shape": shape_str}
        if not requested:
            skipped.append({**row, "reason": "not selected"})
            continue
        reason = None
        if len(site.shapes) != 2:
            reason = (
                f"it adds {len(site.shapes)} tensors; AFF fuses exactly two"
            )
            fatal = explicit
        elif merged is None:
            reason = (
                "its two inputs differ in shape, so they cannot be fused "
                "(AFF needs equal shapes)"
            )
            fatal = True
        elif len(merged) not in (3, 4, 5):
            reason = (
                f"its inputs have rank {len(merged)}; AFF fuses rank 3, 4 "
                "or 5 feature maps"
            )
            fatal = explicit
        elif site.channels is None:
            reason = "its channel dimension is not known"
            fatal = True
        elif site.channels < min_channels:
            reason = f"{site.channels} channels < min_channels={min_channels}"
            fatal = explicit
        if reason is not None:
            if fatal:
                hint = (
                    " Leave it out with `select` (a list of names or a "
                    "callable)."
                    if not explicit
                    else ""
                )
                raise ValueError(
                    f"Cannot replace the addition '{site.path}' by "
                    f"{fusion.upper()}: {reason}.{hint} Received: input "
                    f"shapes {shape_str}"
                )
            skipped.append({**row, "reason": reason})
            continue
        if id(op) in seen_ops:
            # A shared Add layer: one fusion layer, shared the same way.
            if seen_ops[id(op)] != merged:
                raise ValueError(
                    f"Cannot replace the shared Add layer '{site.path}': "
                    "it is called on inputs of different shapes "
                    f"({seen_ops[id(op)]} and {merged}). Received: input "
                    f"shapes {shape_str}"
                )
            continue
        seen_ops[id(op)] = merged
        new_name = _unique_name(f"{site.name}_{fusion}", taken)
        plan[id(op)] = {
            "name": new_name,
            "dtype": _fusion_dtype(op, inputs),
            "kind": site.kind,
            "row": {
                **row,
                "channels": site.channels,
                "inter_channels": site.channels // reduction_ratio,
                "fusion_layer": new_name,
            },
        }
    if isinstance(select, tuple):
        missing = [n for n in select if n not in found_names]
        if missing:
            raise ValueError(
                f"`select` names {missing} are not two-input additions of "
                f"the model '{model.name}'. Additions found: "
                f"{sorted(n for n in found_names if '/' not in n)}. "
                f"Received: select={list(select)!r}"
            )

    fusion_kwargs = dict(
        reduction_ratio=reduction_ratio,
        output_scale=2.0,
        use_bias=use_bias,
        bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon,
        kernel_initializer=kernel_initializer,
        data_format=data_format,
    )
    cloner = _Cloner(plan, _FUSION_CLASSES[fusion], fusion_kwargs)
    new_model = keras.models.clone_model(
        model,
        input_tensors=_named_inputs(model),
        clone_function=cloner.clone,
        call_function=cloner.call,
    )
    for old, new in cloner.pairs:
        if old.weights:
            new.set_weights(old.get_weights())
    for layer, spec in cloner.fusions:
        _zero_last_bn(layer)
        replaced.append(
            {
                **spec["row"],
                "params": int(
                    sum(int(np.prod(w.shape)) for w in layer.weights)
                ),
            }
        )
    if not return_report:
        return new_model
    report = RetrofitReport(
        replaced=replaced,
        skipped=skipped,
        fusion=fusion,
        reduction_ratio=reduction_ratio,
        params_before=_count(model),
        params_after=_count(new_model),
    )
    return new_model, report


def _named_inputs(model):
    """Fresh inputs with the names of the model's input layers
    (`clone_model` would name them after the symbolic tensors)."""

    def fresh(x):
        history = getattr(x, "_keras_history", None)
        name = history.operation.name if history else x.name
        return keras.Input(
            batch_shape=x.shape, dtype=x.dtype, sparse=x.sparse, name=name
        )

    return keras.tree.map_structure(fresh, model.input)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


class _Cloner:
    """`clone_function` / `call_function` for `keras.models.clone_model`:
    copies every layer (the weights are copied afterwards), builds a fusion
    layer for every planned addition and recurses into nested models."""

    def __init__(self, plan, fusion_cls, fusion_kwargs):
        self.plan = plan
        self.fusion_cls = fusion_cls
        self.fusion_kwargs = fusion_kwargs
        self.cache = {}
        self.pairs = []  # (original layer, copy)
        self.fusions = []  # (new fusion layer, plan entry)
        self.ops_fusions = set()  # ids of fusion layers replacing ops.add

    def clone(self, layer):
        key = id(layer)
        if key in self.cache:
            return self.cache[key]
        if _is_sequential(layer):
            new = keras.models.clone_model(layer, clone_function=self.clone)
        elif _is_functional(layer):
            new = keras.models.clone_model(
                layer,
                input_tensors=_named_inputs(layer),
                clone_function=self.clone,
                call_function=self.call,
            )
        elif key in self.plan:
            spec = self.plan[key]
            new = self.fusion_cls(
                name=spec["name"], dtype=spec["dtype"], **self.fusion_kwargs
            )
            self.fusions.append((new, spec))
            if spec["kind"] == "ops.add":
                self.ops_fusions.add(id(new))
        else:
            new = layer.__class__.from_config(layer.get_config())
            if isinstance(layer, keras.layers.Layer):
                self.pairs.append((layer, new))
        self.cache[key] = new
        return new

    def call(self, op, *args, **kwargs):
        if id(op) in self.ops_fusions:
            return op([args[0], args[1]], **kwargs)
        return op(*args, **kwargs)
