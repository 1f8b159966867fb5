"""The verify-and-commit pipeline, its staging and its report: the
artifact reaches its path only when every check passed."""

import json
import os

import numpy as np
import pytest

from keras_aff.export import ExportReport
from keras_aff.export import ExportVerificationError
from keras_aff.export import checks
from keras_aff.export import pipeline
from keras_aff.export import runners
from keras_aff.export.staging import StagedPath


def test_staged_path_commits_only_on_success(tmp_path):
    target = tmp_path / "a.bin"
    with StagedPath(target) as stage:
        with open(stage.tmp, "w") as f:
            f.write("ok")
        stage.commit()
    assert target.read_text() == "ok"
    with pytest.raises(KeyError):
        with StagedPath(target) as stage:
            with open(stage.tmp, "w") as f:
                f.write("broken")
            raise KeyError("check failed")
    assert target.read_text() == "ok"  # the old file is untouched
    assert os.listdir(tmp_path) == ["a.bin"]


def test_staged_path_none_keeps_nothing():
    with StagedPath(None) as stage:
        with open(stage.tmp, "w") as f:
            f.write("checked only")
        scratch = os.path.dirname(stage.tmp)
        stage.commit()
        assert stage.path is None
    assert not os.path.exists(scratch)


class _Doubler(runners.Runner):
    """A stand-in artifact: a file holding a factor; runs x -> factor * x."""

    format = "fake"

    def __init__(self, path):
        with open(path) as f:
            self.factor = float(f.read())
        self.input_names = ["x"]
        self.inputs = {"x": {"shape": [None, 3], "dtype": "float32"}}
        self.outputs = {"output_0": {"shape": [None, 3], "dtype": "float32"}}

    def _run(self, feed):
        return [self.factor * feed["x"]]


def _artifact(factor, notes=None):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(str(factor))
        return {"ops": {"MUL": 1}}

    return pipeline.Artifact(
        format="fake",
        label="The fake model",
        write=write,
        open_runner=_Doubler,
        notes=notes if notes is not None else [],
        after_checks=lambda runner: {"xnnpack": None},
    )


def _checks():
    x = np.arange(12, dtype="float32").reshape(4, 3) / 10.0
    return pipeline.batch_checks([x], [2.0 * x])


def test_pipeline_commits_a_verified_artifact(tmp_path):
    path = tmp_path / "sub" / "model.fake"  # the parent is created
    report = pipeline.verify_and_commit(path, _artifact(2.0, ["n"]), _checks())
    assert path.read_text() == "2.0"
    assert os.listdir(path.parent) == ["model.fake"]
    assert report.path == str(path) and report.size_bytes == 3
    assert report.checked == ["batch 4", "batch 1"]
    assert report.num_samples == 4 and report.notes == ["n"]
    assert report.max_abs_error == 0.0
    assert report.tolerance == pytest.approx(1e-4 * 2.2)  # s = 2.2
    assert report.output_scale == pytest.approx(2.2)
    assert report.output_range == pytest.approx(2.2)
    assert report.ops == {"MUL": 1} and report.latency_ms > 0


def test_pipeline_leaves_nothing_after_a_failed_check(tmp_path):
    path = tmp_path / "model.fake"
    with pytest.raises(
        ExportVerificationError, match=r"The fake model .* on batch 4"
    ):
        pipeline.verify_and_commit(path, _artifact(2.001), _checks())
    assert os.listdir(tmp_path) == []
    # An artifact already at the path survives a failed export.
    path.write_text("previous")
    with pytest.raises(ExportVerificationError):
        pipeline.verify_and_commit(path, _artifact(3.0), _checks())
    assert os.listdir(tmp_path) == ["model.fake"]
    assert path.read_text() == "previous"


def test_pipeline_runs_custom_checks_and_policy(tmp_path):
    found = _checks()
    x = found[0].inputs[0]
    calls = []

    def elsewhere(runner, inputs):
        calls.append(len(inputs[0]))
        return runner(inputs)

    found.append(pipeline.Check("elsewhere", [x], [2.0 * x], run=elsewhere))
    artifact = _artifact(2.001)
    artifact.policy = checks.Policy(atol=0.01)
    report = pipeline.verify_and_commit(None, artifact, found)
    assert calls == [4] and report.checked[-1] == "elsewhere"
    assert report.path is None and report.tolerance == 0.01
    assert os.listdir(tmp_path) == []


def _report(**extra):
    return ExportReport(
        format="litert",
        path="m.tflite",
        size_bytes=1234,
        quantization="int8",
        ops={"CONV_2D": 2},
        inputs={"image": {"shape": [None, 8], "dtype": "int8"}},
        outputs={"output_0": {"shape": [None, 2], "dtype": "int8"}},
        max_abs_error=0.01,
        mean_abs_error=0.001,
        tolerance=0.1,
        output_scale=1.0,
        top1_agreement=0.99,
        num_samples=10,
        checked=["batch 10"],
        latency_ms=0.5,
        **extra,
    )


def test_report_to_dict_and_summary():
    report = _report()
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["ops"] == {"CONV_2D": 2} and data["notes"] == []
    assert report.summary().startswith("litert (int8): 1,234 B")


def test_report_answers_the_old_qat_keys():
    report = _report(fully_int8=True, float_islands=[], xnnpack=True)
    assert report["fully_int8"] is True and report["float_islands"] == []
    assert report["max_abs_error"] == 0.01 and report["ops"] == report.ops
    assert report["tolerance_abs"] == report["tolerance"] == 0.1
    assert report["input_dtypes"] == report["output_dtypes"] == ["int8"]
    assert "xnnpack" in report and "output_step" in report
    assert report.get("nothing", "default") == "default"
    with pytest.raises(KeyError):
        report["nothing"]
