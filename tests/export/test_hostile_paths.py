"""The hostile-path suite: every exporter, `keras-aff export` and
`keras-aff convert` against every kind of destination and input file
(`hostile_cases.py` holds the rows). A refused row leaves its sandbox
byte for byte as it was; a row that writes changes only the artifact's
path, leaves no staging directory, and the artifact reproduces the model.
The `keras-aff` rows run in one child process (`hostile_child.py`) with a
watchdog, so a FIFO that blocks fails the suite instead of hanging it.
"""

import json
import os
import signal
import sys

import keras
import numpy as np
import pytest

from keras_aff import export
from keras_aff.demo import build_demo_model
from tests import processes
from tests.export import hostile_cases as cases
from tests.export import hostile_sandbox as sandbox
from tests.interop import fixtures

pytestmark = pytest.mark.export
ROW_TIMEOUT = 120  # seconds; a refused row takes well under one


def _demo(seed):
    keras.utils.set_random_seed(seed)
    return build_demo_model()


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """The input model (seed 1) and a previous artifact of every kind
    (another model, seed 2, so a replacement shows in the outputs)."""
    root = tmp_path_factory.mktemp("assets")
    model, old = _demo(1), _demo(2)
    found = {"model_object": model, "old_object": old}
    found["model"] = str(root / "model.keras")
    model.save(found["model"])
    found["keras"] = str(root / "old.keras")
    old.save(found["keras"])
    found["tflite"] = str(root / "old.tflite")
    export.export_litert(old, found["tflite"])
    found["onnx"] = str(root / "old.onnx")
    export.export_onnx(old, found["onnx"])
    found["saved_model"] = str(root / "old_saved_model")
    export.export_saved_model(old, found["saved_model"], standalone_check=False)
    found["params"] = str(fixtures.path("aff_resnet32.params"))
    x = np.random.default_rng(0).normal(size=(3, 16, 16, 1)).astype("float32")
    found["x"] = x
    found["expected"] = np.asarray(model(x, training=False))
    return found


def _sandbox_root(tmp_path_factory, name):
    return str(tmp_path_factory.mktemp(name))


# ---------------------------------------------------------------------------
# The checks every row shares
# ---------------------------------------------------------------------------
def _check_invariant(row, root, before, after, work, out, assets):
    assert sandbox.leftovers(root) == [], sandbox.leftovers(root)
    if row.expected not in (0, cases.OK):
        assert after == before, _diff(before, after)
        return
    real = os.path.realpath(os.path.join(work, out))
    own = os.path.relpath(real, root)
    changed = {
        k
        for k in set(before) | set(after)
        if before.get(k) != after.get(k)
        and not (k == own or k.startswith(own + os.sep))
    }
    # Only the artifact (and a parent directory the export made) changed.
    assert all(
        after.get(k) == ("dir",) and own.startswith(k + os.sep) for k in changed
    ), _diff(before, after)
    if os.path.islink(os.path.join(work, out)):
        assert (
            before[os.path.relpath(os.path.join(work, out), root)]
            == (after[os.path.relpath(os.path.join(work, out), root)])
        )  # the link is kept; what it points to was replaced
    (got,) = export.load_artifact(real)(assets["x"])
    np.testing.assert_allclose(got, assets["expected"], atol=1e-4)


def _diff(before, after):
    keys = sorted(set(before) | set(after))
    return {
        k: (before.get(k), after.get(k))
        for k in keys
        if before.get(k) != after.get(k)
    }


# ---------------------------------------------------------------------------
# keras-aff rows: one child process runs them all
# ---------------------------------------------------------------------------
CLI_ROWS = cases.cli_rows()


@pytest.fixture(scope="module")
def cli_results(assets, tmp_path_factory):
    root = _sandbox_root(tmp_path_factory, "cli")
    jobs, sandboxes = [], {}
    for row in CLI_ROWS:
        work, argv, out = sandbox.make_sandbox(root, row, assets)
        top = os.path.join(root, row.id)
        sandboxes[row.id] = (top, sandbox.snapshot(top), work, out)
        jobs.append(
            {
                "id": row.id,
                "cwd": work,
                "argv": argv,
                "fsize": row.fsize,
                "timeout": ROW_TIMEOUT,
            }
        )
    jobs_file = os.path.join(root, "jobs.json")
    results_file = os.path.join(root, "results.json")
    with open(jobs_file, "w") as f:
        json.dump(jobs, f)
    proc = processes.run_python(
        ["-m", "tests.export.hostile_child", jobs_file, results_file],
        timeout=ROW_TIMEOUT * 3,
    )
    results = {}
    if os.path.exists(results_file):
        with open(results_file) as f:
            results = json.load(f)
    for row in CLI_ROWS:
        top, before, work, out = sandboxes[row.id]
        sandboxes[row.id] = (top, before, sandbox.snapshot(top), work, out)
    return results, sandboxes, proc


@pytest.mark.parametrize("row", CLI_ROWS, ids=[r.id for r in CLI_ROWS])
def test_cli_row(row, cli_results, assets):
    results, sandboxes, proc = cli_results
    assert row.id in results, (
        f"the child stopped before {row.id} (exit {proc.returncode}): "
        f"{proc.stderr[-3000:]}"
    )
    result = results[row.id]
    message = result["stderr"] + result["stdout"]
    assert result["code"] == row.expected, message[-3000:]
    assert row.fragment in message, message[-3000:]
    if row.expected == 2:
        lines = result["stderr"].strip().splitlines()
        assert lines[-1].startswith("keras-aff: error: "), lines
        assert "Traceback" not in message
    if row.expected == 1:
        assert result["stderr"].startswith("keras-aff: error: ")
        assert "Traceback" not in message
    top, before, after, work, out = sandboxes[row.id]
    _check_invariant(row, top, before, after, work, out, assets)


# ---------------------------------------------------------------------------
# Exporter rows: in this process
# ---------------------------------------------------------------------------
API_ROWS = cases.api_rows()


def _call(fmt, model, out):
    if fmt == "saved_model":
        return export.export_saved_model(model, out, standalone_check=False)
    if fmt == "litert":
        return export.export_litert(model, out)
    if fmt == "onnx":
        return export.export_onnx(model, out)
    from keras_aff import qat

    # The path is checked before the model: no model is needed to refuse.
    return qat.convert_to_int8_litert(None, None, path=out)


@pytest.mark.parametrize("row", API_ROWS, ids=[r.id for r in API_ROWS])
def test_api_row(row, assets, tmp_path, monkeypatch):
    root = str(tmp_path)
    work, _, out = sandbox.make_sandbox(root, row, assets)
    top = os.path.join(root, row.id)
    before = sandbox.snapshot(top)
    monkeypatch.chdir(work)
    if row.expected == cases.OK:
        report = _call(row.fmt, assets["model_object"], out)
        assert report.path == out
    else:
        with pytest.raises(ValueError) as info:
            _call(row.fmt, assets["model_object"], out)
        assert type(info.value).__name__ == row.expected
        assert row.fragment in str(info.value)
        assert f"Received: path={out!r}" in str(info.value)
    _check_invariant(row, top, before, sandbox.snapshot(top), work, out, assets)


# ---------------------------------------------------------------------------
# Inputs of the Python API that are FIFOs or devices: refused from a stat
# ---------------------------------------------------------------------------
class _Watchdog:
    """Raises TimeoutError in this process after `seconds` (a blocking
    open() of a FIFO is interrupted), so a regression fails, not hangs."""

    def __init__(self, seconds=20):
        self.seconds = seconds

    def __enter__(self):
        def fire(signum, frame):
            raise TimeoutError("blocked on a FIFO")

        self.previous = signal.signal(signal.SIGALRM, fire)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)
        return False


@pytest.mark.skipif(sys.platform == "win32", reason="no FIFOs on Windows")
def test_api_inputs_that_are_fifos_or_devices(tmp_path):
    from keras_aff import interop
    from keras_aff.models._setup import check_weights

    fifo = tmp_path / "w.params"
    os.mkfifo(fifo)
    with _Watchdog():
        with pytest.raises(ValueError, match="is a FIFO, not a regular file"):
            interop.read_mxnet_params(fifo)
        assert not interop.mxnet_format.is_mxnet_params(fifo)
        with pytest.raises(ValueError, match="is a FIFO, not a regular file"):
            check_weights(str(fifo))  # the backbones' `weights=`
        with pytest.raises(ValueError, match="it is a FIFO, not a regular"):
            export.load_artifact(fifo)
        with pytest.raises(ValueError, match="character device, not a reg"):
            interop.read_mxnet_params("/dev/zero")  # would never end
