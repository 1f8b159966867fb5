"""benchmarks/layers.py runs and writes the documented JSON keys (a tiny
shape and one repeat: no timing is asserted).

The script selects its own backend, so each test runs under the CI backend
it measures: the TensorFlow modes in the TensorFlow run, the JAX modes in
the JAX run.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAMES = ["x+y", "conv1x1_matmuls", "MSCAM", "AFF", "IAFF"]


def run_benchmark(tmp_path, *flags):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "layers.py"),
            "--shape=2,6,5,16",
            "--repeats=1",
            "--warmup=0",
            f"--out={out}",
            *flags,
        ],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout) == report
    return report


def check_report(report, backend, modes, dtype_policy, diff_tol):
    assert report["backend"] == backend
    assert report["dtype_policy"] == dtype_policy
    assert report["shape"] == [2, 6, 5, 16]
    assert report["reduction_ratio"] == 4 and report["repeats"] == 1
    assert list(report["modes"]) == modes
    assert list(report["results_ms"]) == NAMES
    for name in NAMES:
        for mode in modes:
            timing = report["results_ms"][name][mode]
            assert set(timing) == {"median", "min", "first_call"}
            assert 0 < timing["min"] <= timing["median"]
    assert list(report["ratio_vs_x_plus_y"]) == NAMES[1:]
    for ratios in report["ratio_vs_x_plus_y"].values():
        assert list(ratios) == modes
        assert all(r > 0 for r in ratios.values())
    # Every compiled mode computes what the eager call computes.
    assert list(report["max_abs_diff_vs_eager"]) == NAMES
    for diffs in report["max_abs_diff_vs_eager"].values():
        assert list(diffs) == modes[1:]
        assert all(0 <= d <= diff_tol for d in diffs.values()), diffs


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the TF graph/XLA modes are measured in the TensorFlow CI run",
)
def test_benchmark_smoke_tensorflow(tmp_path):
    report = run_benchmark(tmp_path)
    check_report(
        report, "tensorflow", ["eager", "graph", "xla"], "float32", 1e-4
    )
    assert report["versions"]["tensorflow"]


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="the jax.jit mode is measured in the JAX CI run",
)
def test_benchmark_smoke_jax_bfloat16(tmp_path):
    report = run_benchmark(
        tmp_path, "--backend=jax", "--dtype-policy=mixed_bfloat16"
    )
    # bfloat16 keeps 8 bits of mantissa: outputs near 3 differ by <= 0.1
    # between two fusions of the same ops.
    check_report(report, "jax", ["eager", "jit"], "mixed_bfloat16", 0.1)
    assert report["versions"]["jax"]


def test_benchmark_rejects_bad_arguments():
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "layers.py"),
            "--shape=2,6,16",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Expected `--shape` as four positive integers" in proc.stderr
    assert "Received: shape='2,6,16'" in proc.stderr
