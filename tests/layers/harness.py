"""The layer contract C1-C12 of STYLE.md as checks on data.

Each `check_*` takes a `Case` (`tests/layers/cases.py`) and raises
AssertionError on a violation; `test_contract.py` runs every check for
every case. Nothing here imports tensorflow at module level: the same
checks run under every Keras backend.
"""

import json
import math

import keras
import numpy as np

from tests.layers import reference
from tests.layers.cases import BACKEND
from tests.layers.cases import SHAPE
from tests.layers.cases import to_numpy


# ---------------------------------------------------------------------------
# C1 config round trips
# ---------------------------------------------------------------------------
def check_config_round_trip(case, **kwargs):
    layer = case.cls(**kwargs)
    config = layer.get_config()
    expected_keys = case.config_keys
    assert set(config) == expected_keys, sorted(set(config) ^ expected_keys)
    for key in (
        "reduction_ratio",
        "use_bias",
        "bn_momentum",
        "bn_epsilon",
        "use_batch_norm",
        "implementation",
    ):
        if key in kwargs:
            assert config[key] == kwargs[key], (key, config[key])
    if "branches" in kwargs:
        assert config["branches"] == list(kwargs["branches"])
    if "output_scale" in kwargs:
        assert config["output_scale"] == kwargs["output_scale"]
    # data_format is stored resolved, never None.
    assert config["data_format"] in ("channels_last", "channels_first")
    assert config["data_format"] == (
        kwargs.get("data_format") or keras.config.image_data_format()
    )
    # The config is plain JSON.
    json.dumps(config)

    restored = case.cls.from_config(config)
    assert restored.get_config() == config

    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"keras_aff>{case.name}"
    text = json.dumps(serialized)
    revived = keras.saving.deserialize_keras_object(json.loads(text))
    assert type(revived) is case.cls
    assert revived.get_config() == config

    # Built from the same config, the two layers have the same variables.
    shape = SHAPE
    if config["data_format"] == "channels_first":
        shape = (SHAPE[0], SHAPE[-1]) + SHAPE[1:-1]
    case.build(layer, shape)
    case.build(revived, shape)
    paths = [v.path.split("/", 1)[1] for v in layer.weights]
    assert paths == [v.path.split("/", 1)[1] for v in revived.weights]
    if "kernel_regularizer" in kwargs:
        assert len(revived.losses) == len(layer.losses) > 0


# ---------------------------------------------------------------------------
# C2 weight counts
# ---------------------------------------------------------------------------
def expected_counts(case, channels, reduction_ratio, use_bias):
    """(trainable, non_trainable) scalar counts from the formulas: per
    gate, two branches of conv C -> c, BN, conv c -> out, BN, where out is
    C (N * C for MultiAFF)."""
    big, c = channels, channels // reduction_ratio
    out = big * case.gate_outputs
    trainable = 2 * (big * c + c * out) + (6 if use_bias else 4) * (c + out)
    non_trainable = 4 * (c + out)
    return case.num_gates * trainable, case.num_gates * non_trainable


def check_weight_counts(case, channels=16, reduction_ratio=4, use_bias=True):
    layer = case.cls(reduction_ratio=reduction_ratio, use_bias=use_bias)
    case.build(layer, (None, 5, 5, channels))

    def count(vs):
        return int(sum(math.prod(v.shape) for v in vs))

    want = expected_counts(case, channels, reduction_ratio, use_bias)
    got = (count(layer.trainable_weights), count(layer.non_trainable_weights))
    assert got == want, (got, want)
    assert layer.count_params() == sum(want)
    per_gate_vars = 16 if use_bias else 12
    assert len(layer.trainable_weights) == case.num_gates * per_gate_vars
    assert len(layer.non_trainable_weights) == case.num_gates * 8
    for v in layer.non_trainable_weights:
        assert v.path.rsplit("/", 1)[1] in ("moving_mean", "moving_variance")


# ---------------------------------------------------------------------------
# C3 symbolic shapes, C4 eager call
# ---------------------------------------------------------------------------
def check_symbolic_shape(case, batch_shape, data_format="channels_last"):
    layer = case.cls(reduction_ratio=2, data_format=data_format)
    inputs = case.symbolic_inputs(batch_shape)
    out = case.call(layer, inputs)
    shapes = [tuple(batch_shape)] * len(inputs)
    computed = layer.compute_output_shape(case.pack(shapes))
    assert tuple(out.shape) == tuple(computed) == tuple(batch_shape)
    assert out.dtype == "float32"


def check_eager(case, shape=SHAPE, **kwargs):
    layer = case.cls(reduction_ratio=2, **kwargs)
    inputs = case.make_inputs(shape)
    out = case.call(layer, inputs)
    assert tuple(out.shape) == tuple(shape)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    out = to_numpy(out)
    assert np.all(np.isfinite(out))
    # Not a pass-through: the gate actually weights the inputs.
    assert not np.allclose(out, inputs[0])


# ---------------------------------------------------------------------------
# C5 one fit step, C6 BatchNorm statistics
# ---------------------------------------------------------------------------
CONV_BIAS_SUFFIXES = ("conv1/bias", "conv2/bias")


class InferenceMode(keras.layers.Layer):
    """Calls a wrapped layer with `training=False` (BN on its moving
    statistics) while its weights stay trainable."""

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, inputs):
        return self.inner(inputs, training=False)


def _values(vs):
    return {v.path: to_numpy(v).copy() for v in vs}


def check_fit_step(case, use_bias=True, training=None):
    """One SGD `fit` step changes every trainable weight.

    With `training=None` the BatchNorms run in training mode inside `fit`.
    A conv bias right before a training-mode BatchNorm is then cancelled by
    the batch mean, so its gradient is exactly zero (mathematically): those
    biases must NOT move. With `training=False` (frozen statistics) every
    trainable weight, biases included, must move.
    """
    shape = (4, 5, 5, 8)
    inputs = case.symbolic_inputs((None,) + shape[1:])
    layer = case.cls(reduction_ratio=2, use_bias=use_bias)
    if training is False:
        # A functional model passes fit's training=True to every layer,
        # whatever the layer was called with; a wrapper pins it.
        outputs = InferenceMode(layer)(case.pack(inputs))
    else:
        outputs = case.call(layer, inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    data = case.make_inputs(shape, seed=1)
    target = np.random.default_rng(2).normal(size=shape).astype("float32")
    before = _values(layer.trainable_weights)
    stats_before = _values(layer.non_trainable_weights)
    history = model.fit(
        case.pack(data), target, batch_size=4, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    after = _values(layer.trainable_weights)
    assert len(before) == case.num_gates * (16 if use_bias else 12)
    moved, still = [], []
    for path, value in before.items():
        delta = np.max(np.abs(after[path] - value))
        (moved if delta > 1e-7 else still).append(path)
    if training is False:
        assert not still, f"not updated: {still}"
    else:
        cancelled = [p for p in before if p.endswith(CONV_BIAS_SUFFIXES)]
        assert sorted(still) == sorted(cancelled), (still, cancelled)
        assert len(cancelled) == (4 * case.num_gates if use_bias else 0)
    stats_after = _values(layer.non_trainable_weights)
    stats_moved = [
        p for p in stats_before if np.any(stats_before[p] != stats_after[p])
    ]
    if training is False:
        assert not stats_moved
    else:
        assert sorted(stats_moved) == sorted(stats_before)


def check_bn_statistics(case):
    layer = case.cls(reduction_ratio=2)
    inputs = case.make_inputs((4, 5, 5, 8))
    case.build(layer, (4, 5, 5, 8))
    stats = layer.non_trainable_weights
    assert len(stats) == 8 * case.num_gates
    start = _values(stats)
    for training in (False, None):
        case.call(layer, inputs, training=training)
        now = _values(stats)
        for p in start:
            np.testing.assert_array_equal(now[p], start[p], err_msg=p)
    case.call(layer, inputs, training=True)
    now = _values(stats)
    unchanged = [p for p in start if np.array_equal(now[p], start[p])]
    assert not unchanged, f"training=True did not update {unchanged}"


# ---------------------------------------------------------------------------
# C7 mixed precision
# ---------------------------------------------------------------------------
def check_mixed_precision(case, policy):
    compute = policy.split("_")[1]
    shape = (2, 6, 6, 8)
    inputs = case.make_inputs(shape)
    ref = case.cls(reduction_ratio=2)
    case.build(ref, shape)
    reference.randomize(ref, seed=5)
    layer = case.cls(reduction_ratio=2, dtype=policy)
    case.build(layer, shape)
    assert layer.compute_dtype == compute
    for v in layer.weights:
        assert v.dtype == "float32", (v.path, v.dtype)
    layer.set_weights(ref.get_weights())
    out = case.call(layer, inputs)
    assert keras.backend.standardize_dtype(out.dtype) == compute
    out = to_numpy(out).astype("float32")
    assert np.all(np.isfinite(out))
    want = to_numpy(case.call(ref, inputs))
    # Half precision: about 3 (fp16) or 2 (bf16) significant digits.
    atol = 2e-2 if compute == "float16" else 1e-1
    np.testing.assert_allclose(out, want, atol=atol, rtol=atol)
    # Mixed inputs (float32 x, compute-dtype y) are autocast.
    if case.num_inputs > 1:
        half = keras.ops.cast(inputs[1], compute)
        out2 = layer([inputs[0], half, *inputs[2:]])
        assert keras.backend.standardize_dtype(out2.dtype) == compute


# ---------------------------------------------------------------------------
# C8 .keras save for a load in a fresh process
# ---------------------------------------------------------------------------
def save_model(case, directory, seed=0):
    """Saves a small model holding the layer (non-default config, random
    weights and BN statistics); returns (path, inputs, expected output)."""
    shape = (2, 6, 5, 8)
    kwargs = dict(reduction_ratio=2, use_bias=True, name=case.name.lower())
    if case.has_output_scale:
        kwargs["output_scale"] = 2.0
    inputs = case.symbolic_inputs((None,) + shape[1:])
    layer = case.cls(**kwargs)
    model = keras.Model(inputs, case.call(layer, inputs))
    reference.randomize(layer, seed=seed)
    data = case.make_inputs(shape, seed=seed)
    expected = to_numpy(model.predict(case.pack(data), verbose=0))
    path = f"{directory}/{case.name.lower()}.keras"
    model.save(path)
    return path, data, expected


# ---------------------------------------------------------------------------
# C10 numerics
# ---------------------------------------------------------------------------
def check_numerics(case, shape=SHAPE, training=False, seed=0, **kwargs):
    layer = case.cls(reduction_ratio=kwargs.pop("reduction_ratio", 2), **kwargs)
    case.build(layer, shape)
    reference.randomize(layer, seed=seed)
    inputs = case.make_inputs(shape, seed=seed + 1)
    want = case.expected(layer, inputs, training=training)
    got = to_numpy(case.call(layer, inputs, training=training))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The reference is sensitive: a different weight changes its output.
    assert np.max(np.abs(want - inputs[0])) > 1e-2
    return layer, inputs


def zero_last_batch_norms(layer):
    """Zeroes gamma and beta of both branches' last BN (bn2) in every gate:
    both branches then output 0 and every gate is sigmoid(0) = 0.5."""
    zeroed = 0
    for v in layer.weights:
        parts = v.path.split("/")
        if parts[-2] == "bn2" and parts[-1] in ("gamma", "beta"):
            v.assign(np.zeros(v.shape, "float32"))
            zeroed += 1
    return zeroed


def check_closed_form(case, shape=SHAPE):
    """Zero last-BN gamma and beta => uniform weights (sigmoid(0) = 0.5,
    softmax of zeros = 1 / N): MSCAM(x) = x / 2, and AFF, IAFF or MultiAFF
    with output_scale=N give exactly the sum of their N inputs."""
    kwargs = {}
    if case.has_output_scale:
        kwargs["output_scale"] = float(case.num_inputs)
    layer = case.cls(reduction_ratio=2, **kwargs)
    case.build(layer, shape)
    reference.randomize(layer, seed=7)
    inputs = case.make_inputs(shape, seed=8)
    before = to_numpy(case.call(layer, inputs))
    assert zero_last_batch_norms(layer) == 4 * case.num_gates
    got = to_numpy(case.call(layer, inputs))
    want = case.closed_form(inputs)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert not np.allclose(before, want, atol=1e-3)


# ---------------------------------------------------------------------------
# C11 channels_first
# ---------------------------------------------------------------------------
def check_channels_first(case, shape=SHAPE, training=False, default=False):
    """channels_first equals transposed channels_last; with `default`, the
    channels_first layer takes its format from
    `keras.config.image_data_format()` (as every sublayer must not)."""
    last = case.cls(reduction_ratio=2, data_format="channels_last")
    case.build(last, shape)
    reference.randomize(last, seed=11)
    first_shape = (shape[0], shape[-1]) + tuple(shape[1:-1])
    if default:
        keras.config.set_image_data_format("channels_first")
        first = case.cls(reduction_ratio=2)
    else:
        first = case.cls(reduction_ratio=2, data_format="channels_first")
    case.build(first, first_shape)
    # Same variables, same shapes, whatever the format.
    assert [tuple(v.shape) for v in first.weights] == [
        tuple(v.shape) for v in last.weights
    ]
    first.set_weights(last.get_weights())
    inputs = case.make_inputs(shape, seed=12)
    inputs_first = [np.moveaxis(a, -1, 1) for a in inputs]
    want = to_numpy(case.call(last, inputs, training=training))
    got = to_numpy(case.call(first, inputs_first, training=training))
    assert got.shape == first_shape
    # In training mode each global BN normalises a batch of 2 means: float32
    # rounding is amplified where the two are close (both layouts differ
    # from the float64 reference by up to 5e-5 for MultiAFF; float64
    # layers agree exactly).
    # Keras' torch backend computes the batch variance as E[x^2] - E[x]^2
    # (keras/src/backend/torch/nn.py `moments`: "less numerically
    # stable"), which loses a further digit there.
    atol = 1e-5
    if training:
        atol = 1e-3 if BACKEND == "torch" else 1e-4
    np.testing.assert_allclose(np.moveaxis(got, 1, -1), want, atol=atol)
    ref = case.expected(first, inputs_first, training=training)
    np.testing.assert_allclose(got, ref, atol=atol, rtol=1e-5)


# ---------------------------------------------------------------------------
# C12 jit_compile
# ---------------------------------------------------------------------------
# Keras' `jit_compile=True` on torch is `torch.compile` (inductor) of the
# whole predict step: about a minute per layer on 2 CPU cores, for the same
# dynamo trace that `_backend_jit` checks on the layer itself.
MODEL_JIT = BACKEND != "torch"
# On torch, the layer is traced by dynamo into ONE graph (`fullgraph`) with
# dynamic shapes and run through AOTAutograd ("aot_eager"): what inductor
# compiles, without its C++ code generation (~20 s more per layer here,
# and a test of torch rather than of the layer).
TORCH_COMPILE_BACKEND = "aot_eager"


def check_jit_compile(case, channels=8):
    """`compile(jit_compile=True)` predict, and the backend's own jit
    (tf.function(jit_compile=True) on TF, jax.jit on JAX, torch.compile
    on torch), equal eager, with dynamic batch and spatial sizes."""
    inputs = case.symbolic_inputs((None, None, None, channels))
    layer = case.cls(reduction_ratio=2)
    model = keras.Model(inputs, case.call(layer, inputs))
    reference.randomize(layer, seed=21)
    model.compile(jit_compile=MODEL_JIT)
    jitted = _backend_jit(case, layer, channels)
    for i, shape in enumerate([(2, 6, 5, channels), (3, 9, 4, channels)]):
        data = case.make_inputs(shape, seed=30 + i)
        eager = to_numpy(case.call(layer, data, training=False))
        np.testing.assert_allclose(eager, case.expected(layer, data), atol=1e-5)
        pred = to_numpy(model.predict(case.pack(data), verbose=0))
        np.testing.assert_allclose(pred, eager, atol=1e-5, rtol=1e-5)
        got = to_numpy(jitted(data))
        assert got.shape == shape
        np.testing.assert_allclose(got, eager, atol=1e-5, rtol=1e-5)


def _backend_jit(case, layer, channels):
    if BACKEND == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec((None, None, None, channels), "float32")
        n = case.num_inputs

        @tf.function(jit_compile=True, input_signature=[spec] * n)
        def fn(*args):
            return case.call(layer, list(args), training=False)

        return lambda data: fn(*data)
    if BACKEND == "jax":
        import jax

        @jax.jit
        def fn(trainable, frozen, data):
            out, _ = layer.stateless_call(
                trainable, frozen, case.pack(data), training=False
            )
            return out

        def run(data):
            # Read the values per call: predict may replace their buffers.
            trainable = [v.value for v in layer.trainable_variables]
            frozen = [v.value for v in layer.non_trainable_variables]
            return fn(trainable, frozen, data)

        return run
    if BACKEND == "torch":
        return _torch_jit(case, layer)
    raise NotImplementedError(f"no jit check for backend {BACKEND}")


def _torch_jit(case, layer):
    import torch

    def fn(*args):
        return case.call(layer, list(args), training=False)

    compiled = torch.compile(
        fn, dynamic=True, fullgraph=True, backend=TORCH_COMPILE_BACKEND
    )

    def run(data):
        with torch.no_grad():
            return compiled(*[torch.as_tensor(a) for a in data])

    return run
