"""Shared pytest setup: quiet TF logs, a fixed seed, a clean global state."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Full float32 convolutions and matmuls on GPUs: the tests compare with a
# float64 NumPy reference at 1e-5, and TF32 (the default on Ampere and
# newer GPUs, for JAX and TensorFlow alike) misses it by ~1e-3 (measured on
# an H100). Environment variables, so the subprocess tests get them too;
# no effect on CPUs.
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
# torch's OpenMP pool spins while it waits: with two threads on a busy
# 2-core machine a Keras fit step on torch ran 10x slower than with one
# thread (11.9 s against 1.05 s for the quickstart epoch). Set before torch
# is imported, and inherited by the subprocess tests.
if os.environ.get("KERAS_BACKEND") == "torch":
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import keras  # noqa: E402
import pytest  # noqa: E402

# Test directories whose models are built once per module or session and
# shared between tests: clearing the Keras session under them would cost
# 0.5-1 s per test (large backbones alive) and buys nothing.
KEEP_SESSION_DIRS = {"models", "export"}


@pytest.fixture(autouse=True)
def _clean_keras_state(request):
    """Every test starts with float32, channels_last and a fixed seed."""
    keras.mixed_precision.set_global_policy("float32")
    keras.config.set_image_data_format("channels_last")
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.config.set_image_data_format("channels_last")
    if request.path.parent.name not in KEEP_SESSION_DIRS:
        # Without a full gc.collect(): it costs ~0.4 s per test once
        # TensorFlow is imported; Python's own collector still runs.
        keras.backend.clear_session(free_memory=False)
