"""keras_aff.qat: stock-layer blocks equal to the layers, unrolling, tfmot
quantization, fully int8 LiteRT conversion and its checks, checkpoints.

Every test takes the `qat` fixture (tests/legacy/conftest.py, shared by
tests/qat/conftest.py), which imports
tfmot without leaving TF_USE_LEGACY_KERAS set for the rest of the suite.
"""

import os

import keras
import numpy as np
import pytest
import tf_keras

from keras_aff import legacy
from keras_aff import porting
from tests.legacy.helpers import LAYER_IDS
from tests.legacy.helpers import LAYERS
from tests.legacy.helpers import SHAPE
from tests.legacy.helpers import fusion_model
from tests.legacy.helpers import inputs_for
from tests.legacy.helpers import predict
from tests.legacy.helpers import randomize
from tests.legacy.helpers import small_cnn

INT8_OPS = {"ADD", "CONV_2D", "FULLY_CONNECTED", "LOGISTIC", "MEAN", "MUL"}
INT8_OPS |= {"SUB"}


def block_model(qat, name, pairwise, shape=SHAPE, **kwargs):
    fn = {"ms_cam": qat.mscam_block, "aff": qat.aff_block}.get(
        name, qat.iaff_block
    )
    if pairwise:
        x = tf_keras.Input(shape, name="x")
        y = tf_keras.Input(shape, name="y")
        return tf_keras.Model([x, y], fn(x, y, name=name, **kwargs))
    x = tf_keras.Input(shape, name="x")
    return tf_keras.Model(x, fn(x, name=name, **kwargs))


BLOCK_OPTIONS = [
    ({}, "default"),
    ({"output_scale": 2.0}, "scale2"),
    ({"branches": ("global", "global")}, "glob_glob"),
    ({"branches": ("local", "local"), "use_bias": False}, "loca_loca"),
]
# Every layer with every option it takes (MSCAM has no output_scale).
BLOCK_CASES = [
    pytest.param(*case, kwargs, id=f"{case[0]}-{option_id}")
    for case in LAYERS
    for kwargs, option_id in BLOCK_OPTIONS
    if case[3] or "output_scale" not in kwargs
]


@pytest.mark.parametrize("name,k3_cls,k2_cls,pairwise,kwargs", BLOCK_CASES)
def test_block_is_the_layer(qat, name, k3_cls, k2_cls, pairwise, kwargs):
    """Same paths, same function: Keras 3 layer == tf_keras layer ==
    stock-layer block, with the weights copied by path."""
    m3 = fusion_model("keras3", k3_cls, pairwise, SHAPE, name, **kwargs)
    m2 = fusion_model("tf_keras", k2_cls, pairwise, SHAPE, name, **kwargs)
    block = block_model(qat, name, pairwise, **kwargs)
    assert sorted(legacy.weight_paths(block)) == sorted(legacy.weight_paths(m3))
    assert all(
        type(layer).__module__.startswith("tf_keras.") for layer in block.layers
    )
    randomize(m3)
    legacy.copy_weights(m3, m2)
    legacy.copy_weights(m3, block)
    inputs = inputs_for(pairwise)
    expected = predict(m3, inputs)
    np.testing.assert_allclose(predict(m2, inputs), expected, atol=1e-5)
    np.testing.assert_allclose(predict(block, inputs), expected, atol=1e-5)
    # And in training mode (batch statistics).
    np.testing.assert_allclose(
        np.asarray(block(inputs, training=True)),
        np.asarray(m2(inputs, training=True)),
        atol=1e-4,
    )


@pytest.mark.parametrize("name,k3_cls,k2_cls,pairwise", LAYERS, ids=LAYER_IDS)
def test_block_gate_is_the_layer_fusion_weights(
    qat, name, k3_cls, k2_cls, pairwise
):
    """Each sigmoid of a block is its layer's `fusion_weights`."""
    m2 = fusion_model("tf_keras", k2_cls, pairwise, SHAPE, name)
    randomize(m2)
    block = block_model(qat, name, pairwise)
    porting.copy_weights(m2, block)
    gates = ["attention1", "attention2"] if name == "iaff" else ["attention"]
    sigmoids = tf_keras.Model(
        block.inputs,
        [block.get_layer(f"{name}/{gate}/sigmoid").output for gate in gates],
    )
    inputs = inputs_for(pairwise)
    expected = m2.get_layer(name).fusion_weights(inputs, training=False)
    if len(gates) == 1:
        expected = [expected]
    got = sigmoids(inputs, training=False)
    got = got if isinstance(got, list) else [got]
    for w_block, w_layer in zip(got, expected):
        np.testing.assert_allclose(
            np.asarray(w_block), np.asarray(w_layer), atol=1e-6
        )


def test_block_errors(qat):
    x = tf_keras.Input(SHAPE)
    with pytest.raises(ValueError, match=r"Received: reduction_ratio=0"):
        qat.aff_block(x, x, reduction_ratio=0)
    with pytest.raises(ValueError, match=r"too large for 8 channels"):
        qat.iaff_block(x, x, reduction_ratio=9)
    with pytest.raises(ValueError, match=r"same shape.*Received: x.shape"):
        qat.aff_block(x, tf_keras.Input((6, 5, 4)))
    with pytest.raises(ValueError, match=r"supports 4-D channels_last inputs"):
        qat.mscam_block(tf_keras.Input((7, 8)))
    with pytest.raises(ValueError, match=r"data_format='channels_first'"):
        qat.mscam_block(x, data_format="channels_first")
    with pytest.raises(TypeError, match=r"must be a tf_keras symbolic tensor"):
        qat.aff_block(keras.Input(SHAPE), x)
    with pytest.raises(TypeError, match=r"Received: y="):
        qat.aff_block(x, np.zeros((1,) + SHAPE, "float32"))


def test_unroll_fusion_layers(qat):
    m2 = small_cnn("tf_keras", output_scale=2.0)
    randomize(m2)
    unrolled = qat.unroll_fusion_layers(m2)
    assert not any(
        isinstance(layer, (legacy.MSCAM, legacy.AFF, legacy.IAFF))
        for layer in unrolled.layers
    )
    assert unrolled.get_layer("aff/scale").scale == 2.0
    # A new model: no layer object is shared with the original.
    assert not {id(layer) for layer in unrolled.layers} & {
        id(layer) for layer in m2.layers
    }
    x = inputs_for(False, (8, 8, 3), batch=4)
    np.testing.assert_allclose(predict(unrolled, x), predict(m2, x), atol=1e-5)
    assert sorted(legacy.weight_paths(unrolled)) == sorted(
        legacy.weight_paths(m2)
    )


def test_unroll_errors(qat):
    with pytest.raises(TypeError, match=r"tfmot 0.8 rejects Keras 3 models"):
        qat.unroll_fusion_layers(small_cnn("keras3"))
    x = tf_keras.Input(SHAPE)
    shared = legacy.MSCAM(name="shared")
    model = tf_keras.Model(x, shared(shared(x)))
    with pytest.raises(ValueError, match=r"called more than once"):
        qat.unroll_fusion_layers(model)
    with pytest.raises(TypeError, match=r"tfmot 0.8 rejects Keras 3 models"):
        qat.quantize_model(small_cnn("keras3"))


def test_quantize_model_keeps_weights_and_paths(qat):
    m2 = small_cnn("tf_keras", output_scale=2.0)
    randomize(m2)
    q = qat.quantize_model(m2)
    paths = legacy.weight_paths(q)
    assert sorted(paths) == sorted(legacy.weight_paths(m2))
    for path, variable in legacy.weight_paths(m2).items():
        np.testing.assert_array_equal(paths[path].numpy(), variable.numpy())
    configs = {
        layer.layer.name: type(layer.quantize_config).__name__
        for layer in q.layers
        if hasattr(layer, "quantize_config")
    }
    for name in ("aff/diff", "aff/weighted", "aff/scale", "iaff/weighted2"):
        assert configs[name] == "OutputQuantizeConfig"
    assert configs["aff/attention/local/conv1"].startswith("Default8Bit")


def _train_briefly(model, x, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(len(x), model.outputs[0].shape[-1]))
    model.compile(tf_keras.optimizers.Adam(1e-3), "mse")
    model.fit(x, y.astype("float32"), batch_size=16, epochs=2, verbose=0)


@pytest.fixture(scope="module")
def trained_qat(qat):
    """A QAT model of `small_cnn` (AFF with output_scale=2, IAFF), trained
    a few steps so that its fake-quant ranges have moved."""
    m2 = small_cnn("tf_keras", output_scale=2.0)
    q = qat.quantize_model(m2)
    x = np.random.default_rng(0).uniform(size=(64, 8, 8, 3)).astype("float32")
    _train_briefly(q, x)
    return q, x


@pytest.mark.parametrize("int8_io", [True, False], ids=["int8_io", "float_io"])
def test_qat_model_converts_fully_int8(qat, trained_qat, tmp_path, int8_io):
    q, x = trained_qat
    path = tmp_path / "model.tflite"
    tflite, report = qat.convert_to_int8_litert(
        q, x[:16], int8_io=int8_io, path=path
    )
    assert report["fully_int8"] and not report["float_islands"]
    io = ["int8"] if int8_io else ["float32"]
    assert report["input_dtypes"] == io and report["output_dtypes"] == io
    ops = set(report["ops"])
    if int8_io:
        assert ops == INT8_OPS
    else:
        assert ops == INT8_OPS | {"QUANTIZE", "DEQUANTIZE"}
        assert report["ops"]["QUANTIZE"] == report["ops"]["DEQUANTIZE"] == 1
    # 4 model convs + 12 gate convs (every BN folded), 3 sigmoids, 3 global
    # means + the model's GAP.
    assert report["ops"]["CONV_2D"] == 16
    assert report["ops"]["LOGISTIC"] == 3 and report["ops"]["MEAN"] == 4
    assert set(report["tensor_dtypes"]) <= {"int8", "int32", "float32"}
    # The int8 policy bounds the mean error (see test_ptq_and_qat_...).
    assert report["mean_abs_error"] <= report["tolerance_abs"]
    assert report["xnnpack"]  # the default delegate runs it
    assert path.read_bytes() == tflite
    assert report["path"] == str(path)


def test_layer_level_config_needs_calibration(qat):
    """unroll=False keeps the fusion layers (output-only config): float
    inside unless the converter calibrates it."""
    m2 = small_cnn("tf_keras")
    q = qat.quantize_model(m2, unroll=False)
    x = np.random.default_rng(0).uniform(size=(32, 8, 8, 3)).astype("float32")
    _train_briefly(q, x)
    with pytest.raises(ValueError, match=r"not fully int8: \d+ float tensor"):
        qat.convert_to_int8_litert(q, x[:8])

    def representative():
        for i in range(16):
            yield [x[i : i + 1]]

    _, report = qat.convert_to_int8_litert(
        q, x[:8], representative_dataset=representative
    )
    assert report["fully_int8"]


def test_float_model_ptq_and_errors(qat):
    m2 = small_cnn("tf_keras")
    randomize(m2)
    x = np.random.default_rng(0).uniform(size=(32, 8, 8, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"needs a `representative_dataset`"):
        qat.convert_to_int8_litert(m2, x[:8])

    def representative():
        for i in range(32):
            yield [x[i : i + 1]]

    _, report = qat.convert_to_int8_litert(
        m2, x[:8], representative_dataset=representative
    )
    assert report["fully_int8"] and set(report["ops"]) == INT8_OPS
    with pytest.raises(ValueError, match=r"does not reproduce the Keras model"):
        qat.convert_to_int8_litert(
            m2, x[:8], representative_dataset=representative, tolerance=1e-9
        )
    with pytest.raises(ValueError, match=r"Received: tolerance=-1"):
        qat.convert_to_int8_litert(m2, x[:8], tolerance=-1)


def test_flatbuffer_runs_with_load_artifact(qat, trained_qat, tmp_path):
    """The int8 model has a serving signature named after the input, so
    the project's loader runs it with float inputs."""
    import keras_aff.export

    q, x = trained_qat
    path = tmp_path / "qat.tflite"
    _, report = qat.convert_to_int8_litert(q, x[:8], path=path)
    predictor = keras_aff.export.load_artifact(str(path))
    assert list(predictor.inputs) == ["image"]
    assert predictor.inputs["image"]["dtype"] == "int8"
    got = predictor(x[:8])[0]
    assert got.shape == (8, 4)
    assert np.abs(got - predict(q, x[:8])).max() == pytest.approx(
        report["max_abs_error"]
    )


def test_qat_report_is_an_export_report(qat, trained_qat, tmp_path):
    from keras_aff import export

    q, x = trained_qat
    tflite, report = qat.convert_to_int8_litert(q, x[:8])
    assert isinstance(report, export.ExportReport)
    assert report.format == "litert" and report.quantization == "int8"
    assert report.path is None and report["path"] is None
    assert os.listdir(tmp_path) == []  # path=None: nothing written
    assert report.size_bytes == len(tflite) == report["size_bytes"]
    assert report.fully_int8 and report.float_islands == []
    assert report.inner_quantize_ops == 0
    assert report.ops == qat.inspect_litert(tflite)["ops"]
    assert report.checked == ["batch 8"] and report.num_samples == 8
    assert report.tolerance == pytest.approx(
        0.15 * max(1.0, report.output_scale)
    )
    assert report["output_range"] == report.output_range > 0
    assert report["input_dtypes"] == report["output_dtypes"] == ["int8"]


def test_ptq_and_qat_share_the_int8_policy(
    qat, trained_qat, tmp_path, monkeypatch
):
    """export_litert(quantization="int8") and convert_to_int8_litert run
    the same checks: the same bound (mean error, relative to the output
    scale), the same report, and the same refusal of a broken runtime."""
    from keras_aff import export
    from keras_aff.export import runners
    from tests.export import helpers as export_helpers

    q, x = trained_qat
    k3 = export_helpers.fusion_cnn(seed=0)
    calibration = export_helpers.images(128, seed=1)
    ptq = export.export_litert(
        k3,
        tmp_path / "ptq.tflite",
        quantization="int8",
        representative_data=calibration,
    )
    _, qat_report = qat.convert_to_int8_litert(
        q, x[:16], path=tmp_path / "qat.tflite"
    )
    for report, rtol in ((ptq, 0.1), (qat_report, 0.15)):
        assert report.fully_int8 and report.inner_quantize_ops == 0
        assert report.tolerance == pytest.approx(
            rtol * max(1.0, report.output_scale)
        )
        assert report.mean_abs_error <= report.tolerance
        assert report.top1_agreement >= 0.9
    # A runtime that shifts every class score by one fails both, with the
    # same message, and leaves nothing at the path.
    run = runners.LiteRTRunner._run
    monkeypatch.setattr(
        runners.LiteRTRunner,
        "_run",
        lambda self, feed: [np.roll(o, 1, axis=-1) for o in run(self, feed)],
    )
    message = (
        r"The LiteRT model \(int8\) does not reproduce the Keras model on "
        r"batch \d+[^:]*: top-1 agreement 0\.[0-8]\d* \(minimum 0\.9\)"
    )
    with pytest.raises(export.ExportVerificationError, match=message):
        export.export_litert(
            k3,
            tmp_path / "bad_ptq.tflite",
            quantization="int8",
            representative_data=calibration,
        )
    with pytest.raises(export.ExportVerificationError, match=message):
        qat.convert_to_int8_litert(q, x[:16], path=tmp_path / "bad.tflite")
    assert sorted(os.listdir(tmp_path)) == ["ptq.tflite", "qat.tflite"]


def test_inspect_litert_finds_float_islands(qat):
    import tensorflow as tf

    m2 = small_cnn("tf_keras")

    def serve(a):
        return m2(a, training=False)

    fn = tf.function(serve, autograph=False)
    spec = tf.TensorSpec([None, 8, 8, 3])
    fp32 = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function(spec)]
    ).convert()
    report = qat.inspect_litert(fp32)
    assert not report["fully_int8"]
    assert any("float32" in island for island in report["float_islands"])
    assert report["output_step"] == 0.0


def _tiny_qat(qat):
    x = tf_keras.Input((8, 8, 3), name="image")
    h = tf_keras.layers.Conv2D(8, 3, padding="same", name="stem")(x)
    h = legacy.AFF(name="aff")([h, h])
    h = tf_keras.layers.GlobalAveragePooling2D(name="gap")(h)
    return qat.quantize_model(tf_keras.Model(x, h))


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5")
def test_qat_checkpoint_formats(qat, tmp_path):
    """What the README states about saving QAT models (tfmot 0.8.1,
    tf_keras 2.21): SavedModel, .h5 and save_weights work; .keras fails."""
    q = _tiny_qat(qat)
    x = np.random.default_rng(0).uniform(size=(16, 8, 8, 3)).astype("float32")
    _train_briefly(q, x)
    expected = predict(q, x[:4])

    saved = str(tmp_path / "qat_savedmodel")
    q.save(saved, save_format="tf")
    with qat.quantize_scope():
        reloaded = tf_keras.models.load_model(saved)
    np.testing.assert_array_equal(predict(reloaded, x[:4]), expected)

    h5 = str(tmp_path / "qat.h5")
    q.save(h5)
    with qat.quantize_scope():
        reloaded = tf_keras.models.load_model(h5)
    np.testing.assert_array_equal(predict(reloaded, x[:4]), expected)

    prefix = os.path.join(str(tmp_path), "ckpt", "qat")
    q.save_weights(prefix)
    fresh = _tiny_qat(qat)
    fresh.load_weights(prefix).expect_partial()  # no optimizer to restore
    np.testing.assert_array_equal(predict(fresh, x[:4]), expected)

    keras_file = str(tmp_path / "qat.keras")
    q.save(keras_file)
    with pytest.raises(ValueError, match=r"expected 5 variables, but received"):
        with qat.quantize_scope():
            tf_keras.models.load_model(keras_file)


def test_calibrate_ranges(qat):
    m2 = small_cnn("tf_keras")
    randomize(m2)
    q = qat.quantize_model(m2)
    x = np.random.default_rng(0).uniform(size=(64, 8, 8, 3)).astype("float32")
    ranges = [v for v in q.weights if v.name.endswith("output_max:0")]
    assert ranges and all(v.numpy() == 6.0 for v in ranges)  # tfmot's init
    own = {p: v.numpy().copy() for p, v in legacy.weight_paths(q).items()}
    assert qat.calibrate_ranges(q, x) > len(ranges)
    # The ranges now come from the data; weights and BatchNorm statistics
    # are untouched.
    assert not any(v.numpy() == 6.0 for v in ranges)
    assert all(v.numpy() >= 0.0 for v in ranges)
    for path, variable in legacy.weight_paths(q).items():
        np.testing.assert_array_equal(variable.numpy(), own[path])
    # Convertible straight away (input and kernel ranges set too).
    _, report = qat.convert_to_int8_litert(q, x[:8])
    assert report["fully_int8"]
    assert report["mean_abs_error"] <= report["tolerance_abs"]


def test_qat_weights_port_back_to_keras3(qat, trained_qat):
    q, x = trained_qat
    m3 = small_cnn("keras3", output_scale=2.0)
    copied = legacy.copy_weights(q, m3)
    assert len(copied) == len(m3.weights)
    float_twin = small_cnn("tf_keras", output_scale=2.0)
    legacy.copy_weights(q, float_twin)
    np.testing.assert_allclose(
        predict(m3, x[:4]), predict(float_twin, x[:4]), atol=1e-5
    )


def test_public_names_have_examples(qat):
    for name in qat.__all__:
        doc = getattr(qat, name).__doc__ or ""
        assert "Example:" in doc, name


@pytest.mark.parametrize("module", ["blocks", "unroll", "quantize", "convert"])
def test_docstring_examples_run(qat, module, tmp_path, monkeypatch):
    import importlib

    from tests.test_doctests import run_examples

    monkeypatch.chdir(tmp_path)  # the examples write files
    failed, attempted = run_examples(
        importlib.import_module(f"keras_aff.qat.{module}")
    )
    assert attempted > 0 and failed == 0
