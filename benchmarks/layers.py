"""Forward latency of MSCAM, AFF and IAFF against same-run baselines.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Median latency (ms) of one forward pass (`training=False`) of each layer.
Measured in the same run, as baselines: `x + y` (what AFF replaces) and the
two 1x1-conv matmuls of one branch alone (`einsum` C -> c, then c -> C).
Ratios are layer / `x + y` in the same mode. Prints JSON (and writes it
with `--out`).

Backends and modes (`--backend`, set before Keras is imported):

- `tensorflow` (default): eager (a plain layer call), graph
  (`tf.function`) and XLA (`tf.function(jit_compile=True)`).
- `jax`: eager (a plain layer call, op by op) and jit (`jax.jit` of
  `layer.stateless_call`, the variables passed as arguments, not baked in
  as constants). Every timed call waits for its result
  (`block_until_ready`), so GPU timings are real.

`--dtype-policy mixed_bfloat16` (or `mixed_float16`) runs the layers and
the baselines in that compute dtype.

Example:

    python benchmarks/layers.py                       # (8, 56, 56, 256), r=4
    python benchmarks/layers.py --repeats 20 --out benchmarks/results/x.json
    python benchmarks/layers.py --shape 2,8,8,16 --repeats 1 --warmup 0
    python benchmarks/layers.py --backend jax --dtype-policy mixed_bfloat16
    python benchmarks/layers.py --folded          # + the BN-folded layers
    python benchmarks/layers.py --training        # AFF's training step

`--training` times AFF's training step (forward with `training=True`,
gradients of `sum(out * cot)` with respect to the weights and both
inputs) against the same for the two 1x1 matmuls alone (six matmuls);
`--folded` adds the layers with their BatchNorms folded
(`keras_aff.optimize.fold_batchnorm`). Inference reports give the ratios
to `x + y` and to the two matmuls.
"""

import argparse
import statistics
import sys
import time

import _bench
import numpy as np

BACKEND_MODES = {
    "tensorflow": ("eager", "graph", "xla"),
    "jax": ("eager", "jit"),
}
MODE_DOCS = {
    "eager": "layer call",
    "graph": "tf.function",
    "xla": "tf.function(jit_compile=True)",
    "jit": "jax.jit(layer.stateless_call), variables as arguments",
}
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


def _sync(out):
    """Waits until `out` is computed (without copying it to the host)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        jax.block_until_ready(out)
        return
    while isinstance(out, (list, tuple)):
        out = out[-1]
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        tf.test.experimental.sync_devices()
    else:
        # TF CPU ops run synchronously; reading the shape touches the
        # result without copying it.
        _ = out.shape


def _call_ms(fn, args):
    start = time.perf_counter()
    _sync(fn(*args))
    return (time.perf_counter() - start) * 1e3


def compile_mode(fn, layer, mode):
    """`fn(*args)` as called in one mode. With `layer` given, `fn` is
    `fn(layer, *args)`; the jax jit mode passes the layer's variables as
    arguments through `stateless_call`."""
    if layer is None:
        plain = fn
    else:

        def plain(*args):
            return fn(layer, *args)

    if mode == "eager":
        return plain
    if mode in ("graph", "xla"):
        import tensorflow as tf

        return tf.function(plain, jit_compile=(mode == "xla"))
    import jax

    if layer is None:
        return jax.jit(plain)
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    @jax.jit
    def stateless(trainable, non_trainable, *args):
        inputs = list(args) if len(args) > 1 else args[0]
        out, _ = layer.stateless_call(
            trainable, non_trainable, inputs, training=False
        )
        return out

    return lambda *args: stateless(trainable, non_trainable, *args)


def workloads(shape, reduction_ratio, seed=0, folded=False):
    """`{name: (fn, layer, args)}`: the baselines and the three layers, in
    the global dtype policy's compute dtype; with `folded`, also the layers
    with their BatchNorms folded (`use_batch_norm=False`, as
    `keras_aff.optimize.fold_batchnorm` returns them)."""
    import keras

    from keras_aff.layers import AFF
    from keras_aff.layers import IAFF
    from keras_aff.layers import MSCAM

    dtype = keras.config.dtype_policy().compute_dtype
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    inter = channels // reduction_ratio

    def tensor(size):
        return keras.ops.convert_to_tensor(
            rng.normal(size=size).astype("float32"), dtype=dtype
        )

    x, y = tensor(shape), tensor(shape)
    w1, w2 = tensor((channels, inter)), tensor((inter, channels))

    def add(a, b):
        return keras.ops.add(a, b)

    def conv1x1_matmuls(a):
        z = keras.ops.einsum("bhwc,cd->bhwd", a, w1)
        return keras.ops.einsum("bhwd,dc->bhwc", z, w2)

    mscam = MSCAM(reduction_ratio=reduction_ratio)
    aff = AFF(reduction_ratio=reduction_ratio)
    iaff = IAFF(reduction_ratio=reduction_ratio)
    for layer in (aff, iaff):
        layer.build([shape, shape])
    mscam.build(shape)

    def one_input(layer, a):
        return layer(a, training=False)

    def two_inputs(layer, a, b):
        return layer([a, b], training=False)

    result = {
        BASELINE: (add, None, (x, y)),
        "conv1x1_matmuls": (conv1x1_matmuls, None, (x,)),
        "MSCAM": (one_input, mscam, (x,)),
        "AFF": (two_inputs, aff, (x, y)),
        "IAFF": (two_inputs, iaff, (x, y)),
    }
    if folded:
        for name, layer in (("MSCAM", mscam), ("AFF", aff), ("IAFF", iaff)):
            fn, _, args = result[name]
            result[f"{name} folded"] = (fn, _fold(layer), args)
    return result


def _fold(layer):
    """`layer` with its BatchNorms folded into its convs, through
    `keras_aff.optimize.fold_batchnorm` on a one-layer model."""
    import keras

    from keras_aff.optimize import fold_batchnorm

    specs = [keras.Input(batch_shape=s) for s in _input_shapes(layer)]
    inputs = specs if len(specs) > 1 else specs[0]
    model = keras.Model(inputs, layer(inputs))
    return fold_batchnorm(model).layers[-1]


def _input_shapes(layer):
    shape = layer.get_build_config()["input_shape"]
    return shape if isinstance(shape[0], (list, tuple)) else [shape]


def training_workloads(shape, reduction_ratio, seed=0):
    """`{name: (fn, layer, args)}` for a training step: the layer's forward
    (`training=True`, BN batch statistics and moving-average updates) and
    the gradients of `sum(out * cot)` with respect to its weights and its
    inputs; the baseline is the same for the two 1x1 matmuls alone (their
    six matmuls: two forward, four backward)."""
    import keras

    from keras_aff.layers import AFF

    dtype = keras.config.dtype_policy().compute_dtype
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    inter = channels // reduction_ratio

    def tensor(size):
        return keras.ops.convert_to_tensor(
            rng.normal(size=size).astype("float32"), dtype=dtype
        )

    x, y, cot = tensor(shape), tensor(shape), tensor(shape)
    w1 = keras.Variable(rng.normal(size=(channels, inter)), dtype="float32")
    w2 = keras.Variable(rng.normal(size=(inter, channels)), dtype="float32")
    aff = AFF(reduction_ratio=reduction_ratio)
    aff.build([shape, shape])

    def matmuls(a, b):
        del b
        z = keras.ops.einsum("bhwc,cd->bhwd", a, w1)
        return keras.ops.einsum("bhwd,dc->bhwc", z, w2)

    def aff_call(a, b):
        return aff([a, b], training=True)

    return {
        "six_matmuls": (matmuls, [w1, w2], (x, y, cot)),
        "AFF train step": (aff_call, aff.trainable_variables, (x, y, cot)),
    }


def train_mode(fn, weights, mode):
    """A training step of `fn(a, b)` with respect to `weights`, `a` and
    `b`, compiled for `mode` (TensorFlow graph or XLA, or jax jit)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        def step(a, b, cot):
            with tf.GradientTape() as tape:
                tape.watch([a, b])
                out = fn(a, b)
                loss = tf.reduce_sum(tf.cast(out * cot, "float32"))
            targets = [a, b, *(w.value for w in weights)]
            return tape.gradient(loss, targets)

        if mode == "eager":
            return step
        return tf.function(step, jit_compile=(mode == "xla"))
    raise ValueError(
        "Expected --backend tensorflow for --training. "
        f"Received: backend={keras.backend.backend()!r}"
    )


def _first_array(out):
    """The output, or the first gradient of a training step, as float64."""
    import keras

    while isinstance(out, (list, tuple)):
        out = out[0]
    return keras.ops.convert_to_numpy(out).astype("float64")


def _prepare(items, make, modes, warmup):
    """Compiles every workload in every mode (first call timed), warms it
    up, and compares every mode's output with the first mode's."""
    fns, first, diffs = {}, {}, {}
    for name, (fn, layer, args) in items.items():
        reference = None
        for mode in modes:
            fns[name, mode] = (make(fn, layer, mode), args)
            first[name, mode] = _call_ms(*fns[name, mode])
            for _ in range(warmup):
                _call_ms(*fns[name, mode])
            out = _first_array(fns[name, mode][0](*args))
            if reference is None:
                reference = out
            else:
                diffs.setdefault(name, {})[mode] = float(
                    f"{np.max(np.abs(out - reference)):.3g}"
                )
    return fns, first, diffs


def ratios_to(results, baseline, modes):
    """`{name: {mode: median / baseline's median}}`."""
    return {
        name: {
            mode: round(
                results[name][mode]["median"]
                / results[baseline][mode]["median"],
                2,
            )
            for mode in modes
        }
        for name in results
        if name != baseline
    }


def run(
    shape, reduction_ratio, repeats, warmup, modes, training=False, folded=False
):
    """Times every workload in every mode. The first call (tracing and
    compiling included) and `warmup` more run first; then the `repeats`
    timed calls are interleaved round-robin over all workloads and modes,
    so that background load hits baselines and layers alike. With
    `training`, the workloads are training steps (`training_workloads`)."""
    if training:
        items = training_workloads(shape, reduction_ratio)
        fns, first, diffs = _prepare(items, train_mode, modes, warmup)
    else:
        items = workloads(shape, reduction_ratio, folded=folded)
        fns, first, diffs = _prepare(items, compile_mode, modes, warmup)
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
    return results, diffs


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Forward latency of MSCAM/AFF/IAFF against x + y."
    )
    parser.add_argument("--shape", type=parse_shape, default=(8, 56, 56, 256))
    parser.add_argument("--reduction-ratio", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--training",
        action="store_true",
        help="time AFF's training step against its six matmuls instead",
    )
    parser.add_argument(
        "--folded",
        action="store_true",
        help="also time the layers with their BatchNorms folded",
    )
    _bench.add_backend_arguments(parser)
    parser.add_argument("--out", default=None, help="also write JSON here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error(
            "Expected --repeats >= 1 and --warmup >= 0. "
            f"Received: repeats={args.repeats}, warmup={args.warmup}"
        )
    _bench.select_backend(parser, args.backend, args.dtype_policy)
    modes = BACKEND_MODES[args.backend]
    if args.training and args.backend != "tensorflow":
        parser.error(
            "Expected --backend tensorflow with --training. "
            f"Received: backend={args.backend!r}"
        )
    results, diffs = run(
        args.shape,
        args.reduction_ratio,
        args.repeats,
        args.warmup,
        modes,
        training=args.training,
        folded=args.folded,
    )
    versions, machine = _bench.versions_and_machine()
    report = {
        "benchmark": "forward latency, training=False, ms",
        "command": "python benchmarks/layers.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "backend": args.backend,
        "dtype_policy": args.dtype_policy,
        "versions": versions,
        "machine": machine,
        "shape": list(args.shape),
        "reduction_ratio": args.reduction_ratio,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "timing": "timed calls interleaved round-robin over workloads and "
        "modes, each waiting for its result; first_call includes tracing "
        "and compiling",
        "modes": {mode: MODE_DOCS[mode] for mode in modes},
        "results_ms": results,
        "max_abs_diff_vs_eager": diffs,
    }
    if args.training:
        report["benchmark"] = (
            "training step (forward with training=True, gradients of "
            "sum(out * cot) with respect to the weights and the inputs), ms"
        )
        report["ratio_vs_six_matmuls"] = ratios_to(
            results, "six_matmuls", modes
        )
    else:
        report["ratio_vs_x_plus_y"] = ratios_to(results, BASELINE, modes)
        report["ratio_vs_conv1x1_matmuls"] = ratios_to(
            {k: v for k, v in results.items() if k != BASELINE},
            "conv1x1_matmuls",
            modes,
        )
    _bench.write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
