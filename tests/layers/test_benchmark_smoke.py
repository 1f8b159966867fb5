"""benchmarks/layers.py runs and writes the documented JSON keys (a tiny
shape and one repeat: no timing is asserted).

The script selects its own backend, so both of its backends are checked
whatever backend the test run itself uses.
"""

import pytest

from tests.processes import run_benchmark
from tests.processes import run_script

NAMES = ["x+y", "conv1x1_matmuls", "MSCAM", "AFF", "IAFF"]
TINY = ("--shape=2,6,5,16", "--repeats=1", "--warmup=0")


@pytest.mark.parametrize(
    "backend, dtype_policy, modes, diff_tol",
    [
        ("tensorflow", "float32", ["eager", "graph", "xla"], 1e-4),
        # bfloat16 keeps 8 bits of mantissa: outputs near 3 differ by
        # <= 0.1 between two fusions of the same ops.
        ("jax", "mixed_bfloat16", ["eager", "jit"], 0.1),
    ],
)
def test_benchmark_smoke(tmp_path, backend, dtype_policy, modes, diff_tol):
    report = run_benchmark(
        "layers.py",
        tmp_path,
        *TINY,
        f"--backend={backend}",
        f"--dtype-policy={dtype_policy}",
    )
    assert report["backend"] == backend
    assert report["dtype_policy"] == dtype_policy
    assert report["versions"][backend]
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


def test_benchmark_rejects_bad_arguments():
    proc = run_script("layers.py", "--shape=2,6,16", timeout=60)
    assert proc.returncode == 2
    assert "Expected `--shape` as four positive integers" in proc.stderr
    assert "Received: shape='2,6,16'" in proc.stderr


def test_torch_parity_says_how_to_get_torch(tmp_path):
    # The parity script needs torch, which CI does not install; without it
    # the script stops with a usage error naming what to install. A torch
    # package that fails to import stands in for a missing one.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(
        "raise ImportError('no torch here')\n"
    )
    proc = run_script("torch_parity.py", timeout=120, pythonpath=[tmp_path])
    assert proc.returncode == 2
    assert "install it first (`pip install torch`)" in proc.stderr
