"""NaN and Inf inputs: documented behaviour, pinned (every backend).

In inference each sample is fused on its own: a non-finite value in one
sample never reaches another. Within the sample, the global branch
averages over every position, so one NaN (or an Inf, which becomes NaN in
the gate's arithmetic) makes the whole sample's gate non-finite. In
training, BatchNormalization's batch statistics mix the samples: one
non-finite value makes the whole batch's output NaN and the moving
statistics NaN. No error is raised: screen inputs with
`np.isfinite(x).all()` where they may hold NaN or Inf.
"""

import numpy as np
import pytest

from tests.layers import reference
from tests.layers.cases import to_numpy

SHAPE = (3, 5, 4, 8)


def _layer(case):
    layer = case.cls(reduction_ratio=2)
    case.build(layer, SHAPE)
    reference.randomize(layer, seed=3)
    return layer


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_inference_keeps_non_finite_values_in_their_sample(case, bad):
    layer = _layer(case)
    inputs = case.make_inputs(SHAPE, seed=1)
    clean = to_numpy(case.call(layer, inputs, training=False))
    inputs[0][1, 2, 3, 4] = bad
    out = to_numpy(case.call(layer, inputs, training=False))
    assert out.shape == SHAPE
    # The other samples are exactly as before.
    np.testing.assert_array_equal(out[[0, 2]], clean[[0, 2]])
    # The poisoned sample is not finite (its gate is NaN everywhere for
    # NaN; for an Inf at least where it is).
    assert not np.all(np.isfinite(out[1]))
    if np.isnan(bad):
        assert np.all(np.isnan(out[1]))


def test_training_spreads_nan_to_the_batch_and_statistics(case):
    layer = _layer(case)
    inputs = case.make_inputs(SHAPE, seed=2)
    inputs[0][1, 0, 0, 0] = np.nan
    out = to_numpy(case.call(layer, inputs, training=True))
    assert np.all(np.isnan(out))
    stats = [to_numpy(v) for v in layer.non_trainable_weights]
    assert stats and all(np.any(np.isnan(s)) for s in stats)


def test_large_finite_inputs_stay_finite(case):
    layer = _layer(case)
    inputs = [1e4 * a for a in case.make_inputs(SHAPE, seed=4)]
    out = to_numpy(case.call(layer, inputs, training=False))
    assert np.all(np.isfinite(out))
