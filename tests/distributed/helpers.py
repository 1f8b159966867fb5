"""Running the distributed scripts in processes of their own, bounded in
time, never leaving a process behind."""

import os
import pathlib
import signal
import socket
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "distributed_training.py"


def python_path():
    """This checkout first, then whatever the test session was given."""
    rest = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(ROOT)] + ([rest] if rest else []))


def environment():
    """The subprocesses' environment: this checkout importable, and no
    backend or device settings of the test session."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=python_path())
    env.pop("KERAS_BACKEND", None)  # each script chooses its own
    env.pop("XLA_FLAGS", None)
    return env


def free_port():
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(procs):
    """Kills every process group still running."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def run(argv, cwd, timeout=300):
    """Runs `python argv...` in its own process group; kills the whole
    group on a time-out (a launcher's workers included)."""
    env = environment()
    proc = subprocess.Popen(
        [sys.executable, *map(str, argv)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"timed out after {timeout} s:\n{err[-3000:]}"
        ) from None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.returncode, out, err


def variables(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def max_difference(a, b):
    """(largest absolute difference, its variable path) of two runs."""
    assert sorted(a) == sorted(b)
    return max((float(np.max(np.abs(a[k] - b[k]))), k) for k in a)
