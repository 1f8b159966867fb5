"""The tf_keras twin (`keras_aff.legacy`) against the Keras 3 layers: same
variable paths, same config, same outputs; plus the tf_keras-side contract
(serialization, save/load, training, mixed precision, XLA, errors)."""

import json
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_aff
from keras_aff import legacy
from tests import processes
from tests.legacy.helpers import LAYER_IDS
from tests.legacy.helpers import LAYERS
from tests.legacy.helpers import SHAPE
from tests.legacy.helpers import fusion_model
from tests.legacy.helpers import inputs_for
from tests.legacy.helpers import predict
from tests.legacy.helpers import randomize

OPTIONS = [
    pytest.param({}, SHAPE, id="default"),
    pytest.param({"use_bias": False}, SHAPE, id="no_bias"),
    pytest.param({"branches": ("global", "global")}, SHAPE, id="glob_glob"),
    pytest.param({"branches": ("local", "local")}, SHAPE, id="loca_loca"),
    pytest.param({"reduction_ratio": 2}, (7, 8), id="rank3"),
    pytest.param({}, (3, 4, 5, 8), id="rank5"),
    pytest.param({"data_format": "channels_first"}, (8, 6, 5), id="nchw"),
]


@pytest.mark.parametrize("name,k3_cls,k2_cls,pairwise", LAYERS, ids=LAYER_IDS)
@pytest.mark.parametrize("kwargs,shape", OPTIONS)
def test_same_paths_and_outputs_as_keras3(
    name, k3_cls, k2_cls, pairwise, kwargs, shape
):
    m3 = fusion_model("keras3", k3_cls, pairwise, shape, name, **kwargs)
    m2 = fusion_model("tf_keras", k2_cls, pairwise, shape, name, **kwargs)
    paths3, paths2 = legacy.weight_paths(m3), legacy.weight_paths(m2)
    # Same paths; the order differs (tf_keras lists trainable weights first),
    # which is why `set_weights(get_weights())` cannot port between them.
    assert sorted(paths3) == sorted(paths2)
    # The tf_keras variable names themselves carry the path (name scopes).
    names2 = [v.name for v in m2.weights]
    assert len(set(names2)) == len(names2)
    assert (
        f"{name}/{'attention1' if name == 'iaff' else 'attention'}/"
        in (names2[0])
    )
    randomize(m3)
    legacy.copy_weights(m3, m2)
    inputs = inputs_for(pairwise, shape)
    np.testing.assert_allclose(
        predict(m2, inputs), predict(m3, inputs), atol=1e-5, rtol=0
    )
    # Training mode (batch statistics) agrees too.
    np.testing.assert_allclose(
        np.asarray(m2(inputs, training=True)),
        np.asarray(m3(inputs, training=True)),
        atol=1e-4,
        rtol=0,
    )


@pytest.mark.parametrize("name,k3_cls,k2_cls,pairwise", LAYERS, ids=LAYER_IDS)
def test_weight_counts_match_keras3(name, k3_cls, k2_cls, pairwise):
    m3 = fusion_model("keras3", k3_cls, pairwise)
    m2 = fusion_model("tf_keras", k2_cls, pairwise)
    assert len(m2.trainable_weights) == len(m3.trainable_weights)
    assert len(m2.non_trainable_weights) == len(m3.non_trainable_weights)
    assert m2.count_params() == m3.count_params()


@pytest.mark.parametrize("name,k3_cls,k2_cls,pairwise", LAYERS, ids=LAYER_IDS)
def test_config_is_the_keras3_config(name, k3_cls, k2_cls, pairwise):
    kwargs = dict(reduction_ratio=2, bn_momentum=0.8, branches=["global"] * 2)
    if pairwise:
        kwargs["output_scale"] = 2.0
    k3 = k3_cls(name=name, **kwargs)
    k2 = k2_cls(name=name, **kwargs)
    c3, c2 = k3.get_config(), k2.get_config()
    base3 = set(keras.layers.Layer().get_config())
    base2 = set(tf_keras.layers.Layer().get_config())
    assert set(c3) - base3 == set(c2) - base2
    for key in set(c3) - base3 - {"kernel_initializer"}:
        assert c2[key] == c3[key], key
    # The Keras 3 config (Keras 3 dtype policy and initializer objects)
    # builds the tf_keras twin directly, and vice versa for plain values.
    twin = k2_cls.from_config(c3)
    assert twin.get_config() == c2
    # Round trip through tf_keras' registry (JSON), registered name kept.
    blob = json.dumps(tf_keras.saving.serialize_keras_object(k2))
    assert f'"keras_aff>{k2_cls.__name__}"' in blob
    again = tf_keras.saving.deserialize_keras_object(json.loads(blob))
    assert type(again) is k2_cls
    assert again.get_config() == c2


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5")
@pytest.mark.parametrize("fmt", ["keras", "h5", "tf"])
def test_save_load_tf_keras(tmp_path, fmt):
    """tf_keras models with the twin save and load in every tf_keras format
    (in a process that imported keras_aff.legacy, which registers it)."""
    m = fusion_model("tf_keras", legacy.IAFF, True, output_scale=2.0)
    randomize(m)
    path = str(tmp_path / ("model" if fmt == "tf" else f"model.{fmt}"))
    if fmt == "tf":
        m.save(path, save_format="tf")
    else:
        m.save(path)
    loaded = tf_keras.models.load_model(path)
    assert isinstance(loaded.get_layer("iaff"), legacy.IAFF)
    inputs = inputs_for(True)
    np.testing.assert_array_equal(predict(loaded, inputs), predict(m, inputs))


def test_fit_step_trains_every_weight_and_bn_statistics():
    m = fusion_model("tf_keras", legacy.IAFF, True)
    m.compile(tf_keras.optimizers.SGD(0.1), "mse")
    before = {v.name: v.numpy().copy() for v in m.weights}
    inputs = inputs_for(True, batch=4)
    m.fit(inputs, np.ones((4,) + SHAPE), epochs=1, batch_size=4, verbose=0)
    for v in m.weights:
        assert not np.array_equal(v.numpy(), before[v.name]), v.name
    # training=False leaves the moving statistics alone.
    stats = {v.name: v.numpy().copy() for v in m.non_trainable_weights}
    m(inputs, training=False)
    for v in m.non_trainable_weights:
        np.testing.assert_array_equal(v.numpy(), stats[v.name])


def test_mixed_float16_fp32_accumulated_mean():
    """float16 output, float32 variables, and a correct global mean on a
    large map (tf.reduce_mean in float16 returns 0.653 for a mean of 2.0
    at 112x112 on CPU; tf_keras GAP under mixed_float16 is wrong too)."""
    shape = (112, 112, 8)
    ref = fusion_model("tf_keras", legacy.MSCAM, False, shape)
    randomize(ref)
    tf_keras.mixed_precision.set_global_policy("mixed_float16")
    mixed = fusion_model("tf_keras", legacy.MSCAM, False, shape)
    tf_keras.mixed_precision.set_global_policy("float32")
    legacy.copy_weights(ref, mixed)
    assert all(v.dtype == tf.float32 for v in mixed.weights)
    x = 2.0 + 0.1 * inputs_for(False, shape, batch=1)
    out = mixed(x, training=False)
    assert out.dtype == tf.float16
    np.testing.assert_allclose(
        np.asarray(out, "float32"), predict(ref, x), atol=0.05, rtol=0.01
    )


def test_jit_compile_equals_eager():
    m = fusion_model("tf_keras", legacy.AFF, True)
    randomize(m)
    inputs = inputs_for(True)

    def serve(a):
        return m(a, training=False)

    fn = tf.function(serve, jit_compile=True, autograph=False)
    np.testing.assert_allclose(
        np.asarray(fn(inputs)), predict(m, inputs), atol=1e-5, rtol=0
    )


def test_errors_are_the_shared_ones():
    x = tf_keras.Input(SHAPE)
    with pytest.raises(ValueError, match=r"Received: reduction_ratio=0"):
        legacy.AFF(reduction_ratio=0)
    with pytest.raises(ValueError, match=r"too large for 8 channels"):
        legacy.AFF(reduction_ratio=16)([x, x])
    with pytest.raises(ValueError, match=r"same shape.*Received: x.shape"):
        legacy.IAFF()([x, tf_keras.Input((6, 5, 4))])
    with pytest.raises(ValueError, match=r"known channel dimension"):
        legacy.MSCAM()(tf_keras.Input((6, 5, None)))
    # MSCAM has no output_scale: tf_keras rejects it as it rejects any
    # unknown keyword argument.
    with pytest.raises(TypeError, match=r"output_scale"):
        legacy.MSCAM(output_scale=2.0)


@pytest.mark.parametrize("name", ["AFF", "IAFF"])
def test_align_inputs_is_refused_by_the_twin(name):
    """The tf_keras twins do not align their inputs (tfmot's configs and
    the stock-layer blocks know no projection): `align_inputs=True` is a
    clear error, also from a Keras 3 config; `False` round-trips."""
    k3_cls, k2_cls = getattr(keras_aff.layers, name), getattr(legacy, name)
    match = r"(?s)`align_inputs`.*keras_aff\.layers\.\w*AFF.*align_inputs=True"
    with pytest.raises(ValueError, match=match):
        k2_cls(align_inputs=True)
    with pytest.raises(ValueError, match=match):
        k2_cls.from_config(k3_cls(align_inputs=True).get_config())
    twin = k2_cls.from_config(
        k3_cls(resize_interpolation="nearest").get_config()
    )
    assert twin.get_config()["align_inputs"] is False
    assert twin.get_config()["resize_interpolation"] == "nearest"


def test_keras3_tensor_gives_a_clear_error():
    x = keras.Input(SHAPE)
    with pytest.raises(TypeError, match=r"cannot take Keras 3 symbolic"):
        legacy.AFF(name="aff")([x, x])


def test_import_error_names_the_extra(monkeypatch):
    for missing, module in [
        ("tf_keras", "keras_aff.legacy"),
        ("tensorflow_model_optimization", "keras_aff.qat"),
    ]:
        with monkeypatch.context() as m:
            m.setitem(sys.modules, missing, None)
            m.delitem(sys.modules, module, raising=False)
            with pytest.raises(ImportError, match=r"keras-aff\[qat\]"):
                __import__(module)


def test_imports_on_demand_only():
    """`import keras_aff` loads neither flavour's extras; importing the twin
    does not flip TF_USE_LEGACY_KERAS; only keras_aff.qat imports tfmot."""
    code = (
        "import os, sys\n"
        "import keras_aff\n"
        "mods = lambda: sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tf_keras', 'tensorflow_model_optimization') or m in "
        "('keras_aff.legacy', 'keras_aff.qat'))\n"
        "assert not mods(), mods()\n"
        "import keras_aff.legacy\n"
        "assert 'TF_USE_LEGACY_KERAS' not in os.environ\n"
        "assert 'tensorflow_model_optimization' not in sys.modules\n"
        "import keras_aff.qat\n"
        "print('ok')\n"
    )
    env = processes.environment(
        backend="tensorflow", drop=("TF_USE_LEGACY_KERAS",)
    )
    result = processes.succeeded(processes.run_python(["-c", code], env=env))
    assert result.stdout.strip().endswith("ok")


def test_public_names_have_examples():
    from keras_aff import legacy as module

    for name in module.__all__:
        doc = getattr(module, name).__doc__ or ""
        assert "Example:" in doc, name
    assert keras_aff.layers.AFF is not legacy.AFF


@pytest.mark.parametrize("module", ["layers", "gate"])
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    import importlib

    from tests.test_doctests import run_examples

    monkeypatch.chdir(tmp_path)
    name = f"keras_aff.legacy.{module}"
    failed, attempted = run_examples(importlib.import_module(name))
    assert attempted > 0 and failed == 0
