"""MultiAFF-specific behaviour (the contract C1-C12 is in test_contract.py,
with N = 3 inputs).

The property the issue asks for: with N = 2 and the second input's logits
fixed to zero (the last BatchNorm's gamma and beta zero on its channels),
`softmax([z, 0]) = [sigmoid(z), 1 - sigmoid(z)]`, so MultiAFF is AFF with
the same first logits.
"""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_aff import layers
from tests.layers import reference
from tests.layers.cases import to_numpy


def aff_as_multi(aff, multi, channels):
    """Copies AFF's gate into MultiAFF's first C logits and zeroes the
    second input's: bn2 gamma and beta on channels C..2C of both branches
    (conv2 still feeds them, so only the BN pins them to 0)."""
    src = {v.path.split("/", 1)[1]: to_numpy(v) for v in aff.weights}
    for v in multi.weights:
        key = v.path.split("/", 1)[1]
        value = to_numpy(v).copy()
        if value.shape == src[key].shape:
            value = src[key]
        else:  # conv2 kernel/bias, bn2 vectors: N * C outputs
            value[..., :channels] = src[key]
            if "/bn2/" in key and key.endswith(("gamma", "beta")):
                value[..., channels:] = 0.0
        v.assign(value)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    rank=st.sampled_from((3, 4, 5)),
    channels=st.integers(1, 12),
    ratio_index=st.integers(0, 3),
    data_format=st.sampled_from(("channels_last", "channels_first")),
    branches=st.sampled_from(
        (("local", "global"), ("global", "global"), ("local", "local"))
    ),
    output_scale=st.sampled_from((1.0, 2.0)),
    seed=st.integers(0, 2**16),
)
def test_two_inputs_with_zero_second_logits_equal_aff(
    rank, channels, ratio_index, data_format, branches, output_scale, seed
):
    ratio = [1, 2, 4, channels][ratio_index] if channels >= 4 else 1
    rng = np.random.default_rng(seed)
    spatial = tuple(rng.integers(1, 5, size=rank - 2))
    shape = (2, *spatial, channels)
    if data_format == "channels_first":
        shape = (2, channels, *spatial)
    kwargs = dict(
        reduction_ratio=ratio,
        output_scale=output_scale,
        data_format=data_format,
        branches=branches,
    )
    aff = layers.AFF(**kwargs)
    aff.build([shape, shape])
    reference.randomize(aff, seed=seed)
    multi = layers.MultiAFF(**kwargs)
    multi.build([shape, shape])
    reference.randomize(multi, seed=seed + 1)
    aff_as_multi(aff, multi, channels)
    x, y = rng.normal(size=(2, *shape)).astype("float32")
    for training in (False, True):
        want = to_numpy(aff([x, y], training=training))
        got = to_numpy(multi([x, y], training=training))
        # Training mode normalises with the statistics of a batch of 2 over
        # a few positions: float32 rounding there reaches ~1e-5.
        atol = 5e-5 if training else 1e-5
        np.testing.assert_allclose(got, want, atol=atol, rtol=1e-5)
    w_aff = to_numpy(aff.fusion_weights([x, y]))
    w1, w2 = (to_numpy(w) for w in multi.fusion_weights([x, y]))
    np.testing.assert_allclose(w1, w_aff, atol=1e-6)
    np.testing.assert_allclose(w2, 1.0 - w_aff, atol=1e-6)


def test_the_second_logits_matter():
    """Without zeroing, the second input's logits change the result (the
    property above is not true by construction)."""
    shape = (2, 5, 4, 8)
    aff = layers.AFF(reduction_ratio=2)
    aff.build([shape, shape])
    reference.randomize(aff, seed=1)
    multi = layers.MultiAFF(reduction_ratio=2)
    multi.build([shape, shape])
    reference.randomize(multi, seed=2)
    aff_as_multi(aff, multi, 8)
    for v in multi.weights:
        if v.path.endswith("local/bn2/beta"):
            value = to_numpy(v).copy()
            value[8:] = 1.0
            v.assign(value)
    x, y = np.random.default_rng(3).normal(size=(2, *shape)).astype("f")
    diff = to_numpy(multi([x, y])) - to_numpy(aff([x, y]))
    assert np.max(np.abs(diff)) > 1e-2


def test_many_inputs_and_input_order():
    """N = 5: the weights follow their inputs when the inputs are permuted
    and the logit chunks permuted with them."""
    shape, n = (2, 4, 3, 6), 5
    layer = layers.MultiAFF(reduction_ratio=2)
    layer.build([shape] * n)
    reference.randomize(layer, seed=4)
    xs = list(np.random.default_rng(5).normal(size=(n, *shape)).astype("f"))
    ws = [to_numpy(w) for w in layer.fusion_weights(xs)]
    assert len(ws) == n
    np.testing.assert_allclose(sum(ws), 1.0, atol=1e-6)
    perm = [2, 0, 4, 1, 3]
    for v in layer.weights:
        if v.path.split("/")[-2] in ("conv2", "bn2"):
            value = to_numpy(v)
            chunks = np.split(value, n, axis=-1)
            v.assign(np.concatenate([chunks[i] for i in perm], axis=-1))
    permuted = [
        to_numpy(w) for w in layer.fusion_weights([xs[i] for i in perm])
    ]
    for j, i in enumerate(perm):
        np.testing.assert_allclose(permuted[j], ws[i], atol=1e-6)


def test_symbolic_and_built_input_count():
    inputs = [keras.Input((None, None, 8)) for _ in range(4)]
    layer = layers.MultiAFF(reduction_ratio=2)
    out = layer(inputs)
    assert tuple(out.shape) == (None, None, None, 8)
    assert layer.num_inputs == 4 and layer.channels == 8
    assert tuple(layer.attention.branch1.conv2.kernel.shape) == (1, 1, 4, 32)


def test_no_fused_kernel():
    with pytest.raises(ValueError, match=r"Received: implementation='fused'"):
        layers.MultiAFF(implementation="fused")
    for choice in ("auto", "xla"):
        assert layers.MultiAFF(implementation=choice).implementation == choice
