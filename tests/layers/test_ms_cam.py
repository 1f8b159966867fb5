"""MSCAM-specific behaviour (the contract C1-C12 is in test_contract.py)."""

import numpy as np
import pytest

from keras_aff.layers import gate
from tests.layers import cases
from tests.layers import reference

CASE = cases.MSCAM


def test_output_is_gated_input():
    # x * M(x) with M in (0, 1): same sign as x and never larger.
    layer = CASE.cls(reduction_ratio=2)
    (x,) = CASE.make_inputs()
    out = cases.to_numpy(layer(x))
    assert np.all(np.abs(out) <= np.abs(x))
    assert np.all(out * x >= 0)
    assert np.any(np.abs(out) < 0.99 * np.abs(x))


@pytest.mark.parametrize(
    "big,small,data_format",
    [
        ((1, 224, 224, 8), (1, 1, 1, 8), "channels_last"),
        ((1, 8, 224, 224), (1, 8, 1, 1), "channels_first"),
        ((1, 50176, 8), (1, 1, 8), "channels_last"),
    ],
)
def test_float16_global_mean_is_accurate(big, small, data_format):
    """A float16 global branch averages in float32: on a constant map of
    2.0 (224x224) it equals the branch on a 1x1 map of 2.0 (a float16
    tf.reduce_mean on TF CPU returns 0.653 there)."""
    branch = gate.ContextBranch(
        "global",
        8,
        4,
        len(big),
        True,
        0.9,
        1e-5,
        False,
        "glorot_uniform",
        None,
        data_format,
        dtype="float16",
    )
    on_big = cases.to_numpy(branch(np.full(big, 2.0, "float16")))
    on_small = cases.to_numpy(branch(np.full(small, 2.0, "float16")))
    assert on_big.dtype == np.float16
    np.testing.assert_array_equal(on_big, on_small)


def test_float16_global_branch_end_to_end():
    """Under mixed_float16 every position of a constant 224x224 map sees the
    same global average, so MSCAM equals MSCAM on a 1x1 map of the value."""
    layer = CASE.cls(reduction_ratio=2, dtype="mixed_float16")
    CASE.build(layer, (1, None, None, 8))
    reference.randomize(layer, seed=2)
    big = cases.to_numpy(layer(np.full((1, 224, 224, 8), 2.0, "float32")))
    small = cases.to_numpy(layer(np.full((1, 1, 1, 8), 2.0, "float32")))
    assert big.dtype == np.float16
    np.testing.assert_allclose(big, np.broadcast_to(small, big.shape), 1e-3)
    # The check is sensitive: a global mean of 0.653 would change the gate.
    wrong = layer.attention.branch2(np.full((1, 1, 1, 8), 0.653, "float16"))
    right = layer.attention.branch2(np.full((1, 1, 1, 8), 2.0, "float16"))
    diff = cases.to_numpy(wrong).astype("float32") - cases.to_numpy(
        right
    ).astype("float32")
    assert np.max(np.abs(diff)) > 0.05
