"""Compatibility: the current code loads every saved fixture version
(savedmodels/fixtures/v*/) and reproduces the outputs recorded there.

Tolerances: float32 artifacts (.keras with the current layers, the
SavedModel, the float32 LiteRT file) 1e-5 x max(1, max |expected|) (the
logits reach ~13: 1.3e-4; measured 2e-6 for .keras and SavedModel, 2e-5 for
LiteRT, whose kernels round differently); the int8 LiteRT file one output
quantization step of the outputs it gave when written.
A failure here means a user's saved model would silently change: fix the
code (or add a documented migration), never regenerate old fixtures.
"""

import importlib.util
import json
import os
import pathlib

import keras
import numpy as np
import pytest

import keras_aff.layers  # noqa: F401  (registers the layers)
from keras_aff import export

pytestmark = pytest.mark.export

ROOT = pathlib.Path(__file__).resolve().parents[2] / "savedmodels"
VERSIONS = sorted(p for p in (ROOT / "fixtures").glob("v*") if p.is_dir())
RTOL = 1e-5


def test_there_are_fixtures():
    assert VERSIONS, f"no fixture versions under {ROOT / 'fixtures'}"


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda p: p.name)
def fixture(request):
    d = request.param
    manifest = json.loads((d / "manifest.json").read_text())
    expected = np.load(d / "expected.npy")
    return {
        "dir": d,
        "manifest": manifest,
        "inputs": np.load(d / "inputs.npy"),
        "expected": expected,
        "atol": RTOL * max(1.0, float(np.abs(expected).max())),
    }


def test_manifest_lists_existing_files(fixture):
    files = fixture["manifest"]["files"]
    assert {"model.keras", "saved_model", "inputs.npy"} <= set(files)
    for name in files:
        assert (fixture["dir"] / name).exists(), name


def test_keras_file_loads_with_current_code(fixture):
    model = keras.saving.load_model(fixture["dir"] / "model.keras")
    classes = {type(layer).__name__ for layer in model.layers}
    assert {"AFF", "IAFF", "MSCAM"} <= classes
    if fixture["dir"].name >= "v0.2.0":  # aligned AFF, Align, MultiAFF
        assert {"Align", "MultiAFF"} <= classes
        assert model.get_layer("aff_aligned").get_config()["align_inputs"]
    got = model.predict(fixture["inputs"], verbose=0)
    np.testing.assert_allclose(got, fixture["expected"], atol=fixture["atol"])


@pytest.mark.parametrize("artifact", ["saved_model", "model_float32.tflite"])
def test_float_artifacts_reproduce_outputs(fixture, artifact):
    predict = export.load_artifact(fixture["dir"] / artifact)
    got = predict(fixture["inputs"])[0]
    np.testing.assert_allclose(got, fixture["expected"], atol=fixture["atol"])


def test_int8_artifact_reproduces_its_outputs(fixture):
    path = fixture["dir"] / "model_int8.tflite"
    predict = export.load_artifact(path)
    got = predict(fixture["inputs"])[0]
    recorded = np.load(fixture["dir"] / "expected_int8.npy")
    step = predict.outputs["output_0"]["scale"]
    np.testing.assert_allclose(got, recorded, atol=step * 1.01)
    agree = (got.argmax(-1) == fixture["expected"].argmax(-1)).mean()
    assert agree >= 0.9


def test_current_exporter_handles_the_old_model(fixture, tmp_path):
    model = keras.saving.load_model(fixture["dir"] / "model.keras")
    report = export.export_litert(
        model, tmp_path / "m.tflite", sample_inputs=fixture["inputs"]
    )
    got = export.load_artifact(tmp_path / "m.tflite")(fixture["inputs"])[0]
    np.testing.assert_allclose(got, fixture["expected"], atol=fixture["atol"])
    assert report.max_abs_error <= report.tolerance


def test_make_fixtures_never_overwrites(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_fixtures", ROOT / "make_fixtures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit, match="never overwritten"):
        module.make(str(VERSIONS[-1]))
    assert os.listdir(tmp_path) == []
