"""benchmarks/gpu.py in `--smoke` mode (tiny shapes, on this CPU): every
code path of the GPU harness runs and writes the documented report. No
timing is asserted; the fused kernel runs in Pallas interpret mode.

The script selects the JAX backend itself, whatever backend this test run
uses.
"""

import pytest

from tests.processes import run_benchmark
from tests.processes import run_script


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gpu")
    return run_benchmark("gpu.py", tmp_path, "--smoke", timeout=600)


def test_layers_and_baselines(smoke):
    assert smoke["smoke"] is True and smoke["versions"]["jax"]
    assert smoke["errors"] == [] and smoke["skipped"] == []
    rows = {
        (r["layer"], r["implementation"], r["mode"]): r for r in smoke["layers"]
    }
    assert set(rows) == {
        ("copy", "-", "inference"),
        ("x+y", "-", "inference"),
        ("AFF", "fused", "inference"),
        ("AFF", "fused", "train"),
        ("AFF", "xla", "inference"),
        ("AFF", "xla", "train"),
    }
    for row in rows.values():
        assert row["shape"] == [2, 6, 6, 32] and row["dtype"] == "float32"
        assert 0 < row["min_ms"] <= row["ms_per_call"]
    copy = rows["copy", "-", "inference"]
    assert copy["fraction_of_copy_minimal"] == 1.0
    aff = rows["AFF", "fused", "inference"]
    # 5 tensor passes of 2*6*6*32 float32 values
    assert aff["bytes_minimal"] == 5 * 2 * 6 * 6 * 32 * 4
    assert aff["gb_per_s_minimal"] >= 0 and aff["fraction_of_copy_minimal"] > 0
    assert rows["AFF", "xla", "inference"]["bytes_xla"] > 0
    # The fused kernel computes what keras.ops computes.
    assert smoke["max_rel_diff_fused_vs_xla"]["AFF 2x6x6x32 float32"] < 1e-5


def test_models_and_ratios(smoke):
    rows = {(r["variant"], r["mode"]): r for r in smoke["models"]}
    assert set(rows) == {
        ("add", "inference"),
        ("add", "train"),
        ("aff", "inference"),
        ("aff", "train"),
    }
    assert rows["add", "train"]["model"] == "resnet50d"
    assert rows["aff", "train"]["model"] == "aff_resnet50"
    for row in rows.values():
        assert row["batch"] == 2 and row["images_per_s"] > 0
    assert set(smoke["ratios"]) == {
        "aff/add, batch 2, float32, inference",
        "aff/add, batch 2, float32, train",
    }
    assert all(r > 0 for r in smoke["ratios"].values())


def test_profiler_check_and_table(smoke):
    check = smoke["profiler_check"]
    assert check["workload"].startswith("layer AFF")
    # On a CPU the trace has no GPU device to read busy time from.
    assert check["profiler_device_ms_per_call"] is None
    assert "CPU" in check["note"]
    assert smoke["table"][0].startswith("| layer |")
    assert any("aff/add" in line for line in smoke["table"])


def test_budget_skips_instead_of_running(tmp_path):
    report = run_benchmark(
        "gpu.py",
        tmp_path,
        "--smoke",
        "--only=layers",
        "--budget-s=0.001",
        timeout=300,
    )
    assert report["layers"] == [] and len(report["skipped"]) == 6


def test_rejects_a_bad_budget():
    proc = run_script("gpu.py", "--budget-s=0", timeout=120)
    assert proc.returncode == 2
    assert "Expected --budget-s > 0" in proc.stderr
