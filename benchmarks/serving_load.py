"""Serving under load: concurrent requests to an exported SavedModel and to
LiteRT, checked against single-threaded results, with process memory.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Exports the demo network (`keras_aff.demo.build_demo_model`, random
weights) as a SavedModel and a float32 LiteRT file, then for each format:

1. draws `--threads x --requests` requests (batch sizes 1-16, random
   images; seeded) and runs each once on a single thread: the reference;
2. serves them from `--threads` threads: the SavedModel is loaded ONCE and
   shared by every thread (its serving signature is thread-safe); LiteRT
   gets one interpreter per thread (an interpreter is NOT thread-safe);
3. checks that every output equals its reference, counts errors, and reads
   the process's resident memory after the first `--warmup-requests`
   requests and after the last one.

    python benchmarks/serving_load.py --threads 8 --requests 250 \\
        --out benchmarks/results/serving_load_cpu.json

The CI test (tests/export/test_serving_load.py) runs the same script at 8
threads with fewer requests per thread. Loopback only: no network at all.
"""

import argparse
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench  # noqa: E402

FORMATS = ("saved_model", "litert")
MAX_BATCH = 16


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--requests", type=int, default=250, help="per thread")
    p.add_argument("--warmup-requests", type=int, default=50)
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds")
    p.add_argument("--out", help="write the JSON report here too")
    args = p.parse_args(argv)
    formats = args.formats.split(",")
    if not set(formats) <= set(FORMATS) or args.threads < 1:
        p.error(f"Expected --formats from {FORMATS} and --threads >= 1")
    args.formats = formats
    return args


def rss_mib():
    """Resident memory of this process, in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def make_requests(n, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, MAX_BATCH + 1, size=n)
    return [rng.random((int(b), 16, 16, 1), dtype="float32") for b in sizes]


def export_demo(directory):
    from keras_aff import export
    from keras_aff.demo import build_demo_model

    model = build_demo_model()
    paths = {
        "saved_model": os.path.join(directory, "saved_model"),
        "litert": os.path.join(directory, "demo.tflite"),
    }
    export.export_saved_model(model, paths["saved_model"])
    export.export_litert(model, paths["litert"])
    return paths


def serve(open_predictor, shared, requests, args):
    """Runs `requests` from `args.threads` threads; returns the outputs
    (by request index), the errors and the memory readings."""
    per_thread = [
        list(range(t, len(requests), args.threads)) for t in range(args.threads)
    ]
    outputs, errors = [None] * len(requests), []
    done = {"count": 0, "rss_warm": None}
    lock = threading.Lock()
    deadline = time.monotonic() + args.timeout

    def worker(indices):
        predictor = shared or open_predictor()
        for i in indices:
            if time.monotonic() > deadline:
                errors.append("time limit")
                return
            try:
                outputs[i] = predictor(requests[i])[0]
            except Exception as e:  # counted and reported
                errors.append(f"{type(e).__name__}: {e}")
            with lock:
                done["count"] += 1
                if done["count"] == args.warmup_requests:
                    done["rss_warm"] = rss_mib()

    threads = [threading.Thread(target=worker, args=(ix,)) for ix in per_thread]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0.1))
    seconds = time.perf_counter() - start
    alive = sum(t.is_alive() for t in threads)
    return outputs, errors, done["rss_warm"], rss_mib(), seconds, alive


def run_format(fmt, path, requests, args):
    import numpy as np

    from keras_aff.export import load_artifact

    shared = load_artifact(path) if fmt == "saved_model" else None
    reference_runner = shared or load_artifact(path)
    reference = [reference_runner(r)[0] for r in requests]
    outputs, errors, warm, end, seconds, alive = serve(
        lambda: load_artifact(path), shared, requests, args
    )
    diffs = [
        float(np.max(np.abs(o - want)))
        for o, want in zip(outputs, reference)
        if o is not None
    ]
    return {
        "predictors": "one, shared" if shared else "one per thread",
        "requests": len(requests),
        "answered": len(diffs),
        "errors": len(errors),
        "first_errors": errors[:3],
        "threads_still_running": alive,
        "outputs_equal": sum(d == 0.0 for d in diffs),
        "max_abs_diff": max(diffs) if diffs else None,
        "seconds": round(seconds, 2),
        "requests_per_second": round(len(diffs) / seconds, 1),
        "rss_mib_after_warmup": round(warm, 1) if warm else None,
        "rss_mib_at_end": round(end, 1),
        "rss_growth_mib": round(end - warm, 1) if warm else None,
    }


def main(argv=None):
    args = parse_args(argv)
    parser = argparse.ArgumentParser()
    _bench.select_backend(parser, "tensorflow", "float32")
    import keras

    keras.utils.set_random_seed(args.seed)
    requests = make_requests(args.threads * args.requests, args.seed)
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        paths = export_demo(directory)
        for fmt in args.formats:
            results[fmt] = run_format(fmt, paths[fmt], requests, args)
    versions, machine = _bench.versions_and_machine()
    report = {
        "benchmark": "serving_load",
        "threads": args.threads,
        "requests_per_thread": args.requests,
        "batch_sizes": [1, MAX_BATCH],
        "warmup_requests": args.warmup_requests,
        "results": results,
        "versions": versions,
        "machine": machine,
    }
    _bench.write_report(report, args.out)
    ok = all(
        r["errors"] == 0 and r["answered"] == r["requests"]
        for r in results.values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
