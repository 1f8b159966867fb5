"""`keras_aff.optimize.fold_batchnorm`: the folded model computes what the
original computes in inference, on the paper backbones, a retrofitted
Keras Application and user models, and folds exactly what it should."""

import keras
import numpy as np
import pytest

from keras_aff import layers
from keras_aff import models
from keras_aff.optimize import fold_batchnorm

RNG = np.random.default_rng(0)


def randomize_batch_norms(model, seed=0):
    """Non-trivial statistics and affine parameters in every BN."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        name = v.path.split("/")[-1]
        if name in ("moving_mean", "beta"):
            value = rng.normal(0.0, 0.3, v.shape)
        elif name in ("moving_variance", "gamma"):
            value = rng.uniform(0.5, 1.5, v.shape)
        else:
            continue
        v.assign(value.astype(v.dtype))


def outputs(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def assert_equal_outputs(folded, model, x, rtol):
    expected = outputs(model, x)
    scale = float(np.max(np.abs(expected)))
    np.testing.assert_allclose(
        outputs(folded, x), expected, rtol=rtol, atol=rtol * scale
    )


@pytest.mark.parametrize("fusion", ["aff", "iaff"])
def test_backbone_folds_every_batch_norm_exactly(fusion):
    # float64: a deep network with random BN statistics amplifies float32
    # rounding ~1e6-fold (a 1e-7 input change moves the output by ~5 %), so
    # the algebra is checked where rounding is negligible.
    keras.config.set_dtype_policy("float64")
    model = models.AFFResNet50(
        fusion=fusion, input_shape=(64, 64, 3), include_top=False
    )
    randomize_batch_norms(model)
    folded, report = fold_batchnorm(model, return_report=True)
    assert report.batch_norms_before > 50 and report.batch_norms_after == 0
    gates = 2 if fusion == "iaff" else 1
    fused = [
        x for x in model.layers if isinstance(x, (layers.AFF, layers.IAFF))
    ]
    assert len(report.fusion_layers) == len(fused) > 0
    in_gates = 4 * gates * len(fused)
    assert len(report.pairs) + in_gates == report.batch_norms_before
    x = RNG.normal(size=(2, 64, 64, 3))
    assert_equal_outputs(folded, model, x, rtol=1e-9)


def test_retrofitted_application_in_float32():
    base = keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), weights=None, classes=10
    )
    model = models.retrofit(base, fusion="aff")
    randomize_batch_norms(model)
    folded, report = fold_batchnorm(model, return_report=True)
    assert report.batch_norms_after == 0
    assert not any(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in folded.layers
    )
    # depthwise convs included
    depthwise = [
        p for p in report.pairs if "depthwise" in p[0] and "BN" in p[1]
    ]
    assert depthwise
    x = RNG.uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    assert_equal_outputs(folded, model, x, rtol=1e-5)


def test_sequential_comes_back_sequential():
    model = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(8, 3, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
            keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4),
            keras.layers.BatchNormalization(),
        ],
        name="seq",
    )
    randomize_batch_norms(model)
    folded = fold_batchnorm(model)
    assert isinstance(folded, keras.Sequential) and folded.name == "seq"
    assert [type(layer).__name__ for layer in folded.layers] == [
        "Conv2D",
        "ReLU",
        "DepthwiseConv2D",
        "GlobalAveragePooling2D",
        "Dense",
    ]
    x = RNG.normal(size=(3, 12, 12, 3)).astype("float32")
    assert_equal_outputs(folded, model, x, rtol=1e-5)


def test_only_foldable_pairs_are_folded():
    x = keras.Input((6, 6, 8))
    inner = keras.Sequential(
        [
            keras.Input((6, 6, 8)),
            keras.layers.Conv2D(8, 1, name="inner_conv"),
            keras.layers.BatchNormalization(name="inner_bn"),
        ],
        name="inner",
    )
    h = inner(x)
    # The conv's output also feeds the Add: this BN stays.
    c = keras.layers.Conv2D(8, 1, name="shared_conv")(h)
    kept = keras.layers.BatchNormalization(name="kept_shared")(c)
    h = keras.layers.Add()([c, kept])
    # A BN after an activation stays.
    a = keras.layers.Conv2D(8, 1, activation="relu", name="relu_conv")(h)
    a = keras.layers.BatchNormalization(name="kept_relu")(a)
    # A BN over another axis stays.
    b = keras.layers.Conv2D(8, 1, name="conv_axis")(a)
    b = keras.layers.BatchNormalization(axis=1, name="kept_axis")(b)
    # channels_first conv + BN(axis=1) folds. (4 filters, not 8: TF's
    # oneDNN CPU kernels add a channels_first conv's bias along the last
    # axis when its size equals the filter count, folded or not.)
    f = keras.layers.Conv2D(4, 1, data_format="channels_first", name="cf")(b)
    f = keras.layers.BatchNormalization(axis=1, name="cf_bn")(f)
    model = keras.Model(x, f)
    randomize_batch_norms(model)
    folded, report = fold_batchnorm(model, return_report=True)
    assert sorted(report.pairs) == [
        ("cf", "cf_bn"),
        ("inner/inner_conv", "inner/inner_bn"),
    ]
    kept = sorted(
        layer.name
        for layer in folded.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    assert kept == ["kept_axis", "kept_relu", "kept_shared"]
    assert folded.get_layer("inner").layers[-1].name == "inner_conv"
    data = RNG.normal(size=(2, 6, 6, 8)).astype("float32")
    assert_equal_outputs(folded, model, data, rtol=1e-5)


def test_original_model_is_untouched():
    x = keras.Input((4, 4, 16))
    h = keras.layers.Conv2D(16, 1, name="c")(x)
    h = keras.layers.BatchNormalization(name="bn")(h)
    model = keras.Model(x, layers.AFF(name="aff")([h, x]))
    randomize_batch_norms(model)
    before = [keras.ops.convert_to_numpy(w) for w in model.weights]
    fold_batchnorm(model)
    after = [keras.ops.convert_to_numpy(w) for w in model.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert model.get_layer("aff").use_batch_norm is True


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 1)
        self.bn = keras.layers.BatchNormalization()

    def call(self, x):
        return self.bn(self.conv(x))


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: "model.keras", TypeError, r"Received: model='model.keras'"),
        (Subclassed, TypeError, r"subclassed.*Received: model='Subclassed'"),
        (
            lambda: keras.Sequential([keras.layers.Dense(2)], name="s"),
            ValueError,
            r"built Sequential.*Received: model='s'",
        ),
    ],
)
def test_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        fold_batchnorm(make())


def test_return_report_is_checked():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="Received: return_report=1"):
        fold_batchnorm(model, return_report=1)
