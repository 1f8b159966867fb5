"""`use_batch_norm=False`: the gate without BatchNormalization, the form in
which `keras_aff.optimize.fold_batchnorm` returns a trained layer. Runs on
every backend (CI runs tests/layers under TensorFlow and JAX)."""

import keras
import numpy as np
import pytest

from keras_aff.optimize import fold_batchnorm
from tests.layers import reference
from tests.layers.cases import SHAPE
from tests.layers.cases import to_numpy


def test_variables_are_the_convs_only(case):
    layer = case.build(case.cls(use_batch_norm=False), (None, 5, 5, 16))
    paths = sorted("/".join(v.path.split("/")[-4:]) for v in layer.weights)
    gates = [g.name for g in case.gates(layer)]
    expected = sorted(
        f"{gate}/{branch}/{conv}/{var}"
        for gate in gates
        for branch in ("local", "global")
        for conv in ("conv1", "conv2")
        for var in ("kernel", "bias")
    )
    assert paths == expected
    assert not layer.non_trainable_weights
    # 16 -> 4 -> 16 (MultiAFF: 16 * N) per branch, two branches per gate
    out = 16 * case.gate_outputs
    per_gate = 2 * (16 * 4 + 4 + 4 * out + out)
    assert layer.count_params() == case.num_gates * per_gate


@pytest.mark.parametrize("training", [False, True])
def test_numerics_against_numpy(case, training):
    layer = case.build(case.cls(use_batch_norm=False), SHAPE)
    reference.randomize(layer, 1)
    inputs = case.make_inputs(seed=2)
    out = to_numpy(case.call(layer, inputs, training=training))
    # Without BNs, training and inference compute the same function.
    expected = case.expected(layer, inputs, training=False)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_folded_layer_equals_original_and_round_trips(case, tmp_path):
    inputs = [keras.Input(SHAPE[1:]) for _ in range(case.num_inputs)]
    layer = case.cls(name="fusion", use_bias=False)
    model = keras.Model(case.pack(inputs), layer(case.pack(inputs)))
    reference.randomize(layer, 3)
    folded = fold_batchnorm(model)
    new = folded.get_layer("fusion")
    assert type(new) is case.cls
    config = new.get_config()
    assert config["use_batch_norm"] is False and config["use_bias"] is True
    data = case.make_inputs(seed=4)
    expected = to_numpy(model(case.pack(data), training=False))
    out = to_numpy(folded(case.pack(data), training=False))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    path = str(tmp_path / "folded.keras")
    folded.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("fusion").get_config() == config
    np.testing.assert_allclose(
        to_numpy(loaded(case.pack(data))), out, rtol=1e-6, atol=1e-6
    )
