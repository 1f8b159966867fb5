"""benchmarks/models.py runs and writes the documented JSON (a 32x32 batch
of one and one repeat: no timing is asserted)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_models_benchmark_smoke(tmp_path):
    out = tmp_path / "models.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "models.py"),
            "--size=32",
            "--batch=1",
            "--repeats=1",
            "--warmup=0",
            f"--out={out}",
        ],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout) == report
    assert report["backend"] == "tensorflow"
    assert report["dtype_policy"] == "float32"
    assert list(report["modes"]) == ["graph", "xla"]
    assert report["batch"] == 1 and report["image_size"] == 32
    results = report["results"]
    # The README's AFF-ResNet-50 count (total, BN statistics included); the
    # addition baseline is the same network without the fusion weights.
    assert results["aff"]["params"] == 30_478_664
    assert results["add"]["params"] < results["aff"]["params"]
    for fusion in ("aff", "add"):
        for mode in ("graph", "xla"):
            timing = results[fusion][mode]
            assert timing["images_per_s"] > 0
            fastest = timing["min_ms_per_batch"]
            assert 0 < fastest <= timing["median_ms_per_batch"]
    ratios = report["throughput_ratio_aff_over_add"]
    assert list(ratios) == ["graph", "xla"]
    assert all(r > 0 for r in ratios.values())


def test_models_benchmark_rejects_bad_arguments():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "models.py"), "--size=8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Expected --batch >= 1, --size >= 32" in proc.stderr
    assert "size=8" in proc.stderr
