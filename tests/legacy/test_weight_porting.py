"""Moving weights between a Keras 3 model and its tf_keras twin by
variable path (`keras_aff.legacy.copy_weights` / `weight_paths`)."""

import numpy as np
import pytest
import tf_keras

import keras_aff
from keras_aff import legacy
from tests.legacy.helpers import inputs_for
from tests.legacy.helpers import predict
from tests.legacy.helpers import randomize
from tests.legacy.helpers import small_cnn


def test_keras3_to_tf_keras_and_back():
    m3 = small_cnn("keras3")
    m2 = small_cnn("tf_keras")
    randomize(m3)
    copied = legacy.copy_weights(m3, m2)
    assert len(copied) == len(m3.weights) == len(m2.weights)
    x = inputs_for(False, (8, 8, 3), batch=4)
    np.testing.assert_allclose(predict(m2, x), predict(m3, x), atol=1e-5)
    # And back into a fresh Keras 3 model.
    back = small_cnn("keras3")
    legacy.copy_weights(m2, back)
    np.testing.assert_allclose(predict(back, x), predict(m3, x), atol=1e-6)


def test_get_weights_order_differs_so_set_weights_cannot_port():
    m3 = small_cnn("keras3")
    m2 = small_cnn("tf_keras")
    shapes3 = [w.shape for w in m3.get_weights()]
    shapes2 = [w.shape for w in m2.get_weights()]
    assert sorted(map(str, shapes3)) == sorted(map(str, shapes2))
    assert shapes3 != shapes2
    with pytest.raises(ValueError):
        m2.set_weights(m3.get_weights())


def test_paths_strip_suffix_and_are_flavour_neutral():
    m2 = small_cnn("tf_keras")
    paths = legacy.weight_paths(m2)
    assert "aff/attention/local/conv1/kernel" in paths
    assert "iaff/attention2/global/bn2/moving_variance" in paths
    assert "stem_bn/gamma" in paths
    assert not any(":" in p for p in paths)
    assert sorted(paths) == sorted(legacy.weight_paths(small_cnn("keras3")))


def test_layer_to_layer_ignores_layer_names():
    k3 = keras_aff.layers.AFF(name="fuse_a")
    k3.build([(None, 6, 5, 8)] * 2)
    k2 = legacy.AFF(name="other_name")
    k2.build([(None, 6, 5, 8)] * 2)
    assert sorted(legacy.weight_paths(k3)) == sorted(legacy.weight_paths(k2))
    for v in k3.weights:
        v.assign(np.full(v.shape, 0.5, "float32"))
    assert len(legacy.copy_weights(k3, k2)) == 24
    assert all(np.all(v.numpy() == 0.5) for v in k2.weights)


def test_mismatched_paths_are_listed():
    m3 = small_cnn("keras3")
    x = tf_keras.Input((8, 8, 3), name="image")
    h = tf_keras.layers.Conv2D(8, 3, padding="same", name="stem")(x)
    h = legacy.MSCAM(name="mscam")(h)
    other = tf_keras.Model(x, h)
    with pytest.raises(ValueError, match="Cannot copy weights") as info:
        legacy.copy_weights(m3, other)
    message = str(info.value)
    assert "source path(s) not in the target" in message
    assert "aff/attention/local/conv1/kernel" in message
    assert "target path(s) not in the source" in message
    assert "mscam/attention/global/bn2/gamma" in message
    # `stem` matches (same shape); its bias exists in the target only.
    assert "stem/bias" in message.split("target path(s) not in the source")[1]
    assert "stem/kernel" not in message
    assert "shape mismatch" not in message


def test_shape_mismatch_is_listed_and_nothing_is_written():
    m3 = small_cnn("keras3", input_shape=(8, 8, 3))
    m2 = small_cnn("tf_keras", input_shape=(8, 8, 1))
    before = {v.name: v.numpy().copy() for v in m2.weights}
    with pytest.raises(
        ValueError,
        match=r"1 shape mismatch\(es\): stem/kernel: source \(3, 3, 3, 8\) "
        r"vs target \(3, 3, 1, 8\)",
    ):
        legacy.copy_weights(m3, m2)
    for v in m2.weights:
        np.testing.assert_array_equal(v.numpy(), before[v.name])


def test_non_strict_skips_missing_paths():
    m3 = small_cnn("keras3")
    x = tf_keras.Input((8, 8, 3), name="image")
    h = tf_keras.layers.Conv2D(
        8, 3, padding="same", use_bias=False, name="stem"
    )(x)
    part = tf_keras.Model(x, h)
    copied = legacy.copy_weights(m3, part, strict=False)
    assert copied == ["stem/kernel"]


def test_unbuilt_target_is_an_error():
    layer = keras_aff.layers.AFF(name="aff")
    layer.build([(None, 6, 5, 8)] * 2)
    with pytest.raises(ValueError, match="has no weights; build it first"):
        legacy.copy_weights(layer, legacy.AFF(name="aff"))
