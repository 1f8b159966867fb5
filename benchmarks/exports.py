"""Every export format of the export tests' model: size, error, latency.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The model is the export tests' `fusion_cnn` (a copy of
`tests/export/helpers.py`: a stem, AFF, iAFF and MSCAM, 16x16x3 input,
5 outputs, 1,917 parameters, seed 0), untrained: the figures are the
exporters' fidelity, not accuracy. It goes through `keras_aff.export` as
a SavedModel, LiteRT float32, float16, dynamic-range and int8 (calibrated
on 128 random images, as the tests do) and ONNX (opset 15), and each
`ExportReport` is kept whole: size, max and mean abs error against the
Keras model, the tolerance the check applied, top-1 agreement and the
median batch-1 latency.

Example:

    python benchmarks/exports.py --out benchmarks/results/exports_cpu.json
"""

import argparse
import os
import sys
import tempfile
import time

import _bench
import numpy as np

# (label, format, keyword arguments of the exporter)
ARTIFACTS = (
    ("SavedModel", "saved_model", {}),
    ("LiteRT float32", "litert", {}),
    ("LiteRT float16", "litert", {"quantization": "float16"}),
    ("LiteRT dynamic-range", "litert", {"quantization": "dynamic"}),
    ("LiteRT int8", "litert", {"quantization": "int8"}),
    ("ONNX", "onnx", {"opset": 15}),
)
SUFFIXES = {"saved_model": "", "litert": ".tflite", "onnx": ".onnx"}


def fusion_cnn(seed=0, size=16, classes=5):
    """The export tests' model: stem -> AFF of two branches -> iAFF ->
    MSCAM -> GAP -> Dense (copied from `tests/export/helpers.py`)."""
    import keras

    from keras_aff.layers import AFF
    from keras_aff.layers import IAFF
    from keras_aff.layers import MSCAM

    L = keras.layers
    keras.utils.set_random_seed(seed)
    image = keras.Input((size, size, 3), name="image")
    h = L.Conv2D(8, 3, padding="same", activation="relu")(image)
    a = L.Conv2D(8, 3, padding="same")(h)
    b = L.Conv2D(8, 1)(h)
    f = AFF(reduction_ratio=2, name="aff")([a, b])
    f = IAFF(reduction_ratio=2, name="iaff")([f, b])
    f = MSCAM(reduction_ratio=2, name="mscam")(f)
    out = L.Dense(classes, name="logits", dtype="float32")(
        L.GlobalAveragePooling2D()(f)
    )
    return keras.Model(image, out, name="fusion_cnn")


def export_all(model, directory, calibration):
    """`{label: ExportReport}`, one per artifact of `ARTIFACTS`."""
    from keras_aff import export

    exporters = {
        "saved_model": export.export_saved_model,
        "litert": export.export_litert,
        "onnx": export.export_onnx,
    }
    reports = {}
    for i, (label, fmt, kwargs) in enumerate(ARTIFACTS):
        path = os.path.join(directory, f"artifact_{i}{SUFFIXES[fmt]}")
        if kwargs.get("quantization") == "int8":
            kwargs = dict(kwargs, representative_data=calibration)
        reports[label] = exporters[fmt](model, path, **kwargs)
    return reports


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--out", default=None, help="write the JSON here")
    args = parser.parse_args(argv)
    _bench.select_backend(parser, "tensorflow", "float32")
    start = time.perf_counter()
    model = fusion_cnn()
    rng = np.random.default_rng(1)
    calibration = rng.standard_normal((args.calibration, 16, 16, 3))
    with tempfile.TemporaryDirectory() as directory:
        reports = export_all(model, directory, calibration.astype("float32"))
    results = {}
    for label, report in reports.items():
        entry = report.to_dict()
        entry["path"] = os.path.basename(entry["path"])
        results[label] = entry
    versions, machine = _bench.versions_and_machine()
    import ai_edge_litert
    import onnxruntime

    versions["ai_edge_litert"] = ai_edge_litert.__version__
    versions["onnxruntime"] = onnxruntime.__version__
    report = {
        "benchmark": "export formats of the export tests' model: size, "
        "max abs error against Keras, tolerance, top-1 agreement, "
        "batch-1 latency",
        "command": "python benchmarks/exports.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "model": "fusion_cnn (tests/export/helpers.py), seed 0, untrained",
        "params": int(model.count_params()),
        "input_shape": [16, 16, 3],
        "calibration_samples": args.calibration,
        "versions": versions,
        "machine": machine,
        "results": results,
        "seconds": round(time.perf_counter() - start, 1),
    }
    _bench.write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
