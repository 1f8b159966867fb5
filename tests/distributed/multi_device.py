"""The one-process, two-device runs of tests/distributed, in a process of
their own (the device setup must not leak into the test session):

    python tests/distributed/multi_device.py tensorflow|jax OUT_DIR

Trains the network of `examples/distributed_training.py` at global batch
16 on one device and on two (TensorFlow: MirroredStrategy over two logical
CPUs, with and without `bn_synchronized`; JAX: DataParallel over two host
devices), saves every run's variables to OUT_DIR/<run>.npz, checks that a
`.keras` file moves in and out of the distribution, and writes
OUT_DIR/report.json.
"""

import importlib.util
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_example():
    path = ROOT / "examples" / "distributed_training.py"
    spec = importlib.util.spec_from_file_location("distributed_training", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def max_diff(a, b):
    import numpy as np

    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def save_load(ex, args, inside, outside, out, x):
    """`inside` was trained in the distribution: saved there, loaded
    without it. `outside` was trained on one device: loaded inside."""
    import keras

    first = os.path.join(out, "inside.keras")
    inside.save(first)
    with ex._strategy_scope(args):
        ex._set_distribution(args)
        want_inside = inside.predict(x, verbose=0)
    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(None)
    loaded = keras.saving.load_model(first)
    got_outside = loaded.predict(x, verbose=0)
    second = os.path.join(out, "outside.keras")
    outside.save(second)
    want_outside = outside.predict(x, verbose=0)
    with ex._strategy_scope(args):
        ex._set_distribution(args)
        reloaded = keras.saving.load_model(second)
        got_inside = reloaded.predict(x, verbose=0)
    return {
        "saved_inside_loaded_outside": max_diff(got_outside, want_inside),
        "saved_outside_loaded_inside": max_diff(got_inside, want_outside),
    }


def main(backend, out):
    ex = load_example()
    common = ["--devices=2", "--epochs=2", "--samples=64"]
    multi = "mirrored" if backend == "tensorflow" else "data-parallel"
    ex.set_up_backend(ex.parse_args([f"--mode={multi}", *common]))
    runs = {
        "single": ["--mode=single"],
        multi: [f"--mode={multi}"],
        f"{multi}_sync": [f"--mode={multi}", "--bn-synchronized"],
    }
    models = {}
    for name, flags in runs.items():
        args = ex.parse_args([*flags, *common])
        models[name] = (ex.train(args), args)
        ex.save_variables(models[name][0], os.path.join(out, f"{name}.npz"))
    x, _ = ex.make_data(24, seed=7)
    model, args = models[f"{multi}_sync"]
    report = save_load(ex, args, model, models["single"][0], out, x)
    report["backend"] = backend
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f)
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
