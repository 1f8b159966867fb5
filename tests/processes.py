"""Python in a fresh process, for the tests that need one: a clean import
state, another Keras backend, a script of `examples/` or `benchmarks/`,
the `keras-aff` command. Every such test runs its child through here, so
each child gets the same environment and the same time-out handling.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def environment(backend=None, pythonpath=(), drop=()):
    """The child's environment: this session's, with TensorFlow's info log
    quiet, `pythonpath` folders and then this checkout searched first,
    `KERAS_BACKEND=backend` (None: inherited) and the variables named in
    `drop` removed."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    rest = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
    folders = [str(p) for p in pythonpath] + [str(ROOT)] + rest
    env["PYTHONPATH"] = os.pathsep.join(folders)
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    for name in drop:
        env.pop(name, None)
    return env


def start(argv, env=None, cwd=None):
    """Starts `argv` in a process group of its own (text pipes for stdout
    and stderr); end it with `kill_group`."""
    return subprocess.Popen(
        [str(a) for a in argv],
        cwd=cwd,
        env=environment() if env is None else env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_group(proc):
    """Kills the process group of `proc` (from `start`) if any of it is
    still running."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_command(argv, env=None, cwd=None, timeout=300):
    """Runs `argv` through `start` and returns the `CompletedProcess`. On
    a time-out the whole group is killed (a launcher's workers too) and
    the test fails with the tail of stderr; no process is left behind
    either way."""
    proc = start(argv, env, cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(
            f"timed out after {timeout} s: {argv}\n{err[-3000:]}"
        ) from None
    finally:
        kill_group(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def run_python(args, env=None, cwd=None, timeout=300):
    """`python *args` (e.g. `["-c", code]` or `[script, *flags]`) through
    `run_command`."""
    return run_command([sys.executable, *args], env, cwd, timeout)


def succeeded(proc):
    """Asserts that the child exited with 0 (showing its output's tail
    when not) and returns it."""
    command = " ".join(str(a) for a in proc.args)[:300]
    assert proc.returncode == 0, (
        f"{command}: exit {proc.returncode}\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def last_json(proc):
    """The JSON value on the child's last line of output."""
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_script(name, *flags, timeout=300, pythonpath=()):
    """`python benchmarks/<name> *flags`, with the `pythonpath` folders
    searched first; returns the CompletedProcess."""
    return run_python(
        [ROOT / "benchmarks" / name, *flags],
        env=environment(pythonpath=pythonpath),
        timeout=timeout,
    )


def run_benchmark(name, tmp_path, *flags, timeout=300):
    """Runs the benchmark with `--out`, asserts it succeeded and printed
    the JSON it wrote, and returns that report."""
    out = tmp_path / "report.json"
    proc = succeeded(run_script(name, *flags, f"--out={out}", timeout=timeout))
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout) == report
    return report
