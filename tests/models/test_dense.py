"""AFF-FPN and AFF-UNet: shapes at any size, the merges they are made of,
one training step, `.keras` round trips, numerics of the top-down path,
and argument errors."""

import keras
import numpy as np
import pytest

import keras_aff
from keras_aff import layers
from keras_aff.models import AFFFPN
from keras_aff.models import AFFUNet
from tests.layers import reference

L = keras.layers
RESNET50_STAGES = [
    "conv2_block3_out",
    "conv3_block4_out",
    "conv4_block6_out",
    "conv5_block3_out",
]
FUSION_CLASSES = {"aff": layers.AFF, "iaff": layers.IAFF}


def tiny_backbone(size=32):
    """Three stages with strides 2, 4, 8 (layers c1, c2, c3)."""
    image = keras.Input((size, size, 3))
    h = image
    for i, filters in enumerate((8, 16, 24), start=1):
        h = L.Conv2D(filters, 3, strides=2, padding="same", name=f"c{i}")(h)
    return keras.Model(image, h, name="tiny")


def gate_params(channels, ratio, gates=1):
    c = channels // ratio
    return gates * (4 * channels * c + 6 * (c + channels) + 4 * (c + channels))


@pytest.fixture(scope="module")
def resnet50():
    return keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=(72, 72, 3)
    )


# ---------------------------------------------------------------------------
# AFF-FPN
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fusion", ["aff", "iaff", "add"])
def test_fpn_on_keras_applications_resnet50(resnet50, fusion):
    """72x72: stage sizes 18, 9, 5, 3 are not halves of each other; each
    merge resizes to the lateral's exact size."""
    fpn = AFFFPN(
        resnet50, RESNET50_STAGES, channels=32, fusion=fusion, extra_level=True
    )
    assert fpn.name == {"aff": "aff_fpn", "iaff": "iaff_fpn"}.get(fusion, "fpn")
    sizes = {"P2": 18, "P3": 9, "P4": 5, "P5": 3, "P6": 2}
    assert {k: tuple(v.shape) for k, v in fpn.output.items()} == {
        k: (None, s, s, 32) for k, s in sizes.items()
    }
    fused = [
        layer
        for layer in fpn.layers
        if isinstance(layer, (layers.AFF, layers.IAFF, layers.Align))
    ]
    assert sorted(layer.name for layer in fused) == sorted(
        f"{fpn.name}_{k}_{'align' if fusion == 'add' else fusion}"
        for k in ("P2", "P3", "P4")
    )
    # Equal channels: no projection anywhere, only the gates are extra.
    assert all(layer.projection is None for layer in fused)
    extra = sum(layer.count_params() for layer in fused)
    gates = 2 if fusion == "iaff" else 1
    assert extra == (0 if fusion == "add" else 3 * gate_params(32, 4, gates))
    x = np.random.default_rng(0).normal(size=(2, 72, 72, 3)).astype("f")
    out = fpn.predict(x, verbose=0)
    assert all(np.all(np.isfinite(v)) for v in out.values())


def test_fpn_add_top_down_numerics():
    """fusion="add": T_l = lateral_l + nearest-resize(T_{l+1}) exactly, on
    sizes 20 -> 10 -> 5 -> 3 (the 3 -> 5 resize is not a 2x repeat)."""
    fpn = AFFFPN(tiny_backbone(40), ["c1", "c2", "c3"], 8, fusion="add")
    names = ["lateral_P1", "lateral_P2", "lateral_P3", "P2_add", "P1_add"]
    probe = keras.Model(
        fpn.input, [fpn.get_layer(f"fpn_{n}").output for n in names]
    )
    x = np.random.default_rng(1).normal(size=(2, 40, 40, 3)).astype("f")
    lat1, lat2, lat3, t2, t1 = probe.predict(x, verbose=0)
    want2 = lat2 + reference.align(lat3, lat2.shape, interpolation="nearest")
    np.testing.assert_allclose(t2, want2, atol=1e-5)
    want1 = lat1 + reference.align(t2, lat1.shape, interpolation="nearest")
    np.testing.assert_allclose(t1, want1, atol=1e-5)


def test_fpn_on_keras_aff_backbones():
    """A keras_aff backbone: its pyramid_outputs, or feature_model's dict."""
    backbone = keras_aff.models.AFFResNet32(include_top=False)
    fpn = AFFFPN(backbone, channels=16, fusion="iaff")
    assert {k: tuple(v.shape) for k, v in fpn.output.items()} == {
        "P0": (None, 32, 32, 16),
        "P1": (None, 16, 16, 16),
        "P2": (None, 8, 8, 16),
    }
    features = keras_aff.models.feature_model(backbone, levels=["P1", "P2"])
    two = AFFFPN(features, channels=16, name="two")
    assert list(two.output) == ["P1", "P2"]
    by_dict = AFFFPN(
        tiny_backbone(), {"P3": "c3", "P1": "c1"}, channels=8, name="d"
    )
    assert list(by_dict.output) == ["P1", "P3"]
    assert tuple(by_dict.output["P1"].shape) == (None, 16, 16, 8)


def test_fpn_trains_and_round_trips(tmp_path):
    fpn = AFFFPN(tiny_backbone(), ["c1", "c2", "c3"], channels=8)
    x = np.random.default_rng(2).normal(size=(4, 32, 32, 3)).astype("f")
    targets = {
        k: np.zeros((4, *v.shape[1:]), "f") for k, v in fpn.output.items()
    }
    _check_fit_step(fpn, x, targets)
    path = tmp_path / "fpn.keras"
    fpn.save(path)
    loaded = keras.saving.load_model(path)
    want, got = fpn.predict(x, verbose=0), loaded.predict(x, verbose=0)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-6)


def test_fpn_errors():
    tiny = tiny_backbone()
    with pytest.raises(TypeError, match=r"Received: backbone="):
        AFFFPN("resnet50")
    with pytest.raises(ValueError, match=r"Received: fusion='sum'"):
        AFFFPN(tiny, ["c1", "c2"], fusion="sum")
    with pytest.raises(ValueError, match=r"Received: channels=0"):
        AFFFPN(tiny, ["c1", "c2"], channels=0)
    with pytest.raises(TypeError, match=r"Received: extra_level=1"):
        AFFFPN(tiny, ["c1", "c2"], extra_level=1)
    with pytest.raises(ValueError, match=r"\['nope'\] are not among them"):
        AFFFPN(tiny, ["c1", "nope"])
    with pytest.raises(ValueError, match=r"at least two distinct levels"):
        AFFFPN(tiny, ["c1"])
    with pytest.raises(TypeError, match=r"Received: levels='c1'"):
        AFFFPN(tiny, "c1")
    with pytest.raises(ValueError, match=r"Received: levels=None"):
        AFFFPN(tiny)  # neither dict outputs nor a keras_aff backbone
    image = keras.Input((None, None, 3))
    h = L.Conv2D(4, 3, strides=2, name="a")(image)
    dynamic = keras.Model(image, L.Conv2D(4, 3, strides=2, name="b")(h))
    with pytest.raises(ValueError, match=r"as a dict"):
        AFFFPN(dynamic, ["a", "b"])


# ---------------------------------------------------------------------------
# AFF-UNet
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fusion", ["aff", "iaff", "add"])
def test_unet_structure(fusion):
    model = AFFUNet((32, 48, 3), 5, depth=3, base_filters=8, fusion=fusion)
    assert tuple(model.output.shape) == (None, 32, 48, 5)
    assert model.output.dtype == "float32"
    merges = {}
    for i in (1, 2, 3):
        if fusion == "add":
            merges[i] = model.get_layer(f"dec{i}_align")
            assert isinstance(model.get_layer(f"dec{i}_add"), L.Add)
        else:
            merges[i] = model.get_layer(f"dec{i}_{fusion}")
            assert isinstance(merges[i], FUSION_CLASSES[fusion])
            assert merges[i].align_inputs is True
        # The upsampled map (2C channels) is projected to the skip's C.
        kernel = merges[i].projection.conv.kernel
        assert tuple(kernel.shape) == (
            1,
            1,
            16 * 2 ** (i - 1),
            8 * 2 ** (i - 1),
        )
    x = np.random.default_rng(3).normal(size=(2, 32, 48, 3)).astype("f")
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)


def test_unet_parameter_counts_differ_by_the_gates():
    counts = {
        f: AFFUNet(
            (16, 16, 1), 2, depth=2, base_filters=8, fusion=f
        ).count_params()
        for f in ("aff", "iaff", "add")
    }
    gates = gate_params(8, 4) + gate_params(16, 4)
    assert counts["aff"] - counts["add"] == gates
    assert counts["iaff"] - counts["add"] == 2 * gates


def test_unet_any_size_divisible_by_2_to_the_depth():
    model = AFFUNet((None, None, 3), 3, depth=2, base_filters=8)
    for size in [(16, 16), (24, 40), (4, 8)]:
        x = np.ones((1, *size, 3), "float32")
        assert model.predict(x, verbose=0).shape == (1, *size, 3)


def test_unet_trains_and_round_trips(tmp_path):
    model = AFFUNet((16, 16, 3), 3, depth=2, base_filters=8, fusion="iaff")
    x = np.random.default_rng(4).normal(size=(4, 16, 16, 3)).astype("f")
    y = np.random.default_rng(5).uniform(size=(4, 16, 16, 3)).astype("f")
    _check_fit_step(model, x, y)
    path = tmp_path / "unet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


def test_unet_mixed_precision_outputs_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = AFFUNet((16, 16, 3), 2, depth=2, base_filters=8, fusion="aff")
    out = model(np.ones((1, 16, 16, 3), "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert model.get_layer("dec1_aff").compute_dtype == "float16"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"input_shape": (30, 32, 3)}, ValueError, r"multiples of 2\*\*depth"),
        ({"input_shape": (32, 32)}, ValueError, r"input_shape=\(32, 32\)"),
        ({"input_shape": (32, 32, None)}, ValueError, r"channel dimension"),
        ({"depth": 0}, ValueError, r"Received: depth=0"),
        ({"depth": 2.0}, TypeError, r"Received: depth=2.0"),
        ({"num_classes": 0}, ValueError, r"Received: num_classes=0"),
        ({"base_filters": -1}, ValueError, r"Received: base_filters=-1"),
        ({"fusion": "concat"}, ValueError, r"Received: fusion='concat'"),
        ({"reduction_ratio": 16}, ValueError, r"Received: reduction_ratio=16"),
        (
            {"classifier_activation": "nope"},
            ValueError,
            r"Received: classifier_activation='nope'",
        ),
    ],
)
def test_unet_errors(kwargs, error, match):
    args = dict(input_shape=(32, 32, 3), num_classes=2, base_filters=8)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        AFFUNet(**args)


def _check_fit_step(model, x, y):
    """One SGD step moves every trainable weight, except the conv biases
    right before a training-mode BatchNorm (their gradient is 0 up to
    rounding: the batch mean cancels them)."""
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = {v.path: np.array(v) for v in model.trainable_weights}
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    still = [
        v.path
        for v in model.trainable_weights
        if np.max(np.abs(np.array(v) - before[v.path])) <= 1e-7
    ]
    cancelled = [p for p in before if "attention" in p and p.endswith("bias")]
    assert sorted(still) == sorted(cancelled)
