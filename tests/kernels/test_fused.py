"""The fused Pallas path (`implementation="fused"`) equals the `keras.ops`
path: outputs, gradients and BatchNorm moving statistics, in inference and
training, for MSCAM, AFF and both stages of IAFF.

On a CPU the kernel runs in Pallas interpret mode (exact, slow), so the
grid below covers every required value at least once instead of their
product: H*W = 49, 196 and 3136 (ragged last tiles), C = 64 ... 2048,
r = 4 and 16, batch 1 and 8. The compiled (Triton) kernel is lowered for
CUDA without a GPU. JAX backend only: CI runs tests/kernels under
KERAS_BACKEND=jax.
"""

import keras
import numpy as np
import pytest

from tests.layers import reference
from tests.layers.cases import AFF
from tests.layers.cases import BACKEND
from tests.layers.cases import IAFF
from tests.layers.cases import MSCAM
from tests.layers.cases import OFFICIAL_CASES

CASES = OFFICIAL_CASES  # MultiAFF has no fused kernel

pytestmark = pytest.mark.skipif(
    BACKEND != "jax", reason="the fused kernel is JAX-only (KERAS_BACKEND=jax)"
)

# (layer case, input shape, reduction_ratio, training)
GRID = [
    pytest.param(AFF, (8, 7, 7, 2048), 16, False, id="AFF-b8-49-C2048-r16"),
    pytest.param(AFF, (1, 56, 56, 64), 4, True, id="AFF-b1-3136-C64-r4-train"),
    pytest.param(IAFF, (8, 14, 14, 256), 4, True, id="IAFF-b8-196-C256-train"),
    pytest.param(IAFF, (1, 7, 7, 512), 16, False, id="IAFF-b1-49-C512-r16"),
    pytest.param(
        MSCAM, (1, 14, 14, 1024), 16, True, id="MSCAM-b1-196-C1024-train"
    ),
]


def randomize(layer, seed):
    """`reference.randomize`, with kernels scaled by 1 / sqrt(fan_in) as
    trained ones are: N(0, 0.7) kernels at C = 2048 push the gate logits to
    ~200, where float32 rounding alone differs by ~1e-4 between any two
    summation orders."""
    reference.randomize(layer, seed)
    for v in layer.weights:
        if v.path.endswith("kernel"):
            fan_in = v.shape[-2]
            v.assign(keras.ops.convert_to_numpy(v) / (0.7 * np.sqrt(fan_in)))


def twins(case, shape, reduction_ratio, seed=0):
    """An "xla" and a "fused" layer with the same random weights
    (moving statistics included)."""
    built = []
    for implementation in ("xla", "fused"):
        layer = case.cls(
            reduction_ratio=reduction_ratio, implementation=implementation
        )
        case.build(layer, shape)
        randomize(layer, seed)
        built.append(layer)
    return built


def step(case, layer, inputs, training):
    """(output, new non-trainable values, gradients of a loss with respect
    to the trainable variables and the inputs), one jitted stateless call."""
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def loss(trainable, inputs):
        out, new = layer.stateless_call(
            trainable, non_trainable, case.pack(inputs), training=training
        )
        return jnp.sum(jnp.sin(out) * out), (out, new)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))
    grads, (out, new) = grad(trainable, [jnp.asarray(a) for a in inputs])
    return out, new, jax.tree.leaves(grads)


def assert_close(actual, expected, what, rtol=1e-5):
    """Equal to `rtol` relative to the largest magnitude of `expected`."""
    expected = [np.asarray(e, np.float64) for e in expected]
    scale = max(float(np.max(np.abs(e))) for e in expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(
            np.asarray(a, np.float64),
            e,
            rtol=rtol,
            atol=rtol * scale,
            err_msg=f"{what}[{i}]",
        )


@pytest.mark.parametrize("spec, shape, reduction_ratio, training", GRID)
def test_fused_equals_keras_ops(spec, shape, reduction_ratio, training):
    case = spec
    xla, fused = twins(case, shape, reduction_ratio)
    inputs = case.make_inputs(shape, seed=1)
    out_x, new_x, grads_x = step(case, xla, inputs, training)
    out_f, new_f, grads_f = step(case, fused, inputs, training)
    assert_close([out_f], [out_x], "output")
    assert_close(grads_f, grads_x, "gradients")
    assert_close(new_f, new_x, "moving statistics")
    initial = [v.value for v in xla.non_trainable_variables]
    moved = [not np.allclose(a, b) for a, b in zip(new_x, initial)]
    assert all(moved) if training else not any(moved)


def test_fused_matches_numpy_reference():
    # Independent of the keras.ops path: the float64 NumPy reference.
    layer = AFF.cls(reduction_ratio=4, implementation="fused")
    shape = (2, 5, 5, 32)
    AFF.build(layer, shape)
    reference.randomize(layer, 3)
    inputs = AFF.make_inputs(shape, seed=4)
    out = keras.ops.convert_to_numpy(AFF.call(layer, inputs, training=False))
    np.testing.assert_allclose(
        out, AFF.expected(layer, inputs), rtol=1e-5, atol=1e-5
    )


def test_fused_fit_step_equals_keras_ops():
    # model.fit: the trainer's stateless calls, the optimizer and the BN
    # moving statistics update see the same values on both paths.
    shape = (4, 6, 6, 32)
    x, y = AFF.make_inputs(shape, seed=5)
    target = np.random.default_rng(6).normal(size=shape).astype("float32")
    weights = []
    for implementation in ("xla", "fused"):
        a, b = keras.Input(shape[1:]), keras.Input(shape[1:])
        out = AFF.cls(
            implementation=implementation, output_scale=2.0, name="aff"
        )([a, b])
        model = keras.Model([a, b], out)
        randomize(model.get_layer("aff"), 7)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit([x, y], target, batch_size=4, epochs=1, verbose=0)
        weights.append([keras.ops.convert_to_numpy(v) for v in model.weights])
    assert_close(weights[1], weights[0], "weights after one step")


def test_fused_without_batch_norm_and_bias():
    layer_x, layer_f = (
        IAFF.cls(use_batch_norm=False, use_bias=False, implementation=impl)
        for impl in ("xla", "fused")
    )
    shape = (2, 4, 6, 16)
    for layer in (layer_x, layer_f):
        IAFF.build(layer, shape)
        randomize(layer, 8)
    inputs = IAFF.make_inputs(shape, seed=9)
    out_x, _, grads_x = step(IAFF, layer_x, inputs, True)
    out_f, _, grads_f = step(IAFF, layer_f, inputs, True)
    assert_close([out_f], [out_x], "output")
    assert_close(grads_f, grads_x, "gradients")


def test_only_fused_selects_the_kernel(monkeypatch):
    """ "auto" runs keras.ops everywhere, on a GPU too, until
    benchmarks/gpu.py has measured the kernel there; "fused" opts in."""
    from keras_aff.kernels import fused
    from keras_aff.layers import dispatch

    monkeypatch.setattr(fused, "on_gpu", lambda: True)
    assert dispatch.fused_kernels(AFF.cls()) is None
    assert dispatch.fused_kernels(AFF.cls(implementation="xla")) is None
    assert dispatch.fused_kernels(AFF.cls(implementation="fused")) is fused


def test_fused_rejects_shapes_it_cannot_tile():
    layer = MSCAM.cls(implementation="fused", name="lay")
    with pytest.raises(ValueError, match=r"(?s)'lay'.*\(2, 5, 5, 24\)"):
        layer(np.zeros((2, 5, 5, 24), "float32"))


def test_fused_lowers_to_triton_for_cuda(case, monkeypatch):
    # The compiled kernel (not interpret mode), forward and backward, with
    # training-mode BatchNorm, lowered for CUDA on a machine without one.
    import jax
    import jax.numpy as jnp

    from keras_aff.kernels import fused

    monkeypatch.setattr(fused, "INTERPRET", False)
    shape = (2, 7, 7, 64)
    layer = case.cls(reduction_ratio=4, implementation="fused")
    case.build(layer, shape)
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def loss(trainable, inputs):
        out, _ = layer.stateless_call(
            trainable, non_trainable, case.pack(inputs), training=True
        )
        return jnp.sum(out)

    inputs = [jnp.zeros(shape, "float32")] * (2 if case.pairwise else 1)
    lowered = (
        jax.jit(jax.grad(loss))
        .trace(trainable, inputs)
        .lower(lowering_platforms=("cuda",))
    )
    text = lowered.as_text()
    assert text.count("__gpu$xla.gpu.triton") >= 1 + 2 * case.num_gates
