"""LiteRT export: builtin ops only, every quantization verified, and the
known TF 2.21 converter traps fail loudly."""

import contextlib
import os

import keras
import numpy as np
import pytest

from keras_aff import export
from keras_aff.export import litert
from keras_aff.export import litert_ops
from tests.export import helpers

pytestmark = pytest.mark.export

BUILTIN_FUSION_OPS = {"ADD", "CONV_2D", "LOGISTIC", "MEAN", "MUL", "SUB"}


@pytest.fixture(scope="module")
def model():
    return helpers.fusion_cnn(seed=0)


@pytest.fixture(scope="module")
def calibration():
    return helpers.images(128, seed=1)


def test_float32_builtin_ops_and_report(model, tmp_path):
    path = tmp_path / "m.tflite"
    report = export.export_litert(model, path)
    assert report.format == "litert" and report.quantization is None
    assert report.path == str(path) and path.is_file()
    assert report.size_bytes == os.path.getsize(path) > 0
    # Conv+BN folded: 3 model convs + 4 gates (AFF 1, iAFF 2, MSCAM 1) x
    # 2 branches x 2 convs = 19, and no BN arithmetic left.
    assert report.ops["CONV_2D"] == 19
    assert set(report.ops) == BUILTIN_FUSION_OPS | {"FULLY_CONNECTED"}
    assert (
        report.max_abs_error
        <= report.tolerance
        == pytest.approx(1e-4 * max(1.0, report.output_scale))
    )
    assert report.max_abs_error < 1e-5
    assert report.checked == ["batch 4", "batch 1"]
    assert report.inputs["image"] == {
        "shape": [None, 16, 16, 3],
        "dtype": "float32",
    }
    assert report.latency_ms > 0
    assert report.to_dict()["ops"]["CONV_2D"] == 19
    assert litert_ops.list_ops(path.read_bytes()) == report.ops
    assert litert_ops.non_builtin(report.ops) == []
    assert litert_ops.non_builtin({"CONV_2D": 1, "FlexCumprod": 1}) == [
        "FlexCumprod"
    ]
    # The int8 graph facts belong to int8 reports only.
    assert report.fully_int8 is None and report.float_islands is None
    assert report.xnnpack is True
    # The file runs through the public loader, at another batch size.
    x = helpers.images(3, seed=5)
    got = export.load_artifact(path)(x)[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize(
    "quantization, max_error", [("float16", 1e-2), ("dynamic", 5e-2)]
)
def test_float16_and_dynamic(model, tmp_path, quantization, max_error):
    path = tmp_path / "m.tflite"
    report = export.export_litert(model, path, quantization=quantization)
    assert report.quantization == quantization
    assert report.max_abs_error <= max_error * max(1, report.output_scale)
    assert not [op for op in report.ops if op.startswith("Flex")]
    if quantization == "float16":
        # float16 weights are DEQUANTIZEd inside the graph: the inspection
        # counts each of those ops, and the graph is not int8.
        graph = litert_ops.inspect_litert(path.read_bytes())
        assert graph["inner_quantize_ops"] == report.ops["DEQUANTIZE"] > 0
        assert not graph["fully_int8"]
        assert len(graph["float_islands"]) > graph["inner_quantize_ops"]


def test_int8_full_integer(model, calibration, tmp_path):
    path = tmp_path / "m_int8.tflite"
    report = export.export_litert(
        model, path, quantization="int8", representative_data=calibration
    )
    spec_in, spec_out = report.inputs["image"], report.outputs["output_0"]
    assert spec_in["dtype"] == spec_out["dtype"] == "int8"
    assert spec_in["scale"] > 0 and spec_out["scale"] > 0
    assert report.top1_agreement >= 0.9
    assert report.mean_abs_error <= report.tolerance
    assert report.num_samples == len(calibration)
    assert set(report.ops) >= BUILTIN_FUSION_OPS
    # Full integer: no float islands, so no (DE)QUANTIZE pairs inside.
    assert "DEQUANTIZE" not in report.ops
    assert report.fully_int8 and report.float_islands == []
    assert report.inner_quantize_ops == 0
    assert set(report.tensor_dtypes) == {"int8", "int32"}
    assert report.output_step == spec_out["scale"]
    graph = litert_ops.inspect_litert(path.read_bytes())
    assert graph["ops"] == report.ops
    assert graph["tensor_dtypes"] == report.tensor_dtypes


def test_int8_float_io(model, calibration, tmp_path):
    report = export.export_litert(
        model,
        tmp_path / "m.tflite",
        quantization="int8",
        representative_data=calibration[:32],
        float_io=True,
    )
    assert report.inputs["image"]["dtype"] == "float32"
    assert report.outputs["output_0"]["dtype"] == "float32"
    assert report.ops.get("QUANTIZE", 0) >= 1
    assert report.ops.get("DEQUANTIZE", 0) >= 1
    # The I/O pair is allowed: still fully int8 inside.
    assert report.fully_int8 and report.inner_quantize_ops == 0


def test_int8_two_inputs_named_out_of_order(tmp_path):
    model = helpers.two_input_model()
    data = helpers.two_input_data(64)
    report = export.export_litert(
        model,
        tmp_path / "m.tflite",
        quantization="int8",
        representative_data={"zeta": data[0], "alpha": data[1]},
    )
    # Each input got its own scale: a swapped feed would show here.
    assert (
        report.inputs["alpha"]["scale"] > 1.5 * report.inputs["zeta"]["scale"]
    )
    assert report.top1_agreement >= 0.9
    predict = export.load_artifact(tmp_path / "m.tflite", ["zeta", "alpha"])
    got = predict(data)[0]
    want = model.predict(data, verbose=0)
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.9


def test_mixed_precision_is_rebuilt_in_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = helpers.fusion_cnn(seed=2)
    keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("aff").compute_dtype == "float16"
    report = export.export_litert(model, tmp_path / "m.tflite")
    assert "rebuilt in float32" in report.notes[0]
    assert report.inputs["image"]["dtype"] == "float32"
    assert report.max_abs_error <= report.tolerance


def test_channels_first_aff_exports_correctly(tmp_path):
    # The y + w * (x - y) blend has no `1 - w` for the NCHW converter bug.
    report = export.export_litert(
        helpers.channels_first_aff(), tmp_path / "m.tflite"
    )
    assert report.ops["TRANSPOSE"] >= 1
    assert report.max_abs_error < 1e-5


@pytest.mark.parametrize(
    "build",
    [
        helpers.one_minus_model,
        lambda: helpers.channels_first_aff(blend_cls=helpers.TextbookBlendAFF),
    ],
    ids=["one_minus_y", "textbook_blend_aff"],
)
def test_nchw_operand_swap_bug_fails_loudly(build, tmp_path):
    # TF 2.21's converter turns `1 - y` into `y - 1` behind NCHW
    # transposes; the check must refuse the file, not ship it.
    path = tmp_path / "bad.tflite"
    with pytest.raises(export.ExportVerificationError) as info:
        export.export_litert(build(), path)
    message = str(info.value)
    assert "max |error|" in message and "> tolerance" in message
    error = float(message.split("max |error| ")[1].split()[0])
    assert error > 0.1
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_concrete_function_trackable_trap_fails_loudly(
    model, tmp_path, monkeypatch
):
    # from_concrete_functions(..., trackable_obj=keras3_model) leaves the
    # variables unfrozen and outputs NaN (TF 2.21). Were the exporter to
    # take that path, the check must catch it.
    import tensorflow as tf

    @contextlib.contextmanager
    def source(model32):
        fn = tf.function(lambda x: model32(x, training=False))
        concrete = fn.get_concrete_function(
            tf.TensorSpec((None, 16, 16, 3), tf.float32, name="image")
        )
        yield tf.lite.TFLiteConverter.from_concrete_functions(
            [concrete], trackable_obj=model32
        )

    monkeypatch.setattr(litert, "saved_model_source", source)
    with pytest.raises(export.ExportVerificationError, match="inf|nan"):
        export.export_litert(model, tmp_path / "m.tflite")
    assert not (tmp_path / "m.tflite").exists()


def test_perturbed_output_fails_with_error_and_tolerance(
    model, tmp_path, monkeypatch
):
    run = litert.LiteRTRunner._run

    def perturbed(self, feed):
        return [o + 1e-3 for o in run(self, feed)]

    monkeypatch.setattr(litert.LiteRTRunner, "_run", perturbed)
    with pytest.raises(
        export.ExportVerificationError,
        match=r"max \|error\| 0\.001 > tolerance 0\.0001",
    ):
        export.export_litert(model, tmp_path / "m.tflite")
    assert not (tmp_path / "m.tflite").exists()


def test_non_builtin_op_is_refused(tmp_path):
    image = keras.Input((4,), name="x")
    out = keras.layers.Lambda(lambda t: keras.ops.cumprod(t, axis=1))(image)
    with pytest.raises(RuntimeError, match="builtin LiteRT ops"):
        export.export_litert(keras.Model(image, out), tmp_path / "m.tflite")


def test_xnnpack_refusal_falls_back_and_says_so(tmp_path):
    # A dead global branch (ReLU always 0) is a constant tensor: int8
    # calibration gives it a ~1e-8 scale and XNNPACK refuses the model.
    model = helpers.fusion_cnn(seed=3)
    branch = model.get_layer("aff").attention.branch2
    assert branch.name == "global"
    branch.conv1.bias.assign(np.full(branch.conv1.bias.shape, -100.0))
    with pytest.warns(UserWarning, match="XNNPACK"):
        report = export.export_litert(
            model,
            tmp_path / "m.tflite",
            quantization="int8",
            representative_data=helpers.images(64, seed=4),
        )
    assert any("XNNPACK" in n for n in report.notes)
    assert report.top1_agreement >= 0.9


def test_argument_errors(model, tmp_path):
    with pytest.raises(ValueError, match="Received: quantization='int4'"):
        export.export_litert(model, tmp_path / "m.tflite", quantization="int4")
    with pytest.raises(ValueError, match="representative_data=None"):
        export.export_litert(model, tmp_path / "m.tflite", quantization="int8")
    with pytest.raises(ValueError, match=r"shape=\(10, 8, 8, 3\)"):
        export.export_litert(
            model,
            tmp_path / "m.tflite",
            quantization="int8",
            representative_data=helpers.images(10, size=8),
        )
    with pytest.raises(TypeError, match="Received: float_io='yes'"):
        export.export_litert(model, tmp_path / "m.tflite", float_io="yes")
    with pytest.raises(TypeError, match="keras.Model"):
        export.export_litert("model.keras", tmp_path / "m.tflite")
    with pytest.raises(TypeError, match="Received: quantization=8"):
        export.export_litert(model, tmp_path / "m.tflite", quantization=8)
    with pytest.raises(ValueError, match="Received: min_top1_agreement=2"):
        export.export_litert(model, tmp_path / "m.tflite", min_top1_agreement=2)
    with pytest.raises(ValueError, match="max_calibration_samples=0"):
        export.export_litert(
            model, tmp_path / "m.tflite", max_calibration_samples=0
        )
    assert os.listdir(tmp_path) == []
