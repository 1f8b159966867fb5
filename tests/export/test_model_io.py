"""The model side of a check: inputs, sample data, Keras outputs, and the
float32 / dynamic-size rebuilds."""

import keras
import numpy as np
import pytest

from keras_aff.export import model_io
from keras_aff.export import rebuild
from keras_aff.export import runners
from tests.export import helpers


@pytest.fixture(scope="module")
def model():
    return helpers.fusion_cnn(seed=0)


def test_random_inputs_fill_dynamic_dims():
    model = helpers.fusion_cnn(size=None)
    (x,) = model_io.random_inputs(model, batch_size=3)
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.float32
    (again,) = model_io.random_inputs(model, batch_size=3)
    np.testing.assert_array_equal(x, again)  # fixed seed


def test_normalize_inputs_forms_and_errors(model):
    x = helpers.images(5)
    for data in (x, [x], {"image": x}, lambda: iter(x[:, None])):
        (got,) = model_io.normalize_inputs(model, data)
        np.testing.assert_array_equal(got, x)
    (one,) = model_io.normalize_inputs(model, x[0])  # a single sample
    assert one.shape == (1, 16, 16, 3)
    with pytest.raises(ValueError, match=r"Received: calib shape=\(5, 8"):
        model_io.normalize_inputs(model, helpers.images(5, size=8), "calib")
    with pytest.raises(ValueError, match="missing"):
        model_io.normalize_inputs(model, {"other": x})
    two = helpers.two_input_model()
    data = helpers.two_input_data(4)
    with pytest.raises(ValueError, match="needs 2 arrays. Received: 1"):
        model_io.normalize_inputs(two, data[0])
    with pytest.raises(ValueError, match="same number of samples"):
        model_io.normalize_inputs(two, [data[0], data[1][:2]])
    with pytest.raises(ValueError, match="Received: None"):
        model_io.normalize_inputs(model, None)
    with pytest.raises(ValueError, match="an empty iterable"):
        model_io.normalize_inputs(model, iter([]))


def test_dtype_names():
    import tensorflow as tf

    assert model_io.dtype_name("float32") == "float32"
    assert model_io.dtype_name(tf.int8) == "int8"


def test_float32_rebuild_of_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    mixed = helpers.fusion_cnn(seed=1)
    keras.mixed_precision.set_global_policy("float32")
    assert rebuild.is_mixed_precision(mixed)
    x = helpers.images(4)
    model32, reference, notes = rebuild.prepare_float32(mixed, x[None])
    assert model32 is not mixed and not rebuild.is_mixed_precision(model32)
    assert "mixed_float16" in notes[0]
    np.testing.assert_allclose(
        reference[0], np.asarray(mixed.predict(x, verbose=0)), atol=2e-2
    )
    same, _, none = rebuild.prepare_float32(model32, [x])
    assert same is model32 and none == []


def test_relax_spatial_dims_both_layouts():
    x = helpers.images(2)
    relaxed, other, outputs = rebuild.relax_spatial_dims(
        helpers.fusion_cnn(), [x]
    )
    assert tuple(relaxed.inputs[0].shape) == (None, None, None, 3)
    assert other[0].shape == (2, 24, 24, 3) and outputs[0].shape == (2, 5)
    nchw = np.transpose(x[:, :8, :8], (0, 3, 1, 2))
    relaxed, other, _ = rebuild.relax_spatial_dims(
        helpers.channels_first_aff(), [nchw]
    )
    assert tuple(relaxed.inputs[0].shape) == (None, 3, None, None)
    assert other[0].shape == (2, 3, 16, 16)
    flat = helpers.flatten_cnn()
    assert rebuild.relax_spatial_dims(flat, [x[:, :8, :8]]) is None


def test_output_order():
    names = ["output_10", "output_2", "output_0", "output_1"]
    assert runners.output_order(names) == [
        "output_0",
        "output_1",
        "output_2",
        "output_10",
    ]


def test_normalize_inputs_limit_is_lazy_and_exact(model):
    x = helpers.images(5)
    drawn = []

    def batches():  # batches of 2, endless
        while True:
            drawn.append(len(drawn))
            yield x[:2]

    (got,) = model_io.normalize_inputs(model, batches(), limit=5)
    assert got.shape == (5, 16, 16, 3) and len(drawn) == 3  # 2 + 2 + 1
    np.testing.assert_array_equal(got[4], x[0])
    # Arrays: the first `limit` samples; None: every sample.
    (got,) = model_io.normalize_inputs(model, x, limit=2)
    np.testing.assert_array_equal(got, x[:2])
    (got,) = model_io.normalize_inputs(model, x, limit=None)
    assert len(got) == 5
    # Items may be dicts (a tf.data pipeline of features).
    two = helpers.two_input_model()
    a, b = helpers.two_input_data(3)
    items = ({"zeta": a[i], "alpha": b[i]} for i in range(3))
    got = model_io.normalize_inputs(two, items, limit=10)
    np.testing.assert_array_equal(got[0], a)
    np.testing.assert_array_equal(got[1], b)


def test_check_finite_outputs_names_output_and_sample():
    good = [np.zeros((3, 2), "float32")]
    model_io.check_finite_outputs(good)
    bad = [good[0], np.array([[0.0], [np.inf], [np.nan]], "float32")]
    with pytest.raises(
        ValueError,
        match=r"outputs Inf \(output 1, sample 1; 2 of 3 samples\)",
    ):
        model_io.check_finite_outputs(bad)
