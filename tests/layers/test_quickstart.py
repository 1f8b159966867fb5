"""examples/quickstart.py runs, reloads its .keras file and reports the
difference (under the backend of this test run)."""

import re

from tests import processes
from tests.processes import ROOT


def test_quickstart_example(tmp_path):
    script = ROOT / "examples" / "quickstart.py"
    argv = [script, "--samples=256", f"--out={tmp_path}"]
    proc = processes.succeeded(processes.run_python(argv))
    match = re.search(r"^max abs diff: (\S+)$", proc.stdout, re.MULTILINE)
    assert match, proc.stdout
    assert float(match.group(1)) <= 1e-6
    assert "reloaded keras_aff layers: AFF, IAFF, MSCAM" in proc.stdout
    loss = re.search(r"^loss: (\S+) -> (\S+) ", proc.stdout, re.MULTILINE)
    assert float(loss.group(2)) < float(loss.group(1))
    assert (tmp_path / "quickstart.keras").is_file()
