"""Forward latency of MSCAM, AFF and IAFF against same-run baselines.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Median latency (ms) of one forward pass (`training=False`) of each layer in
three TensorFlow modes: eager (a plain layer call), graph (`tf.function`)
and XLA (`tf.function(jit_compile=True)`). Measured in the same run, as
baselines: `x + y` (what AFF replaces) and the two 1x1-conv matmuls of one
branch alone (`einsum` C -> c, then c -> C). Ratios are layer / `x + y` in
the same mode. Prints JSON (and writes it with `--out`).

The benchmark always runs on the TensorFlow backend: it sets
`KERAS_BACKEND=tensorflow` before importing Keras, since graph and XLA are
`tf.function` modes.

Example:

    python benchmarks/layers.py                       # (8, 56, 56, 256), r=4
    python benchmarks/layers.py --repeats 20 --out benchmarks/results/x.json
    python benchmarks/layers.py --shape 2,8,8,16 --repeats 1 --warmup 0
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_aff  # noqa: E402
from keras_aff.layers import AFF  # noqa: E402
from keras_aff.layers import IAFF  # noqa: E402
from keras_aff.layers import MSCAM  # noqa: E402

MODES = ("eager", "graph", "xla")
BASELINE = "x+y"


def parse_shape(text):
    """ "8,56,56,256" -> (8, 56, 56, 256) (a rank-4 channels-last shape)."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            "Expected `--shape` as four positive integers N,H,W,C. "
            f"Received: shape={text!r}"
        )
    return shape


def compile_mode(fn, mode):
    """`fn` as called in one mode: eager, graph or XLA."""
    if mode == "eager":
        return fn
    return tf.function(fn, jit_compile=(mode == "xla"))


def _call_ms(fn, args):
    start = time.perf_counter()
    out = fn(*args)
    # TF CPU ops run synchronously; reading the shape touches the result
    # without copying it.
    _ = out.shape
    return (time.perf_counter() - start) * 1e3


def workloads(shape, reduction_ratio, seed=0):
    """`{name: (fn, args)}`: the baselines and the three layers."""
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    inter = channels // reduction_ratio
    x = tf.constant(rng.normal(size=shape).astype("float32"))
    y = tf.constant(rng.normal(size=shape).astype("float32"))
    w1 = tf.constant(rng.normal(size=(channels, inter)).astype("float32"))
    w2 = tf.constant(rng.normal(size=(inter, channels)).astype("float32"))

    def add(a, b):
        return a + b

    def conv1x1_matmuls(a):
        z = tf.einsum("bhwc,cd->bhwd", a, w1)
        return tf.einsum("bhwd,dc->bhwc", z, w2)

    mscam = MSCAM(reduction_ratio=reduction_ratio)
    aff = AFF(reduction_ratio=reduction_ratio)
    iaff = IAFF(reduction_ratio=reduction_ratio)
    for layer in (aff, iaff):
        layer.build([shape, shape])
    mscam.build(shape)
    return {
        BASELINE: (add, (x, y)),
        "conv1x1_matmuls": (conv1x1_matmuls, (x,)),
        "MSCAM": (lambda a: mscam(a, training=False), (x,)),
        "AFF": (lambda a, b: aff([a, b], training=False), (x, y)),
        "IAFF": (lambda a, b: iaff([a, b], training=False), (x, y)),
    }


def run(shape, reduction_ratio, repeats, warmup):
    """Times every workload in every mode. The first call (tracing and
    compiling included) and `warmup` more run first; then the `repeats`
    timed calls are interleaved round-robin over all workloads and modes,
    so that background load hits baselines and layers alike."""
    fns = {}
    first = {}
    for name, (fn, args) in workloads(shape, reduction_ratio).items():
        for mode in MODES:
            fns[name, mode] = (compile_mode(fn, mode), args)
            first[name, mode] = _call_ms(*fns[name, mode])
            for _ in range(warmup):
                _call_ms(*fns[name, mode])
    times = {key: [] for key in fns}
    for _ in range(repeats):
        for key, (fn, args) in fns.items():
            times[key].append(_call_ms(fn, args))
    results = {}
    for (name, mode), ts in times.items():
        results.setdefault(name, {})[mode] = {
            "median": round(statistics.median(ts), 3),
            "min": round(min(ts), 3),
            "first_call": round(first[name, mode], 3),
        }
    ratios = {
        name: {
            mode: round(
                results[name][mode]["median"]
                / results[BASELINE][mode]["median"],
                2,
            )
            for mode in MODES
        }
        for name in results
        if name != BASELINE
    }
    return results, ratios


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Forward latency of MSCAM/AFF/IAFF (TensorFlow backend)."
    )
    parser.add_argument("--shape", type=parse_shape, default=(8, 56, 56, 256))
    parser.add_argument("--reduction-ratio", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write JSON here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error(
            "Expected --repeats >= 1 and --warmup >= 0. "
            f"Received: repeats={args.repeats}, warmup={args.warmup}"
        )
    results, ratios = run(
        args.shape, args.reduction_ratio, args.repeats, args.warmup
    )
    report = {
        "benchmark": "forward latency, training=False, float32, ms",
        "command": "python benchmarks/layers.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "backend": keras.backend.backend(),
        "versions": {
            "keras_aff": keras_aff.__version__,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "python": platform.python_version(),
        },
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "gpus": len(tf.config.list_physical_devices("GPU")),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
        "shape": list(args.shape),
        "reduction_ratio": args.reduction_ratio,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "timing": "timed calls interleaved round-robin over workloads and "
        "modes; first_call includes tracing and compiling",
        "modes": {
            "eager": "layer call",
            "graph": "tf.function",
            "xla": "tf.function(jit_compile=True)",
        },
        "results_ms": results,
        "ratio_vs_x_plus_y": ratios,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
