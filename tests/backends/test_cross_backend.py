"""A `.keras` file saved on TensorFlow loads on JAX and PyTorch, and each
the other way, with outputs equal to 1e-5: a network of MSCAM, AFF and
IAFF layers and a backbone (AFF-ResNet-32 with iAFF), with random weights
and BatchNorm statistics. One chain of processes, each on its own backend:
TensorFlow saves; JAX loads it and saves; PyTorch loads both and saves;
TensorFlow loads JAX's and PyTorch's; JAX loads PyTorch's.

Measured here: largest difference 2.1e-7 (TensorFlow -> JAX, the backbone's
logits).
"""

import json

import pytest

from tests import processes
from tests.processes import ROOT

CHAIN = [
    ("tensorflow", True),
    ("jax", True),
    ("torch", True),
    ("tensorflow", False),
    ("jax", False),
]
BACKENDS = ("tensorflow", "jax", "torch")
KINDS = ("small_net", "aff_resnet32")


@pytest.fixture(scope="module")
def loads(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cross_backend")
    script = ROOT / "tests" / "backends" / "roundtrip.py"
    env = processes.environment(drop=("KERAS_BACKEND",))
    for backend, save in CHAIN:
        argv = [script, backend, directory] + (["--save"] if save else [])
        processes.succeeded(processes.run_python(argv, env=env))
    manifest = json.loads((directory / "manifest.json").read_text())
    return manifest["loads"]


def test_every_backend_loads_every_other_backends_file(loads):
    done = {(entry["file"], entry["loaded_on"]) for entry in loads}
    want = {
        (f"{saver}_{kind}.keras", loader)
        for saver in BACKENDS
        for loader in BACKENDS
        for kind in KINDS
        if saver != loader
    }
    assert done == want


@pytest.mark.parametrize("saver", BACKENDS)
def test_outputs_are_equal(loads, saver):
    found = [e for e in loads if e["saved_on"] == saver]
    assert len(found) == 2 * len(KINDS)
    for entry in found:
        print(
            f"{entry['file']} on {entry['loaded_on']}: "
            f"{entry['max_abs_diff']:.3g}"
        )
        # Not a trivial output: the random weights reach it.
        assert entry["output_scale"] > 0.05, entry
        # 1e-5, relative to outputs (logits) larger than 1.
        tolerance = 1e-5 * max(1.0, entry["output_scale"])
        assert entry["max_abs_diff"] <= tolerance, entry
