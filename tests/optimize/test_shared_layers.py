"""Shared layers (one layer object called at several places) through the
graph rewrites: `fold_batchnorm` folds a BatchNorm only into a conv that
both are called once (a shared conv feeds several BNs, a shared BN
follows several convs), folds a shared fusion layer's gates once, and
keeps every shared layer and nested model shared; the export rebuilds
(`keras_aff.export.folding`, `rebuild`) keep the sharing and the
numbers."""

import keras
import numpy as np

from keras_aff import layers
from keras_aff.export import folding
from keras_aff.export import rebuild
from keras_aff.optimize import fold_batchnorm
from tests.optimize.test_fold import assert_equal_outputs
from tests.optimize.test_fold import randomize_batch_norms

RNG = np.random.default_rng(1)


def _data(n=2, size=6, channels=8):
    return RNG.normal(size=(n, size, size, channels)).astype("float32")


def _bn_names(model):
    return sorted(
        layer.name
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    )


def _shared_model():
    """A conv called twice (each call followed by its own BN), a BN called
    after two convs, an AFF layer called twice, a foldable pair."""
    x = keras.Input((6, 6, 8))
    conv = keras.layers.Conv2D(8, 1, name="shared_conv")
    a = keras.layers.BatchNormalization(name="bn_a")(conv(x))
    b = keras.layers.BatchNormalization(name="bn_b")(conv(a))
    bn = keras.layers.BatchNormalization(name="shared_bn")
    c = bn(keras.layers.Conv2D(8, 1, name="c1")(b))
    d = bn(keras.layers.Conv2D(8, 3, padding="same", name="c2")(b))
    aff = layers.AFF(reduction_ratio=2, name="shared_aff")
    e = aff([aff([c, d]), a])
    f = keras.layers.Conv2D(8, 1, name="tail")(e)
    f = keras.layers.BatchNormalization(name="tail_bn")(f)
    model = keras.Model(x, f)
    randomize_batch_norms(model, seed=2)
    return model


def test_fold_leaves_shared_pairs_and_folds_shared_fusions_once():
    model = _shared_model()
    folded, report = fold_batchnorm(model, return_report=True)
    # Only the pair whose conv and BN are each called once.
    assert report.pairs == [("tail", "tail_bn")]
    assert report.fusion_layers == ["shared_aff"]
    # 3 shared-path BNs + tail_bn + 4 in the AFF gates.
    assert (report.batch_norms_before, report.batch_norms_after) == (8, 3)
    assert report.batch_norms_folded == 5
    assert _bn_names(folded) == ["bn_a", "bn_b", "shared_bn"]
    # Every shared layer is still one layer called at the same places.
    for name, calls in (("shared_conv", 2), ("shared_bn", 2)):
        assert len(folded.get_layer(name)._inbound_nodes) == calls
    aff = folded.get_layer("shared_aff")
    assert len(aff._inbound_nodes) == 2 and aff.use_batch_norm is False
    assert_equal_outputs(folded, model, _data(), rtol=1e-5)


def test_fold_nested_model_called_twice_once():
    inner_in = keras.Input((6, 6, 8))
    h = keras.layers.Conv2D(8, 1, name="c")(inner_in)
    h = keras.layers.BatchNormalization(name="bn")(h)
    block = keras.Model(inner_in, h, name="blk")
    x = keras.Input((6, 6, 8))
    model = keras.Model(x, block(block(x)))
    randomize_batch_norms(model, seed=3)
    folded, report = fold_batchnorm(model, return_report=True)
    assert report.pairs == [("blk/c", "blk/bn")]
    assert report.batch_norms_folded == 1
    assert len(folded.get_layer("blk")._inbound_nodes) == 2
    assert_equal_outputs(folded, model, _data(), rtol=1e-5)


def test_export_rebuilds_keep_shared_layers():
    model = _shared_model()
    samples = [_data(3)]
    folded, summary = folding.fold_for_export(model, samples)
    assert summary["batch_norms_folded"] == 5
    assert summary["max_abs_difference"] <= 1e-5
    relaxed, other, other_out = rebuild.relax_spatial_dims(folded, samples)
    assert tuple(relaxed.inputs[0].shape) == (None, None, None, 8)
    # Same weights, still shared (no copy per call), same numbers.
    assert len(relaxed.weights) == len(folded.weights)
    assert len(relaxed.get_layer("shared_conv")._inbound_nodes) == 2
    assert_equal_outputs(relaxed, model, samples[0], rtol=1e-5)
    # At the other spatial size: the relaxed original, on the same inputs
    # (both drawn from the same seed).
    _, other_again, original_out = rebuild.relax_spatial_dims(model, samples)
    np.testing.assert_array_equal(other_again[0], other[0])
    scale = float(np.abs(original_out[0]).max())
    np.testing.assert_allclose(
        other_out[0], original_out[0], rtol=1e-5, atol=1e-5 * scale
    )
