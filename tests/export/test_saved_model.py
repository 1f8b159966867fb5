"""SavedModel export: serving signature, dynamic batch and spatial size,
loads where keras and keras_aff cannot be imported, fails loudly."""

import os

import keras
import numpy as np
import pytest

from keras_aff import export
from keras_aff.export import saved_model
from tests import processes
from tests.export import helpers

pytestmark = pytest.mark.export


@pytest.fixture(scope="module")
def model():
    return helpers.fusion_cnn(seed=0)


def test_serving_signature_dynamic_shapes_standalone(model, tmp_path):
    path = tmp_path / "aff" / "1"  # TF Serving's model/version layout
    report = export.export_saved_model(model, path)
    assert (path / "saved_model.pb").is_file()
    assert report.format == "saved_model" and report.ops is None
    assert report.inputs == {
        "image": {"shape": [None, None, None, 3], "dtype": "float32"}
    }
    assert report.outputs == {
        "output_0": {"shape": [None, 5], "dtype": "float32"}
    }
    assert report.checked == [
        "batch 4",
        "batch 1",
        "inputs of shape (2, 24, 24, 3)",
        "a fresh process without keras / keras_aff",
    ]
    assert "dynamic spatial size" in report.notes[0]
    assert report.max_abs_error < 1e-5 <= report.tolerance
    assert report.size_bytes > 0 and report.latency_ms > 0
    # Plain TensorFlow, another batch and another size.
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    x = helpers.images(3, size=20, seed=7)
    got = serve(image=tf.constant(x))["output_0"].numpy()
    assert got.shape == (3, 5)
    # The same weights in a model built for any size:
    want = helpers.fusion_cnn(seed=0, size=None)
    want.set_weights(model.get_weights())
    np.testing.assert_allclose(got, want.predict(x, verbose=0), atol=1e-5)


def test_fixed_spatial_size_when_the_model_needs_it(tmp_path):
    report = export.export_saved_model(
        helpers.flatten_cnn(), tmp_path / "sm", standalone_check=False
    )
    assert report.inputs["image"]["shape"] == [None, 8, 8, 3]
    assert "fixed spatial size" in report.notes[0]
    assert report.checked == ["batch 4", "batch 1"]


def test_two_inputs_and_mixed_precision(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = helpers.two_input_model()
    keras.mixed_precision.set_global_policy("float32")
    data = helpers.two_input_data(3)
    report = export.export_saved_model(
        model,
        tmp_path / "sm",
        sample_inputs={"alpha": data[1], "zeta": data[0]},
        standalone_check=False,
    )
    assert sorted(report.inputs) == ["alpha", "zeta"]
    assert report.max_abs_error <= report.tolerance
    predict = export.load_artifact(tmp_path / "sm", ["zeta", "alpha"])
    assert predict.format == "saved_model"
    np.testing.assert_allclose(
        predict(data)[0],
        np.asarray(model.predict(data, verbose=0), "float32"),
        atol=1e-2,
    )


def test_broken_artifact_fails_loudly_and_leaves_nothing(
    model, tmp_path, monkeypatch
):
    run = saved_model.SavedModelRunner._run

    def perturbed(self, feed):
        return [o * 1.1 for o in run(self, feed)]

    monkeypatch.setattr(saved_model.SavedModelRunner, "_run", perturbed)
    path = tmp_path / "sm"
    with pytest.raises(export.ExportVerificationError) as info:
        export.export_saved_model(model, path, standalone_check=False)
    assert "max |error|" in str(info.value)
    assert "> tolerance 0.0001" in str(info.value)
    assert not path.exists() and os.listdir(tmp_path) == []


def test_standalone_process_blocks_keras_and_keras_aff(model, tmp_path):
    # The blocker the standalone check relies on really hides the packages.
    prefix = saved_model._STANDALONE_SCRIPT.split("import numpy")[0]
    for name in ("keras", "tf_keras", "keras_aff"):
        proc = processes.run_python(["-c", prefix + f"import {name}\n"])
        assert proc.returncode == 1
        assert f"No module named '{name}'" in proc.stderr
    with pytest.raises(RuntimeError, match="without keras / keras_aff"):
        saved_model.run_saved_model_standalone(
            tmp_path / "missing", {"image": helpers.images(1)}
        )


def test_other_backend_is_refused():
    code = (
        "import keras, keras_aff.export as e\n"
        "m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\n"
        "try:\n"
        "    e.export_saved_model(m, 'x')\n"
        "except RuntimeError as err:\n"
        "    print(err)\n"
    )
    env = processes.environment(backend="jax")
    proc = processes.run_python(["-c", code], env=env)
    assert "needs the TensorFlow backend" in proc.stdout, proc.stderr[-2000:]
    assert "Received: backend='jax'" in proc.stdout
