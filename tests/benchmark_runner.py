"""Runs a script of `benchmarks/` in a subprocess and returns its JSON
report (shared by the benchmark smoke tests)."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_script(name, *flags, timeout=300, pythonpath=None):
    """`python benchmarks/<name> *flags`, with `pythonpath` (a folder)
    searched first when given; returns the CompletedProcess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(pythonpath)] + [p for p in [env.get("PYTHONPATH")] if p]
        )
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_benchmark(name, tmp_path, *flags, timeout=300):
    """Runs the benchmark with `--out`, asserts it succeeded and printed
    the JSON it wrote, and returns that report."""
    out = tmp_path / "report.json"
    proc = run_script(name, *flags, f"--out={out}", timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout) == report
    return report
