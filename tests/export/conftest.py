"""Export-test setup: the root conftest's per-test state reset, without its
`keras.backend.clear_session()` (models here are built once per module and
shared; clearing the session under them costs time and breaks nothing)."""

import keras
import pytest


@pytest.fixture(autouse=True)
def _clean_keras_state():
    """Every test starts with float32, channels_last and a fixed seed."""
    keras.mixed_precision.set_global_policy("float32")
    keras.config.set_image_data_format("channels_last")
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.config.set_image_data_format("channels_last")
