"""Smoke test of an installed keras_aff wheel (run by `.ci/run package`).

Run with the Python of the virtual environment the wheel was installed
into, from a directory outside the checkout. Checks that keras_aff comes
from that environment and ships `py.typed`, builds, runs, saves and reloads
a tiny AFF model, and runs the installed `keras-aff` command on it.
"""

import json
import pathlib
import subprocess
import sys
from importlib import metadata

import keras
import numpy as np

import keras_aff

CHANNELS, RATIO = 16, 4


def check_origin():
    package = pathlib.Path(keras_aff.__file__).resolve().parent
    prefix = pathlib.Path(sys.prefix).resolve()
    if prefix not in package.parents:
        sys.exit(f"keras_aff was imported from {package}, not from {prefix}")
    if not (package / "py.typed").is_file():
        sys.exit(f"py.typed is missing from {package}")
    if metadata.version("keras-aff") != keras_aff.__version__:
        sys.exit("the installed metadata and keras_aff.__version__ differ")
    print(f"keras_aff {keras_aff.__version__} from {package}")


def check_model(path):
    shape = (8, 8, CHANNELS)
    x, y = keras.Input(shape, name="x"), keras.Input(shape, name="y")
    fuse = keras_aff.layers.AFF(reduction_ratio=RATIO, name="aff")
    model = keras.Model([x, y], fuse([x, y]))
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, *shape)).astype("float32")
    b = rng.normal(size=(2, *shape)).astype("float32")
    out = model.predict([a, b], verbose=0)
    # w is in (0, 1), so each output lies between its two inputs.
    lo, hi = np.minimum(a, b) - 1e-5, np.maximum(a, b) + 1e-5
    if out.shape != a.shape or not np.all((lo <= out) & (out <= hi)):
        sys.exit("AFF output is not a blend of its inputs")
    model.save(path)
    again = keras.saving.load_model(path).predict([a, b], verbose=0)
    np.testing.assert_allclose(again, out, rtol=0, atol=1e-6)
    print(f"AFF model: predict, save and reload ok ({path})")


def run_command(*args):
    script = pathlib.Path(sys.prefix, "bin", "keras-aff")
    done = subprocess.run(
        [str(script), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"keras-aff {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def check_command(path):
    usage = run_command("--help")
    for command in ("demo", "export", "info"):
        if command not in usage:
            sys.exit(f"`keras-aff --help` does not list {command}")
    info = json.loads(run_command("info", path, "--json"))
    (fusion,) = info["fusion_layers"]
    hidden = CHANNELS // RATIO
    expected = 4 * CHANNELS * hidden + 6 * (hidden + CHANNELS)
    if fusion["class"] != "AFF" or info["params"]["trainable"] != expected:
        sys.exit(f"unexpected `keras-aff info` report: {info}")
    print("keras-aff --help and keras-aff info ok")


if __name__ == "__main__":
    check_origin()
    check_model("tiny_aff.keras")
    check_command("tiny_aff.keras")
