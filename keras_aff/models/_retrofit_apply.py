"""`retrofit`, step 3: the new model, cloned from the plan (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`apply_plan` clones the model with `keras.models.clone_model`: every layer
is a copy with the original's weights, every planned addition a new
fusion layer whose gates start at 0.5; a compiled original gives a model
compiled the same way, with a fresh optimizer.
"""

import keras

from keras_aff.models._retrofit_graph import is_functional
from keras_aff.models._retrofit_graph import is_sequential
from keras_aff.models._retrofit_graph import merged_shape


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


def zero_last_bn(fusion_layer):
    """Zeroes gamma and beta of the last BatchNorm of every gate branch
    (the variables `.../bn2/gamma` and `.../bn2/beta`), so that every gate
    outputs sigmoid(0) = 0.5 in training and inference."""
    for w in fusion_layer.weights:
        if w.path.endswith(("/bn2/gamma", "/bn2/beta")):
            w.assign(keras.ops.zeros_like(w))


class _Cloner:
    """`clone_function` / `call_function` for `keras.models.clone_model`:
    copies every layer (the weights are copied afterwards), creates a
    fusion layer for every planned addition and recurses into nested
    models."""

    def __init__(self, plan, fusion_cls, fusion_kwargs):
        self.plan = plan
        self.fusion_cls = fusion_cls
        self.fusion_kwargs = fusion_kwargs
        self.cache = {}
        self.pairs = []  # (original layer, copy)
        self.fusions = []  # (new fusion layer, Replacement)
        # id(copy of a planned addition) -> its calls' Replacement / None,
        # consumed in graph order (the order of `find_sites`).
        self.pending = {}

    def _fusion(self, replacement):
        new = self.fusion_cls(
            name=replacement.layer_name,
            dtype=replacement.dtype,
            **self.fusion_kwargs,
        )
        self.fusions.append((new, replacement))
        return new

    def clone(self, layer):
        key = id(layer)
        if key in self.cache:
            return self.cache[key]
        if is_sequential(layer):
            new = keras.models.clone_model(layer, clone_function=self.clone)
        elif is_functional(layer):
            new = keras.models.clone_model(
                layer,
                input_tensors=_named_inputs(layer),
                clone_function=self.clone,
                call_function=self.call,
            )
        else:
            new = layer.__class__.from_config(layer.get_config())
            if key in self.plan.replacements:
                self.pending[id(new)] = list(self.plan.replacements[key])
            elif isinstance(layer, keras.layers.Layer):
                self.pairs.append((layer, new))
        self.cache[key] = new
        return new

    def call(self, op, *args, **kwargs):
        """Calls `op`, or, at a replaced call of a planned addition, a new
        fusion layer on the addition's two inputs."""
        entries = self.pending.get(id(op))
        replacement = entries.pop(0) if entries else None
        if replacement is None:
            return op(*args, **kwargs)
        site = replacement.site
        inputs = list(args[0]) if site.kind == "Add layer" else list(args)
        shapes = tuple(tuple(t.shape) for t in inputs)
        if len(inputs) != 2 or merged_shape(shapes) != replacement.shape:
            raise RuntimeError(  # pragma: no cover - a Keras change
                f"retrofit lost track of the calls of '{site.path}' "
                f"(call {site.call}): expected inputs of shape "
                f"{replacement.shape}, got {shapes}."
            )
        return self._fusion(replacement)(inputs, **kwargs)


def _compile_like(original, new):
    """Compiles `new` from `original`'s compile config (a fresh optimizer
    of the same config, the same losses and metrics) when `original` was
    compiled. `keras.models.clone_model` does it in current Keras; this
    keeps the promise if it stops doing so."""
    if original.compiled and not new.compiled:
        new.compile_from_config(original.get_compile_config())


def apply_plan(model, plan, fusion_cls, fusion_kwargs):
    """The new model and its fusion layers: a list of `(layer,
    Replacement)` in the order the clone created them."""
    cloner = _Cloner(plan, fusion_cls, fusion_kwargs)
    new_model = keras.models.clone_model(
        model,
        input_tensors=_named_inputs(model),
        clone_function=cloner.clone,
        call_function=cloner.call,
    )
    left = [i for entries in cloner.pending.values() for i in entries]
    if left:  # pragma: no cover - a Keras change
        raise RuntimeError(
            f"retrofit: {len(left)} planned additions were never called."
        )
    for old, new in cloner.pairs:
        if old.weights:
            new.set_weights(old.get_weights())
    for layer, _ in cloner.fusions:
        zero_last_bn(layer)
    _compile_like(model, new_model)
    return new_model, cloner.fusions
