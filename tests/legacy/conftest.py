"""Setup for the tf_keras twin and QAT tests.

tf_keras and tensorflow-model-optimization run on TensorFlow only, so this
directory is skipped at collection under another Keras backend (CI runs only
tests/layers under JAX).

`import tensorflow_model_optimization` sets TF_USE_LEGACY_KERAS=1 for the
whole process, and its import reads `tf.keras`, which then stays tf_keras
for the rest of the process. The whole suite runs in one pytest process, so
`keras_aff.qat` is imported only through the `qat` fixture, which resolves
`tf.keras` first under the process's own setting and restores the variable
afterwards; an autouse fixture restores it after every test too. Nothing
here imports tfmot at collection time.
"""

import os

import keras
import pytest

if keras.backend.backend() != "tensorflow":
    # tf_keras and tfmot need the TensorFlow backend; not a skip of a
    # failing test, the whole directory does not apply.
    collect_ignore_glob = ["test_*.py"]

_ENV = "TF_USE_LEGACY_KERAS"


def _restore_env(value):
    if value is None:
        os.environ.pop(_ENV, None)
    else:
        os.environ[_ENV] = value


@pytest.fixture(scope="session")
def qat():
    """`keras_aff.qat`, imported without changing the process for others."""
    import tensorflow as tf

    before = os.environ.get(_ENV)
    # Resolve the lazy `tf.keras` now (Keras 3 unless the user chose
    # otherwise), before tfmot sets TF_USE_LEGACY_KERAS and reads it.
    dir(tf.keras)
    from keras_aff import qat as module

    _restore_env(before)
    return module


@pytest.fixture(autouse=True)
def _clean_tf_keras_state():
    """tf_keras' side of the root fixture (float32 policy, channels_last,
    fixed seed, cleared session), and TF_USE_LEGACY_KERAS restored."""
    import tf_keras

    before = os.environ.get(_ENV)
    tf_keras.mixed_precision.set_global_policy("float32")
    tf_keras.backend.set_image_data_format("channels_last")
    tf_keras.utils.set_random_seed(1234)
    yield
    tf_keras.mixed_precision.set_global_policy("float32")
    tf_keras.backend.set_image_data_format("channels_last")
    tf_keras.backend.clear_session()
    _restore_env(before)
