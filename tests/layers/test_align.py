"""Inputs of different shapes: `AFF` / `IAFF(align_inputs=True)` and
`Align` (projection to x's channels, resize to x's size).

Every numeric check compares with the independent NumPy reference
(`reference.align`, then `reference.aff` / `reference.iaff`). The
`.keras` round trip in a fresh process is in `test_saving.py`.
"""

import json

import keras
import numpy as np
import pytest

from keras_aff import interop
from keras_aff import layers
from keras_aff.layers import align
from tests.layers import harness
from tests.layers import reference
from tests.layers.cases import BACKEND
from tests.layers.cases import to_numpy
from tests.layers.errors import received

FUSIONS = {"AFF": layers.AFF, "IAFF": layers.IAFF}
# (x shape, y shape), channels last: upsampling with more channels, the
# U-Net / FPN case; downsizing; rank 3 and rank 5; only the size differs.
PAIRS = {
    "up_2x": ((2, 8, 6, 8), (2, 4, 3, 16)),
    "down_odd": ((2, 5, 7, 8), (2, 9, 11, 4)),
    "rank3": ((2, 11, 8), (2, 4, 12)),
    "rank5": ((2, 4, 6, 3, 8), (2, 2, 3, 5, 16)),
    "size_only": ((2, 7, 5, 8), (2, 4, 3, 8)),
}


def first(shape):
    return (shape[0], shape[-1], *shape[1:-1])


def make_data(sx, sy, seed=0, data_format="channels_last"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=sx).astype("float32")
    y = rng.normal(size=sy).astype("float32")
    if data_format == "channels_first":
        return np.moveaxis(x, -1, 1), np.moveaxis(y, -1, 1)
    return x, y


def expected(layer, x, y, training=False):
    """The NumPy reference of an aligned AFF / IAFF on channels-last x, y."""
    config = layer.get_config()
    w = reference.weights_by_path(layer)
    eps = config["bn_epsilon"]
    y_al = reference.align(
        y, x.shape, w, eps, config["resize_interpolation"], training
    )
    fn = reference.aff if isinstance(layer, layers.AFF) else reference.iaff
    common = dict(branches=config["branches"], epsilon=eps, training=training)
    return fn(x, y_al, w, config["output_scale"], **common)


def aligned(name, sx, sy, seed=0, **kwargs):
    layer = FUSIONS[name](reduction_ratio=2, align_inputs=True, **kwargs)
    layer.build([sx, sy])
    reference.randomize(layer, seed=seed)
    return layer


# ---------------------------------------------------------------------------
# The resize
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_resize_like_matches_reference(pair, data_format, interpolation):
    sx, sy = PAIRS[pair]
    sy = sy[:-1] + (3,)
    x, y = make_data(sx, sy, seed=1, data_format=data_format)
    got = to_numpy(align.resize_like(y, x, interpolation, data_format))
    if data_format == "channels_first":
        got = np.moveaxis(got, 1, -1)
        y = np.moveaxis(y, 1, -1)
    want = reference.align(y, sx, interpolation=interpolation)
    assert got.shape == sx[:-1] + (3,)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("size", [(16, 12), (5, 7), (8, 6), (3, 20)])
def test_resize_like_is_the_backends_image_resize(size, interpolation):
    """Same definition as `keras.ops.image.resize` (tf.image.resize,
    jax.image.resize) without antialiasing, up and down."""
    y = np.random.default_rng(2).normal(size=(2, 8, 6, 3)).astype("float32")
    x = np.zeros((2, *size, 1), "float32")
    got = to_numpy(align.resize_like(y, x, interpolation))
    want = to_numpy(
        keras.ops.image.resize(y, size, interpolation=interpolation)
    )
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_resize_skips_statically_equal_axes():
    y = np.arange(12, dtype="float32").reshape(1, 3, 4, 1)
    assert align.resize_like(y, np.zeros((1, 3, 4, 1))) is y
    out = to_numpy(align.resize_like(y, np.zeros((1, 3, 2, 1)), "nearest"))
    np.testing.assert_array_equal(out, y[:, :, 1::2])


# ---------------------------------------------------------------------------
# AFF / IAFF with align_inputs=True
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(FUSIONS))
@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_numerics(name, pair):
    sx, sy = PAIRS[pair]
    layer = aligned(name, sx, sy, seed=3)
    x, y = make_data(sx, sy, seed=4)
    got = to_numpy(layer([x, y]))
    assert got.shape == sx
    np.testing.assert_allclose(got, expected(layer, x, y), atol=1e-5, rtol=1e-5)
    # fusion_weights aligns too: w multiplies x, shaped like x.
    w = layer.fusion_weights([x, y])
    w = to_numpy(w[1] if isinstance(w, tuple) else w)
    assert w.shape == sx


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_numerics_nearest_and_training(name):
    sx, sy = PAIRS["up_2x"]
    layer = aligned(name, sx, sy, seed=5, resize_interpolation="nearest")
    x, y = make_data(sx, sy, seed=6)
    for training in (False, True):
        got = to_numpy(layer([x, y], training=training))
        want = expected(layer, x, y, training=training)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(FUSIONS))
@pytest.mark.parametrize("pair", ["up_2x", "rank3", "rank5"])
def test_channels_first_equals_channels_last(name, pair):
    sx, sy = PAIRS[pair]
    last = aligned(name, sx, sy, seed=7)
    fmt = "channels_first"
    other = FUSIONS[name](reduction_ratio=2, align_inputs=True, data_format=fmt)
    other.build([first(sx), first(sy)])
    assert [tuple(v.shape) for v in other.weights] == [
        tuple(v.shape) for v in last.weights
    ]
    other.set_weights(last.get_weights())
    x, y = make_data(sx, sy, seed=8)
    want = to_numpy(last([x, y]))
    got = to_numpy(other([np.moveaxis(x, -1, 1), np.moveaxis(y, -1, 1)]))
    np.testing.assert_allclose(np.moveaxis(got, 1, -1), want, atol=1e-5)


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_equal_shapes_add_nothing(name):
    """Equal shapes: no projection, no extra weight, the same output as
    align_inputs=False (also with spatial sizes unknown at build)."""
    shape = (2, 6, 5, 8)
    x, y = make_data(shape, shape, seed=9)
    for build_shape in (shape, (None, None, None, 8)):
        plain = FUSIONS[name](reduction_ratio=2)
        plain.build([build_shape, build_shape])
        reference.randomize(plain, seed=10)
        layer = FUSIONS[name](reduction_ratio=2, align_inputs=True)
        layer.build([build_shape, build_shape])
        assert layer.projection is None
        assert [v.path.split("/", 1)[1] for v in layer.weights] == [
            v.path.split("/", 1)[1] for v in plain.weights
        ]
        layer.set_weights(plain.get_weights())
        np.testing.assert_array_equal(
            to_numpy(layer([x, y])), to_numpy(plain([x, y]))
        )


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_projection_weights(name):
    layer = aligned(name, (None, 8, 6, 8), (None, 4, 3, 24))
    proj = [v for v in layer.weights if "/projection/" in v.path]
    want = {
        "conv/kernel": (1, 1, 24, 8),
        "bn/gamma": (8,),
        "bn/beta": (8,),
        "bn/moving_mean": (8,),
        "bn/moving_variance": (8,),
    }
    prefix = f"{layer.name}/projection/"
    assert {v.path[len(prefix) :]: tuple(v.shape) for v in proj} == want
    gates = 2 if name == "IAFF" else 1
    assert len(layer.weights) == 24 * gates + 5
    assert len(layer.trainable_weights) == 16 * gates + 3


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_config_round_trip(name):
    layer = FUSIONS[name](
        align_inputs=True, resize_interpolation="nearest", name="fuse"
    )
    config = layer.get_config()
    assert config["align_inputs"] is True
    assert config["resize_interpolation"] == "nearest"
    assert FUSIONS[name]().get_config()["align_inputs"] is False
    text = json.dumps(keras.saving.serialize_keras_object(layer))
    revived = keras.saving.deserialize_keras_object(json.loads(text))
    assert type(revived) is FUSIONS[name]
    assert revived.get_config() == config
    # A config of 0.1.0 (without the keys) still loads, unaligned.
    old = {k: v for k, v in config.items() if "align" not in k}
    old.pop("resize_interpolation")
    assert FUSIONS[name].from_config(old).align_inputs is False


def test_dynamic_sizes_symbolic_fit_and_jit():
    """A functional model with unknown sizes: symbolic shapes, one fit step
    (the projection learns), predict, and the model under jit at two new
    sizes, all equal to the eager layer and the reference."""
    x_in = keras.Input((None, None, 8))
    y_in = keras.Input((None, None, 16))
    layer = layers.AFF(reduction_ratio=2, align_inputs=True, name="aff")
    out = layer([x_in, y_in])
    assert tuple(out.shape) == (None, None, None, 8)
    model = keras.Model([x_in, y_in], out)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = make_data((4, 8, 6, 8), (4, 4, 3, 16), seed=11)
    kernel = to_numpy(layer.projection.conv.kernel).copy()
    model.fit([x, y], np.zeros_like(x), batch_size=4, verbose=0)
    assert np.max(np.abs(to_numpy(layer.projection.conv.kernel) - kernel)) > 0
    reference.randomize(layer, seed=12)
    jitted = keras.Model([x_in, y_in], out)
    jitted.compile(jit_compile=harness.MODEL_JIT)
    backend_jit = _backend_jit(layer, (8, 16))
    for i, (sx, sy) in enumerate(
        [((2, 9, 7, 8), (2, 5, 4, 16)), ((3, 4, 6, 8), (3, 8, 12, 16))]
    ):
        x, y = make_data(sx, sy, seed=20 + i)
        eager = to_numpy(layer([x, y], training=False))
        np.testing.assert_allclose(
            eager, expected(layer, x, y), atol=1e-5, rtol=1e-5
        )
        pred = to_numpy(jitted.predict([x, y], verbose=0))
        np.testing.assert_allclose(pred, eager, atol=1e-5, rtol=1e-5)
        got = to_numpy(backend_jit(x, y))
        np.testing.assert_allclose(got, eager, atol=1e-5, rtol=1e-5)


def _backend_jit(layer, channels):
    """The backend's own jit of the layer with dynamic sizes."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        specs = [tf.TensorSpec((None, None, None, c)) for c in channels]

        @tf.function(jit_compile=True, input_signature=specs)
        def fn(x, y):
            return layer([x, y], training=False)

        return fn
    if BACKEND == "jax":
        import jax

        @jax.jit
        def fn(trainable, frozen, x, y):
            out, _ = layer.stateless_call(
                trainable, frozen, [x, y], training=False
            )
            return out

        return lambda x, y: fn(
            [v.value for v in layer.trainable_variables],
            [v.value for v in layer.non_trainable_variables],
            x,
            y,
        )
    if BACKEND == "torch":
        import torch

        # dynamic=False: dynamo cannot trace `keras.ops.cast` of a symbolic
        # size (the run-time resize target); each new size recompiles.
        compiled = torch.compile(
            lambda x, y: layer([x, y], training=False),
            dynamic=False,
            fullgraph=True,
            backend=harness.TORCH_COMPILE_BACKEND,
        )

        def run(x, y):
            with torch.no_grad():
                return compiled(torch.as_tensor(x), torch.as_tensor(y))

        return run
    raise NotImplementedError(f"no jit check for backend {BACKEND}")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    sx, sy = PAIRS["up_2x"]
    ref = aligned("AFF", sx, sy, seed=13)
    layer = layers.AFF(reduction_ratio=2, align_inputs=True, dtype=policy)
    layer.build([sx, sy])
    assert all(v.dtype == "float32" for v in layer.weights)
    layer.set_weights(ref.get_weights())
    x, y = make_data(sx, sy, seed=14)
    out = layer([x, y])
    compute = policy.split("_")[1]
    assert keras.backend.standardize_dtype(out.dtype) == compute
    atol = 3e-2 if compute == "float16" else 1.5e-1
    np.testing.assert_allclose(
        to_numpy(out).astype("float32"), to_numpy(ref([x, y])), atol=atol
    )


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
def test_errors():
    x = np.zeros((2, 6, 5, 8), "float32")
    lay = layers.AFF(align_inputs=True, name="lay")
    with pytest.raises(ValueError, match=r"(?s)Layer 'lay'.*same rank.*"):
        lay([x, x[0]])
    with pytest.raises(ValueError, match=r"input_shape=\(None, 3, 3, None\)"):
        layers.AFF(align_inputs=True)(
            [keras.Input((6, 5, 8)), keras.Input((3, 3, None))]
        )
    with pytest.raises(ValueError, match=r"a single input"):
        layers.IAFF(align_inputs=True)(x)
    # Built for 8 and 4 channels, called with 8 and 6.
    built = layers.AFF(reduction_ratio=2, align_inputs=True, name="b")
    built([x, x[..., :4]])
    with pytest.raises(ValueError, match=r"(?s)'b'.*8 and 4 channels"):
        built([x, x[..., :6]])
    # Built on equal channels (no projection), then called with others.
    same = layers.AFF(reduction_ratio=2, align_inputs=True, name="s")
    same([x, x[:, :3]])
    with pytest.raises(ValueError, match=r"(?s)'s'.*8 and 8 channels"):
        same([x, x[..., :1]])


def test_align_layer():
    """`Align` is the alignment alone: y with x's channels and size."""
    sx, sy = PAIRS["up_2x"]
    x, y = make_data(sx, sy, seed=15)
    layer = layers.Align(name="align")
    out = to_numpy(layer([x, y]))
    assert out.shape == sx
    w = reference.weights_by_path(layer)
    np.testing.assert_allclose(
        out, reference.align(y, sx, w), atol=1e-5, rtol=1e-5
    )
    assert tuple(layer.compute_output_shape([sx, sy])) == sx
    assert layer.compute_output_shape([(None, None, 6, 8), (4, 4, 3, 16)]) == (
        4,
        None,
        6,
        8,
    )
    same = layers.Align(interpolation="nearest")
    np.testing.assert_array_equal(to_numpy(same([x, x])), x)
    assert not same.weights
    config = layer.get_config()
    assert config["interpolation"] == "bilinear"
    revived = layers.Align.from_config(config)
    assert revived.get_config() == config
    with pytest.raises(ValueError, match=received("interpolation", "'area'")):
        layers.Align(interpolation="area")
    with pytest.raises(TypeError, match=received("bn_synchronized", "1")):
        layers.Align(bn_synchronized=1)


def test_interop_refuses_a_projection():
    """The official modules have no projection: exporting its weights to
    a state dict would drop them silently."""
    layer = aligned("AFF", (None, 8, 6, 8), (None, 4, 3, 16))
    with pytest.raises(ValueError, match=r"align_inputs=True"):
        interop.to_torch_state_dict(layer)
    plain = aligned("AFF", (None, 8, 6, 8), (None, 4, 3, 8))
    assert len(interop.to_torch_state_dict(plain)) > 0
