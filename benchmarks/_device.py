"""Device-time measurement on JAX (private to benchmarks/gpu.py).

- `chain(step, k)`: one jitted function that applies `step` k times, each
  application feeding the next (a data dependency) behind an
  `optimization_barrier`, so XLA can neither skip nor merge applications;
  its run time divided by k is the device time of one application, with
  one dispatch for k applications.
- `lower_all(jobs)`, `compile_all(jobs)`: traces every job, then lets XLA
  compile them in a thread pool (compilation dominates a run with many
  ResNet-50 steps).
- `measure(job)`: median wall time per application over repeated units
  (k applications, then one wait), inputs already on the device; see
  `Job.dispatch` for the three ways a unit applies its step k times.
- `profile_device_ms(job)`: the same calls under `jax.profiler`, with the
  device's busy time read back from the trace (union of its kernel
  intervals): the check that the timed figure is device time.
- `bytes_per_application(job)`: "bytes accessed" of XLA's
  `cost_analysis()` of the compiled unit, per application.
"""

import concurrent.futures
import dataclasses
import glob
import gzip
import json
import os
import statistics
import tempfile
import time

import jax
from jax import lax


@dataclasses.dataclass
class Job:
    """One timed unit of `fn(*args)` (jitted), by `dispatch`: "chain", one
    call that applies the step `k` times (`chain`); "repeat", `k` calls on
    the same arguments; "thread", `k` calls each taking the previous
    call's output as its first argument. One wait at the end."""

    key: tuple
    fn: object
    args: tuple
    k: int
    meta: dict
    dispatch: str = "chain"
    lowered: object = None
    compiled: object = None
    error: str = None


def chain(step, k):
    """`state -> state` applied k times in one jitted function; `step`
    takes and returns the carried state (a pytree), `*rest` is constant."""

    def run(state, *rest):
        for _ in range(k):
            state = lax.optimization_barrier(step(state, *rest))
        return state

    return jax.jit(run)


def _failed(job, e):
    job.error = f"{type(e).__name__}: {str(e)[:400]}"


def lower_all(jobs):
    """Traces and lowers every job, one at a time (tracing runs Keras'
    Python code); returns the wall time in seconds."""
    start = time.perf_counter()
    for job in jobs:
        try:
            job.lowered = job.fn.lower(*job.args)
        except Exception as e:  # recorded in the report, the run goes on
            _failed(job, e)
    return time.perf_counter() - start


def _compile(job):
    if job.error is None:
        try:
            job.compiled = job.lowered.compile()
        except Exception as e:
            _failed(job, e)
    return job


def compile_all(jobs, workers=None):
    """XLA-compiles every lowered job, `workers` at a time (compilation
    releases the GIL); returns the wall time in seconds."""
    start = time.perf_counter()
    workers = workers or min(len(jobs), os.cpu_count() or 1) or 1
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(_compile, jobs))
    return time.perf_counter() - start


def _block(out):
    jax.block_until_ready(out)


def _run(job):
    """One timed unit of `job`: k applications, then one wait."""
    if job.dispatch == "chain":
        _block(job.compiled(*job.args))
    elif job.dispatch == "repeat":
        for _ in range(job.k):
            out = job.compiled(*job.args)
        _block(out)
    else:
        state, rest = job.args[0], job.args[1:]
        for _ in range(job.k):
            state = job.compiled(state, *rest)
        _block(state)


def bytes_per_application(job):
    """XLA's "bytes accessed" of the compiled unit, per application of the
    step, or None where the backend has no cost analysis."""
    try:
        cost = job.compiled.cost_analysis()
    except Exception:  # a backend without cost analysis
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    value = (cost or {}).get("bytes accessed")
    if value is None:
        return None
    return float(value) / (job.k if job.dispatch == "chain" else 1)


def measure(job, repeats):
    """`(median_ms, min_ms)` per application of the step, over `repeats`
    timed units (each k applications); one unit first as a warm-up."""
    _run(job)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _run(job)
        times.append((time.perf_counter() - start) * 1e3 / job.k)
    return statistics.median(times), min(times)


def _union_us(intervals):
    total, end = 0.0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def _device_busy_us(trace_dir):
    """Busy time of the GPU devices in a perfetto trace, or None when the
    trace has no device process (a CPU run)."""
    files = glob.glob(
        os.path.join(trace_dir, "**", "perfetto_trace.json.gz"),
        recursive=True,
    )
    if not files:
        return None, "no perfetto trace written"
    with gzip.open(files[0], "rt") as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    devices = {
        e["pid"]
        for e in events
        if e.get("ph") == "M"
        and e.get("name") == "process_name"
        and "/device:GPU" in str(e.get("args", {}).get("name", ""))
    }
    if not devices:
        return None, "no GPU device in the trace (a CPU run)"
    spans = [
        (float(e["ts"]), float(e["ts"]) + float(e["dur"]))
        for e in events
        if e.get("ph") == "X" and e.get("pid") in devices and "dur" in e
    ]
    return _union_us(spans), f"{len(spans)} device events"


def profile_device_ms(job, units=3):
    """Device busy ms per application of `job`'s step from a
    `jax.profiler` trace of `units` timed units, or None with the
    reason."""
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
        try:
            for _ in range(units):
                _run(job)
        finally:
            jax.profiler.stop_trace()
        busy_us, note = _device_busy_us(trace_dir)
    if busy_us is None:
        return None, note
    return busy_us / 1e3 / (units * job.k), note
