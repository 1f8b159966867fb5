"""The layer contract C1-C12 (STYLE.md), run for every layer.

Each test takes `case` and runs once per layer of `cases.CASES` (see
`conftest.py`); C8 (a `.keras` file loads in a fresh process) is in
`test_saving.py`, which loads every layer in one subprocess.
"""

import keras
import numpy as np
import pytest

from tests.layers import errors
from tests.layers import harness
from tests.layers import reference
from tests.layers.cases import BACKEND
from tests.layers.cases import CASES
from tests.layers.cases import SHAPE
from tests.layers.cases import non_default_kwargs
from tests.layers.cases import to_numpy


def test_c1_config_defaults(case):
    harness.check_config_round_trip(case)


def test_c1_config_non_default(case):
    harness.check_config_round_trip(case, **non_default_kwargs(case))


def test_c1_data_format_none_is_resolved(case):
    keras.config.set_image_data_format("channels_first")
    layer = case.cls()
    keras.config.set_image_data_format("channels_last")
    assert layer.get_config()["data_format"] == "channels_first"
    harness.check_config_round_trip(case, data_format=None)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("channels,ratio", [(16, 4), (12, 5)])
def test_c2_weight_counts(case, use_bias, channels, ratio):
    harness.check_weight_counts(case, channels, ratio, use_bias)


@pytest.mark.parametrize(
    "batch_shape,data_format",
    [
        ((None, None, None, 8), "channels_last"),
        ((None, 8, None, None), "channels_first"),
        ((None, None, 8), "channels_last"),
        ((None, None, None, None, 8), "channels_last"),
        ((3, 6, 5, 8), "channels_last"),
    ],
)
def test_c3_symbolic_shape(case, batch_shape, data_format):
    harness.check_symbolic_shape(case, batch_shape, data_format)


@pytest.mark.parametrize("shape", [SHAPE, (2, 7, 8), (1, 3, 4, 2, 8)])
def test_c4_eager(case, shape):
    harness.check_eager(case, shape)


@pytest.mark.parametrize(
    "use_bias,training", [(True, None), (False, None), (True, False)]
)
def test_c5_fit_step(case, use_bias, training):
    harness.check_fit_step(case, use_bias=use_bias, training=training)


def test_c6_bn_statistics(case):
    harness.check_bn_statistics(case)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_c7_mixed_precision(case, policy):
    harness.check_mixed_precision(case, policy)


@pytest.mark.parametrize(
    "cls_name,kwargs,exc,match",
    [
        pytest.param(c.name, *p.values, id=f"{c.name}-{p.id}")
        for c in CASES
        for p in errors.constructor_errors(c)
    ],
)
def test_c9_constructor_errors(cls_name, kwargs, exc, match):
    case = next(c for c in CASES if c.name == cls_name)
    with pytest.raises(exc, match=match):
        case.cls(**kwargs)


@pytest.mark.parametrize(
    "fn,exc,match",
    [
        pytest.param(*p.values, id=f"{c.name}-{p.id}")
        for c in CASES
        for p in errors.call_errors(c)
    ],
)
def test_c9_call_errors(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


@pytest.mark.parametrize("shape", [SHAPE, (2, 9, 8), (2, 3, 4, 2, 8)])
def test_c10_numerics(case, shape):
    harness.check_numerics(case, shape)


@pytest.mark.parametrize("branches", [("global", "global"), ("local", "local")])
def test_c10_branch_ablation(case, branches):
    layer, _ = harness.check_numerics(case, branches=branches)
    names = {v.path.split("/")[-3] for v in layer.weights}
    kind = branches[0]
    assert names == {f"{kind}1", f"{kind}2"}


def test_c10_training_mode(case):
    # BatchNorm on batch statistics (ignores the moving statistics).
    harness.check_numerics(case, (3, 4, 5, 8), training=True)


def test_c10_non_default_config(case):
    kwargs = dict(reduction_ratio=4, use_bias=False, bn_epsilon=1e-3)
    if case.has_output_scale:
        kwargs["output_scale"] = 0.5
    harness.check_numerics(case, **kwargs)


def test_c10_closed_form(case):
    harness.check_closed_form(case)


def test_c10_fusion_weights(case):
    """`fusion_weights` returns the gate(s) the output is made of."""
    layer, inputs = harness.check_numerics(case)
    weights = layer.fusion_weights(case.pack(inputs))
    out = to_numpy(case.call(layer, inputs))
    if case.multi:
        assert isinstance(weights, list) and len(weights) == case.num_inputs
        ws = [to_numpy(w) for w in weights]
        np.testing.assert_allclose(sum(ws), 1.0, atol=1e-6)
        w = ws[0]
    elif case.num_gates == 2:
        assert isinstance(weights, tuple) and len(weights) == 2
        w = to_numpy(weights[1])
    else:
        w = to_numpy(weights)
    assert w.shape == out.shape and np.all((w >= 0) & (w <= 1))
    if case.multi:
        want = layer.output_scale * sum(a * b for a, b in zip(ws, inputs))
    elif case.pairwise:
        x, y = inputs
        want = layer.output_scale * (y + w * (x - y))
    else:
        want = inputs[0] * w
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [SHAPE, (2, 9, 8), (2, 3, 4, 2, 8)])
def test_c11_channels_first(case, shape):
    harness.check_channels_first(case, shape)


@pytest.mark.parametrize("shape", [SHAPE, (2, 9, 8)])
def test_c11_channels_first_as_the_global_default(case, shape):
    harness.check_channels_first(case, shape, default=True)


def test_c11_channels_first_training(case):
    harness.check_channels_first(case, training=True)


def test_c12_jit_compile(case):
    harness.check_jit_compile(case)


def test_kernel_regularizer_losses(case):
    layer = case.cls(
        reduction_ratio=2, kernel_regularizer=keras.regularizers.L2(0.01)
    )
    case.build(layer, SHAPE)
    kernels = [v for v in layer.weights if v.path.endswith("/kernel")]
    assert len(kernels) == 4 * case.num_gates
    assert len(layer.losses) == len(kernels)
    want = sum(0.01 * np.sum(to_numpy(k) ** 2) for k in kernels)
    got = sum(float(to_numpy(loss)) for loss in layer.losses)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert not case.cls(reduction_ratio=2).losses


def test_kernel_initializer(case):
    def kernels(layer):
        case.build(layer, SHAPE)
        return [
            to_numpy(v)
            for v in layer.weights
            if v.path.endswith("conv1/kernel")
        ]

    # Unseeded (the default): every conv gets its own draw.
    ks = kernels(case.cls(reduction_ratio=2))
    assert len({k.tobytes() for k in ks}) == len(ks) == 2 * case.num_gates
    # Seeded: reproducible from layer to layer.
    init = {"class_name": "HeNormal", "config": {"seed": 3}}
    a = kernels(case.cls(reduction_ratio=2, kernel_initializer=init))
    b = kernels(case.cls(reduction_ratio=2, kernel_initializer=init))
    for ka, kb in zip(a, b):
        np.testing.assert_array_equal(ka, kb)
    # He normal: std sqrt(2 / fan_in), fan_in = 8 channels.
    assert 0.2 < np.std(np.concatenate([k.ravel() for k in a])) < 0.8


def test_bn_synchronized_reaches_every_batch_norm(case):
    layer = case.cls(reduction_ratio=2, bn_synchronized=True)
    case.build(layer, SHAPE)
    bns = [
        sub
        for sub in layer._flatten_layers()
        if isinstance(sub, keras.layers.BatchNormalization)
    ]
    assert len(bns) == 4 * case.num_gates
    # Keras takes `synchronized` on TensorFlow only; on JAX a DataParallel
    # jit sees the global batch, so the statistics are global already.
    assert all(bn.synchronized == (BACKEND == "tensorflow") for bn in bns)
    assert layer.get_config()["bn_synchronized"] is True
    plain = case.cls(reduction_ratio=2)
    case.build(plain, SHAPE)
    assert not any(
        sub.synchronized
        for sub in plain._flatten_layers()
        if isinstance(sub, keras.layers.BatchNormalization)
    )


def test_batch_size_one_training(case):
    """Batch 1 in training: no crash, no NaN; each global branch's BN sees
    one value per channel, so the branch outputs its bn2 beta whatever the
    input."""
    layer = case.cls(reduction_ratio=2)
    shape = (1, 6, 5, 8)
    case.build(layer, shape)
    reference.randomize(layer, seed=3)
    inputs = case.make_inputs(shape, seed=4)
    out = to_numpy(case.call(layer, inputs, training=True))
    assert np.all(np.isfinite(out))
    # The batch-statistics reference agrees (global BN: var 0).
    want = case.expected(layer, inputs, training=True)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    for gate in case.gates(layer):
        glob = gate.branch2
        assert glob.name == "global"
        beta = to_numpy(glob.bn2.beta)
        outs = [
            to_numpy(glob(a, training=True))
            for a in case.make_inputs(shape, seed=9)
            + [np.full(shape, 3.0, "float32")]
        ]
        for o in outs:
            assert o.shape == (1, 1, 1, 8 * case.gate_outputs)
            np.testing.assert_allclose(o.reshape(-1), beta, atol=1e-4)
        np.testing.assert_allclose(outs[0], outs[-1], atol=1e-4)
    # A training step on batch 1 stays finite.
    inputs_sym = case.symbolic_inputs((None,) + shape[1:])
    model = keras.Model(inputs_sym, case.call(layer, inputs_sym))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    target = np.zeros(shape, "float32")
    loss = model.fit(case.pack(inputs), target, verbose=0)
    assert np.isfinite(loss.history["loss"][0])
    for v in layer.weights:
        assert np.all(np.isfinite(to_numpy(v))), v.path
