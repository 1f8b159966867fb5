"""`retrofit`, step 2: what to do with each addition (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`decide` is a pure function of one site's facts (an `AddSite`), whether
the user selected it (and by name) and `min_channels`: it returns a
`Decision` (replace, skip with a reason, or refuse with a reason).
`make_plan` applies it to every addition of a model and returns the
`Plan` that `keras_aff.models._retrofit_apply` carries out.
"""

import dataclasses

import keras

from keras_aff.models._retrofit_graph import AddSite
from keras_aff.models._retrofit_graph import all_layers
from keras_aff.models._retrofit_graph import find_sites
from keras_aff.models._retrofit_graph import fusable_rank
from keras_aff.models._retrofit_graph import merged_shape

REPLACE, SKIP, REFUSE = "replace", "skip", "refuse"


@dataclasses.dataclass(frozen=True)
class Decision:
    """What `retrofit` does with one addition.

    Attributes:
        action: "replace" (by a fusion layer), "skip" (left as it was and
            reported with `reason`) or "refuse" (a `ValueError` naming
            `reason`: the user asked for something that cannot be done).
        reason: why a site is skipped or refused ("" to replace it).
    """

    action: str
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The checked arguments of `retrofit` that the plan depends on.

    `select` is None, a callable or a tuple of names; `channel_index` is
    where the channels are (-1 or 1).
    """

    fusion: str
    reduction_ratio: int
    select: object
    min_channels: int
    channel_index: int


@dataclasses.dataclass(frozen=True)
class Replacement:
    """An addition to replace: its site, the new layer's name and dtype
    policy, the fused shape and the gates' hidden channels."""

    site: AddSite
    layer_name: str
    dtype: object
    shape: tuple
    inter_channels: int


@dataclasses.dataclass(frozen=True)
class Skip:
    """An addition left as it was, and why."""

    site: AddSite
    reason: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """Every decision for one model. `replacements` maps `id(op)` of each
    Add layer / `ops.add` operation with a replaced call to a list with
    one entry per call, in graph order: its `Replacement`, or None for a
    call left as it was (a shared Add layer has several calls, each
    decided on its own); `skipped` lists the `Skip`s in graph order."""

    replacements: dict
    skipped: tuple


def shape_text(site):
    """The input shapes as the report writes them: "(...) + (...)"."""
    return " + ".join(str(s) for s in site.shapes)


def decide(site, requested, named, min_channels):
    """The `Decision` for one addition (a pure function).

    Args:
        site: the addition's `AddSite`.
        requested: whether `select` asks for it.
        named: whether `select` names it: then anything that prevents the
            replacement is an error, not a skip.
        min_channels: additions with fewer channels are skipped.
    """
    if not requested:
        return Decision(SKIP, "not selected")
    optional = REFUSE if named else SKIP
    if len(site.shapes) != 2:
        n = len(site.shapes)
        return Decision(optional, f"it adds {n} tensors; AFF fuses exactly two")
    merged = merged_shape(site.shapes)
    if merged is None:
        return Decision(
            REFUSE,
            "its two inputs differ in shape, so they cannot be fused "
            "(AFF needs equal shapes)",
        )
    if not fusable_rank(len(merged)):
        return Decision(
            optional,
            f"its inputs have rank {len(merged)}; AFF fuses rank 3, 4 or 5 "
            "feature maps",
        )
    if site.channels is None:
        return Decision(REFUSE, "its channel dimension is not known")
    if site.channels < min_channels:
        return Decision(
            optional, f"{site.channels} channels < min_channels={min_channels}"
        )
    return Decision(REPLACE)


def selection(select, site):
    """`(requested, named)` for a site: `select` is None (every addition),
    a callable (`select(site)`) or a tuple of names and paths."""
    if select is None:
        return True, False
    if callable(select):
        return bool(select(site)), False
    named = site.name in select or site.path in select
    return named, named


def _refusal(site, decision, named, fusion):
    hint = (
        ""
        if named
        else " Leave it out with `select` (a list of names or a callable)."
    )
    return ValueError(
        f"Cannot replace the addition '{site.path}' by {fusion.upper()}: "
        f"{decision.reason}.{hint} Received: input shapes {shape_text(site)}"
    )


def _fusion_dtype(op, inputs):
    """The new layer's dtype policy: the Add layer's, or from the dtype of
    an `ops.add`'s inputs."""
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


def _check_names_found(select, found, model):
    if not isinstance(select, tuple):
        return
    missing = [n for n in select if n not in found]
    if missing:
        raise ValueError(
            f"`select` names {missing} are not two-input additions of "
            f"the model '{model.name}'. Additions found: "
            f"{sorted(n for n in found if '/' not in n)}. "
            f"Received: select={list(select)!r}"
        )


def make_plan(model, settings):
    """The `Plan` for `model` under the checked `Settings`."""
    taken = {layer.name for layer in all_layers(model)}
    found, calls, skipped = set(), {}, []
    for op, inputs, site in find_sites(model, settings.channel_index):
        found.update((site.name, site.path))
        requested, named = selection(settings.select, site)
        decision = decide(site, requested, named, settings.min_channels)
        if decision.action == REFUSE:
            raise _refusal(site, decision, named, settings.fusion)
        entry = None
        if decision.action == SKIP:
            skipped.append(Skip(site, decision.reason))
        else:
            # One new fusion layer per call: a shared Add layer's sites
            # get their own weights (an Add has none to share).
            entry = Replacement(
                site=site,
                layer_name=_unique_name(
                    f"{site.name}_{settings.fusion}", taken
                ),
                dtype=_fusion_dtype(op, inputs),
                shape=merged_shape(site.shapes),
                inter_channels=site.channels // settings.reduction_ratio,
            )
        calls.setdefault(id(op), []).append(entry)
    _check_names_found(settings.select, found, model)
    replacements = {
        key: entries
        for key, entries in calls.items()
        if any(e is not None for e in entries)
    }
    return Plan(replacements=replacements, skipped=tuple(skipped))
