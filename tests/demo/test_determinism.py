"""Reproducible training: with `keras.utils.set_random_seed(s)` (and
`tf.config.experimental.enable_op_determinism()` on TensorFlow,
`torch.use_deterministic_algorithms(True)` on torch), two training runs of
the demo model give bit-identical weights; another seed gives others.
Each backend runs in a process of its own (`determinism.py`)."""

import pathlib

import numpy as np
import pytest

from tests import processes

SCRIPT = pathlib.Path(__file__).with_name("determinism.py")


@pytest.mark.parametrize(
    "backend, epochs", [("tensorflow", 2), ("jax", 1), ("torch", 1)]
)
def test_two_runs_give_bit_identical_weights(tmp_path, backend, epochs):
    out = tmp_path / "runs.npz"
    env = processes.environment(drop=("KERAS_BACKEND",))
    argv = [SCRIPT, backend, epochs, out]
    processes.succeeded(processes.run_python(argv, env=env, timeout=400))
    with np.load(out) as f:
        runs = {k: f[k] for k in f.files}
    n = sum(k.startswith("first_") for k in runs)
    assert n > 20  # every variable, BatchNorm statistics included
    for i in range(n):
        np.testing.assert_array_equal(
            runs[f"first_{i}"], runs[f"second_{i}"], err_msg=f"variable {i}"
        )
    assert any(
        not np.array_equal(runs[f"first_{i}"], runs[f"other_{i}"])
        for i in range(n)
    )
