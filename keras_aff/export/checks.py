"""The one check policy of every export: how close an artifact must stay to
its Keras model, and what an int8 LiteRT graph may contain (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Tolerances (relative to the output scale `s = max(1, max |Keras output|)`):

| artifact                          | passes when                            |
|-----------------------------------|----------------------------------------|
| float32 (SavedModel, ONNX, LiteRT) | max abs error <= 1e-4 * s             |
| LiteRT float16 weights            | max abs error <= 1e-2 * s              |
| LiteRT dynamic-range int8         | max abs error <= 5e-2 * s              |
| LiteRT full int8 (PTQ and QAT)    | fully int8 graph, mean abs error <=    |
|                                   | 0.1 * s and, for a classifier output   |
|                                   | (rank 2, >= 2 classes), top-1          |
|                                   | agreement >= 0.9                       |

`atol` (absolute) or `rtol` (relative to `s`) replace the bound: on the max
error, for int8 on the mean error; `min_top1_agreement` replaces 0.9. Both
must be finite and >= 0 (`inf` would switch the check off, a negative bound
fail every artifact): anything else is refused before any work.
`keras_aff.qat.convert_to_int8_litert(..., tolerance=t)` is the int8 policy
with `rtol=t`.
"""

import dataclasses

import numpy as np

from keras_aff._validation import check_number
from keras_aff._validation import check_tolerance
from keras_aff.export.report import ExportVerificationError

# Relative tolerances on the max abs error, by what the artifact computes in.
RTOL = {"float32": 1e-4, "float16": 1e-2, "dynamic": 5e-2}
# Full integer: bound on the MEAN abs error (max errors of a few quantization
# steps on the largest logits are normal), plus top-1 agreement.
INT8_MEAN_RTOL = 0.1
MIN_TOP1_AGREEMENT = 0.9
MODES = ("float32", "float16", "dynamic", "int8")
# Float islands listed in a "not fully int8" message.
_SHOWN_ISLANDS = 6


@dataclasses.dataclass
class Stats:
    """Error statistics of an artifact's outputs against Keras'."""

    max_abs_error: float
    mean_abs_error: float
    output_scale: float
    top1_agreement: float | None
    num_samples: int
    output_range: float = 0.0


def error_stats(reference, candidate):
    """Error statistics of `candidate` against `reference` (lists of
    arrays)."""
    if len(reference) != len(candidate):
        raise ExportVerificationError(
            f"The artifact returns {len(candidate)} outputs, the Keras "
            f"model {len(reference)}."
        )
    max_err, abs_sum, count, scale = 0.0, 0.0, 0, 0.0
    lo, hi = np.inf, -np.inf
    agree = []
    for ref, got in zip(reference, candidate):
        got = np.asarray(got, dtype="float32")
        if got.shape != ref.shape:
            raise ExportVerificationError(
                f"The artifact returns an output of shape {got.shape}, the "
                f"Keras model {ref.shape}."
            )
        if not np.all(np.isfinite(got)):
            return Stats(float("inf"), float("inf"), 0.0, None, len(ref))
        err = np.abs(got - ref)
        max_err = max(max_err, float(err.max()))
        abs_sum += float(err.sum())
        count += err.size
        scale = max(scale, float(np.abs(ref).max()))
        lo, hi = min(lo, float(ref.min())), max(hi, float(ref.max()))
        if ref.ndim == 2 and ref.shape[-1] >= 2:
            agree.append(ref.argmax(-1) == got.argmax(-1))
    top1 = float(np.concatenate(agree).mean()) if agree else None
    return Stats(
        max_err,
        abs_sum / max(count, 1),
        scale,
        top1,
        len(reference[0]),
        hi - lo,
    )


def merge_stats(parts):
    """Combines Stats of several checks (max of max, weighted mean...)."""
    n = sum(p.num_samples for p in parts)
    tops = [p for p in parts if p.top1_agreement is not None]
    return Stats(
        max(p.max_abs_error for p in parts),
        sum(p.mean_abs_error * p.num_samples for p in parts) / n,
        max(p.output_scale for p in parts),
        (
            sum(p.top1_agreement * p.num_samples for p in tops)
            / sum(p.num_samples for p in tops)
            if tops
            else None
        ),
        n,
        max(p.output_range for p in parts),
    )


def tolerance_for(mode, output_scale, atol=None, rtol=None):
    """The bound for `mode` ("float32", "float16", "dynamic", "int8"):
    `atol`, else `rtol` (default: the mode's) times `max(1, scale)`."""
    if atol is not None:
        return float(atol)
    if rtol is None:
        rtol = INT8_MEAN_RTOL if mode == "int8" else RTOL[mode]
    return float(rtol) * max(1.0, output_scale)


@dataclasses.dataclass(frozen=True)
class Policy:
    """How closely an artifact must follow its Keras model.

    Attributes:
        mode: "float32", "float16", "dynamic" or "int8".
        atol: optional absolute bound (on the max error; int8: the mean).
        rtol: optional bound relative to `max(1, max |Keras output|)`.
        min_top1_agreement: optional, int8 classifier outputs (default 0.9).
    """

    mode: str = "float32"
    atol: float | None = None
    rtol: float | None = None
    min_top1_agreement: float | None = None

    def __post_init__(self):
        # A bound of inf would switch the check off, a negative one fail
        # every artifact: both are refused (the exporters check first).
        check_tolerance("atol", self.atol)
        check_tolerance("rtol", self.rtol)
        if self.min_top1_agreement is not None:
            check_number(
                "min_top1_agreement", self.min_top1_agreement, low=0, high=1
            )

    def check(self, label, reference, candidate, where=""):
        """Raises ExportVerificationError, or returns (Stats, tolerance)."""
        return check(
            label,
            reference,
            candidate,
            mode=self.mode,
            atol=self.atol,
            min_top1_agreement=self.min_top1_agreement,
            where=where,
            rtol=self.rtol,
        )


def _below_one_int8_step(stats):
    """Whether every Keras output is under one step of an int8 output in
    [0, 1] (1/256, a softmax's or sigmoid's): a flat softmax, e.g. the
    1000 outputs of an untrained ImageNet classifier (about 0.001 each),
    quantizes to one or two levels, so its top-1 class is lost."""
    return stats.output_scale < 1 / 256


def _check_int8(label, stats, tol, min_top1_agreement, where):
    min_agree = (
        MIN_TOP1_AGREEMENT if min_top1_agreement is None else min_top1_agreement
    )
    bad = not stats.mean_abs_error <= tol
    if stats.top1_agreement is not None:
        bad = bad or stats.top1_agreement < min_agree
    if not bad:
        return
    agree = (
        f"top-1 agreement {stats.top1_agreement:.3f} (minimum {min_agree}), "
        if stats.top1_agreement is not None
        else ""
    )
    advice = (
        "Check the calibration data (it should look like real inputs) or the "
        "QAT ranges, or relax the tolerance (`atol` / `min_top1_agreement` "
        "of `export_litert`, `tolerance` of `convert_to_int8_litert`)."
    )
    if _below_one_int8_step(stats):
        advice = (
            "Every Keras output is below one int8 step (1/256): the outputs "
            "are flat, as an untrained classifier's softmax is (1/classes "
            "each), so int8 cannot keep their order. Export a trained model."
        )
    raise ExportVerificationError(
        f"{label} does not reproduce the Keras model{where}: {agree}mean "
        f"|error| {stats.mean_abs_error:.4g} (tolerance {tol:.4g}), max "
        f"|error| {stats.max_abs_error:.4g}, output scale "
        f"{stats.output_scale:.4g}, {stats.num_samples} samples. {advice}"
    )


def check(
    label,
    reference,
    candidate,
    mode="float32",
    atol=None,
    min_top1_agreement=None,
    where="",
    rtol=None,
):
    """Compares an artifact's outputs with Keras; raises
    ExportVerificationError with the error and the tolerance, or returns
    (Stats, tolerance)."""
    stats = error_stats(reference, candidate)
    tol = tolerance_for(mode, stats.output_scale, atol, rtol)
    where = f" on {where}" if where else ""
    if mode == "int8":
        _check_int8(label, stats, tol, min_top1_agreement, where)
        return stats, tol
    if not stats.max_abs_error <= tol:
        raise ExportVerificationError(
            f"{label} does not reproduce the Keras model{where}: max |error| "
            f"{stats.max_abs_error:.4g} > tolerance {tol:.4g} ({mode}; mean "
            f"|error| {stats.mean_abs_error:.4g}, output scale "
            f"{stats.output_scale:.4g}, {stats.num_samples} samples). This "
            "is a converter or runtime bug, not rounding: do not ship the "
            "artifact. Pass `atol=` only if you know the error is expected."
        )
    return stats, tol


def check_int8_graph(label, graph):
    """Raises ExportVerificationError unless `graph` (`inspect_litert` of an
    int8 model) is fully int8: no float tensor between ops, no QUANTIZE /
    DEQUANTIZE inside the graph."""
    islands = graph["float_islands"]
    if not islands:
        return
    shown = "; ".join(islands[:_SHOWN_ISLANDS])
    if len(islands) > _SHOWN_ISLANDS:
        shown += f"; ... ({len(islands) - _SHOWN_ISLANDS} more)"
    raise ExportVerificationError(
        f"{label} is not fully int8: {len(islands)} float tensor(s) or "
        f"(de)quantize op(s) inside the graph: {shown}. Ops: {graph['ops']}. "
        "Some op ran outside int8: for QAT, use `quantize_model(model)` "
        "(unroll=True) or pass a `representative_dataset`."
    )
