"""MSCAM: the layer contract (C1-C12) plus MSCAM-specific behaviour."""

import numpy as np
import pytest

from keras_aff.layers import _gate
from tests.layers import contract
from tests.layers import reference

CASE = contract.MSCAM


class TestMSCAMContract(contract.LayerContract):
    case = CASE


@pytest.mark.parametrize("kwargs,exc,match", contract.constructor_errors(CASE))
def test_c9_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        CASE.cls(**kwargs)


@pytest.mark.parametrize("fn,exc,match", contract.call_errors(CASE))
def test_c9_call_errors(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_output_is_gated_input():
    # x * M(x) with M in (0, 1): same sign as x and never larger.
    layer = CASE.cls(reduction_ratio=2)
    (x,) = CASE.make_inputs()
    out = contract.to_numpy(layer(x))
    assert np.all(np.abs(out) <= np.abs(x))
    assert np.all(out * x >= 0)
    assert np.any(np.abs(out) < 0.99 * np.abs(x))


def test_float16_global_mean_is_accurate():
    """A float16 mean over a 224x224 map of 2.0 is 2.0 (a float16
    tf.reduce_mean on TF CPU returns 0.653): the gate accumulates the global
    average in float32."""
    x = np.full((1, 224, 224, 8), 2.0, "float16")
    m = contract.to_numpy(_gate.Keras3Kit.mean(x, (1, 2)))
    assert m.dtype == np.float16 and m.shape == (1, 1, 1, 8)
    np.testing.assert_array_equal(m, np.full((1, 1, 1, 8), 2.0))
    # Channels-first axes and a rank-3 map.
    m = _gate.Keras3Kit.mean(np.full((1, 8, 224, 224), 2.0, "float16"), (2, 3))
    np.testing.assert_array_equal(contract.to_numpy(m), 2.0)
    m = _gate.Keras3Kit.mean(np.full((1, 50176, 8), 2.0, "float16"), (1,))
    np.testing.assert_array_equal(contract.to_numpy(m), 2.0)


def test_float16_global_branch_end_to_end():
    """Under mixed_float16 every position of a constant 224x224 map sees the
    same global average, so MSCAM equals MSCAM on a 1x1 map of the value."""
    layer = CASE.cls(reduction_ratio=2, dtype="mixed_float16")
    CASE.build(layer, (1, None, None, 8))
    reference.randomize(layer, seed=2)
    big = contract.to_numpy(layer(np.full((1, 224, 224, 8), 2.0, "float32")))
    small = contract.to_numpy(layer(np.full((1, 1, 1, 8), 2.0, "float32")))
    assert big.dtype == np.float16
    np.testing.assert_allclose(big, np.broadcast_to(small, big.shape), 1e-3)
    # The check is sensitive: a global mean of 0.653 would change the gate.
    wrong = layer.attention.branch2(np.full((1, 1, 1, 8), 0.653, "float16"))
    right = layer.attention.branch2(np.full((1, 1, 1, 8), 2.0, "float16"))
    diff = contract.to_numpy(wrong).astype("float32") - contract.to_numpy(
        right
    ).astype("float32")
    assert np.max(np.abs(diff)) > 0.05
