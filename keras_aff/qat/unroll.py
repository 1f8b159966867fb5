"""A tf_keras model with every legacy fusion layer replaced by its
stock-layer block, weights copied by path.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import tensorflow as tf
import tf_keras

from keras_aff import porting
from keras_aff.qat import blocks


def check_functional(fn_name, model):
    """Raises unless `model` is a functional or Sequential tf_keras model,
    the only kind tfmot quantizes."""
    if not isinstance(model, tf_keras.Model):
        raise TypeError(
            f"`{fn_name}` needs a tf_keras (Keras 2) model: tfmot 0.8 rejects "
            "Keras 3 models. Build the same model with `tf_keras.layers` and "
            "`keras_aff.legacy` layers (same layer names) and move the "
            "weights with `keras_aff.porting.copy_weights(keras3_model, "
            f"twin)`. Received: model of type {type(model).__module__}."
            f"{type(model).__name__}"
        )
    if not getattr(model, "_is_graph_network", False):
        raise TypeError(
            f"`{fn_name}` needs a functional or Sequential tf_keras model "
            "(tfmot cannot quantize subclassed models). Received: "
            f"model={model.name!r} of type {type(model).__name__}"
        )


def _check_unrollable(model):
    for layer in model.layers:
        if isinstance(layer, tf_keras.Model) and any(
            isinstance(sub, blocks.FUSION_CLASSES) for sub in layer.submodules
        ):
            raise ValueError(
                "`unroll_fusion_layers` unrolls fusion layers at the top "
                "level of a model only; this nested model holds some. Build "
                "the model flat or unroll the nested model first. "
                f"Received: nested model {layer.name!r}"
            )
        calls = len(layer.inbound_nodes)
        if isinstance(layer, blocks.FUSION_CLASSES) and calls > 1:
            raise ValueError(
                "`unroll_fusion_layers` cannot unroll a fusion layer that is "
                "called more than once (shared weights). Received: layer "
                f"{layer.name!r} called {calls} times"
            )


def _call_node(node, tensors, clones):
    """Calls the new model's version of `node.layer` on the new tensors."""
    layer = node.layer

    def mapped(t):
        if blocks.is_tf_keras_tensor(t):
            return tensors[id(t)]
        return t

    args = tf.nest.map_structure(mapped, node.call_args)
    kwargs = tf.nest.map_structure(mapped, node.call_kwargs)
    if not isinstance(layer, blocks.FUSION_CLASSES):
        if layer.name not in clones:
            clones[layer.name] = type(layer).from_config(layer.get_config())
        return clones[layer.name](*args, **kwargs)
    kwargs.pop("training", None)
    if kwargs:
        raise ValueError(
            "`unroll_fusion_layers` supports fusion layers called with their "
            f"inputs only. Received: layer {layer.name!r} called with "
            f"{sorted(kwargs)}"
        )
    return blocks.block_for(layer, args[0])


def unroll_fusion_layers(model):
    """Rebuilds a tf_keras model with every fusion layer as stock layers.

    Each `keras_aff.legacy.MSCAM`, `AFF` and `IAFF` becomes its
    `mscam_block` / `aff_block` / `iaff_block`, named after the layer; every
    other layer is re-created from its config. All weights are then copied
    from `model` by variable path (`keras_aff.porting.copy_weights`,
    strict), so the new model computes the same function and shares no
    state with `model`.

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
    check_functional("unroll_fusion_layers", model)
    _check_unrollable(model)
    tensors, new_inputs, clones = {}, [], {}
    for old in model.inputs:
        input_layer = old._keras_history.layer
        new = tf_keras.Input(type_spec=old.type_spec, name=input_layer.name)
        tensors[id(old)] = new
        new_inputs.append(new)
    # tf_keras keeps the graph as nodes by depth (inputs deepest); this is
    # the order its own `Functional._run_internal_graph` uses.
    nodes_by_depth = model._nodes_by_depth
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            if node.is_input:
                continue
            outputs = _call_node(node, tensors, clones)
            for old, new in zip(
                tf.nest.flatten(node.outputs), tf.nest.flatten(outputs)
            ):
                tensors[id(old)] = new
    outputs = tf.nest.map_structure(
        lambda t: tensors[id(t)], model._nested_outputs
    )
    unrolled = tf_keras.Model(new_inputs, outputs, name=model.name)
    porting.copy_weights(model, unrolled)
    return unrolled
