"""Model-test setup: the root conftest's per-test state reset, without its
`keras.backend.clear_session()`.

The backbones are built once per session and cached (tests/models/
test_backbones.py); with them alive `clear_session()` costs 0.5-1 s per
test, which alone would take a minute of the suite's budget on two cores.
"""

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
