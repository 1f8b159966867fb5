"""The `keras-aff` command: demo (end to end, in a subprocess), export,
info, the exit status and message of every user error, and the names kept
from 0.1.0's single-module CLI."""

import importlib.metadata
import json
import os
import re
import shutil
import sys
import warnings

import keras
import numpy as np
import pytest

from keras_aff import cli
from keras_aff import demo
from keras_aff import export
from keras_aff.cli import export as export_command
from tests import processes
from tests.export import helpers


def _command():
    exe = shutil.which("keras-aff")
    return [exe] if exe else [sys.executable, "-m", "keras_aff.cli"]


def _run(args, cwd=None, timeout=300):
    return processes.run_command(_command() + args, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "fusion.keras"
    helpers.fusion_cnn(seed=0).save(path)
    return str(path)


def test_console_script_is_declared():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    (entry,) = [e for e in scripts if e.name == "keras-aff"]
    assert entry.value == "keras_aff.cli:main"


@pytest.mark.export
@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = _run(["demo", "--out", str(out), "--epochs", "1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith("| ")]
    assert [c.strip() for c in table[0].split("|")[1:-1]] == [
        "format",
        "file",
        "size",
        "accuracy",
        "max abs err vs Keras",
        "batch-1 ms",
    ]
    formats = [row.split("|")[1].strip() for row in table[1:]]
    assert formats == [
        "Keras (tf.function)",
        "SavedModel",
        "LiteRT float32",
        "LiteRT int8",
        "ONNX",
    ]
    # Progress while it runs: a line per epoch (stdout is a pipe, not a
    # terminal: `45/45 - 3s - ... - loss: ...`) and a line per export.
    lines = proc.stdout.splitlines()
    epochs = [ln for ln in lines if re.match(r"45/45 - .* - loss: ", ln)]
    assert len(epochs) == 1, proc.stdout
    for label in formats[1:]:
        assert any(ln.startswith(f"  {label} ") for ln in lines), label
    for name in (
        "aff_digits.keras",
        "aff_digits/1/saved_model.pb",
        "aff_digits_float32.tflite",
        "aff_digits_int8.tflite",
        "aff_digits.onnx",
    ):
        assert (out / name).exists(), name
    png = (out / "fusion_weights.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    report = json.loads((out / "demo_report.json").read_text())
    assert list(report) == [
        "epochs",
        "seed",
        "train_images",
        "test_images",
        "results",
        "reports",
        "png",
        "seconds",
    ]
    assert report["png"] == str(out / "fusion_weights.png")
    results = {r["format"]: r for r in report["results"]}
    assert report["epochs"] == 1 and report["test_images"] == 360
    for name in ("SavedModel", "LiteRT float32", "ONNX"):
        assert results[name]["max_abs_error"] < 1e-4
        assert (
            results[name]["accuracy"]
            == results["Keras (tf.function)"]["accuracy"]
        )
    assert results["LiteRT int8"]["max_abs_error"] < 0.5
    int8 = report["reports"]["LiteRT int8"]
    assert int8["inputs"]["image"]["dtype"] == "int8"
    assert int8["top1_agreement"] >= 0.9


@pytest.mark.export
def test_export_litert_int8_from_image_directory(model_file, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        pixels = rng.integers(0, 256, size=(20, 20, 3)).astype("float32")
        keras.utils.save_img(images / f"{i}.png", pixels, scale=False)
    out = tmp_path / "m_int8.tflite"
    argv = ["export", model_file, "--format", "litert", "--quantize", "int8"]
    argv += ["--calibration", str(images), "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "| litert int8 " in text
    assert "ops: ADD 9, CONV_2D 19" in text
    assert export.load_artifact(out).inputs["image"]["dtype"] == "int8"


@pytest.mark.export
def test_export_onnx_json_and_default_paths(
    model_file, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    samples = tmp_path / "x.npy"
    np.save(samples, helpers.images(6))
    argv = ["export", model_file, "--format", "onnx", "--calibration"]
    assert cli.main(argv + [str(samples), "--opset", "13", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == os.path.join("savedmodels", "fusion.onnx")
    assert report["num_samples"] == 6 and report["notes"] == ["opset 13"]
    assert (tmp_path / "savedmodels" / "fusion.onnx").is_file()
    default_out = export_command.default_out
    assert default_out("a/m.keras", "saved_model", None) == os.path.join(
        "savedmodels", "m", "1"
    )
    assert default_out("m.keras", "litert", "int8") == os.path.join(
        "savedmodels", "m_int8.tflite"
    )


def test_info(model_file, capsys):
    assert cli.main(["info", model_file]) == 0
    text = capsys.readouterr().out
    assert "fusion layers: 3" in text
    params = helpers.fusion_cnn(seed=0).count_params()
    assert f"parameters: {params:,}" in text
    assert cli.main(["info", model_file, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"]["total"] == params
    fusion = {f["name"]: f for f in info["fusion_layers"]}
    assert [f["class"] for f in info["fusion_layers"]] == [
        "AFF",
        "IAFF",
        "MSCAM",
    ]
    assert fusion["aff"]["reduction_ratio"] == 2
    assert (
        fusion["aff"]["channels"] == 8 and fusion["aff"]["inter_channels"] == 4
    )
    assert fusion["aff"]["branches"] == ["local", "global"]
    assert "output_scale" not in fusion["mscam"]


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], None),
        (["info", "missing.keras"], "no such file: missing.keras"),
        (["export", "m.keras", "--format", "tflite"], "invalid choice"),
        (
            ["export", "m.keras", "--format", "litert", "--quantize", "int4"],
            "invalid choice",
        ),
        (
            ["export", "m.keras", "--format", "onnx", "--quantize", "int8"],
            "--quantize applies to --format litert only",
        ),
        (
            ["export", "m.keras", "--format", "litert", "--quantize", "int8"],
            "--quantize int8 needs --calibration",
        ),
        (["demo", "--epochs", "0"], "must be >= 1"),
    ],
)
def test_usage_errors_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    if message:
        assert f"keras-aff: error: {message}" in err or message in err


def test_file_errors_exit_2(model_file, tmp_path, capsys):
    fake = tmp_path / "fake.keras"
    fake.write_text("not a model")
    assert cli.main(["info", str(fake)]) == 2
    assert "is not a loadable Keras model" in capsys.readouterr().err
    assert cli.main(["info", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 8, 8, 3), "float32"))
    argv = ["export", model_file, "--format", "litert", "--quantize", "int8"]
    assert cli.main(argv + ["--calibration", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "calibration data" in err and "shape=(4, 8, 8, 3)" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(argv + ["--calibration", str(empty)]) == 2
    assert "holds no .npy or image files" in capsys.readouterr().err
    assert cli.main(argv + ["--calibration", str(tmp_path / "nope")]) == 2


@pytest.mark.export
def test_failed_verification_exits_1(model_file, tmp_path, capsys, monkeypatch):
    from keras_aff.export import litert

    run = litert.LiteRTRunner._run
    monkeypatch.setattr(
        litert.LiteRTRunner,
        "_run",
        lambda self, feed: [o + 1.0 for o in run(self, feed)],
    )
    out = tmp_path / "m.tflite"
    argv = ["export", model_file, "--format", "litert", "--out", str(out)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("keras-aff: error: verification failed: ")
    assert "max |error| 1 > tolerance 0.0001" in err
    assert not out.exists()


def test_exit_status_from_the_console_script(tmp_path):
    proc = _run(["info", str(tmp_path / "missing.keras")])
    assert proc.returncode == 2
    assert "keras-aff: error: no such file" in proc.stderr


def test_python_dash_m_runs_the_command(tmp_path):
    argv = ["-m", "keras_aff.cli", "info", "missing.keras"]
    proc = processes.run_python(argv, cwd=tmp_path)
    assert proc.returncode == 2
    assert "keras-aff: error: no such file: missing.keras" in proc.stderr


def test_names_kept_from_the_single_module_cli():
    assert cli.load_demo_data is demo.load_demo_data
    assert cli.build_demo_model is demo.build_demo_model
    assert cli.fusion_weight_model is demo.fusion_weight_model
    assert (cli.EXIT_FAILURE, cli.EXIT_USAGE) == (1, 2)
    assert cli.FORMATS == ("saved_model", "litert", "onnx")
    assert cli.QUANTIZATIONS == ("float16", "dynamic", "int8")
    assert (cli.DEMO_EPOCHS, cli.DEMO_CALIBRATION) == (8, 300)
    assert issubclass(cli.UsageError, Exception)
    model = helpers.fusion_cnn(seed=0)
    with pytest.warns(DeprecationWarning, match="describe_model"):
        old = cli.model_info(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = cli.describe_model(model)
    assert old == new
    assert [f["name"] for f in new["fusion_layers"]] == ["aff", "iaff", "mscam"]


def test_describe_model_rejects_a_path():
    with pytest.raises(TypeError, match="Received: model='m.keras'"):
        cli.describe_model("m.keras")


def test_import_does_not_load_tensorflow():
    # TensorFlow (the exports, the demo's Keras timing) is imported by the
    # functions that need it, so that `keras-aff info` runs on any backend.
    code = (
        "import json, sys\n"
        "import keras, keras_aff.cli, keras_aff.demo\n"
        "print(json.dumps([keras.backend.backend(),\n"
        "    'tensorflow' in sys.modules]))\n"
    )
    env = processes.environment(backend="jax")
    proc = processes.succeeded(processes.run_python(["-c", code], env=env))
    assert processes.last_json(proc) == ["jax", False]
