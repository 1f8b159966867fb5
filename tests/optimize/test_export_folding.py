"""The exporters fold BatchNorm by default (`fold_batchnorm=True`), report
the op count before and after, and convert the model as it is with
`fold_batchnorm=False`."""

import keras
import numpy as np
import pytest

from keras_aff import export
from keras_aff import layers
from keras_aff.export import folding

pytestmark = pytest.mark.export


@pytest.fixture(scope="module")
def model():
    x = keras.Input((8, 8, 3), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
    h = keras.layers.BatchNormalization()(h)
    a = keras.layers.ReLU()(h)
    b = keras.layers.Conv2D(16, 1)(a)
    b = keras.layers.BatchNormalization()(b)
    out = layers.AFF(name="aff")([b, a])
    out = keras.layers.GlobalAveragePooling2D()(out)
    model = keras.Model(x, keras.layers.Dense(4)(out))
    rng = np.random.default_rng(0)
    for v in model.weights:
        name = v.path.split("/")[-1]
        if name in ("moving_mean", "beta"):
            v.assign(rng.normal(0, 0.3, v.shape).astype("float32"))
        elif name in ("moving_variance", "gamma"):
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    return model


def check_folding(summary):
    assert summary["enabled"] is True
    assert summary["batch_norms_folded"] == 2 + 4  # graph + AFF gate
    assert summary["graph_ops_after"] < summary["graph_ops_before"]
    assert summary["max_abs_difference"] < 1e-5


def test_litert_folds_by_default(model, tmp_path):
    report = export.export_litert(model, tmp_path / "m.tflite")
    check_folding(report.batch_norm_folding)
    assert report.to_dict()["batch_norm_folding"]["enabled"] is True
    plain = export.export_litert(
        model, tmp_path / "plain.tflite", fold_batchnorm=False
    )
    assert plain.batch_norm_folding == {"enabled": False}
    # The converter folds BatchNorm too: the same ops either way.
    assert report.ops == plain.ops
    assert report.max_abs_error <= report.tolerance


def test_onnx_and_saved_model_fold_by_default(model, tmp_path):
    onnx_report = export.export_onnx(model, tmp_path / "m.onnx")
    check_folding(onnx_report.batch_norm_folding)
    saved = export.export_saved_model(
        model, tmp_path / "sm", standalone_check=False
    )
    check_folding(saved.batch_norm_folding)
    plain = export.export_saved_model(
        model, tmp_path / "plain", standalone_check=False, fold_batchnorm=False
    )
    assert plain.batch_norm_folding == {"enabled": False}


def test_fold_flag_is_checked(model, tmp_path):
    with pytest.raises(TypeError, match="Received: fold_batchnorm=1"):
        export.export_onnx(model, tmp_path / "m.onnx", fold_batchnorm=1)


def test_a_subclassed_model_is_exported_unfolded():
    class Sub(keras.Model):
        def call(self, x):
            return x * 2.0

    sub = Sub()
    sub(np.zeros((1, 2), "float32"))
    model, summary = folding.fold_for_export(sub, [np.ones((1, 2), "float32")])
    assert model is sub
    assert summary["batch_norms_folded"] == 0
    assert "subclassed" in summary["reason"]
