"""IAFF-specific behaviour (the contract C1-C12 is in test_contract.py)."""

import numpy as np

from tests.layers import cases
from tests.layers import reference

CASE = cases.IAFF


def _built(seed=0, **kwargs):
    layer = CASE.cls(reduction_ratio=2, **kwargs)
    CASE.build(layer, cases.SHAPE)
    reference.randomize(layer, seed=seed)
    return layer


def test_second_gate_has_its_own_global_branch():
    """Unlike the official PyTorch port (global_att reused), the second gate
    uses attention2/global: changing it changes the output, and changing
    attention1/global's last BN does not affect the second gate's branch."""
    layer = _built()
    paths = {v.path.split("/", 1)[1] for v in layer.weights}
    assert "attention2/global/conv1/kernel" in paths
    assert "attention2/local/conv1/kernel" in paths
    x, y = CASE.make_inputs()
    before = cases.to_numpy(layer([x, y]))
    for v in layer.weights:
        if v.path.endswith("attention2/global/bn2/beta"):
            v.assign(cases.to_numpy(v) + 1.0)
    after = cases.to_numpy(layer([x, y]))
    assert np.max(np.abs(after - before)) > 1e-3
    np.testing.assert_allclose(after, CASE.expected(layer, [x, y]), atol=1e-5)


def test_second_gate_at_one_half_gives_the_plain_average():
    # Zeroing only the second gate's last BNs: w2 = 0.5 whatever w1 is, so
    # the output is output_scale * (x + y) / 2.
    layer = _built(output_scale=3.0)
    for v in layer.weights:
        parts = v.path.split("/")
        if parts[-4] == "attention2" and parts[-2] == "bn2":
            v.assign(np.zeros(v.shape, "float32"))
    x, y = CASE.make_inputs()
    out = cases.to_numpy(layer([x, y]))
    np.testing.assert_allclose(out, 1.5 * (x + y), rtol=1e-5, atol=1e-5)


def test_output_scale_scales_the_output():
    one = _built(seed=3)
    two = CASE.cls(reduction_ratio=2, output_scale=2.0)
    CASE.build(two, cases.SHAPE)
    two.set_weights(one.get_weights())
    x, y = CASE.make_inputs()
    a = cases.to_numpy(one([x, y]))
    b = cases.to_numpy(two([x, y]))
    np.testing.assert_allclose(b, 2.0 * a, rtol=1e-6, atol=1e-6)
