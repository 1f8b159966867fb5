"""Inference throughput of AFF-ResNet-50 against the same code with addition.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`keras_aff.models.AFFResNet50()` (AFF in stages 3-4) against
`AFFResNet50(fusion="add")` (the plain ResNet-50-D from the same builder):
images per second of `model.predict_on_batch` on a batch of 8 images of
224x224 (`training=False`), with the predict function compiled without
XLA (`jit_compile=False`: a `tf.function` graph on TensorFlow, op by op on
JAX) and with XLA (`jit_compile=True`). `--backend jax` and
`--dtype-policy mixed_bfloat16` select the backend and the compute dtype.
Both models and both modes are measured in the same run, round-robin, so
the ratio AFF / add is a same-run comparison. Prints JSON (and writes it
with `--out`).

Example:

    python benchmarks/models.py                      # batch 8, 224x224
    python benchmarks/models.py --repeats 5 \\
        --out benchmarks/results/models_cpu.json
    python benchmarks/models.py --size 64 --repeats 1 --warmup 1   # smoke
    python benchmarks/models.py --backend jax --dtype-policy mixed_bfloat16
    python benchmarks/models.py --folded   # + both with BatchNorm folded
"""

import argparse
import statistics
import sys
import time

import _bench
import numpy as np

FUSIONS = ("aff", "add")
# mode name -> model.compile(jit_compile=...), per backend.
BACKEND_MODES = {
    "tensorflow": {"graph": False, "xla": True},
    "jax": {"eager": False, "jit": True},
}
MODE_DOCS = {
    "graph": "model.compile(jit_compile=False): a tf.function graph",
    "xla": "model.compile(jit_compile=True)",
    "eager": "model.compile(jit_compile=False): op by op",
    "jit": "model.compile(jit_compile=True): jax.jit",
}


def build(fusion, size):
    import keras

    from keras_aff.models import AFFResNet50

    keras.utils.set_random_seed(0)
    return AFFResNet50(fusion=fusion, input_shape=(size, size, 3))


def measure(batch, size, repeats, warmup, modes, folded=False):
    x = np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 3))
    x = x.astype("float32")
    # One model object per (fusion, mode): each keeps its own compiled
    # predict function, so the timed calls can be interleaved.
    runs = {}
    fusions = FUSIONS
    if folded:
        fusions += tuple(f"{f} folded" for f in FUSIONS)
    for fusion in fusions:
        for mode, jit in modes.items():
            model = build(fusion.split()[0], size)
            if fusion.endswith("folded"):
                from keras_aff.optimize import fold_batchnorm

                model = fold_batchnorm(model)
            model.compile(jit_compile=jit)
            start = time.perf_counter()
            model.predict_on_batch(x)
            first = time.perf_counter() - start
            for _ in range(max(warmup - 1, 0)):
                model.predict_on_batch(x)
            runs[(fusion, mode)] = {
                "model": model,
                "first_call_s": first,
                "times": [],
                "params": model.count_params(),
            }
    for _ in range(repeats):
        for run in runs.values():
            start = time.perf_counter()
            run["model"].predict_on_batch(x)
            run["times"].append(time.perf_counter() - start)
    results = {}
    for (fusion, mode), run in runs.items():
        median = statistics.median(run["times"])
        results.setdefault(fusion, {"params": run["params"]})[mode] = {
            "images_per_s": round(batch / median, 2),
            "median_ms_per_batch": round(median * 1e3, 1),
            "min_ms_per_batch": round(min(run["times"]) * 1e3, 1),
            "first_call_s": round(run["first_call_s"], 2),
        }
    ratios = {}
    for suffix in ("", " folded") if folded else ("",):
        for mode in modes:
            ratios[mode + suffix] = round(
                results["aff" + suffix][mode]["images_per_s"]
                / results["add" + suffix][mode]["images_per_s"],
                3,
            )
    return results, ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--folded",
        action="store_true",
        help="also time both networks with their BatchNorms folded",
    )
    _bench.add_backend_arguments(parser)
    parser.add_argument("--out", default=None, help="also write JSON here")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.size < 32 or args.repeats < 1:
        parser.error(
            "Expected --batch >= 1, --size >= 32 and --repeats >= 1. "
            f"Received: batch={args.batch}, size={args.size}, "
            f"repeats={args.repeats}"
        )
    _bench.select_backend(parser, args.backend, args.dtype_policy)
    modes = BACKEND_MODES[args.backend]
    results, ratios = measure(
        args.batch, args.size, args.repeats, args.warmup, modes, args.folded
    )
    versions, machine = _bench.versions_and_machine()
    report = {
        "benchmark": "inference throughput, predict_on_batch, training=False",
        "command": "python benchmarks/models.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "models": {
            "aff": "keras_aff.models.AFFResNet50() (AFF in stages 3-4)",
            "add": 'keras_aff.models.AFFResNet50(fusion="add") '
            "(ResNet-50-D, same builder)",
        },
        "backend": args.backend,
        "dtype_policy": args.dtype_policy,
        "modes": {mode: MODE_DOCS[mode] for mode in modes},
        "batch": args.batch,
        "image_size": args.size,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "timing": "timed calls interleaved round-robin over models and "
        "modes; median over repeats; first_call includes tracing and "
        "compiling; predict_on_batch returns NumPy, so every call waits "
        "for its result",
        "versions": versions,
        "machine": machine,
        "results": results,
        "throughput_ratio_aff_over_add": ratios,
    }
    _bench.write_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
