"""benchmarks/layers.py runs and writes the documented JSON keys (a tiny
shape and one repeat: no timing is asserted)."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="benchmark measures TF graph/XLA modes",
)


def test_benchmark_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "layers.py"),
            "--shape=2,6,5,16",
            "--repeats=1",
            "--warmup=0",
            f"--out={out}",
        ],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout) == report
    assert report["backend"] == "tensorflow"
    assert report["shape"] == [2, 6, 5, 16]
    assert report["reduction_ratio"] == 4 and report["repeats"] == 1
    names = ["x+y", "conv1x1_matmuls", "MSCAM", "AFF", "IAFF"]
    assert list(report["results_ms"]) == names
    for name in names:
        for mode in ("eager", "graph", "xla"):
            timing = report["results_ms"][name][mode]
            assert set(timing) == {"median", "min", "first_call"}
            assert 0 < timing["min"] <= timing["median"]
    assert list(report["ratio_vs_x_plus_y"]) == names[1:]
    for ratios in report["ratio_vs_x_plus_y"].values():
        assert set(ratios) == {"eager", "graph", "xla"}
        assert all(r > 0 for r in ratios.values())
