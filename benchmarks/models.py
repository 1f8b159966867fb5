"""Inference throughput of AFF-ResNet-50 against the same code with addition.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`keras_aff.models.AFFResNet50()` (AFF in stages 3-4) against
`AFFResNet50(fusion="add")` (the plain ResNet-50-D from the same builder):
images per second of `model.predict_on_batch` on a batch of 8 images of
224x224 (`training=False`, float32), with the predict function compiled
without XLA (`jit_compile=False`, a `tf.function` graph) and with XLA
(`jit_compile=True`). Both models and both modes are measured in the same
run, round-robin, so the ratio AFF / add is a same-run comparison. Prints
JSON (and writes it with `--out`).

Example:

    python benchmarks/models.py                      # batch 8, 224x224
    python benchmarks/models.py --repeats 5 \\
        --out benchmarks/results/models_cpu.json
    python benchmarks/models.py --size 64 --repeats 1 --warmup 1   # smoke
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
from keras_aff.models import AFFResNet50  # noqa: E402

FUSIONS = ("aff", "add")
MODES = {"graph": False, "xla": True}


def build(fusion, size):
    keras.utils.set_random_seed(0)
    return AFFResNet50(fusion=fusion, input_shape=(size, size, 3))


def measure(batch, size, repeats, warmup):
    x = np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 3))
    x = x.astype("float32")
    # One model object per (fusion, mode): each keeps its own compiled
    # predict function, so the timed calls can be interleaved.
    runs = {}
    for fusion in FUSIONS:
        for mode, jit in MODES.items():
            model = build(fusion, size)
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
    ratios = {
        mode: round(
            results["aff"][mode]["images_per_s"]
            / results["add"][mode]["images_per_s"],
            3,
        )
        for mode in MODES
    }
    return results, ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write JSON here")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.size < 32 or args.repeats < 1:
        parser.error(
            "Expected --batch >= 1, --size >= 32 and --repeats >= 1. "
            f"Received: batch={args.batch}, size={args.size}, "
            f"repeats={args.repeats}"
        )
    results, ratios = measure(args.batch, args.size, args.repeats, args.warmup)
    report = {
        "benchmark": "inference throughput, predict_on_batch, "
        "training=False, float32",
        "command": "python benchmarks/models.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "models": {
            "aff": "keras_aff.models.AFFResNet50() (AFF in stages 3-4)",
            "add": 'keras_aff.models.AFFResNet50(fusion="add") '
            "(ResNet-50-D, same builder)",
        },
        "modes": {
            "graph": "model.compile(jit_compile=False)",
            "xla": "model.compile(jit_compile=True)",
        },
        "batch": args.batch,
        "image_size": args.size,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "timing": "timed calls interleaved round-robin over models and "
        "modes; median over repeats; first_call includes tracing and "
        "compiling",
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
        "results": results,
        "throughput_ratio_aff_over_add": ratios,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return report


if __name__ == "__main__":
    main()
