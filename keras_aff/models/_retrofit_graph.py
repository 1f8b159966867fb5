"""`retrofit`, step 1: the additions of a functional model's graph (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Walks the graph (nested functional and Sequential models included) and
describes every two-input-or-more addition as an `AddSite`: the facts the
decision of `keras_aff.models._retrofit_plan` needs, nothing decided yet.
"""

import dataclasses

import keras

try:  # the Operation behind `x + y` / `keras.ops.add` on symbolic tensors
    from keras.src.ops.numpy import Add as _OpsAdd
except ImportError:  # pragma: no cover - a future Keras moved it
    _OpsAdd = None


@dataclasses.dataclass
class AddSite:
    """One addition found in the model graph: what `retrofit` passes to a
    callable `select`.

    Attributes:
        name: the Add layer's (or `keras.ops.add` operation's) name.
        path: `name` prefixed by the names of the nested models holding it,
            e.g. "resnet50/conv2_block1_add".
        kind: "Add layer" (`keras.layers.Add`) or "ops.add" (`x + y` on
            symbolic tensors, as ConvNeXt writes its residuals).
        shapes: static shapes of the inputs.
        channels: channel count (None if unknown, or if the inputs differ
            in shape or are not rank 3, 4 or 5).
        call: which call of the layer this is (0 for the first). An Add
            layer called at several places (a shared layer) has one site
            per call, each replaced by its own fusion layer.
        calls: how many times the layer is called in the model (1 unless
            it is shared).

    Example:

    >>> inp = keras.Input((8, 8, 16))
    >>> y = keras.layers.Conv2D(16, 1)(inp)
    >>> model = keras.Model(inp, keras.layers.Add(name="res")([inp, y]))
    >>> sites = []
    >>> def select(site):
    ...     sites.append(site)
    ...     return True
    >>> _ = keras_aff.models.retrofit(model, reduction_ratio=4, select=select)
    >>> site = sites[0]
    >>> site.path, site.kind, site.channels
    ('res', 'Add layer', 16)
    >>> site.shapes
    ((None, 8, 8, 16), (None, 8, 8, 16))
    """

    name: str
    path: str
    kind: str
    shapes: tuple
    channels: object
    call: int = 0
    calls: int = 1


def is_sequential(obj):
    return isinstance(obj, keras.Sequential)


def is_functional(obj):
    """Functional models (including subclasses of Functional, e.g.
    keras-hub backbones) expose their graph; subclassed models do not."""
    return (
        isinstance(obj, keras.Model)
        and not is_sequential(obj)
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


def add_inputs(node):
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


def merged_shape(shapes):
    """The common shape of the inputs, or None when they differ."""
    if any(len(s) != len(shapes[0]) for s in shapes):
        return None
    merged = []
    for dims in zip(*shapes):
        known = {d for d in dims if d is not None}
        if len(known) > 1:
            return None
        merged.append(known.pop() if known else None)
    return tuple(merged)


def fusable_rank(rank):
    """AFF fuses rank-3, -4 and -5 feature maps (1D, 2D and 3D)."""
    return rank in (3, 4, 5)


def _channels(shapes, channel_index):
    if len(shapes) != 2:
        return None
    merged = merged_shape(shapes)
    if merged is None or not fusable_rank(len(merged)):
        return None
    return merged[channel_index]


def _walk(model, channel_index, prefix, seen):
    """`find_sites` without the call counts. A nested model called at
    several places is one shared model: its additions are visited once,
    as `keras.models.clone_model` clones it once."""
    if id(model) in seen:
        return
    seen.add(id(model))
    if is_sequential(model):
        for layer in model.layers:
            if is_functional(layer) or is_sequential(layer):
                yield from _walk(
                    layer, channel_index, f"{prefix}{layer.name}/", seen
                )
        return
    for node in _graph_nodes(model):
        op = node.operation
        if is_functional(op) or is_sequential(op):
            yield from _walk(op, channel_index, f"{prefix}{op.name}/", seen)
            continue
        inputs = add_inputs(node)
        if inputs is None:
            continue
        shapes = tuple(_shape(t) for t in inputs)
        site = AddSite(
            name=op.name,
            path=f"{prefix}{op.name}",
            kind="Add layer"
            if isinstance(op, keras.layers.Layer)
            else "ops.add",
            shapes=shapes,
            channels=_channels(shapes, channel_index),
        )
        yield op, inputs, site


def find_sites(model, channel_index):
    """A list of `(op, input_tensors, AddSite)`, one per call of every
    addition in the graph, nested functional and Sequential models
    included, in the order `keras.models.clone_model` calls them (graph
    order); `AddSite.call` and `calls` number the calls of a shared
    layer."""
    found = list(_walk(model, channel_index, "", set()))
    totals, seen = {}, {}
    for op, _, _ in found:
        totals[id(op)] = totals.get(id(op), 0) + 1
    sites = []
    for op, inputs, site in found:
        call = seen.get(id(op), 0)
        seen[id(op)] = call + 1
        site = dataclasses.replace(site, call=call, calls=totals[id(op)])
        sites.append((op, inputs, site))
    return sites


def all_layers(model):
    """Every layer of `model`, those of nested models included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)
