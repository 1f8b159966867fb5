"""The official networks' own files and logits: the converted Keras models
reproduce the official float64 logits to 1e-9 (float64) and 1e-5
(float32; AFF-ResNet-32: 3e-3, see below), through `load_mxnet_params` and
through the builders' `weights=`."""

import keras
import numpy as np
import pytest

from keras_aff import interop
from keras_aff import models
from tests.interop import fixtures

# fixture -> (registry name, input, float32 tolerance). AFF-ResNet-32's AFF
# x2 over 15 pre-activation blocks grows activations ~400x, and float32
# drifts accordingly (the official float32 logits too, see the last test).
CASES = {
    "aff_resnet32": ("aff_resnet32", "aff_resnet32", 3e-3),
    "iaff_resnext50.fp16": ("iaff_resnext50_32x4d", "iaff_resnext50", 1e-5),
}
FLOAT64_TOLERANCE = 1e-9


@pytest.fixture
def float64():
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


def _relative_error(fixture, dtype, weights_argument):
    name, inputs, _ = CASES[fixture]
    params = fixtures.path(f"{fixture}.params")
    if weights_argument:
        model = models.get_model(
            name, weights=str(params), classifier_activation=None
        )
    else:
        model = models.get_model(name, classifier_activation=None)
        report = interop.load_mxnet_params(model, params)
        assert report.variable_dtype == dtype
        assert len(report.loaded) == len(model.weights)
    assert all(v.dtype == dtype for v in model.weights)
    x = fixtures.array(f"{inputs}.input.npy").astype(dtype)
    logits = np.asarray(model(x, training=False))
    assert logits.dtype == dtype
    reference = fixtures.array(f"{fixture}.logits64.npy")
    assert logits.shape == reference.shape
    return np.abs(logits - reference).max() / np.abs(reference).max()


@pytest.mark.slow
@pytest.mark.parametrize("weights_argument", [False, True])
@pytest.mark.parametrize("fixture", list(CASES))
def test_float64_logits_equal_the_official_ones(
    float64, fixture, weights_argument
):
    error = _relative_error(fixture, "float64", weights_argument)
    assert error < FLOAT64_TOLERANCE, error


@pytest.mark.parametrize("weights_argument", [False, True])
@pytest.mark.parametrize("fixture", list(CASES))
def test_float32_logits_equal_the_official_ones(fixture, weights_argument):
    error = _relative_error(fixture, "float32", weights_argument)
    assert error < CASES[fixture][2], error


def test_the_official_float32_run_is_no_closer():
    # The float32 tolerance of AFF-ResNet-32 is the network's, not ours:
    # the official float32 logits are ~9e-5 from float64 by this measure.
    official = fixtures.array("aff_resnet32.logits.npy")
    reference = fixtures.array("aff_resnet32.logits64.npy")
    error = np.abs(official - reference).max() / np.abs(reference).max()
    assert 1e-5 < error < CASES["aff_resnet32"][2]
