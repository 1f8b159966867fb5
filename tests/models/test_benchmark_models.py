"""benchmarks/models.py runs and writes the documented JSON (a 32x32 batch
of one and one repeat: no timing is asserted)."""

import pytest

from tests.processes import run_benchmark
from tests.processes import run_script


@pytest.mark.slow
def test_models_benchmark_smoke(tmp_path):
    report = run_benchmark(
        "models.py",
        tmp_path,
        "--size=32",
        "--batch=1",
        "--repeats=1",
        "--warmup=0",
        timeout=600,
    )
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
    proc = run_script("models.py", "--size=8", timeout=120)
    assert proc.returncode == 2
    assert "Expected --batch >= 1, --size >= 32" in proc.stderr
    assert "size=8" in proc.stderr
