"""The demo pipeline's steps (`keras_aff.demo`): data, model, the fusion
weights from the layers' own `fusion_weights`, training, one export, the
evaluation rows, the plot and the JSON summary, and their argument errors.
The whole pipeline runs end to end in `tests/cli` (`keras-aff demo`)."""

import json

import keras
import numpy as np
import pytest

from keras_aff import demo


def _images(n, seed=0):
    return np.random.default_rng(seed).random((n, 16, 16, 1), "float32")


def test_load_demo_data():
    x_train, x_test, y_train, y_test = demo.load_demo_data()
    assert x_train.shape == (1437, 16, 16, 1) and x_test.shape[0] == 360
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert sorted(set(y_test)) == list(range(10))
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32
    # The split follows the seed.
    assert not np.array_equal(demo.load_demo_data(seed=1)[3], y_test)


def test_load_demo_data_rejects_a_bad_seed():
    with pytest.raises(ValueError, match="Received: seed=-1"):
        demo.load_demo_data(seed=-1)
    with pytest.raises(TypeError, match="Received: seed='0'"):
        demo.load_demo_data(seed="0")


def test_fusion_weight_probe_matches_the_layers():
    model = demo.build_demo_model()
    x = _images(2)
    w, w2 = demo.fusion_weight_model(model)(x)
    assert w.shape == (2, 16, 16, 16) and w2.shape == (2, 8, 8, 32)
    aff = model.get_layer("aff")
    iaff = model.get_layer("iaff")
    inner = keras.Model(
        model.input, [*aff.input, aff.output, *iaff.input, iaff.output]
    )
    a, b, fused, c, d, fused2 = (np.asarray(t) for t in inner(x))
    np.testing.assert_allclose(fused, b + np.asarray(w) * (a - b), atol=1e-5)
    # iAFF's output is its second-stage blend: y + w2 * (x - y).
    np.testing.assert_allclose(fused2, d + np.asarray(w2) * (c - d), atol=1e-5)
    # The probe is the layers' own fusion_weights, run on the same inputs.
    _, w2_eager = iaff.fusion_weights([c, d], training=False)
    np.testing.assert_allclose(np.asarray(w2), w2_eager, atol=1e-6)


def test_fusion_weight_model_needs_the_demo_layers():
    image = keras.Input((16, 16, 1))
    other = keras.Model(image, keras.layers.Conv2D(2, 1)(image))
    with pytest.raises(ValueError, match="aff"):
        demo.fusion_weight_model(other)
    with pytest.raises(TypeError, match="Expected `model`"):
        demo.fusion_weight_model("aff_digits.keras")


def test_train_demo_model_trains_and_returns_a_copy():
    x_train, _, y_train, _ = demo.load_demo_data()
    model = demo.build_demo_model()
    before = [np.array(w) for w in model.trainable_weights]
    trained = demo.train_demo_model(
        model, x_train[:64], y_train[:64], epochs=1, verbose=0
    )
    assert trained is not model
    for a, b in zip(trained.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # One epoch moves every trainable weight, the fusion gates' included.
    unchanged = [
        w.path
        for w, old in zip(model.trainable_weights, before)
        if np.array_equal(np.array(w), old)
    ]
    assert unchanged == []
    assert len(model.history.history["loss"]) == 1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"epochs": 0}, ValueError, "Received: epochs=0"),
        ({"epochs": 2.0}, TypeError, "Received: epochs=2.0"),
        ({"verbose": 3}, ValueError, "Received: verbose=3"),
    ],
)
def test_train_demo_model_argument_errors(kwargs, error, match):
    model = demo.build_demo_model()
    with pytest.raises(error, match=match):
        demo.train_demo_model(model, _images(4), np.arange(4), **kwargs)


@pytest.mark.export
def test_export_and_evaluate_one_artifact(tmp_path):
    model = demo.build_demo_model()
    x = _images(8)
    y = np.arange(8)
    report = demo.export_artifact(model, "LiteRT float32", str(tmp_path), x)
    assert report.path == str(tmp_path / "aff_digits_float32.tflite")
    reference = model.predict(x, verbose=0)
    row = demo.evaluate_artifact(
        "LiteRT float32", report, x, y, reference, root=str(tmp_path)
    )
    assert row["file"] == "aff_digits_float32.tflite"
    assert row["max_abs_error"] < 1e-4
    assert row["latency_ms"] == report.latency_ms
    assert row["accuracy"] == demo.accuracy(reference, y)
    model.save(tmp_path / "m.keras")
    keras_row, probs = demo.evaluate_keras(
        model, str(tmp_path / "m.keras"), x, y, root=str(tmp_path)
    )
    np.testing.assert_allclose(probs, reference, atol=1e-6)
    assert keras_row["file"] == "m.keras" and keras_row["latency_ms"] > 0
    assert keras_row["size_bytes"] == (tmp_path / "m.keras").stat().st_size


def test_export_artifact_argument_errors(tmp_path):
    model = demo.build_demo_model()
    with pytest.raises(ValueError, match="Received: label='TFLite'"):
        demo.export_artifact(model, "TFLite", str(tmp_path), _images(2))
    with pytest.raises(ValueError, match="Received: calibration=None"):
        demo.export_artifact(model, "LiteRT int8", str(tmp_path), _images(2))
    assert list(tmp_path.iterdir()) == []


def test_save_fusion_weight_png(tmp_path):
    model = demo.build_demo_model()
    path = tmp_path / "w.png"
    mean_aff, mean_iaff = demo.save_fusion_weight_png(
        model, _images(3), [1, 2, 3], str(path)
    )
    w, w2 = demo.fusion_weight_model(model).predict(_images(3), verbose=0)
    assert mean_aff == pytest.approx(float(w.mean()), abs=1e-6)
    assert mean_iaff == pytest.approx(float(w2.mean()), abs=1e-6)
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.png"]
    with pytest.raises(ValueError, match="Expected `path`"):
        demo.save_fusion_weight_png(
            model, _images(1), [1], str(tmp_path / "no" / "w.png")
        )


def test_demo_summary_json(tmp_path):
    rows = [{"format": "Keras (tf.function)", "accuracy": 0.5}]
    summary = demo.DemoSummary(
        epochs=1,
        seed=3,
        train_images=10,
        test_images=5,
        results=rows,
        reports={},
        png=None,
        seconds=2.5,
    )
    path = tmp_path / "demo_report.json"
    written = summary.write_json(str(path))
    assert json.loads(path.read_text()) == written
    assert written == {
        "epochs": 1,
        "seed": 3,
        "train_images": 10,
        "test_images": 5,
        "results": rows,
        "reports": {},
        "png": None,
        "seconds": 2.5,
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_report.json"]
