"""Where AFF's time goes under XLA on a CPU: pieces and tensor passes.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

AFF (inference, and its training step) is compared with its matmuls on the
TensorFlow backend with `tf.function(jit_compile=True)`. For every timed
function the script also reads XLA's optimized HLO and counts the
full-size tensor passes: how many times a tensor of the input's size is
read or written by the top-level ops (fusions, dots, reductions), which
is what a memory-bound CPU pays for. The pieces of AFF's inference graph
are timed on their own:

- `add+mean`: s = x + y and its spatial mean (one fusion writes s);
- `dot1+bn+relu`: the first 1x1 conv (C -> c) with its BN and ReLU;
- `dot2`: the second 1x1 conv (c -> C), which writes a full tensor;
- `epilogue`: BN, + global term, sigmoid and the blend, reading the
  second conv's output, x and y and writing the output.

Timed calls are interleaved round-robin; medians and minima are reported.

Example:

    python benchmarks/profile_cpu.py --out benchmarks/results/profile_cpu.json
"""

import argparse
import re
import statistics
import sys
import time

import _bench
import numpy as np


def functions(shape, reduction_ratio):
    """`{name: (tf.function, args)}`, all with jit_compile=True."""
    import tensorflow as tf

    from keras_aff.layers import AFF

    channels = shape[-1]
    inter = channels // reduction_ratio
    rng = np.random.default_rng(0)

    def const(*s):
        return tf.constant(rng.normal(size=s).astype("float32"))

    x, y, cot = const(*shape), const(*shape), const(*shape)
    w1, w2 = const(channels, inter), const(inter, channels)
    w1v, w2v = tf.Variable(w1), tf.Variable(w2)
    b1, b2, g = const(inter), const(channels), const(shape[0], 1, 1, channels)
    s = x + y
    z1 = tf.nn.relu(tf.einsum("bhwc,cd->bhwd", s, w1))
    z2 = tf.einsum("bhwd,dc->bhwc", z1, w2)
    aff = AFF(reduction_ratio=reduction_ratio)
    aff.build([shape, shape])

    def mm(a, u, v):
        return tf.einsum("bhwd,dc->bhwc", tf.einsum("bhwc,cd->bhwd", a, u), v)

    def grads(fn, weights):
        def step(a, b, c):
            with tf.GradientTape() as tape:
                tape.watch([a, b])
                loss = tf.reduce_sum(fn(a, b) * c)
            return tape.gradient(loss, [a, b, *weights])

        return step

    def blend(z, a, b):
        return b + tf.sigmoid(z * 1.1 + b2 + g) * (a - b)

    table = {
        "copy (-x)": (lambda a: -a, (x,)),
        "x + y": (lambda a, b: a + b, (x, y)),
        "two matmuls": (lambda a: mm(a, w1, w2), (x,)),
        "AFF": (lambda a, b: aff([a, b], training=False), (x, y)),
        "AFF: add+mean": (
            lambda a, b: (a + b, tf.reduce_mean(a + b, [1, 2])),
            (x, y),
        ),
        "AFF: dot1+bn+relu": (
            lambda t: tf.nn.relu(tf.einsum("bhwc,cd->bhwd", t, w1) + b1),
            (s,),
        ),
        "AFF: dot2": (lambda t: tf.einsum("bhwd,dc->bhwc", t, w2), (z1,)),
        "AFF: epilogue": (blend, (z2, x, y)),
        "six matmuls (training)": (
            grads(lambda a, b: mm(a, w1v, w2v), [w1v, w2v]),
            (x, y, cot),
        ),
        "AFF training step": (
            grads(
                lambda a, b: aff([a, b], training=True),
                [v.value for v in aff.trainable_variables],
            ),
            (x, y, cot),
        ),
    }
    return {
        name: (tf.function(fn, jit_compile=True), args)
        for name, (fn, args) in table.items()
    }


_DEF = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.+?) ([\w\-]+)\((.*)$")
_ALIASES = ("parameter", "bitcast", "get-tuple-element", "tuple", "constant")


def _elements(type_text):
    """Element counts of the f32 arrays in an HLO type (a tuple: each)."""
    return [
        int(np.prod([int(d) for d in dims.split(",")]))
        for dims in re.findall(r"f32\[([\d,]+)\]", type_text)
    ]


def full_size_passes(fn, args, shape):
    """Full-size tensors read or written by the top-level ops (fusions,
    dots, library calls) of the optimized HLO's entry computation; views
    (bitcasts, tuple elements) and parameters move no data."""
    hlo = fn.experimental_get_compiler_ir(*args)(stage="optimized_hlo")
    entry = hlo[hlo.index("\nENTRY ") :].splitlines()[1:]
    size = int(np.prod(shape))
    sizes, passes = {}, 0
    for line in entry:
        match = _DEF.match(line.split(", metadata")[0])
        if not match:
            continue
        name, type_text, op, rest = match.groups()
        sizes[name] = _elements(type_text)
        if op in _ALIASES:
            continue
        operands = re.findall(r"%([\w.\-]+)", rest.split("), ")[0])
        reads = [n for o in operands for n in sizes.get(o, [])]
        passes += sum(n == size for n in reads + sizes[name])
    return passes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="8,56,56,256")
    parser.add_argument("--reduction-ratio", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default=None, help="also write JSON here")
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split(","))
    _bench.select_backend(parser, "tensorflow", "float32")
    fns = functions(shape, args.reduction_ratio)
    passes = {}
    for name, (fn, fargs) in fns.items():
        fn(*fargs)
        passes[name] = full_size_passes(fn, fargs, shape)
    times = {name: [] for name in fns}
    for _ in range(args.repeats):
        for name, (fn, fargs) in fns.items():
            start = time.perf_counter()
            out = fn(*fargs)
            flat = out if isinstance(out, (list, tuple)) else [out]
            _ = [t.shape for t in flat if t is not None]
            times[name].append((time.perf_counter() - start) * 1e3)
    results = {
        name: {
            "median_ms": round(statistics.median(ts), 3),
            "min_ms": round(min(ts), 3),
            "full_size_passes": passes[name],
        }
        for name, ts in times.items()
    }
    med = {name: r["median_ms"] for name, r in results.items()}
    versions, machine = _bench.versions_and_machine()
    report = {
        "benchmark": "AFF under XLA on a CPU: pieces and full-size passes",
        "command": "python benchmarks/profile_cpu.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "shape": list(shape),
        "reduction_ratio": args.reduction_ratio,
        "repeats": args.repeats,
        "versions": versions,
        "machine": machine,
        "results": results,
        "ratios": {
            "AFF / two matmuls": round(med["AFF"] / med["two matmuls"], 2),
            "AFF training step / six matmuls": round(
                med["AFF training step"] / med["six matmuls (training)"], 2
            ),
            "AFF pieces sum / AFF": round(
                sum(v for k, v in med.items() if k.startswith("AFF: "))
                / med["AFF"],
                2,
            ),
        },
    }
    _bench.write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
