"""AFF-specific behaviour (the contract C1-C12 is in test_contract.py)."""

import numpy as np

from tests.layers import cases
from tests.layers import harness
from tests.layers import reference

CASE = cases.AFF


def test_closed_form_is_x_plus_y_for_any_inputs():
    # Zero last-BN gamma/beta: w = 0.5, so output_scale=2 gives x + y, the
    # official networks' "weights sum to 2" (rank 3, 4 and 5).
    for shape in [(3, 7, 8), (2, 5, 4, 8), (1, 2, 3, 4, 8)]:
        harness.check_closed_form(CASE, shape)


def _pinned_gate(beta):
    """An AFF whose gate is sigmoid(beta) everywhere (bn2 gamma = 0)."""
    layer = CASE.cls(reduction_ratio=2)
    CASE.build(layer, cases.SHAPE)
    reference.randomize(layer, seed=4)
    harness.zero_last_batch_norms(layer)
    for v in layer.weights:
        if v.path.endswith("attention/local/bn2/beta"):
            v.assign(np.full(v.shape, beta, "float32"))
    return layer


def test_weight_multiplies_the_first_input():
    x, y = CASE.make_inputs()
    # w = sigmoid(30) = 1 - 1e-13: the output is the FIRST input x.
    out = cases.to_numpy(_pinned_gate(30.0)([x, y]))
    np.testing.assert_allclose(out, x, atol=1e-5)
    # w = sigmoid(-30): the output is the second input y.
    out = cases.to_numpy(_pinned_gate(-30.0)([x, y]))
    np.testing.assert_allclose(out, y, atol=1e-5)


def test_output_scale_scales_the_output():
    x, y = CASE.make_inputs()
    one = CASE.cls(reduction_ratio=2)
    two = CASE.cls(reduction_ratio=2, output_scale=2.0)
    CASE.build(one, cases.SHAPE)
    CASE.build(two, cases.SHAPE)
    reference.randomize(one, seed=1)
    two.set_weights(one.get_weights())
    a = cases.to_numpy(one([x, y]))
    b = cases.to_numpy(two([x, y]))
    np.testing.assert_allclose(b, 2.0 * a, rtol=1e-6, atol=1e-6)


def test_float16_global_branch_end_to_end():
    """mixed_float16 AFF on constant 224x224 maps (x + y = 2.0) equals AFF
    on 1x1 maps of the same values: the global mean is 2.0, not 0.653."""
    layer = CASE.cls(reduction_ratio=2, dtype="mixed_float16")
    CASE.build(layer, (1, None, None, 8))
    reference.randomize(layer, seed=6)
    ones = np.ones((1, 224, 224, 8), "float32")
    big = cases.to_numpy(layer([ones, 3.0 * ones - 2.0]))
    one = np.ones((1, 1, 1, 8), "float32")
    small = cases.to_numpy(layer([one, 3.0 * one - 2.0]))
    assert big.dtype == np.float16
    np.testing.assert_allclose(big, np.broadcast_to(small, big.shape), 1e-3)
    # Sensitive: the gate on a global mean of 0.653 differs.
    glob = layer.attention.branch2
    diff = cases.to_numpy(glob(np.full((1, 1, 1, 8), 0.653))).astype(
        "float32"
    ) - cases.to_numpy(glob(np.full((1, 1, 1, 8), 2.0))).astype("float32")
    assert np.max(np.abs(diff)) > 0.05
