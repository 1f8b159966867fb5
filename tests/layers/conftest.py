"""Layer-test setup: the root conftest's clean state, without a full
garbage collection after every test.

`keras.backend.clear_session()` runs `gc.collect()` by default, which costs
about 0.4 s per test once TensorFlow is imported (more than most layer tests
themselves, ~100 s over this directory). Here the session is cleared without
it; Python's own collector still runs.
"""

import keras
import pytest


@pytest.fixture(autouse=True)
def _clean_keras_state():
    """Overrides the root fixture of the same name: float32, channels_last,
    a fixed seed, and a cleared Keras session after each test."""
    keras.mixed_precision.set_global_policy("float32")
    keras.config.set_image_data_format("channels_last")
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.config.set_image_data_format("channels_last")
    keras.backend.clear_session(free_memory=False)
