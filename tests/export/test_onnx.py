"""ONNX export through tf2onnx, verified with onnxruntime at two batch
sizes."""

import os

import numpy as np
import pytest

from keras_aff import export
from keras_aff.export import onnx as onnx_export
from tests.export import helpers

pytestmark = pytest.mark.export


@pytest.fixture(scope="module")
def model():
    return helpers.fusion_cnn(seed=0)


def test_export_verified_at_two_batch_sizes(model, tmp_path):
    path = tmp_path / "m.onnx"
    report = export.export_onnx(model, path)
    assert report.checked == ["batch 4", "batch 1"]
    assert report.max_abs_error < 1e-5 <= report.tolerance
    assert report.inputs["image"] == {
        "shape": [None, 16, 16, 3],
        "dtype": "float32",
    }
    # BatchNormalization folded into the 19 convolutions.
    assert report.ops["Conv"] == 19
    assert "BatchNormalization" not in report.ops
    assert report.ops["Sigmoid"] == 4
    assert report.notes == ["opset 15"]
    predict = export.load_artifact(path)
    x = helpers.images(7, seed=3)
    np.testing.assert_allclose(
        predict(x)[0], model.predict(x, verbose=0), atol=1e-5
    )


def test_opset_and_two_inputs(tmp_path):
    model = helpers.two_input_model()
    data = helpers.two_input_data(5)
    report = export.export_onnx(
        model, tmp_path / "m.onnx", opset=13, sample_inputs=data
    )
    assert report.notes == ["opset 13"]
    assert sorted(report.inputs) == ["alpha", "zeta"]
    assert report.num_samples == 5


def test_broken_artifact_fails_loudly(model, tmp_path, monkeypatch):
    run = onnx_export.ONNXRunner._run

    def perturbed(self, feed):
        out = run(self, feed)
        return [o + np.float32(5e-4) for o in out]

    monkeypatch.setattr(onnx_export.ONNXRunner, "_run", perturbed)
    with pytest.raises(
        export.ExportVerificationError, match=r"> tolerance 0\.0001"
    ):
        export.export_onnx(model, tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_argument_errors(model, tmp_path):
    with pytest.raises(TypeError, match="Received: opset='15'"):
        export.export_onnx(model, tmp_path / "m.onnx", opset="15")
    with pytest.raises(ValueError, match="Received: opset=5"):
        export.export_onnx(model, tmp_path / "m.onnx", opset=5)
    with pytest.raises(ValueError, match="needs 1 arrays|does not fit"):
        export.export_onnx(
            model, tmp_path / "m.onnx", sample_inputs=helpers.images(2, 8)
        )
