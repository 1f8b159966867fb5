"""Running the distributed scripts in processes of their own, bounded in
time, never leaving a process behind."""

import socket

import numpy as np

from tests import processes
from tests.processes import ROOT

EXAMPLE = ROOT / "examples" / "distributed_training.py"


def environment():
    """The subprocesses' environment: this checkout importable, and no
    backend or device settings of the test session (each script chooses
    its own)."""
    return processes.environment(drop=("KERAS_BACKEND", "XLA_FLAGS"))


def free_port():
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(procs):
    """Kills every process group still running."""
    for p in procs:
        processes.kill_group(p)
        p.wait()


def run(argv, cwd, timeout=300):
    """Runs `python argv...` in its own process group; kills the whole
    group on a time-out (a launcher's workers included)."""
    proc = processes.run_python(argv, environment(), cwd, timeout)
    return proc.returncode, proc.stdout, proc.stderr


def variables(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def max_difference(a, b):
    """(largest absolute difference, its variable path) of two runs."""
    assert sorted(a) == sorted(b)
    return max((float(np.max(np.abs(a[k] - b[k]))), k) for k in a)
