"""Batch-1 LiteRT latency: a MobileNetV2 retrofitted with AFF against the
plain one, and the demo network, in float32 and int8.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Each model goes through `keras_aff.export.export_litert` (so the files are
the package's own, BatchNorm folded by default), float32 and int8 (int8
input and output, calibrated on random images: the latency does not
depend on the weights' values; the int8 checks' tolerances are opened up
because an untrained classifier's top-1 is noise). Every file is then run
with ai_edge_litert's interpreter (XNNPACK, the default CPU delegate) with
`--threads` threads; the timed `invoke()` calls are interleaved
round-robin over all files, so background load spreads over all of them,
and medians are reported.

For each int8 file: the op counts, QUANTIZE/DEQUANTIZE ops, and float
tensors that flow between two ops (float islands; with int8 input and
output a fully int8 graph has none). `--no-fold` exports without
`fold_batchnorm` (the converter folds BatchNorm itself: same ops).

Example:

    python benchmarks/litert.py --out benchmarks/results/litert_cpu.json
    python benchmarks/litert.py --size 96 --repeats 5    # quicker
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import _bench
import numpy as np


def models(size):
    """`{name: keras.Model}`: MobileNetV2 plain and with AFF, the demo."""
    import keras

    from keras_aff.demo import build_demo_model
    from keras_aff.models import retrofit

    keras.utils.set_random_seed(0)
    plain = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), weights=None
    )
    return {
        "mobilenetv2": plain,
        "mobilenetv2_aff": retrofit(plain, fusion="aff"),
        "demo": build_demo_model(),
    }


def inspect(path):
    """Op counts, QUANTIZE/DEQUANTIZE ops and float islands of a file."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    produced = {i for op in ops for i in op["outputs"]}
    consumed = {i for op in ops for i in op["inputs"] if i >= 0}
    counts = {}
    for op in ops:
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    islands = sorted(
        tensors[i]["name"]
        for i in produced & consumed
        if np.dtype(tensors[i]["dtype"]).kind == "f"
    )
    return {
        "ops": dict(sorted(counts.items())),
        "quantize_dequantize": counts.get("QUANTIZE", 0)
        + counts.get("DEQUANTIZE", 0),
        "float_islands": islands,
    }


def export_all(built, directory, fold, calibration_size):
    """Exports every model in float32 and int8; returns the reports."""
    from keras_aff.export import export_litert

    rng = np.random.default_rng(0)
    files = {}
    for name, model in built.items():
        shape = (calibration_size, *model.inputs[0].shape[1:])
        data = rng.uniform(-1, 1, shape).astype("float32")
        for quantization in (None, "int8"):
            path = os.path.join(directory, f"{name}_{quantization}.tflite")
            extra = {}
            if quantization == "int8":
                extra = dict(
                    representative_data=data,
                    min_top1_agreement=0.0,
                    atol=1e9,
                )
            report = export_litert(
                model,
                path,
                quantization=quantization,
                sample_inputs=data[:2],
                fold_batchnorm=fold,
                **extra,
            )
            files[name, quantization or "float32"] = (path, report)
    return files


def time_files(files, threads, repeats, warmup):
    """Median and min ms of `invoke()` per file, interleaved."""
    from ai_edge_litert.interpreter import Interpreter

    interps = {}
    for key, (path, _) in files.items():
        interp = Interpreter(model_path=path, num_threads=threads)
        interp.allocate_tensors()
        detail = interp.get_input_details()[0]
        data = np.zeros(detail["shape"], detail["dtype"])
        interp.set_tensor(detail["index"], data)
        for _ in range(warmup):
            interp.invoke()
        interps[key] = interp
    times = {key: [] for key in interps}
    for _ in range(repeats):
        for key, interp in interps.items():
            start = time.perf_counter()
            interp.invoke()
            times[key].append((time.perf_counter() - start) * 1e3)
    return {key: (statistics.median(ts), min(ts)) for key, ts in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--calibration", type=int, default=16)
    parser.add_argument("--no-fold", action="store_true")
    parser.add_argument("--out", default=None, help="also write JSON here")
    args = parser.parse_args(argv)
    if args.size < 32 or args.repeats < 1 or args.threads < 1:
        parser.error(
            "Expected --size >= 32, --repeats >= 1 and --threads >= 1. "
            f"Received: size={args.size}, repeats={args.repeats}, "
            f"threads={args.threads}"
        )
    _bench.select_backend(parser, "tensorflow", "float32")
    with tempfile.TemporaryDirectory() as directory:
        files = export_all(
            models(args.size), directory, not args.no_fold, args.calibration
        )
        timed = time_files(files, args.threads, args.repeats, args.warmup)
        results = {}
        for (name, mode), (path, report) in files.items():
            entry = {
                "median_ms": round(timed[name, mode][0], 3),
                "min_ms": round(timed[name, mode][1], 3),
                "size_bytes": report.size_bytes,
                "batch_norm_folding": report.batch_norm_folding,
            }
            found = inspect(path)
            if mode == "float32":  # every tensor is float: nothing to find
                del found["quantize_dequantize"], found["float_islands"]
            entry.update(found)
            results.setdefault(name, {})[mode] = entry
    ratios = {
        f"mobilenetv2_aff / mobilenetv2, {mode}": round(
            results["mobilenetv2_aff"][mode]["median_ms"]
            / results["mobilenetv2"][mode]["median_ms"],
            3,
        )
        for mode in ("float32", "int8")
    }
    for name in results:
        ratios[f"{name} int8 / float32"] = round(
            results[name]["int8"]["median_ms"]
            / results[name]["float32"]["median_ms"],
            3,
        )
    versions, machine = _bench.versions_and_machine()
    report = {
        "benchmark": "LiteRT batch-1 invoke latency, XNNPACK, ms",
        "command": "python benchmarks/litert.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "image_size": args.size,
        "threads": args.threads,
        "repeats": args.repeats,
        "fold_batchnorm": not args.no_fold,
        "versions": versions,
        "machine": machine,
        "results": results,
        "ratios": ratios,
    }
    _bench.write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
