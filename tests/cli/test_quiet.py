"""The `keras-aff` command is quiet by default: no TensorFlow C++ log, no
converter chatter, unless `-v/--verbose` or the user's own
TF_CPP_MIN_LOG_LEVEL asks for them; a failed step still shows what the
converter said; the library alone changes no logging setting."""

import json
import os
import shutil
import sys

import keras
import numpy as np
import pytest

from keras_aff import _quiet
from keras_aff import export
from tests import processes
from tests.export import helpers

# Lines that TensorFlow, absl, the TFLite converter and LiteRT write to
# fd 2 (the first five on every machine, the rest where they apply).
NATIVE_MARKERS = (
    "I0000",
    "W0000",
    "fully_quantize",
    "Skipping runtime version metadata",
    "XNNPACK delegate for CPU",
    "E0000",
    "oneDNN",
    "cuda_platform",
    "cuInit",
    "absl::InitializeLog",
)
LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"


def _command():
    exe = shutil.which("keras-aff")
    return [exe] if exe else [sys.executable, "-m", "keras_aff.cli"]


def _keras_aff(args, cwd):
    """`keras-aff *args` as a new user runs it: no TF_CPP_MIN_LOG_LEVEL."""
    env = processes.environment(drop=(LOG_LEVEL,))
    return processes.run_command(_command() + args, env=env, cwd=cwd)


def _markers(text):
    return [marker for marker in NATIVE_MARKERS if marker in text]


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    """A small fusion CNN and calibration data: `keras-aff export --format
    litert --quantize int8` imports TensorFlow, converts, calibrates and
    runs LiteRT, the steps that print the most, in ~8 s."""
    folder = tmp_path_factory.mktemp("quiet")
    helpers.fusion_cnn(seed=0).save(folder / "model.keras")
    rng = np.random.default_rng(0)
    np.save(folder / "calibration.npy", rng.random((16, 16, 16, 3), "float32"))
    argv = ["export", "model.keras", "--format", "litert", "--quantize"]
    argv += ["int8", "--calibration", "calibration.npy"]
    return folder, argv + ["--out", "model_int8.tflite"]


@pytest.mark.export
@pytest.mark.parametrize("verbose", [False, True])
def test_export_output_is_quiet_unless_verbose(int8_export, verbose):
    folder, argv = int8_export
    proc = processes.succeeded(_keras_aff(argv + ["-v"] * verbose, cwd=folder))
    assert proc.stdout.startswith("wrote model_int8.tflite (verified: ")
    found = _markers(proc.stdout + proc.stderr)
    if verbose:
        assert set(NATIVE_MARKERS[:5]) <= set(found), proc.stderr
    else:
        assert found == [], proc.stderr
        assert proc.stderr == ""


def _odd_model(path):
    """A model the LiteRT converter refuses: MatrixDeterminant is a Flex
    op, not a builtin one."""
    inputs = keras.Input((2, 2), name="x")
    keras.Model(inputs, keras.ops.det(inputs)).save(path)


@pytest.mark.export
def test_failed_conversion_shows_the_hidden_converter_output(tmp_path):
    _odd_model(tmp_path / "odd.keras")
    argv = ["export", "odd.keras", "--format", "litert"]
    proc = _keras_aff(argv, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    header = "keras-aff: the failed step's TensorFlow / converter output:"
    error = "keras-aff: error: RuntimeError: TFLiteConverter could not "
    # MLIR's diagnostic, written to fd 2 by the converter (it is not in
    # the exception's message), shown before the error line.
    diagnostic = "'tf.MatrixDeterminant' op is neither a custom op nor a flex"
    at = [
        next(i for i, ln in enumerate(lines) if text in ln)
        for text in (header, diagnostic, error)
    ]
    assert at == sorted(at), proc.stderr
    assert lines[at[2]].startswith(error)
    assert "I0000" not in proc.stderr and "oneDNN" not in proc.stderr
    assert not (tmp_path / "odd.tflite").exists()


def test_capture_hides_native_lines_but_not_python_warnings():
    # _quiet.py loaded by path: it needs only the standard library (the
    # package imports it before Keras).
    path = _quiet.__file__
    code = (
        "import importlib.util, os, sys, warnings\n"
        f"spec = importlib.util.spec_from_file_location('q', {path!r})\n"
        "q = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(q)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "    ('keras', 'keras_aff', 'tensorflow')))\n"
        "with q.quiet_mode(), q.capture_native_stderr():\n"
        "    os.write(2, b'native line\\n')\n"
        "    warnings.warn('a real warning')\n"
        "    print('python stderr', file=sys.stderr)\n"
        "os.write(2, b'after\\n')\n"
    )
    proc = processes.succeeded(processes.run_python(["-c", code]))
    assert proc.stdout == "[]\n"
    assert proc.stderr.splitlines() == [
        "<string>:9: UserWarning: a real warning",
        "python stderr",
        "after",
    ]


def test_outside_quiet_mode_capture_does_nothing(capfd):
    with _quiet.capture_native_stderr():
        os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"


def test_native_output_follows_the_exception_chain():
    with _quiet.quiet_mode():
        try:
            try:
                with _quiet.capture_native_stderr():
                    os.write(2, b"converter: no kernel\n")
                    raise ValueError("inner")
            except ValueError as e:
                raise RuntimeError("outer") from e
        except RuntimeError as e:
            error = e
    assert _quiet.native_output(error) == "converter: no kernel\n"
    assert _quiet.native_output(error.__cause__) == "converter: no kernel\n"


@pytest.mark.export
def test_quiet_mode_keeps_python_warnings(tmp_path, capfd):
    # XNNPACK refuses this int8 model (a dead branch): LiteRT's native
    # error stays hidden, the package's UserWarning does not.
    model = helpers.fusion_cnn(seed=3)
    branch = model.get_layer("aff").attention.branch2
    branch.conv1.bias.assign(np.full(branch.conv1.bias.shape, -100.0))
    with _quiet.quiet_mode(), pytest.warns(UserWarning, match="XNNPACK"):
        report = export.export_litert(
            model,
            tmp_path / "m.tflite",
            quantization="int8",
            representative_data=helpers.images(64, seed=4),
        )
    assert any("XNNPACK" in note for note in report.notes)
    # (TensorFlow's device notices, printed outside any conversion, are
    # the environment's business in-process: only the converter's here.)
    err = capfd.readouterr().err
    assert "fully_quantize" not in err and "Skipping runtime" not in err, err


@pytest.mark.parametrize(
    "argv, user_level, level, quiet",
    [
        (["/venv/bin/keras-aff", "demo"], None, "3", True),
        (["/venv/bin/keras-aff", "demo"], "1", "1", True),
        (["/venv/bin/keras-aff", "demo", "--verbose"], None, None, False),
        (["/venv/bin/keras-aff", "-v", "info", "m.keras"], None, None, False),
        (["train.py"], None, None, False),
    ],
)
def test_command_startup(monkeypatch, argv, user_level, level, quiet):
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, *argv])
    monkeypatch.setenv(LOG_LEVEL, "restored after the test")
    if user_level is None:
        monkeypatch.delenv(LOG_LEVEL)
    else:
        monkeypatch.setenv(LOG_LEVEL, user_level)
    with _quiet.command_startup():
        assert _quiet.is_quiet() is quiet
    assert os.environ.get(LOG_LEVEL) == level
    assert _quiet.is_quiet() is False


@pytest.mark.export
def test_the_library_changes_no_logging_setting(tmp_path):
    # A user's program, with Keras and TensorFlow loaded: import keras_aff,
    # export to LiteRT and ONNX. (TensorFlow's own SavedModel writer sets
    # the absl logger's level from NOTSET to WARNING, the level it had in
    # effect: effective levels are compared.)
    code = (
        "import json, logging, os, sys\n"
        "import keras, tensorflow\n"
        "from absl import logging as absl_logging\n"
        "def settings():\n"
        "    names = ['', *logging.root.manager.loggerDict]\n"
        "    levels = {n: logging.getLogger(n).getEffectiveLevel()\n"
        "              for n in names}\n"
        "    return (dict(os.environ), levels,\n"
        "            absl_logging.get_verbosity(), sys.stderr)\n"
        "before = settings()\n"
        "import keras_aff\n"
        "inputs = keras.Input((4, 4, 2), name='image')\n"
        "fused = keras_aff.layers.MSCAM(reduction_ratio=2)(inputs)\n"
        "model = keras.Model(inputs, fused)\n"
        "keras_aff.export.export_litert(model, 'm.tflite')\n"
        "keras_aff.export.export_onnx(model, 'm.onnx')\n"
        "after = settings()\n"
        "levels = {n: after[1][n] for n in before[1]}\n"
        "print(json.dumps([after[0] == before[0], levels == before[1],\n"
        "    after[2] == before[2], after[3] is before[3],\n"
        "    keras_aff._quiet.is_quiet()]))\n"
    )
    env = processes.environment(drop=(LOG_LEVEL,))
    proc = processes.run_python(["-c", code], env=env, cwd=tmp_path)
    result = json.loads(processes.succeeded(proc).stdout)
    assert result == [True, True, True, True, False], proc.stderr[-2000:]
    # TensorFlow's own output is left as TensorFlow prints it: here its
    # converter's info lines.
    assert "Reading SavedModel from" in proc.stderr
