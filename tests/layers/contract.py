"""The layer test contract C1-C12 of STYLE.md, as reusable checks.

Each check takes a `Case` (the layer class plus what differs between MSCAM,
AFF and IAFF) and raises AssertionError on a violation. The per-layer test
modules (`test_ms_cam.py`, `test_aff.py`, `test_iaff.py`) call them; the
fresh-process save/load check (C8) runs all three layers in one subprocess
from `test_saving.py`.

Nothing here imports tensorflow at module level: the same checks run under
`KERAS_BACKEND=tensorflow` and `KERAS_BACKEND=jax`.
"""

import dataclasses
import json
import math

import keras
import numpy as np
import pytest

from keras_aff import layers
from tests.layers import reference

BACKEND = keras.backend.backend()
SHAPE = (2, 6, 5, 8)  # small: every check runs in well under a second
CONFIG_KEYS = {
    "name",
    "trainable",
    "dtype",
    "reduction_ratio",
    "use_bias",
    "bn_momentum",
    "bn_epsilon",
    "kernel_initializer",
    "kernel_regularizer",
    "data_format",
    "branches",
}


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def channels_last(x, data_format):
    """Moves the channel axis of a channels_first array to the end."""
    if data_format == "channels_first":
        return np.moveaxis(x, 1, -1)
    return x


@dataclasses.dataclass(frozen=True)
class Case:
    """What a contract check needs to know about one layer class."""

    name: str
    cls: type
    pairwise: bool
    num_gates: int

    @property
    def has_output_scale(self):
        return self.pairwise

    def make_inputs(self, shape=SHAPE, seed=0):
        rng = np.random.default_rng(seed)
        n = 2 if self.pairwise else 1
        return [rng.normal(size=shape).astype("float32") for _ in range(n)]

    def pack(self, inputs):
        """The call argument: `[x, y]` for AFF/IAFF, `x` for MSCAM."""
        return list(inputs) if self.pairwise else inputs[0]

    def call(self, layer, inputs, **kwargs):
        return layer(self.pack(inputs), **kwargs)

    def symbolic_inputs(self, shape):
        n = 2 if self.pairwise else 1
        return [keras.Input(batch_shape=shape) for _ in range(n)]

    def build(self, layer, shape):
        layer.build([shape, shape] if self.pairwise else shape)
        return layer

    def expected(self, layer, inputs, training=False):
        """The NumPy reference output for `layer` on `inputs` (float64)."""
        config = layer.get_config()
        fmt = config["data_format"]
        w = reference.weights_by_path(layer)
        args = [channels_last(np.asarray(a, np.float64), fmt) for a in inputs]
        common = dict(
            branches=config["branches"],
            epsilon=config["bn_epsilon"],
            training=training,
        )
        if self.name == "MSCAM":
            out = reference.mscam(args[0], w, **common)
        elif self.name == "AFF":
            out = reference.aff(*args, w, config["output_scale"], **common)
        else:
            out = reference.iaff(*args, w, config["output_scale"], **common)
        if fmt == "channels_first":
            out = np.moveaxis(out, -1, 1)
        return out


MSCAM = Case("MSCAM", layers.MSCAM, pairwise=False, num_gates=1)
AFF = Case("AFF", layers.AFF, pairwise=True, num_gates=1)
IAFF = Case("IAFF", layers.IAFF, pairwise=True, num_gates=2)
CASES = (MSCAM, AFF, IAFF)


def non_default_kwargs(case):
    """Every constructor argument set to a non-default value."""
    kwargs = dict(
        reduction_ratio=2,
        use_bias=False,
        bn_momentum=0.8,
        bn_epsilon=1e-3,
        kernel_initializer=keras.initializers.HeNormal(seed=3),
        kernel_regularizer=keras.regularizers.L2(1e-4),
        data_format="channels_first",
        branches=("global", "global"),
        name=f"my_{case.name.lower()}",
    )
    if case.has_output_scale:
        kwargs["output_scale"] = 2.0
    return kwargs


# ---------------------------------------------------------------------------
# C1 config round trips
# ---------------------------------------------------------------------------
def check_config_round_trip(case, **kwargs):
    layer = case.cls(**kwargs)
    config = layer.get_config()
    expected_keys = CONFIG_KEYS | ({"output_scale"} if case.pairwise else set())
    assert set(config) == expected_keys, sorted(set(config) ^ expected_keys)
    for key in ("reduction_ratio", "use_bias", "bn_momentum", "bn_epsilon"):
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
    """(trainable, non_trainable) scalar counts from the formulas."""
    big, c = channels, channels // reduction_ratio
    trainable = 4 * big * c + (6 if use_bias else 4) * (c + big)
    non_trainable = 4 * (c + big)
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
    if case.pairwise:
        half = keras.ops.cast(inputs[1], compute)
        out2 = layer([inputs[0], half])
        assert keras.backend.standardize_dtype(out2.dtype) == compute


# ---------------------------------------------------------------------------
# C8 .keras save for a load in a fresh process
# ---------------------------------------------------------------------------
def save_model(case, directory, seed=0):
    """Saves a small model holding the layer (non-default config, random
    weights and BN statistics); returns (path, inputs, expected output)."""
    shape = (2, 6, 5, 8)
    kwargs = dict(reduction_ratio=2, use_bias=True, name=case.name.lower())
    if case.pairwise:
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
    """Zero last-BN gamma and beta => w = 0.5: MSCAM(x) = x / 2, and AFF or
    IAFF with output_scale=2 give exactly x + y."""
    kwargs = {"output_scale": 2.0} if case.pairwise else {}
    layer = case.cls(reduction_ratio=2, **kwargs)
    case.build(layer, shape)
    reference.randomize(layer, seed=7)
    inputs = case.make_inputs(shape, seed=8)
    before = to_numpy(case.call(layer, inputs))
    assert zero_last_batch_norms(layer) == 4 * case.num_gates
    got = to_numpy(case.call(layer, inputs))
    if case.pairwise:
        want = inputs[0] + inputs[1]
    else:
        want = inputs[0] * 0.5
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert not np.allclose(before, want, atol=1e-3)


# ---------------------------------------------------------------------------
# C11 channels_first
# ---------------------------------------------------------------------------
def check_channels_first(case, shape=SHAPE, training=False):
    last = case.cls(reduction_ratio=2, data_format="channels_last")
    case.build(last, shape)
    reference.randomize(last, seed=11)
    first_shape = (shape[0], shape[-1]) + tuple(shape[1:-1])
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
    np.testing.assert_allclose(np.moveaxis(got, 1, -1), want, atol=1e-5)
    if not training:
        ref = case.expected(first, inputs_first)
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------
# C12 jit_compile
# ---------------------------------------------------------------------------
def check_jit_compile(case, channels=8):
    """`compile(jit_compile=True)` predict, and the backend's own jit
    (tf.function(jit_compile=True) on TF, jax.jit on JAX), equal eager,
    with dynamic batch and spatial sizes."""
    inputs = case.symbolic_inputs((None, None, None, channels))
    layer = case.cls(reduction_ratio=2)
    model = keras.Model(inputs, case.call(layer, inputs))
    reference.randomize(layer, seed=21)
    model.compile(jit_compile=True)
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
        n = 2 if case.pairwise else 1

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
    raise NotImplementedError(f"no jit check for backend {BACKEND}")


# ---------------------------------------------------------------------------
# C9 errors: one entry per error the layer can raise
# ---------------------------------------------------------------------------
_MOMENTUM = r"Expected `bn_momentum` to be a number in \[0, 1\)\. "
_EPSILON = r"Expected `bn_epsilon` to be a positive number\. "
_SCALE = r"Expected `output_scale` to be a finite positive number\. "

# (id, constructor kwargs, exception, match)
CONSTRUCTOR_ERRORS = [
    (
        "ratio_float",
        {"reduction_ratio": 4.0},
        TypeError,
        r"Expected `reduction_ratio` to be a positive integer\. "
        r"Received: reduction_ratio=4\.0 \(of type float\)$",
    ),
    (
        "ratio_bool",
        {"reduction_ratio": True},
        TypeError,
        r"Received: reduction_ratio=True \(of type bool\)$",
    ),
    (
        "ratio_str",
        {"reduction_ratio": "4"},
        TypeError,
        r"Received: reduction_ratio='4' \(of type str\)$",
    ),
    (
        "ratio_none",
        {"reduction_ratio": None},
        TypeError,
        r"Received: reduction_ratio=None",
    ),
    (
        "ratio_zero",
        {"reduction_ratio": 0},
        ValueError,
        r"\(>= 1\)\. Received: reduction_ratio=0$",
    ),
    (
        "ratio_negative",
        {"reduction_ratio": -2},
        ValueError,
        r"Received: reduction_ratio=-2$",
    ),
    (
        "use_bias_int",
        {"use_bias": 1},
        TypeError,
        r"Expected `use_bias` to be a bool\. Received: use_bias=1$",
    ),
    (
        "use_bias_none",
        {"use_bias": None},
        TypeError,
        r"Received: use_bias=None$",
    ),
    (
        "bn_momentum_one",
        {"bn_momentum": 1.0},
        ValueError,
        _MOMENTUM + r"Received: bn_momentum=1\.0$",
    ),
    (
        "bn_momentum_negative",
        {"bn_momentum": -0.1},
        ValueError,
        _MOMENTUM + r"Received: bn_momentum=-0\.1$",
    ),
    (
        "bn_momentum_str",
        {"bn_momentum": "0.9"},
        TypeError,
        _MOMENTUM + r"Received: bn_momentum='0\.9'$",
    ),
    (
        "bn_momentum_bool",
        {"bn_momentum": False},
        TypeError,
        _MOMENTUM + r"Received: bn_momentum=False$",
    ),
    (
        "bn_epsilon_zero",
        {"bn_epsilon": 0},
        ValueError,
        _EPSILON + r"Received: bn_epsilon=0$",
    ),
    (
        "bn_epsilon_negative",
        {"bn_epsilon": -1e-5},
        ValueError,
        _EPSILON + r"Received: bn_epsilon=-1e-05$",
    ),
    (
        "bn_epsilon_nan",
        {"bn_epsilon": float("nan")},
        ValueError,
        _EPSILON + r"Received: bn_epsilon=nan$",
    ),
    (
        "bn_epsilon_inf",
        {"bn_epsilon": float("inf")},
        ValueError,
        _EPSILON + r"Received: bn_epsilon=inf$",
    ),
    (
        "bn_epsilon_none",
        {"bn_epsilon": None},
        TypeError,
        _EPSILON + r"Received: bn_epsilon=None$",
    ),
    (
        "kernel_initializer",
        {"kernel_initializer": "nope"},
        ValueError,
        r"Could not interpret `kernel_initializer`\. "
        r"Received: kernel_initializer='nope'",
    ),
    (
        "kernel_regularizer",
        {"kernel_regularizer": "nope"},
        ValueError,
        r"Could not interpret `kernel_regularizer`\. "
        r"Received: kernel_regularizer='nope'",
    ),
    (
        "data_format",
        {"data_format": "NHWC"},
        ValueError,
        r"Expected `data_format` to be one of \('channels_last', "
        r"'channels_first'\) or None\. Received: data_format='NHWC'$",
    ),
    (
        "data_format_int",
        {"data_format": 4},
        ValueError,
        r"Received: data_format=4$",
    ),
    (
        "branches_str",
        {"branches": "local"},
        TypeError,
        r"Expected `branches` to be a list or tuple of two branch names "
        r"from \('local', 'global'\)\. Received: branches='local'$",
    ),
    (
        "branches_unknown",
        {"branches": ("local", "spatial")},
        ValueError,
        r"each one of \('local', 'global'\), e\.g\. \('local', 'global'\)\. "
        r"Received: branches=\('local', 'spatial'\)$",
    ),
    (
        "branches_one",
        {"branches": ["local"]},
        ValueError,
        r"Received: branches=\('local',\)$",
    ),
    (
        "branches_three",
        {"branches": ("local", "global", "local")},
        ValueError,
        r"Received: branches=\('local', 'global', 'local'\)$",
    ),
]

OUTPUT_SCALE_ERRORS = [
    (
        "output_scale_zero",
        {"output_scale": 0},
        ValueError,
        _SCALE + r"Received: output_scale=0\.0$",
    ),
    (
        "output_scale_negative",
        {"output_scale": -2.0},
        ValueError,
        _SCALE + r"Received: output_scale=-2\.0$",
    ),
    (
        "output_scale_inf",
        {"output_scale": float("inf")},
        ValueError,
        _SCALE + r"Received: output_scale=inf$",
    ),
    (
        "output_scale_nan",
        {"output_scale": float("nan")},
        ValueError,
        _SCALE + r"Received: output_scale=nan$",
    ),
    (
        "output_scale_bool",
        {"output_scale": True},
        TypeError,
        _SCALE + r"Received: output_scale=True \(of type bool\)$",
    ),
    (
        "output_scale_str",
        {"output_scale": "2"},
        TypeError,
        _SCALE + r"Received: output_scale='2' \(of type str\)$",
    ),
]


def constructor_errors(case):
    """`pytest.param(kwargs, exception, match)` for every argument error."""
    table = list(CONSTRUCTOR_ERRORS)
    table.append(
        (
            "unknown_kwarg",
            {"ratio": 4},
            ValueError,
            rf"Unrecognized keyword arguments passed to {case.name}: "
            r"\{'ratio': 4\}",
        )
    )
    if case.has_output_scale:
        table += OUTPUT_SCALE_ERRORS
    else:
        table.append(
            (
                "output_scale",
                {"output_scale": 2.0},
                ValueError,
                r"MSCAM has no `output_scale` \(only AFF and IAFF do\)\. "
                r"Received: output_scale=2\.0$",
            )
        )
    return [pytest.param(k, e, m, id=i) for i, k, e, m in table]


def call_errors(case):
    """`pytest.param(fn, ValueError, match)`: `fn()` builds or calls a
    layer (named "lay") on inputs it must reject."""
    x = np.zeros((2, 6, 5, 8), "float32")

    def new(**kwargs):
        return case.cls(name="lay", **kwargs)

    def call(inputs_fn, **kwargs):
        # Layers and inputs are made when the test runs, not at collection.
        return lambda: case.call(new(**kwargs), inputs_fn())

    def built(inputs):
        def fn():
            layer = new()
            layer([x, x])
            layer(inputs)

        return fn

    rank = (
        r"Layer 'lay' expects a 1-D, 2-D or 3-D feature map: an input of "
        r"rank 3 .*Received: input_shape="
    )
    table = [
        ("rank_2", call(lambda: [x[:, 0, 0]] * 2), rank + r"\(2, 8\)$"),
        (
            "rank_6",
            call(lambda: [np.zeros((2, 6, 5, 8, 1, 8))] * 2),
            rank + r"\(2, 6, 5, 8, 1, 8\)$",
        ),
        (
            "unknown_channels",
            call(lambda: case.symbolic_inputs((None, 6, 5, None))),
            r"Layer 'lay' needs a known channel dimension \(axis -1 for "
            r"data_format='channels_last'\)\. "
            r"Received: input_shape=\(None, 6, 5, None\)$",
        ),
        (
            "unknown_channels_first",
            call(
                lambda: case.symbolic_inputs((None, None, 6, 5)),
                data_format="channels_first",
            ),
            r"\(axis 1 for data_format='channels_first'\)\. "
            r"Received: input_shape=\(None, None, 6, 5\)$",
        ),
        (
            "ratio_too_large",
            call(lambda: [x, x], reduction_ratio=9),
            r"Layer 'lay': `reduction_ratio` is too large for 8 channels; "
            r"channels // reduction_ratio must be at least 1, so use a "
            r"reduction_ratio between 1 and 8\. "
            r"Received: reduction_ratio=9 with input_shape=\(2, 6, 5, 8\)$",
        ),
    ]
    if not case.pairwise:
        table.append(
            (
                "list_of_two",
                lambda: new()([x, x]),
                r"Layer 'lay' must be called on a single tensor \(use AFF "
                r"or IAFF to fuse two\)\. Received: input_shape=",
            )
        )
        return [pytest.param(f, ValueError, m, id=i) for i, f, m in table]
    pair = r"Layer 'lay' must be called on a list of exactly two tensors"
    same = r"Layer 'lay' needs two inputs of the same shape\. Received: "
    table += [
        (
            "single_tensor",
            lambda: new()(x),
            pair + r" \[x, y\] of the same shape\. "
            r"Received: a single input with shape \(2, 6, 5, 8\)$",
        ),
        (
            "list_of_one",
            lambda: new()([x]),
            pair + r" \[x, y\]\. Received: 1 inputs$",
        ),
        (
            "list_of_three",
            lambda: new()([x, x, x]),
            pair + r" \[x, y\]\. Received: 3 inputs$",
        ),
        (
            "different_shapes",
            lambda: new()([x, x[:, :3]]),
            same + r"x\.shape=\(2, 6, 5, 8\) and y\.shape=\(2, 3, 5, 8\)$",
        ),
        (
            "different_channels",
            lambda: new()([x, x[..., :4]]),
            same + r"x\.shape=\(2, 6, 5, 8\) and y\.shape=\(2, 6, 5, 4\)$",
        ),
        (
            "different_ranks",
            lambda: new()([x, x[0]]),
            same + r"x\.shape=\(2, 6, 5, 8\) and y\.shape=\(6, 5, 8\)$",
        ),
        (
            "symbolic_different_shapes",
            lambda: new()([keras.Input((6, 5, 8)), keras.Input((6, 7, 8))]),
            same + r"x\.shape=\(None, 6, 5, 8\) and "
            r"y\.shape=\(None, 6, 7, 8\)$",
        ),
        (
            "built_single_tensor",
            built(x),
            pair + r" \[x, y\]\. Received: 1 input\(s\)",
        ),
        (
            "built_list_of_three",
            built([x, x, x]),
            pair + r" \[x, y\]\. Received: 3 input\(s\)",
        ),
        (
            "built_different_shapes",
            built([x, x[:, :1, :1]]),
            same + r"x\.shape=\(2, 6, 5, 8\) and y\.shape=\(2, 1, 1, 8\)",
        ),
    ]
    return [pytest.param(f, ValueError, m, id=i) for i, f, m in table]


# ---------------------------------------------------------------------------
# The contract as a test class: `class TestX(LayerContract): case = ...`
# ---------------------------------------------------------------------------
class LayerContract:
    """C1-C12 for one layer; subclasses set `case` (pytest collects the
    inherited `test_*` methods once per subclass)."""

    case = None

    def test_c1_config_defaults(self):
        check_config_round_trip(self.case)

    def test_c1_config_non_default(self):
        check_config_round_trip(self.case, **non_default_kwargs(self.case))

    def test_c1_data_format_none_is_resolved(self):
        keras.config.set_image_data_format("channels_first")
        layer = self.case.cls()
        keras.config.set_image_data_format("channels_last")
        assert layer.get_config()["data_format"] == "channels_first"
        check_config_round_trip(self.case, data_format=None)

    @pytest.mark.parametrize("use_bias", [True, False])
    @pytest.mark.parametrize("channels,ratio", [(16, 4), (12, 5)])
    def test_c2_weight_counts(self, use_bias, channels, ratio):
        check_weight_counts(self.case, channels, ratio, use_bias)

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
    def test_c3_symbolic_shape(self, batch_shape, data_format):
        check_symbolic_shape(self.case, batch_shape, data_format)

    @pytest.mark.parametrize("shape", [SHAPE, (2, 7, 8), (1, 3, 4, 2, 8)])
    def test_c4_eager(self, shape):
        check_eager(self.case, shape)

    @pytest.mark.parametrize(
        "use_bias,training", [(True, None), (False, None), (True, False)]
    )
    def test_c5_fit_step(self, use_bias, training):
        check_fit_step(self.case, use_bias=use_bias, training=training)

    def test_c6_bn_statistics(self):
        check_bn_statistics(self.case)

    @pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
    def test_c7_mixed_precision(self, policy):
        check_mixed_precision(self.case, policy)

    @pytest.mark.parametrize("shape", [SHAPE, (2, 9, 8), (2, 3, 4, 2, 8)])
    def test_c10_numerics(self, shape):
        check_numerics(self.case, shape)

    @pytest.mark.parametrize(
        "branches", [("global", "global"), ("local", "local")]
    )
    def test_c10_branch_ablation(self, branches):
        layer, _ = check_numerics(self.case, branches=branches)
        names = {v.path.split("/")[-3] for v in layer.weights}
        kind = branches[0]
        assert names == {f"{kind}1", f"{kind}2"}

    def test_c10_training_mode(self):
        # BatchNorm on batch statistics (ignores the moving statistics).
        check_numerics(self.case, (3, 4, 5, 8), training=True)

    def test_c10_non_default_config(self):
        kwargs = dict(reduction_ratio=4, use_bias=False, bn_epsilon=1e-3)
        if self.case.has_output_scale:
            kwargs["output_scale"] = 0.5
        check_numerics(self.case, **kwargs)

    def test_c10_closed_form(self):
        check_closed_form(self.case)

    @pytest.mark.parametrize("shape", [SHAPE, (2, 9, 8), (2, 3, 4, 2, 8)])
    def test_c11_channels_first(self, shape):
        check_channels_first(self.case, shape)

    def test_c11_channels_first_training(self):
        check_channels_first(self.case, training=True)

    def test_c12_jit_compile(self):
        check_jit_compile(self.case)

    def test_kernel_regularizer_losses(self):
        layer = self.case.cls(
            reduction_ratio=2, kernel_regularizer=keras.regularizers.L2(0.01)
        )
        self.case.build(layer, SHAPE)
        kernels = [v for v in layer.weights if v.path.endswith("/kernel")]
        assert len(kernels) == 4 * self.case.num_gates
        assert len(layer.losses) == len(kernels)
        want = sum(0.01 * np.sum(to_numpy(k) ** 2) for k in kernels)
        got = sum(float(to_numpy(loss)) for loss in layer.losses)
        np.testing.assert_allclose(got, want, rtol=1e-5)
        assert not self.case.cls(reduction_ratio=2).losses

    def test_kernel_initializer(self):
        def kernels(layer):
            self.case.build(layer, SHAPE)
            return [
                to_numpy(v)
                for v in layer.weights
                if v.path.endswith("conv1/kernel")
            ]

        # Unseeded (the default): every conv gets its own draw.
        ks = kernels(self.case.cls(reduction_ratio=2))
        assert (
            len({k.tobytes() for k in ks})
            == len(ks)
            == 2 * len(self.case.cls(reduction_ratio=2)._gate_names())
        )
        # Seeded: reproducible from layer to layer.
        init = {"class_name": "HeNormal", "config": {"seed": 3}}
        a = kernels(self.case.cls(reduction_ratio=2, kernel_initializer=init))
        b = kernels(self.case.cls(reduction_ratio=2, kernel_initializer=init))
        for ka, kb in zip(a, b):
            np.testing.assert_array_equal(ka, kb)
        # He normal: std sqrt(2 / fan_in), fan_in = 8 channels.
        assert 0.2 < np.std(np.concatenate([k.ravel() for k in a])) < 0.8

    def test_batch_size_one_training(self):
        """Batch 1 in training: no crash, no NaN; each global branch's BN
        sees one value per channel, so the branch outputs its bn2 beta
        whatever the input."""
        layer = self.case.cls(reduction_ratio=2)
        shape = (1, 6, 5, 8)
        self.case.build(layer, shape)
        reference.randomize(layer, seed=3)
        inputs = self.case.make_inputs(shape, seed=4)
        out = to_numpy(self.case.call(layer, inputs, training=True))
        assert np.all(np.isfinite(out))
        # The batch-statistics reference agrees (global BN: var 0).
        want = self.case.expected(layer, inputs, training=True)
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
        gates = [layer.attention] if self.case.num_gates == 1 else [
            layer.attention1, layer.attention2]  # fmt: skip
        for gate in gates:
            glob = gate.branch2
            assert glob.name == "global"
            beta = to_numpy(glob.bn2.beta)
            outs = [
                to_numpy(glob(a, training=True))
                for a in self.case.make_inputs(shape, seed=9)
                + [np.full(shape, 3.0, "float32")]
            ]
            for o in outs:
                assert o.shape == (1, 1, 1, 8)
                np.testing.assert_allclose(o.reshape(-1), beta, atol=1e-4)
            np.testing.assert_allclose(outs[0], outs[-1], atol=1e-4)
        # A training step on batch 1 stays finite.
        inputs_sym = self.case.symbolic_inputs((None,) + shape[1:])
        model = keras.Model(inputs_sym, self.case.call(layer, inputs_sym))
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        target = np.zeros(shape, "float32")
        loss = model.fit(self.case.pack(inputs), target, verbose=0)
        assert np.isfinite(loss.history["loss"][0])
        for v in layer.weights:
            assert np.all(np.isfinite(to_numpy(v))), v.path
