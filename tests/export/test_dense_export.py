"""Exports of the dense-prediction layers: AFF / IAFF with
`align_inputs=True` (a projection and a resize) and MultiAFF, verified by
the export pipeline, LiteRT with builtin ops only."""

import keras
import numpy as np
import pytest

from keras_aff import export
from keras_aff import layers
from keras_aff.export import litert_ops

pytestmark = pytest.mark.export

L = keras.layers
# What the alignment (GATHER for the resize, SUB / MUL / ADD for the
# interpolation) and MultiAFF's softmax (SPLIT, PACK, RESHAPE, SOFTMAX,
# UNPACK; SHAPE for the dynamic batch) add to the fusion layers' ops.
BUILTIN_OPS = {
    "ADD",
    "CONV_2D",
    "GATHER",
    "LOGISTIC",
    "MEAN",
    "MUL",
    "PACK",
    "RESHAPE",
    "SHAPE",
    "SOFTMAX",
    "SPLIT",
    "SUB",
    "UNPACK",
}


def dense_fusion_model(size=16, seed=0):
    """A fine map and a coarse one with twice the channels, fused by an
    aligned AFF (bilinear) and an aligned IAFF (nearest), then a 3-way
    MultiAFF; per-pixel outputs."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((size, size, 3), name="image")
    fine = L.Conv2D(8, 3, padding="same", activation="relu")(image)
    coarse = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(fine)
    a = layers.AFF(reduction_ratio=2, align_inputs=True, name="aff")(
        [fine, coarse]
    )
    b = layers.IAFF(
        reduction_ratio=2,
        align_inputs=True,
        resize_interpolation="nearest",
        name="iaff",
    )([a, coarse])
    m = layers.MultiAFF(reduction_ratio=2, name="multi")([a, b, fine])
    return keras.Model(image, L.Conv2D(3, 1, name="head")(m))


@pytest.fixture(scope="module")
def model():
    return dense_fusion_model()


@pytest.fixture(scope="module")
def calibration():
    rng = np.random.default_rng(1)
    return rng.normal(size=(64, 16, 16, 3)).astype("float32")


def test_litert_float32_builtin_ops(model, tmp_path):
    report = export.export_litert(model, tmp_path / "m.tflite")
    assert set(report.ops) == BUILTIN_OPS
    assert litert_ops.non_builtin(report.ops) == []
    # Conv+BN folded: 2 stem + 1 head, 2 x 2 per gate (AFF 1, IAFF 2,
    # MultiAFF 1), and the two projections.
    assert report.ops["CONV_2D"] == 3 + 4 * 4 + 2
    # Bilinear: 2 gathers per axis; nearest: 1 per axis.
    assert report.ops["GATHER"] == 4 + 2
    assert report.ops["SOFTMAX"] == 1
    assert report.max_abs_error < 1e-5 <= report.tolerance


def test_litert_int8(model, calibration, tmp_path):
    report = export.export_litert(
        model,
        tmp_path / "m_int8.tflite",
        quantization="int8",
        representative_data=calibration,
    )
    assert set(report.ops) == BUILTIN_OPS
    assert report.inputs["image"]["dtype"] == "int8"
    assert report.mean_abs_error <= report.tolerance
    assert report.max_abs_error < 0.25 * max(1.0, report.output_scale)


def test_onnx_and_saved_model_at_other_sizes(model, tmp_path):
    """ONNX, and a SavedModel whose spatial size is dynamic (the export
    checks it at a larger size: the resize runs at run-time sizes)."""
    onnx = export.export_onnx(model, tmp_path / "m.onnx")
    assert onnx.ops["Gather"] == 6 and onnx.ops["Softmax"] == 1
    assert onnx.max_abs_error < 1e-5
    report = export.export_saved_model(
        model, tmp_path / "sm", standalone_check=False
    )
    assert report.inputs["image"]["shape"] == [None, None, None, 3]
    assert "inputs of shape (2, 24, 24, 3)" in report.checked
    assert report.max_abs_error < 1e-5
