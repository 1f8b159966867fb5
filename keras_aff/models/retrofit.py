"""Retrofit AFF / iAFF into the residual additions of any functional model.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`retrofit` checks its arguments, finds the additions of the graph
(`_retrofit_graph`), decides for each one (`_retrofit_plan.decide`, a pure
function) and clones the model with the planned fusion layers
(`_retrofit_apply`); the `RetrofitReport` says what it did.
"""

import collections.abc
import dataclasses
import random

import keras
import numpy as np

from keras_aff._validation import check_bool
from keras_aff._validation import check_choice
from keras_aff._validation import check_data_format
from keras_aff._validation import check_int
from keras_aff._validation import check_one_of_types
from keras_aff.layers import AFF
from keras_aff.layers import IAFF
from keras_aff.models._retrofit_apply import apply_plan
from keras_aff.models._retrofit_graph import AddSite
from keras_aff.models._retrofit_graph import is_functional
from keras_aff.models._retrofit_graph import is_sequential
from keras_aff.models._retrofit_plan import Settings
from keras_aff.models._retrofit_plan import make_plan
from keras_aff.models._retrofit_plan import shape_text

__all__ = ["AddSite", "RetrofitReport", "retrofit"]

_FUSION_CLASSES = {"aff": AFF, "iaff": IAFF}
_SELECT = (
    "None, a list of addition names or paths, or a callable taking an "
    "`AddSite` and returning a bool"
)


@dataclasses.dataclass
class RetrofitReport:
    """What `retrofit` replaced and what it left alone.

    Attributes:
        replaced: list of dicts, one per replaced addition: "path", "kind",
            "shape", "call" and "calls" (which call of the layer, of how
            many: a shared Add layer has a row per call), "channels",
            "inter_channels", "fusion_layer" (name of the new layer) and
            "params" (its weight count, moving statistics included).
        skipped: list of dicts, one per addition left as it was: "path",
            "kind", "shape", "call", "calls" and "reason".
        fusion: "aff" or "iaff".
        reduction_ratio: the attention bottleneck ratio used.
        params_before: weight count of the original model.
        params_after: weight count of the new model.

    Example:

    >>> inp = keras.Input((8, 8, 16))
    >>> y = keras.layers.Conv2D(16, 1, name="conv")(inp)
    >>> model = keras.Model(inp, keras.layers.Add(name="res")([inp, y]))
    >>> _, report = keras_aff.models.retrofit(
    ...     model, reduction_ratio=4, return_report=True)
    >>> print(report)
    retrofit: 1 addition(s) replaced by AFF (reduction_ratio=4), 0 left as
    they were; parameters 272 -> 728 (+456)
      replaced res (Add layer, (None, 8, 8, 16) + (None, 8, 8, 16)) ->
      res_aff (+456)
    >>> report.replaced[0]["inter_channels"], report.params_added
    (4, 456)
    """

    replaced: list
    skipped: list
    fusion: str
    reduction_ratio: int
    params_before: int = 0
    params_after: int = 0

    @property
    def params_added(self):
        """`params_after - params_before`."""
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
                f"  replaced {_where(r)} ({r['kind']}, {r['shape']}) -> "
                f"{r['fusion_layer']} (+{r['params']:,})"
            )
        for s in self.skipped:
            lines.append(
                f"  skipped  {_where(s)} ({s['kind']}, {s['shape']}): "
                f"{s['reason']}"
            )
        return "\n".join(lines)


def _count(weights_holder):
    return int(sum(int(np.prod(w.shape)) for w in weights_holder.weights))


def _check_model(model):
    check_one_of_types(
        "model", model, (keras.Model,), "a functional keras.Model"
    )
    if is_sequential(model):
        raise ValueError(
            "retrofit needs a functional model: a Sequential model passes "
            "one tensor from layer to layer, so it holds no two-input "
            "residual addition to replace. Build the model with the "
            "functional API (keras.Model(inputs, outputs)). "
            f"Received: a Sequential model named '{model.name}'"
        )
    if not is_functional(model):
        raise ValueError(
            "retrofit needs a functional model (keras.Model(inputs, "
            "outputs)): a subclassed model computes its output in Python "
            "`call()`, so its graph and its additions cannot be rewritten. "
            f"Received: a subclassed model of type "
            f"'{type(model).__name__}' named '{model.name}'"
        )


def _check_select(select):
    """None, a callable, or a tuple of names (one string is one name)."""
    if select is None or callable(select):
        return select
    if isinstance(select, str):
        return (select,)
    check_one_of_types("select", select, (collections.abc.Iterable,), _SELECT)
    names = tuple(select)
    for i, name in enumerate(names):
        check_one_of_types(
            f"select[{i}]", name, (str,), "an addition name or path (a str)"
        )
    return names


def _settings(model, fusion, reduction_ratio, select, min_channels, fmt):
    """The checked arguments the plan depends on."""
    fusion = check_choice("fusion", fusion, tuple(_FUSION_CLASSES))
    reduction_ratio = check_int("reduction_ratio", reduction_ratio, 1)
    if min_channels is None:
        min_channels = reduction_ratio
    # At least one hidden channel in every gate.
    min_channels = check_int("min_channels", min_channels, reduction_ratio)
    fmt = check_data_format(fmt)
    _check_model(model)
    return Settings(
        fusion=fusion,
        reduction_ratio=reduction_ratio,
        select=_check_select(select),
        min_channels=min_channels,
        channel_index=-1 if fmt == "channels_last" else 1,
    )


def _fusion_kwargs(fusion_cls, **kwargs):
    """The new layers' arguments, with `output_scale=2.0` (the identity
    start). The fusion layer checks its own arguments: one is created,
    unbuilt, before any work. Its initializers draw their seeds from
    Python's `random`; restoring its state keeps a seeded `retrofit`'s
    gate weights what they would be without this check."""
    kwargs = {"output_scale": 2.0, **kwargs}
    state = random.getstate()
    try:
        fusion_cls(name="retrofit_argument_check", **kwargs)
    finally:
        random.setstate(state)
    return kwargs


def _row(site):
    return {
        "path": site.path,
        "kind": site.kind,
        "shape": shape_text(site),
        "call": site.call,
        "calls": site.calls,
    }


def _where(row):
    """The path, with the call for a shared Add layer ("add [call 2/3]")."""
    if row["calls"] == 1:
        return row["path"]
    return f"{row['path']} [call {row['call'] + 1}/{row['calls']}]"


def _report(model, new_model, plan, fusions, settings):
    replaced = [
        {
            **_row(r.site),
            "channels": r.site.channels,
            "inter_channels": r.inter_channels,
            "fusion_layer": r.layer_name,
            "params": _count(layer),
        }
        for layer, r in fusions
    ]
    return RetrofitReport(
        replaced=replaced,
        skipped=[{**_row(s.site), "reason": s.reason} for s in plan.skipped],
        fusion=settings.fusion,
        reduction_ratio=settings.reduction_ratio,
        params_before=_count(model),
        params_after=_count(new_model),
    )


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
    bn_synchronized=False,
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

    An Add layer called at several places (one layer object shared by
    several additions) gets one new fusion layer per call, each with its
    own weights and its own row in the report (`call`, `calls`): the
    additions are independent once they learn, as an Add has no weights
    to share. `select` by name selects every call of the layer; a
    callable sees each call (`AddSite.call`). A nested model called at
    several places stays one shared model, retrofitted once.

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
        bn_synchronized: bool, default False. Passed to the new fusion
            layers (cross-replica BatchNorm statistics under a TensorFlow
            `tf.distribute` strategy); the copied layers keep their own
            BatchNormalization settings.

    Returns:
        The new `keras.Model`, or `(model, report)` when `return_report` is
        True. When the original model was compiled, the new model is
        compiled from the original's compile config: the same losses and
        metrics, and a fresh optimizer of the same config.

    Raises:
        TypeError: for an argument of the wrong type (e.g. a `model` that
            is not a `keras.Model`, `reduction_ratio=4.0`).
        ValueError: for a Sequential-only or subclassed model, an unknown
            `fusion`, a value out of range, a name in `select` that is not
            an addition of the model, or a selected addition whose inputs
            differ in shape, whose channel count is unknown, whose rank AFF
            cannot fuse, or that has more than two inputs.

    Example (`retrofit(keras.applications.ResNet50(...))` replaces its 16
    additions the same way; see `examples/retrofit_resnet50.py`):

    >>> inp = keras.Input((16, 16, 3))
    >>> x = keras.layers.Conv2D(32, 3, padding="same")(inp)
    >>> for i in range(2):
    ...     y = keras.layers.Conv2D(32, 3, padding="same")(x)
    ...     y = keras.layers.BatchNormalization()(y)
    ...     x = keras.layers.Add(name=f"block{i}_add")([x, y])
    >>> base = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(x))
    >>> new, report = keras_aff.models.retrofit(
    ...     base, reduction_ratio=4, return_report=True)
    >>> [r["fusion_layer"] for r in report.replaced]
    ['block0_add_aff', 'block1_add_aff']
    >>> images = np.random.rand(2, 16, 16, 3).astype("float32")
    >>> np.allclose(base(images), new(images), rtol=1e-4, atol=1e-6)
    True
    """
    settings = _settings(
        model, fusion, reduction_ratio, select, min_channels, data_format
    )
    return_report = check_bool("return_report", return_report)
    fusion_cls = _FUSION_CLASSES[settings.fusion]
    fusion_kwargs = _fusion_kwargs(
        fusion_cls,
        reduction_ratio=settings.reduction_ratio,
        use_bias=use_bias,
        bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon,
        bn_synchronized=bn_synchronized,
        kernel_initializer=kernel_initializer,
        data_format=check_data_format(data_format),
    )
    plan = make_plan(model, settings)
    new_model, fusions = apply_plan(model, plan, fusion_cls, fusion_kwargs)
    if not return_report:
        return new_model
    return new_model, _report(model, new_model, plan, fusions, settings)
