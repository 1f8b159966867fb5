"""Properties of MSCAM, AFF, IAFF and MultiAFF over generated shapes,
ranks, ratios, data formats and dtype policies (hypothesis).

- the output has the input's shape and the policy's compute dtype;
- with `output_scale=1`, AFF and IAFF outputs lie elementwise between x and
  y (the gate is in [0, 1]), MultiAFF's between the smallest and the
  largest input (the weights are a softmax), and MSCAM's between 0 and x;
- finite inputs give finite outputs up to the magnitude each policy
  covers (MAGNITUDES): +-1e4 in float32 and mixed_bfloat16, +-1e2 in
  mixed_float16, whose gate computes in float16 (the policy's compute
  dtype) and overflows float16's 65504 from inputs of about 1e3 on (with
  the trained-size weights of `reference.randomize`). A layer given
  `dtype="float32"` in a mixed_float16 model covers +-1e4 again
  (`test_float32_layer_in_a_float16_model_covers_1e4`).
"""

import keras
import numpy as np
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from tests.layers import reference
from tests.layers.cases import CASES
from tests.layers.cases import to_numpy

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
# The input magnitudes (normal scale, clipped at the largest) per policy.
MAGNITUDES = {
    "float32": (1.0, 1e2, 1e4),
    "mixed_bfloat16": (1.0, 1e2, 1e4),
    "mixed_float16": (1.0, 1e1, 1e2),
}
# Float rounding of y + w * (x - y) in the compute dtype, relative to |x|+|y|.
EPS = {"float32": 1e-6, "float16": 2e-3, "bfloat16": 1e-2}
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@st.composite
def layer_inputs(draw):
    """(case, kwargs, inputs as float32 arrays)."""
    case = draw(st.sampled_from(CASES))
    rank = draw(st.sampled_from((3, 4, 5)))
    channels = draw(st.integers(2, 64))
    ratio = draw(st.integers(1, channels))
    spatial = draw(
        st.lists(st.integers(1, 6), min_size=rank - 2, max_size=rank - 2)
    )
    data_format = draw(st.sampled_from(("channels_last", "channels_first")))
    batch = draw(st.integers(1, 3))
    if data_format == "channels_last":
        shape = (batch, *spatial, channels)
    else:
        shape = (batch, channels, *spatial)
    level = draw(st.sampled_from((0, 1, 2)))  # an index into MAGNITUDES
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    n = case.num_inputs
    inputs = [rng.normal(size=shape) for _ in range(n)]
    kwargs = dict(reduction_ratio=ratio, data_format=data_format)
    return case, kwargs, (inputs, level), seed


def _scaled(inputs, policy):
    normals, level = inputs
    top = MAGNITUDES[policy][-1]
    scale = MAGNITUDES[policy][level]
    return [np.clip(scale * z, -top, top).astype("f") for z in normals]


def _run(case, kwargs, inputs, seed, policy):
    """The layer, with random weights and BN statistics of the size trained
    networks have, and its output."""
    layer = case.cls(dtype=policy, **kwargs)
    case.build(layer, inputs[0].shape)
    reference.randomize(layer, seed=seed)
    return layer, case.call(layer, inputs)


@SETTINGS
@given(data=layer_inputs(), policy=st.sampled_from(POLICIES))
def test_shape_dtype_and_finite(data, policy):
    case, kwargs, inputs, seed = data
    inputs = _scaled(inputs, policy)
    layer, out = _run(case, kwargs, inputs, seed, policy)
    assert tuple(out.shape) == inputs[0].shape
    dtype = keras.backend.standardize_dtype(out.dtype)
    assert dtype == layer.compute_dtype
    out = to_numpy(out).astype("float32")
    assert np.all(np.isfinite(out)), (case.name, policy, kwargs)


@SETTINGS
@given(data=layer_inputs(), policy=st.sampled_from(POLICIES))
def test_output_between_the_inputs(data, policy):
    case, kwargs, inputs, seed = data
    inputs = _scaled(inputs, policy)
    layer, out = _run(case, kwargs, inputs, seed, policy)
    out = to_numpy(out).astype("float64")
    # The inputs as the layer saw them (rounded to the compute dtype).
    seen = [
        to_numpy(keras.ops.cast(a, layer.compute_dtype)).astype("float64")
        for a in inputs
    ]
    if len(seen) == 1:
        seen.append(np.zeros_like(seen[0]))
    slack = EPS[layer.compute_dtype] * (sum(np.abs(a) for a in seen) + 1e-30)
    assert np.all(out >= np.min(seen, axis=0) - slack), case.name
    assert np.all(out <= np.max(seen, axis=0) + slack), case.name


def test_float32_layer_in_a_float16_model_covers_1e4(case):
    """The opt-in for extreme magnitudes under mixed_float16 is Keras' own:
    `dtype="float32"` on the fusion layer (its sublayers follow it); the
    model around it stays mixed_float16."""
    rng = np.random.default_rng(0)
    shape = (2, 5, 5, 64)
    inputs = [
        np.clip(rng.normal(scale=1e4, size=shape), -1e4, 1e4).astype("f")
        for _ in range(case.num_inputs)
    ]
    outs = {}
    for policy in ("mixed_float16", "float32"):
        layer = case.cls(reduction_ratio=2, dtype=policy)
        case.build(layer, shape)
        reference.randomize(layer, seed=0)
        outs[policy] = to_numpy(case.call(layer, inputs)).astype("float32")
    assert not np.all(np.isfinite(outs["mixed_float16"])), case.name
    assert np.all(np.isfinite(outs["float32"])), case.name
