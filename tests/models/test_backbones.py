"""Contract tests over every registered backbone (timm style), plus the
architecture facts of the official code."""

import inspect
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_aff
import keras_aff.models as M
from tests import processes
from tests.models.helpers import BIG
from tests.models.helpers import model_params
from tests.models.helpers import small_input_shape

_MODELS = {}
_BN3 = re.compile(r"stage\d+_block\d+_bn3")


def session_model(name):
    """Each backbone is built once per session (they are large, and CI has
    two cores): default arguments (official init, all classes) with an
    input of unknown height and width, so that each test feeds the
    smallest images it can. Its parameter count is the 224x224 one: the
    networks end in global pooling, so no weight depends on the input size
    (checked in `test_parameter_count_does_not_depend_on_input_size`).
    """
    if name not in _MODELS:
        keras.utils.set_random_seed(0)
        _MODELS[name] = M.get_model(name, input_shape=(None, None, 3))
    return _MODELS[name]


def _batch(name, n=2, seed=0, size=None):
    """Images for `name`: 64x64 (ImageNet nets) or 32x32 (CIFAR nets) by
    default."""
    if size is None:
        size = (small_input_shape(name) or (32,))[0]
    shape = (n, size, size, 3)
    return np.random.RandomState(seed).uniform(-1, 1, shape).astype("float32")


# Grouped-convolution gradients are slow on TF's CPU kernels (about 2 min
# for AFF-ResNeXt-38 at 32x32, batch 8), so the training step uses the
# smallest images the networks accept, with a batch of 4 so that every
# BatchNorm still sees 4 values per channel: 32x32 for the ImageNet nets,
# 4x4 for the CIFAR nets (their last stage is then 1x1).
def _train_size(name):
    return 32 if M.model_info(name).dataset == "imagenet" else 4


def _tiny(name="tiny"):
    """A one-block-per-stage AFF-ResNet (widths 16/32/64) from the CIFAR
    family builder: the contract checks that need no full-size network."""
    from keras_aff.models.cifar import cifar_resnet

    arguments = dict(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=10,
        classifier_activation="softmax",
        name=name,
        fusion="aff",
        fusion_stages=(1, 2, 3),
        reduction_ratio=4,
        kernel_initializer="glorot_uniform",
    )
    return cifar_resnet(
        arguments, blocks_per_stage=1, widths=(16, 32, 64), stem_width=16
    )


def _count(weights):
    return int(sum(int(np.prod(w.shape)) for w in weights))


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------
def test_registry_lists_every_public_model():
    assert M.list_models() == [
        "aff_resnet32",
        "aff_resnet50",
        "aff_resnext38_32x4d",
        "aff_resnext47_32x4d",
        "aff_resnext50_32x4d",
        "iaff_resnet50",
        "iaff_resnext50_32x4d",
    ]
    assert M.list_models("*resnext*") == [
        "aff_resnext38_32x4d",
        "aff_resnext47_32x4d",
        "aff_resnext50_32x4d",
        "iaff_resnext50_32x4d",
    ]
    for name in M.list_models():
        assert callable(M.model_info(name).builder)
        assert M.model_info(name).builder.__doc__


def test_registry_unknown_name():
    with pytest.raises(ValueError, match="Received: name='resnet18'"):
        M.get_model("resnet18")
    with pytest.raises(TypeError, match="Received: name=3"):
        M.model_info(3)


_APPLICATIONS_ARGS = [
    "include_top",
    "weights",
    "input_tensor",
    "input_shape",
    "pooling",
    "classes",
    "classifier_activation",
    "name",
    "fusion",
    "fusion_stages",
    "reduction_ratio",
]


def test_registry_is_built_from_the_public_builders():
    """Every record's builder is the public entry point itself (a real
    `def` with its own name), with the keras.applications signature."""
    for name in M.list_models():
        builder = M.model_info(name).builder
        assert getattr(M, builder.__name__) is builder
        assert builder.__qualname__ == builder.__name__
        params = list(inspect.signature(builder).parameters)
        extra = [] if name == "aff_resnet32" else ["zero_init_residual"]
        assert params == _APPLICATIONS_ARGS + extra + [
            "kernel_initializer",
            "bn_synchronized",
        ]
    assert {M.model_info(n).builder.__name__ for n in M.list_models()} == {
        "AFFResNet32",
        "AFFResNet50",
        "AFFResNeXt38",
        "AFFResNeXt47",
        "AFFResNeXt50",
        "IAFFResNet50",
        "IAFFResNeXt50",
    }


def test_registering_a_name_twice_is_refused():
    from keras_aff.models.registry import register_model

    with pytest.raises(ValueError, match="'aff_resnet32' is already"):
        register_model("aff_resnet32")(lambda: None)
    assert M.model_info("aff_resnet32").builder is M.AFFResNet32


def test_public_names_have_docstrings_with_examples():
    for name in M.__all__:
        obj = getattr(M, name)
        assert obj.__doc__, name
        if callable(obj) and not isinstance(obj, type):
            assert "Example" in obj.__doc__, name


# ---------------------------------------------------------------------------
# Parameter counts (default build; no forward pass needed)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", model_params())
def test_parameter_counts_match_the_official_readme(name):
    info = M.model_info(name)
    model = session_model(name)
    trainable = _count(model.trainable_weights)
    total = _count(model.weights)
    # Exact figures, pinned (the README table quotes them).
    assert trainable == info.trainable_params
    assert total == info.total_params
    # Every README figure is within 0.1M of the trainable count ...
    assert abs(trainable - info.readme_params_m * 1e6) < 0.1e6
    # ... and follows exactly from the documented rounding rule.
    if info.readme_rule == "trainable, truncated to 0.1M":
        assert math.floor(trainable / 1e5) / 10 == info.readme_params_m
    else:
        assert info.readme_rule == "total, rounded to 0.1M"
        assert round(total / 1e5) / 10 == info.readme_params_m


@pytest.mark.parametrize("name", model_params())
def test_architecture_facts(name):
    """Where the fusion sits, its settings, zero-gamma last BNs."""
    info = M.model_info(name)
    model = session_model(name)
    fusion = "iaff" if name.startswith("iaff") else "aff"
    cls = keras_aff.layers.IAFF if fusion == "iaff" else keras_aff.layers.AFF
    fusions = [layer for layer in model.layers if isinstance(layer, cls)]
    adds = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Add)
    ]
    if info.dataset == "imagenet":
        # Stages 3-4 fuse (6 + 3 blocks), stages 1-2 add (3 + 4 blocks).
        assert len(fusions) == 9 and len(adds) == 7
        assert {f.name.split("_")[0] for f in fusions} == {"stage3", "stage4"}
        assert {f.reduction_ratio for f in fusions} == {16}
    else:
        assert not adds
        assert {f.name.split("_")[0] for f in fusions} == {
            "stage1",
            "stage2",
            "stage3",
        }
        ratio = 4 if name == "aff_resnet32" else 16
        assert {f.reduction_ratio for f in fusions} == {ratio}
    assert {f.output_scale for f in fusions} == {
        2.0 if fusion == "aff" else 1.0
    }
    assert {(f.bn_momentum, f.bn_epsilon, f.use_bias) for f in fusions} == {
        (0.9, 1e-5, True)
    }
    bns = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert {(b.momentum, b.epsilon) for b in bns} == {(0.9, 1e-5)}
    convs = [
        lay for lay in model.layers if isinstance(lay, keras.layers.Conv2D)
    ]
    assert not any(c.use_bias for c in convs)
    last_bns = [b for b in bns if _BN3.fullmatch(b.name)]
    if name == "aff_resnet32":
        assert not last_bns  # pre-activation blocks end with a conv
    else:
        assert last_bns
        for b in last_bns:
            assert not np.any(keras.ops.convert_to_numpy(b.gamma))
    # Every strided conv / pool pads explicitly (symmetric), never "same".
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D)):
            if max(layer.strides) > 1 and layer.get_config().get(
                "kernel_size", layer.get_config().get("pool_size")
            ) != (1, 1):
                assert layer.padding == "valid", layer.name
                pad = model.get_layer(f"{layer.name}_pad")
                assert pad.padding == ((1, 1), (1, 1)), layer.name


def test_imagenet_stem_and_shortcuts():
    model = session_model("aff_resnet50")
    widths = [model.get_layer(f"stem_conv{i}").filters for i in (1, 2, 3)]
    assert widths == [32, 32, 64]
    assert model.get_layer("stem_conv1").strides == (2, 2)
    # Stage 1 projects without a pool (kernel-1 pool = identity); stages 2-4
    # pool with kernel = stride = 2.
    names = {layer.name for layer in model.layers}
    assert "stage1_block1_down_pool" not in names
    for s in (2, 3, 4):
        pool = model.get_layer(f"stage{s}_block1_down_pool")
        assert pool.pool_size == (2, 2) and pool.strides == (2, 2)
    # Stride on the 3x3.
    assert model.get_layer("stage2_block1_conv2").strides == (2, 2)
    assert model.get_layer("stage2_block1_conv1").strides == (1, 1)

    resnext = session_model("aff_resnext50_32x4d")
    assert [resnext.get_layer(f"stem_conv{i}").filters for i in (1, 2, 3)] == [
        64,
        64,
        128,
    ]
    groups = [
        (
            resnext.get_layer(f"stage{s}_block1_conv2").filters,
            resnext.get_layer(f"stage{s}_block1_conv2").groups,
        )
        for s in (1, 2, 3, 4)
    ]
    assert groups == [(128, 32), (256, 32), (512, 32), (1024, 32)]
    assert "stage1_block1_down_conv" in {x.name for x in resnext.layers}


def test_cifar_stems():
    resnet = session_model("aff_resnet32")
    stem_bn = resnet.get_layer("stem_bn")
    assert not stem_bn.scale and not stem_bn.center
    assert resnet.layers[2].name == "stem_conv"  # BN, then the conv
    assert resnet.get_layer("stem_conv").filters == 64
    # Shortcut projection only where the width changes, without BN.
    names = {layer.name for layer in resnet.layers}
    assert "stage1_block1_down_conv" not in names
    assert "stage2_block1_down_conv" in names
    assert "stage2_block1_down_bn" not in names
    resnext = session_model("aff_resnext38_32x4d")
    assert resnext.get_layer("stem_conv").filters == 64
    assert "stem_pool" not in {layer.name for layer in resnext.layers}


def test_average_pool_matches_ceil_mode_without_padding_count():
    """AvgPool(2, 2, ceil_mode=True, count_include_pad=False) of MXNet on an
    odd size == Keras "same" average pooling."""
    x = np.arange(2 * 7 * 5 * 3, dtype="float32").reshape(2, 7, 5, 3)
    got = keras.layers.AveragePooling2D(2, 2, padding="same")(x)
    ref = np.zeros((2, 4, 3, 3), "float32")
    for i in range(4):
        for j in range(3):
            ref[:, i, j] = x[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean(
                axis=(1, 2)
            )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), ref)


# ---------------------------------------------------------------------------
# Output shapes for include_top x pooling
# ---------------------------------------------------------------------------
# One extra build per model, each family covering every combination;
# AFF-ResNet-32 (the cheapest) gets all of them. (include_top=True,
# default pooling) is the session model itself.
_HEADS = {
    "aff_resnet50": [(False, None)],
    "iaff_resnet50": [(False, "max")],
    "aff_resnext50_32x4d": [(False, "avg")],
    "iaff_resnext50_32x4d": [(True, "avg")],
    "aff_resnext38_32x4d": [(False, "avg")],
    "aff_resnext47_32x4d": [(False, "max")],
}
_ALL_HEADS = [(True, "max"), (False, None), (False, "avg"), (False, "max")]
_HEAD_PARAMS = [
    pytest.param(
        name,
        top,
        pool,
        id=f"{name}-top={top}-pooling={pool}",
        marks=[pytest.mark.slow] if name in BIG else [],
    )
    for name in M.list_models()
    for top, pool in _HEADS.get(name, _ALL_HEADS)
]


@pytest.mark.parametrize("name,include_top,pooling", _HEAD_PARAMS)
def test_output_shapes(name, include_top, pooling):
    info = M.model_info(name)
    shape = small_input_shape(name) or info.input_shape
    model = M.get_model(
        name,
        include_top=include_top,
        pooling=pooling,
        classes=7,
        input_shape=shape,
        classifier_activation=None,
    )
    channels = info.stage_channels[-1]
    if include_top:
        expected = (None, 7)  # pooling is ignored with the top
    elif pooling is None:
        side = shape[0] // info.stage_strides[-1]
        expected = (None, side, side, channels)
    else:
        expected = (None, channels)
    assert tuple(model.output.shape) == expected
    out = model(np.zeros((1,) + shape, "float32"), training=False)
    assert tuple(out.shape) == (1,) + expected[1:]


@pytest.mark.parametrize("name", model_params())
def test_default_head(name):
    info = M.model_info(name)
    model = session_model(name)
    assert tuple(model.output.shape) == (None, info.classes)
    assert model.get_layer("predictions").activation.__name__ == "softmax"
    assert model.name == name


def test_parameter_count_does_not_depend_on_input_size():
    a = M.AFFResNeXt38(input_shape=(64, 48, 3))
    assert _count(a.weights) == M.model_info("aff_resnext38_32x4d").total_params


# ---------------------------------------------------------------------------
# Forward, gradients, training step
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", model_params())
def test_forward_has_no_nan(name):
    model = session_model(name)
    y = keras.ops.convert_to_numpy(model(_batch(name), training=False))
    assert y.shape == (2, M.model_info(name).classes)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)


# Conv biases directly followed by a training-mode BatchNorm get an exactly
# zero gradient in theory (the BN subtracts the batch mean); in float32 they
# get rounding noise, sometimes exactly 0. The attention convs are the only
# convs with a bias.
_BIAS_BEFORE_BN = ("conv1/bias", "conv2/bias")


@pytest.mark.parametrize("name", model_params())
def test_one_training_step_reaches_every_weight(name):
    model = session_model(name)
    saved = model.get_weights()
    try:
        # The official init zeroes the last BN gamma of every block, which
        # blocks the gradient of the rest of the residual branch at step 0;
        # open it so that every weight must receive a gradient.
        for layer in model.layers:
            if _BN3.fullmatch(layer.name):
                layer.gamma.assign(keras.ops.ones_like(layer.gamma))
        x = _batch(name, n=4, seed=1, size=_train_size(name))
        y = np.arange(4)
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            loss = keras.ops.mean(
                keras.losses.sparse_categorical_crossentropy(y, probs)
            )
        weights = model.trainable_weights
        grads = tape.gradient(loss, weights)
        assert np.isfinite(float(loss))
        for w, g in zip(weights, grads):
            assert g is not None, w.path
            g = keras.ops.convert_to_numpy(g)
            assert np.all(np.isfinite(g)), w.path
            if not w.path.endswith(_BIAS_BEFORE_BN):
                assert np.any(g != 0), w.path
        before = [keras.ops.convert_to_numpy(w) for w in weights]
        keras.optimizers.Adam(1e-3).apply(grads, weights)
        for b, w in zip(before, weights):
            if not w.path.endswith(_BIAS_BEFORE_BN):
                assert not np.array_equal(b, keras.ops.convert_to_numpy(w)), (
                    w.path
                )
        y = keras.ops.convert_to_numpy(model(x[:2], training=False))
        assert np.all(np.isfinite(y))
    finally:
        model.set_weights(saved)


# ---------------------------------------------------------------------------
# Serialization and XLA
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", model_params())
def test_keras_round_trip(name, tmp_path):
    model = session_model(name)
    x = _batch(name, seed=2)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.name == model.name
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_keras_round_trip_in_a_fresh_process(tmp_path):
    """Loading needs no custom_objects, only `import keras_aff`."""
    model = _tiny()
    x = _batch("aff_resnet32", seed=3)
    path = tmp_path / "m.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(
        tmp_path / "y.npy",
        keras.ops.convert_to_numpy(model(x, training=False)),
    )
    code = (
        "import numpy as np, keras, keras_aff\n"
        f"m = keras.models.load_model(r'{path}')\n"
        f"x = np.load(r'{tmp_path / 'x.npy'}')\n"
        f"y = np.load(r'{tmp_path / 'y.npy'}')\n"
        "np.testing.assert_allclose(m(x, training=False), y, rtol=1e-5,"
        " atol=1e-6)\n"
        "print('OK')\n"
    )
    out = processes.succeeded(processes.run_python(["-c", code]))
    assert "OK" in out.stdout


@pytest.mark.parametrize("name", model_params())
def test_xla_predict_equals_eager(name):
    model = session_model(name)
    x = _batch(name, seed=4)
    eager = keras.ops.convert_to_numpy(model(x, training=False))
    model.compile(jit_compile=True)
    try:
        xla = model.predict(x, batch_size=2, verbose=0)
    finally:
        model.compile(jit_compile=False)
    np.testing.assert_allclose(xla, eager, rtol=1e-4, atol=1e-6)


def test_weights_path_round_trip(tmp_path):
    model = session_model("aff_resnet32")
    path = str(tmp_path / "aff_resnet32.weights.h5")
    model.save_weights(path)
    keras.utils.set_random_seed(99)
    again = M.AFFResNet32(weights=path)
    x = _batch("aff_resnet32", seed=5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        rtol=1e-6,
    )


# ---------------------------------------------------------------------------
# Stage outputs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", model_params())
def test_stage_outputs(name):
    info = M.model_info(name)
    model = session_model(name)
    features = M.feature_model(model)
    keys = [f"P{int(math.log2(s))}" for s in info.stage_strides]
    assert list(features.output) == keys
    assert [v.shape[-1] for v in features.output.values()] == list(
        info.stage_channels
    )
    x = _batch(name, n=1)
    size = x.shape[1]
    out = features(x, training=False)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        k: (1, size // s, size // s, c)
        for k, s, c in zip(keys, info.stage_strides, info.stage_channels)
    }
    # Shares the backbone's layers (and so its weights).
    assert features.get_layer("stage1_block1_conv1") is model.get_layer(
        "stage1_block1_conv1"
    )


def test_stage_outputs_run_and_feed_a_decoder():
    backbone = session_model("aff_resnet32")
    features = M.feature_model(backbone, levels=["P1", "P2"])
    feats = features.output
    top = keras.layers.Conv2D(32, 1)(feats["P2"])
    lateral = keras.layers.Conv2D(32, 1)(feats["P1"])
    up = keras.layers.UpSampling2D(2)(top)
    fused = keras_aff.layers.AFF(output_scale=2.0)([lateral, up])
    fpn = keras.Model(features.input, fused)
    x = _batch("aff_resnet32")
    out = keras.ops.convert_to_numpy(fpn(x, training=False))
    assert out.shape == (2, 16, 16, 32) and np.all(np.isfinite(out))
    # The P2 output is the stage-3 block output of the backbone.
    p2 = features(x, training=False)["P2"]
    ref = keras.Model(
        backbone.input, backbone.get_layer("stage3_block5_out").output
    )(x, training=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(p2), keras.ops.convert_to_numpy(ref)
    )


def test_stage_outputs_with_unknown_input_size():
    model = M.AFFResNeXt38(include_top=False, input_shape=(None, None, 3))
    shapes = {k: tuple(v.shape) for k, v in M.pyramid_outputs(model).items()}
    assert shapes == {
        "P0": (None, None, None, 256),
        "P1": (None, None, None, 512),
        "P2": (None, None, None, 1024),
    }


def test_feature_model_errors():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="stage<s>_block<b>_out"):
        M.feature_model(keras.Model(plain.inputs, plain.outputs))
    with pytest.raises(ValueError, match="Received: levels="):
        M.feature_model(session_model("aff_resnet32"), levels=["P5"])
    with pytest.raises(TypeError, match="Received: levels='P1'"):
        M.feature_model(session_model("aff_resnet32"), levels="P1")
    with pytest.raises(TypeError, match="Received: model=3"):
        M.pyramid_outputs(3)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------
def test_fusion_add_is_the_plain_baseline():
    model = M.AFFResNet32(fusion="add")
    assert model.name == "resnet32"
    assert not [
        layer
        for layer in model.layers
        if isinstance(layer, keras_aff.layers.AFF)
    ]
    assert _count(model.trainable_weights) == 7_450_276
    iaff = M.AFFResNet32(fusion="iaff", fusion_stages=(3,))
    assert iaff.name == "iaff_resnet32"
    kinds = {type(layer).__name__ for layer in iaff.layers}
    assert "IAFF" in kinds and "Add" in kinds


def test_input_tensor_and_unknown_sizes():
    inp = keras.Input((40, 48, 3))
    model = M.AFFResNet32(include_top=False, input_tensor=inp)
    assert model.inputs[0] is inp
    assert tuple(model.output.shape) == (None, 10, 12, 256)
    model = M.AFFResNet32(input_shape=(None, None, 1), classes=3)
    y = model(np.zeros((1, 20, 28, 1), "float32"), training=False)
    assert tuple(y.shape) == (1, 3)


# Wrong types are TypeErrors, wrong values ValueErrors; each message names
# the argument and the received value.
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"weights": "imagenet"}, ValueError, "No pretrained weights"),
        ({"weights": "/no/such/file.h5"}, ValueError, "Received: weights="),
        ({"weights": 3}, TypeError, "Received: weights=3"),
        ({"pooling": "mean"}, ValueError, "Received: pooling='mean'"),
        ({"pooling": 1}, TypeError, "Received: pooling=1"),
        ({"fusion": "concat"}, ValueError, "Received: fusion='concat'"),
        ({"classes": 0}, ValueError, "Received: classes=0"),
        ({"classes": 10.0}, TypeError, "Received: classes=10.0"),
        ({"include_top": "yes"}, TypeError, "Received: include_top='yes'"),
        (
            {"input_shape": (2, 2, 3)},
            ValueError,
            r"at least 4x4.*Received: input_shape=\(2, 2, 3\)",
        ),
        (
            {"input_shape": (32, 32)},
            ValueError,
            r"Received: input_shape=\(32, 32\)",
        ),
        (
            {"input_shape": (32, 32, None)},
            ValueError,
            r"channel dimension.*Received: input_shape=\(32, 32, None\)",
        ),
        (
            {"input_shape": (32, 32, "3")},
            TypeError,
            r"Received: input_shape\[2\]='3'",
        ),
        ({"input_shape": 32}, TypeError, "Received: input_shape=32"),
        (
            {"input_tensor": np.zeros((1, 32, 32, 3))},
            TypeError,
            "Received: input_tensor=",
        ),
        ({"fusion_stages": (0,)}, ValueError, r"fusion_stages\[0\]=0"),
        ({"fusion_stages": (4,)}, ValueError, r"fusion_stages\[0\]=4"),
        ({"fusion_stages": "3"}, TypeError, "Received: fusion_stages='3'"),
        ({"reduction_ratio": 0}, ValueError, "Received: reduction_ratio=0"),
        (
            {"reduction_ratio": 4.0},
            TypeError,
            "Received: reduction_ratio=4.0",
        ),
        (
            {"classifier_activation": "nope"},
            ValueError,
            "Received: classifier_activation='nope'",
        ),
        (
            {"kernel_initializer": "nope"},
            ValueError,
            "Received: kernel_initializer='nope'",
        ),
        ({"name": 3}, TypeError, "Received: name=3"),
    ],
)
def test_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        M.AFFResNet32(**kwargs)


def test_input_tensor_errors():
    with pytest.raises(ValueError, match="at least 4x4"):
        M.AFFResNet32(input_tensor=keras.Input((2, 2, 3)))
    with pytest.raises(ValueError, match="input_tensor.shape"):
        M.AFFResNet32(input_tensor=keras.Input((32, 3)))


def test_zero_init_residual_is_checked():
    with pytest.raises(TypeError, match="Received: zero_init_residual=1"):
        M.AFFResNeXt38(zero_init_residual=1)


def test_imagenet_minimum_size():
    with pytest.raises(
        ValueError, match=r"at least 32x32.*input_shape=\(16, 16, 3\)"
    ):
        M.AFFResNet50(input_shape=(16, 16, 3))


def test_channels_first_equals_channels_last_under_xla():
    """channels_first follows `keras.config.image_data_format()` like
    keras.applications. TF's CPU kernels cannot run NCHW convolutions
    without oneDNN, so the comparison runs under XLA (on a one-block-per-
    stage AFF-ResNet, to keep the compile short)."""
    ref = _tiny()
    x = _batch("aff_resnet32", seed=6)
    expected = keras.ops.convert_to_numpy(ref(x, training=False))
    keras.config.set_image_data_format("channels_first")
    model = _tiny()
    assert tuple(model.input.shape) == (None, 3, 32, 32)
    shapes = {k: tuple(v.shape) for k, v in M.pyramid_outputs(model).items()}
    assert shapes == {
        "P0": (None, 16, 32, 32),
        "P1": (None, 32, 16, 16),
        "P2": (None, 64, 8, 8),
    }
    model.set_weights(ref.get_weights())
    model.compile(jit_compile=True)
    got = model.predict(np.transpose(x, (0, 3, 1, 2)), verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
