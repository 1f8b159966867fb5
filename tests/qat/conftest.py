"""Setup for the QAT tests: that of the tf_keras twin's tests
(tests/legacy/conftest.py): TensorFlow backend only, the `qat` fixture
that imports tfmot without leaving TF_USE_LEGACY_KERAS set, and tf_keras'
state reset around every test."""

import keras

from tests.legacy.conftest import _clean_tf_keras_state  # noqa: F401
from tests.legacy.conftest import qat  # noqa: F401

if keras.backend.backend() != "tensorflow":
    # tf_keras and tfmot need the TensorFlow backend; not a skip of a
    # failing test, the whole directory does not apply.
    collect_ignore_glob = ["test_*.py"]
