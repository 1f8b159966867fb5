"""BatchNorm folding before conversion, with its op counts.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`keras_aff.export.export_saved_model`, `export_litert` and `export_onnx`
take `fold_batchnorm=True` (the default) and call `fold_for_export` once
before converting: the model is replaced by
`keras_aff.optimize.fold_batchnorm(model)`, the folded model is checked
against the original on the export's sample inputs, and the report's
`batch_norm_folding` gives the number of folded BatchNorms and the
TensorFlow inference graph's op count before and after.
"""

import keras
import numpy as np

from keras_aff import _validation
from keras_aff.export import model_io
from keras_aff.export import rebuild
from keras_aff.export.report import ExportVerificationError
from keras_aff.optimize.fold import fold_batchnorm

# Graph bookkeeping, not computation.
_NOT_COMPUTE = frozenset(
    {
        "Placeholder",
        "Const",
        "Identity",
        "IdentityN",
        "NoOp",
        "ReadVariableOp",
        "VarHandleOp",
        "StopGradient",
    }
)
FOLD_RTOL = 1e-5
# A mixed-precision model computes its gates in half precision: the folded
# and the original model then differ by half-precision rounding (one
# float16 step near 1 is ~1e-3), not by 1e-5. The artifact itself is still
# checked against the float32 rebuild at the exporter's tolerance.
HALF_FOLD_RTOL = 1e-3


def graph_op_count(model):
    """Compute ops of `model`'s inference graph on TensorFlow (variable
    reads, constants and identities left out).

    Example:

    >>> from keras_aff.export import folding
    >>> x = keras.Input((4, 4, 3))
    >>> h = keras.layers.Conv2D(4, 1)(x)
    >>> model = keras.Model(x, keras.layers.BatchNormalization()(h))
    >>> folding.graph_op_count(model) > 3
    True
    """
    import tensorflow as tf

    specs = [tf.TensorSpec(t.shape, t.dtype) for t in model.inputs]

    def forward(*inputs):
        return model(list(inputs) if len(inputs) > 1 else inputs[0])

    graph = tf.function(forward).get_concrete_function(*specs).graph
    return sum(op.type not in _NOT_COMPUTE for op in graph.get_operations())


def _outputs(model, samples):
    feed = list(samples) if len(samples) > 1 else samples[0]
    out = model(feed, training=False)
    flat = out if isinstance(out, (list, tuple)) else [out]
    return [keras.ops.convert_to_numpy(o).astype(np.float64) for o in flat]


def fold_for_export(model, samples, enabled=True):
    """`(model to convert, folding summary)` for an exporter.

    With `enabled`, returns `fold_batchnorm(model)` when it folds anything,
    after checking that it reproduces `model` on `samples` (a list of
    arrays, one per input) within `1e-5 * max(1, max |output|)`; a model
    that cannot be folded (subclassed) is returned as it is, with the
    reason.

    Args:
        model: the Keras model being exported.
        samples: list of input arrays, one per model input.
        enabled: bool, the exporter's `fold_batchnorm` argument.

    Returns:
        The model to convert and a dict: `enabled`, `batch_norms_folded`,
        `graph_ops_before` and `graph_ops_after` (TensorFlow inference
        graph), `max_abs_difference` (folded against original) and, when
        nothing was folded, `reason`.

    Example:

    >>> from keras_aff.export import folding
    >>> x = keras.Input((4, 4, 8))
    >>> model = keras.Model(x, keras_aff.layers.AFF()([x, x]))
    >>> samples = [np.ones((2, 4, 4, 8), "float32")]
    >>> folded, summary = folding.fold_for_export(model, samples)
    >>> summary["batch_norms_folded"]
    4
    >>> summary["graph_ops_after"] < summary["graph_ops_before"]
    True
    """
    enabled = _validation.check_bool("fold_batchnorm", enabled)
    if not enabled:
        return model, {"enabled": False}
    summary = {"enabled": True, "batch_norms_folded": 0}
    try:
        folded, report = fold_batchnorm(model, return_report=True)
    except (TypeError, ValueError) as e:
        summary["reason"] = f"not folded: {e}"
        return model, summary
    if report.batch_norms_folded == 0:
        summary["reason"] = "no BatchNormalization after a conv"
        return model, summary
    expected = _outputs(model, samples)
    # NaN from the model itself is named as such, not blamed on folding.
    model_io.check_finite_outputs(expected)
    got = _outputs(folded, samples)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(expected, got))
    scale = max(float(np.max(np.abs(a))) for a in expected)
    rtol = HALF_FOLD_RTOL if rebuild.is_mixed_precision(model) else FOLD_RTOL
    if not diff <= rtol * max(1.0, scale):
        raise ExportVerificationError(
            "The BatchNorm-folded model does not reproduce the model: max "
            f"|folded - original| {diff:.3g} > {rtol} * max(1, "
            f"{scale:.3g}). Export with fold_batchnorm=False."
        )
    summary.update(
        batch_norms_folded=report.batch_norms_folded,
        graph_ops_before=graph_op_count(model),
        graph_ops_after=graph_op_count(folded),
        max_abs_difference=float(f"{diff:.3g}"),
    )
    return folded, summary
