"""examples/quickstart.py runs, reloads its .keras file and reports the
difference (under the backend of this test run)."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_quickstart_example(tmp_path):
    script = ROOT / "examples" / "quickstart.py"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, str(script), "--samples=256", f"--out={tmp_path}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    match = re.search(r"^max abs diff: (\S+)$", proc.stdout, re.MULTILINE)
    assert match, proc.stdout
    assert float(match.group(1)) <= 1e-6
    assert "reloaded keras_aff layers: AFF, IAFF, MSCAM" in proc.stdout
    loss = re.search(r"^loss: (\S+) -> (\S+) ", proc.stdout, re.MULTILINE)
    assert float(loss.group(2)) < float(loss.group(1))
    assert (tmp_path / "quickstart.keras").is_file()
