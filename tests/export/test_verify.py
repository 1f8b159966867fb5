"""The shared checks of the exporters: inputs, tolerances, messages, the
float32 rebuild, the spatial relaxation, staging and the report."""

import json
import os

import keras
import numpy as np
import pytest

from keras_aff.export import ExportReport
from keras_aff.export import ExportVerificationError
from keras_aff.export import _verify
from tests.export import helpers


@pytest.fixture(scope="module")
def model():
    return helpers.fusion_cnn(seed=0)


def test_random_inputs_fill_dynamic_dims():
    model = helpers.fusion_cnn(size=None)
    (x,) = _verify.random_inputs(model, batch_size=3)
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.float32
    (again,) = _verify.random_inputs(model, batch_size=3)
    np.testing.assert_array_equal(x, again)  # fixed seed


def test_normalize_inputs_forms_and_errors(model):
    x = helpers.images(5)
    for data in (x, [x], {"image": x}, lambda: iter(x[:, None])):
        (got,) = _verify.normalize_inputs(model, data)
        np.testing.assert_array_equal(got, x)
    (one,) = _verify.normalize_inputs(model, x[0])  # a single sample
    assert one.shape == (1, 16, 16, 3)
    with pytest.raises(ValueError, match=r"Received: calib shape=\(5, 8"):
        _verify.normalize_inputs(model, helpers.images(5, size=8), "calib")
    with pytest.raises(ValueError, match="missing"):
        _verify.normalize_inputs(model, {"other": x})
    two = helpers.two_input_model()
    data = helpers.two_input_data(4)
    with pytest.raises(ValueError, match="needs 2 arrays. Received: 1"):
        _verify.normalize_inputs(two, data[0])
    with pytest.raises(ValueError, match="same number of samples"):
        _verify.normalize_inputs(two, [data[0], data[1][:2]])
    with pytest.raises(ValueError, match="Received: None"):
        _verify.normalize_inputs(model, None)


def test_tolerances():
    assert _verify.tolerance_for("float32", 0.5) == 1e-4
    assert _verify.tolerance_for("float32", 20.0) == pytest.approx(2e-3)
    assert _verify.tolerance_for("float16", 1.0) == 1e-2
    assert _verify.tolerance_for("dynamic", 2.0) == 0.1
    assert _verify.tolerance_for("int8", 4.0) == pytest.approx(0.4)
    assert _verify.tolerance_for("float32", 100.0, atol=1e-6) == 1e-6


def test_check_messages_give_error_and_tolerance():
    ref = [np.array([[0.0, 1.0], [1.0, 0.0]], "float32")]
    stats, tol = _verify.check("X", ref, [ref[0] + 1e-6])
    assert stats.max_abs_error == pytest.approx(1e-6) and tol == 1e-4
    with pytest.raises(
        ExportVerificationError,
        match=r"X does not reproduce the Keras model on batch 2: max "
        r"\|error\| 0\.5 > tolerance 0\.0001 \(float32",
    ):
        _verify.check("X", ref, [ref[0] + 0.5], where="batch 2")
    with pytest.raises(ExportVerificationError, match=r"max \|error\| inf"):
        _verify.check("X", ref, [ref[0] * np.nan])
    with pytest.raises(ExportVerificationError, match="shape"):
        _verify.check("X", ref, [ref[0][:1]])
    flipped = [ref[0][:, ::-1].copy()]
    with pytest.raises(
        ExportVerificationError,
        match=r"top-1 agreement 0\.000 \(minimum 0\.9\)",
    ):
        _verify.check("X", ref, flipped, mode="int8")
    stats, _ = _verify.check(
        "X", ref, flipped, mode="int8", atol=2.0, min_top1_agreement=0.0
    )
    assert stats.top1_agreement == 0.0


def test_float32_rebuild_of_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    mixed = helpers.fusion_cnn(seed=1)
    keras.mixed_precision.set_global_policy("float32")
    assert _verify.is_mixed_precision(mixed)
    x = helpers.images(4)
    model32, reference, notes = _verify.prepare_float32(mixed, x[None])
    assert model32 is not mixed and not _verify.is_mixed_precision(model32)
    assert "mixed_float16" in notes[0]
    np.testing.assert_allclose(
        reference[0], np.asarray(mixed.predict(x, verbose=0)), atol=2e-2
    )
    same, _, none = _verify.prepare_float32(model32, [x])
    assert same is model32 and none == []


def test_relax_spatial_dims_both_layouts():
    x = helpers.images(2)
    relaxed, other, outputs = _verify.relax_spatial_dims(
        helpers.fusion_cnn(), [x]
    )
    assert tuple(relaxed.inputs[0].shape) == (None, None, None, 3)
    assert other[0].shape == (2, 24, 24, 3) and outputs[0].shape == (2, 5)
    nchw = np.transpose(x[:, :8, :8], (0, 3, 1, 2))
    relaxed, other, _ = _verify.relax_spatial_dims(
        helpers.channels_first_aff(), [nchw]
    )
    assert tuple(relaxed.inputs[0].shape) == (None, 3, None, None)
    assert other[0].shape == (2, 3, 16, 16)
    flat = helpers.flatten_cnn()
    assert _verify.relax_spatial_dims(flat, [x[:, :8, :8]]) is None


def test_staged_path_commits_only_on_success(tmp_path):
    target = tmp_path / "a.bin"
    with _verify.StagedPath(target) as stage:
        with open(stage.tmp, "w") as f:
            f.write("ok")
        stage.commit()
    assert target.read_text() == "ok"
    with pytest.raises(KeyError):
        with _verify.StagedPath(target) as stage:
            with open(stage.tmp, "w") as f:
                f.write("broken")
            raise KeyError("check failed")
    assert target.read_text() == "ok"  # the old file is untouched
    assert os.listdir(tmp_path) == ["a.bin"]


def test_report_to_dict_and_summary():
    report = ExportReport(
        format="litert",
        path="m.tflite",
        size_bytes=1234,
        quantization="int8",
        ops={"CONV_2D": 2},
        inputs={"image": {"shape": [None, 8], "dtype": "int8"}},
        outputs={},
        max_abs_error=0.01,
        mean_abs_error=0.001,
        tolerance=0.1,
        output_scale=1.0,
        top1_agreement=0.99,
        num_samples=10,
        checked=["batch 10"],
        latency_ms=0.5,
    )
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["ops"] == {"CONV_2D": 2} and data["notes"] == []
    assert report.summary().startswith("litert (int8): 1,234 B")


def test_output_order():
    names = ["output_10", "output_2", "output_0", "output_1"]
    assert _verify.output_order(names) == [
        "output_0",
        "output_1",
        "output_2",
        "output_10",
    ]
