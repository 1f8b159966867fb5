"""The one check policy: tolerances, messages, the int8 policy shared by
PTQ and QAT, and the int8 graph check."""

import numpy as np
import pytest

from keras_aff.export import ExportVerificationError
from keras_aff.export import checks


def test_tolerances():
    assert checks.tolerance_for("float32", 0.5) == 1e-4
    assert checks.tolerance_for("float32", 20.0) == pytest.approx(2e-3)
    assert checks.tolerance_for("float16", 1.0) == 1e-2
    assert checks.tolerance_for("dynamic", 2.0) == 0.1
    assert checks.tolerance_for("int8", 4.0) == pytest.approx(0.4)
    assert checks.tolerance_for("float32", 100.0, atol=1e-6) == 1e-6
    # `rtol` (QAT's `tolerance`) replaces the mode's relative bound.
    assert checks.tolerance_for("int8", 4.0, rtol=0.15) == pytest.approx(0.6)
    assert checks.tolerance_for("int8", 0.2, rtol=0.15) == pytest.approx(0.15)


def test_check_messages_give_error_and_tolerance():
    ref = [np.array([[0.0, 1.0], [1.0, 0.0]], "float32")]
    stats, tol = checks.check("X", ref, [ref[0] + 1e-6])
    assert stats.max_abs_error == pytest.approx(1e-6) and tol == 1e-4
    assert stats.output_range == 1.0
    with pytest.raises(
        ExportVerificationError,
        match=r"X does not reproduce the Keras model on batch 2: max "
        r"\|error\| 0\.5 > tolerance 0\.0001 \(float32",
    ):
        checks.check("X", ref, [ref[0] + 0.5], where="batch 2")
    with pytest.raises(ExportVerificationError, match=r"max \|error\| inf"):
        checks.check("X", ref, [ref[0] * np.nan])
    with pytest.raises(ExportVerificationError, match="shape"):
        checks.check("X", ref, [ref[0][:1]])
    flipped = [ref[0][:, ::-1].copy()]
    with pytest.raises(
        ExportVerificationError,
        match=r"top-1 agreement 0\.000 \(minimum 0\.9\)",
    ):
        checks.check("X", ref, flipped, mode="int8")
    stats, _ = checks.check(
        "X", ref, flipped, mode="int8", atol=2.0, min_top1_agreement=0.0
    )
    assert stats.top1_agreement == 0.0


def test_int8_policy_bounds_the_mean_error_and_the_top1():
    """The int8 policy (PTQ's defaults, QAT's `rtol`): a few large errors
    pass, a shifted output or a flipped class fails."""
    rng = np.random.default_rng(0)
    ref = [rng.normal(size=(50, 4)).astype("float32") * 3.0]
    spikes = ref[0].copy()
    spikes[:2] += 0.1  # large on two samples only, argmax unchanged
    spikes[np.arange(2), ref[0][:2].argmax(-1)] += 1.0
    scale = float(np.abs(ref[0]).max())
    for policy in (checks.Policy("int8"), checks.Policy("int8", rtol=0.15)):
        stats, tol = policy.check("X", ref, [spikes])
        assert stats.max_abs_error > 1.0 and stats.top1_agreement == 1.0
        assert tol == pytest.approx((policy.rtol or 0.1) * scale)
        with pytest.raises(ExportVerificationError, match=r"mean \|error\|"):
            policy.check("X", ref, [ref[0] + 0.2 * scale])
    with pytest.raises(ExportVerificationError, match=r"on batch 50: top-1"):
        checks.Policy("int8", rtol=0.15).check(
            "X", ref, [-ref[0]], where="batch 50"
        )


def test_merge_stats():
    a = checks.Stats(0.1, 0.01, 2.0, 1.0, 4, 3.0)
    b = checks.Stats(0.3, 0.04, 1.0, 0.0, 1, 5.0)
    total = checks.merge_stats([a, b])
    assert total.max_abs_error == 0.3 and total.output_scale == 2.0
    assert total.mean_abs_error == pytest.approx((0.04 + 0.04) / 5)
    assert total.top1_agreement == pytest.approx(0.8)
    assert total.num_samples == 5 and total.output_range == 5.0


def test_int8_graph_check():
    graph = {"float_islands": [], "ops": {"CONV_2D": 1}}
    checks.check_int8_graph("X", graph)
    islands = [f"tensor 't{i}' (float32) made by ADD" for i in range(8)]
    graph = {"float_islands": islands, "ops": {"ADD": 8}}
    with pytest.raises(
        ExportVerificationError, match=r"X is not fully int8: 8 float tensor"
    ) as info:
        checks.check_int8_graph("X", graph)
    assert "'t5'" in str(info.value) and "'t6'" not in str(info.value)
    assert "(2 more)" in str(info.value)
    # QAT caught ValueError in 0.1.0: it still does.
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"atol": float("inf")}, ValueError, r"Received: atol=inf"),
        ({"atol": -1e-3}, ValueError, r"finite number >= 0"),
        ({"rtol": float("nan")}, ValueError, r"Received: rtol=nan"),
        ({"rtol": "0.1"}, TypeError, r"Received: rtol='0.1' \(of type str"),
        ({"min_top1_agreement": 1.5}, ValueError, r"in \[0, 1\]"),
    ],
)
def test_policy_refuses_bounds_that_switch_the_check_off(kwargs, error, match):
    with pytest.raises(error, match=match):
        checks.Policy("int8", **kwargs)
    assert checks.Policy("int8", atol=0.0).atol == 0.0


def test_int8_error_names_flat_outputs_as_the_cause():
    """An untrained 1000-way softmax (every output about 0.001, under one
    int8 step of 1/256) loses its top-1 class in int8: the error says so
    instead of blaming the calibration data."""
    rng = np.random.default_rng(0)
    flat = rng.uniform(0.0009, 0.0011, size=(8, 1000)).astype("float32")
    flat /= flat.sum(-1, keepdims=True)
    quantized = [np.round(flat * 256) / 256]  # all 0: the int8 output
    with pytest.raises(ExportVerificationError) as caught:
        checks.check("X", [flat], quantized, mode="int8")
    message = str(caught.value)
    assert "top-1 agreement 0.000" in message
    assert "Every Keras output is below one int8 step (1/256)" in message
    assert "Export a trained model." in message
    assert "Check the calibration data" not in message
    # Outputs of a trained classifier (above one step) keep the old advice.
    sharp = [np.eye(1000, dtype="float32")[:8]]
    with pytest.raises(ExportVerificationError) as caught:
        checks.check("X", sharp, [sharp[0][:, ::-1].copy()], mode="int8")
    assert "Check the calibration data" in str(caught.value)
    assert "below one int8 step" not in str(caught.value)
