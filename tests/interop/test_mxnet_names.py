"""keras_aff.interop.load_mxnet_params: the official Gluon names of all
seven networks (and their float16 files) against the manifest that the
official code wrote, and every error the loader reports."""

import functools

import numpy as np
import pytest

from keras_aff import interop
from keras_aff import models
from keras_aff.interop import mxnet
from tests.interop import fixtures
from tests.interop import mxnet_writer

# Manifest entry -> registry name.
NETWORKS = {
    "aff_resnet32.params": "aff_resnet32",
    "aff_resnext38.params": "aff_resnext38_32x4d",
    "aff_resnext47.params": "aff_resnext47_32x4d",
    "aff_resnet50.params": "aff_resnet50",
    "iaff_resnet50.params": "iaff_resnet50",
    "aff_resnext50.params": "aff_resnext50_32x4d",
    "iaff_resnext50.params": "iaff_resnext50_32x4d",
    "aff_resnet50.fp16.params": "aff_resnet50",
    "iaff_resnet50.fp16.params": "iaff_resnet50",
    "aff_resnext50.fp16.params": "aff_resnext50_32x4d",
    "iaff_resnext50.fp16.params": "iaff_resnext50_32x4d",
}
FROZEN = {"features.0.gamma": 1.0, "features.0.beta": 0.0}


@functools.cache
def _model(name, **kwargs):
    # The smallest input each family takes: the weights do not depend on it.
    size = 32 if models.model_info(name).dataset == "imagenet" else 8
    return models.get_model(name, input_shape=(size, size, 3), **kwargs)


def _arrays(entries, seed=0):
    """Distinct random values with the manifest's names, shapes, dtypes."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape, dtype in entries:
        if name in FROZEN:
            out[name] = np.full(shape, FROZEN[name], dtype)
        else:
            out[name] = rng.normal(size=shape).astype(dtype)
    return out


def _to_keras(array):
    # Gluon conv (out, in, kh, kw) -> Keras (kh, kw, in, out); Dense
    # (out, in) -> (in, out); vectors as they are.
    if array.ndim == 4:
        return np.transpose(array, (2, 3, 1, 0))
    return array.T if array.ndim == 2 else array


@pytest.mark.parametrize("entry", list(NETWORKS))
def test_every_official_name_fills_exactly_one_keras_weight(entry):
    manifest = fixtures.manifest()[entry]
    model = _model(NETWORKS[entry])
    arrays = _arrays(manifest)
    report = interop.load_mxnet_params(model, arrays)

    used = [r["name"] for r in report.loaded + report.checked]
    assert sorted(used) == sorted(name for name, _, _ in manifest)
    assert len(set(used)) == len(used) == len(manifest)
    filled = [r["variable"] for r in report.loaded]
    assert sorted(filled) == sorted(v.path for v in model.weights)
    assert len(set(filled)) == len(filled)
    assert [r["name"] for r in report.checked] == [
        n for n, _, _ in manifest if n in FROZEN
    ]
    by_path = {v.path: v for v in model.weights}
    for row in report.loaded:
        source = arrays[row["name"]]
        assert row["dtype"] == source.dtype.name
        assert row["shape"] == source.shape
        value = by_path[row["variable"]].numpy()
        assert value.dtype == np.float32
        np.testing.assert_array_equal(
            value, _to_keras(source).astype(np.float32), err_msg=row["name"]
        )


def test_the_float16_files_hold_float16_conv_and_dense_weights():
    manifest = fixtures.manifest()["iaff_resnext50.fp16.params"]
    kinds = {
        dtype: {name.rsplit(".", 1)[1] for name, _, d in manifest if d == dtype}
        for dtype in ("float16", "float32")
    }
    assert kinds == {
        "float16": {"weight", "bias"},
        "float32": {"gamma", "beta", "running_mean", "running_var"},
    }
    report = interop.load_mxnet_params(
        _model("iaff_resnext50_32x4d"), _arrays(manifest)
    )
    assert set(report.dtypes) == {"float16", "float32"}
    assert "cast to float32" in str(report).splitlines()[0]


@pytest.mark.parametrize(
    "fusion, fusion_stages, gates",
    [("iaff", (1, 2, 3), 2), ("aff", (2, 3), 1), ("add", (1, 2, 3), 0)],
)
def test_fusion_variants_take_their_own_names(fusion, fusion_stages, gates):
    model = models.AFFResNet32(
        input_shape=(8, 8, 3), fusion=fusion, fusion_stages=fusion_stages
    )
    arrays = mxnet.official_arrays(
        model, fill=lambda name, shape: np.full(shape, 0.5, "float32")
    )
    report = interop.load_mxnet_params(model, arrays)
    names = [r["name"] for r in report.loaded]
    fused = {n.split(".")[1] for n in names if ".attention." in n}
    assert fused == {str(s + 1) for s in fusion_stages} if gates else not fused
    assert any(".local_att2." in n for n in names) == (gates == 2)
    assert ("features.2.0.attention.global_att2.5.gamma" in names) == (
        gates == 2 and 1 in fusion_stages
    )


def _resnet32_arrays():
    return _arrays(fixtures.manifest()["aff_resnet32.params"], seed=1)


def _load_error(model, arrays):
    before = [v.numpy().copy() for v in model.weights]
    with pytest.raises(ValueError) as info:
        interop.load_mxnet_params(model, arrays)
    for old, variable in zip(before, model.weights):
        np.testing.assert_array_equal(old, variable.numpy())
    message = str(info.value)
    assert "nothing was assigned" in message and "\n" not in message
    return message


def test_missing_unexpected_and_mis_shaped_names_in_one_error():
    arrays = _resnet32_arrays()
    del arrays["features.3.0.downsample.1.weight"]
    arrays["features.3.0.downsample.2.gamma"] = np.ones(128, "float32")
    arrays["features.2.1.resfwd.2.weight"] = np.ones((64, 64, 1, 1), "f4")
    message = _load_error(_model("aff_resnet32"), arrays)
    assert "1 missing names: features.3.0.downsample.1.weight." in message
    assert "1 unexpected names: features.3.0.downsample.2.gamma." in message
    assert (
        "1 mis-shaped names: features.2.1.resfwd.2.weight (64, 64, 1, 1) "
        "(expected (64, 64, 3, 3))." in message
    )
    # A dict is named by its size, not as if it were a file called
    # 'a dict' (`keras-aff convert` passes the dict it read, after naming
    # the file itself).
    assert message.endswith(f"Received: params=a dict of {len(arrays)} arrays")
    assert "'a dict'" not in message


def test_a_classifier_of_another_size_says_what_the_file_holds():
    arrays = _resnet32_arrays()
    arrays["output.weight"] = np.ones((20, 256), "float32")
    arrays["output.bias"] = np.ones((20,), "float32")
    message = _load_error(_model("aff_resnet32"), arrays)
    assert (
        "classifier `output.weight` has 20 classes (shape (20, 256)), the "
        "model 100: build the model with classes=20" in message
    )
    assert "a 20-way classifier" in message


def test_include_top_false_ignores_the_classifier():
    model = _model("aff_resnet32", include_top=False)
    report = interop.load_mxnet_params(model, _resnet32_arrays())
    assert report.ignored == ["output.weight", "output.bias"]
    assert len(report.loaded) == len(model.weights)
    assert "ignored: output.weight, output.bias" in str(report)


def test_frozen_stem_values_other_than_one_and_zero_are_refused():
    arrays = _resnet32_arrays()
    arrays["features.0.gamma"] = np.array([1.0, 2.0, 1.0], "float32")
    message = _load_error(_model("aff_resnet32"), arrays)
    assert "features.0.gamma must be all 1 (the BatchNorm has scale=False" in (
        message
    )


def test_a_file_of_another_network_is_named_in_the_error():
    arrays = _arrays(fixtures.manifest()["aff_resnext38.params"])
    message = _load_error(_model("aff_resnet32"), arrays)
    assert (
        "nothing was assigned: the file holds the official CIFARAFFResNeXt "
        "(CIFAR ResNeXt 32x4d): blocks per stage (4, 4, 4), fusion 'aff' in "
        "stages [1, 2, 3], a 100-way classifier; in keras_aff: "
        "aff_resnext38_32x4d. 327 missing names: features.0.running_mean,"
    ) in message
    assert "and 319 more." in message  # long lists are cut


def test_a_plain_baseline_reports_the_fusion_names():
    model = models.AFFResNet32(input_shape=(8, 8, 3), fusion="add")
    message = _load_error(model, _resnet32_arrays())
    assert "360 unexpected names: features.2.0.attention.local_att.0" in (
        message
    )
    assert "fusion 'aff' in stages [1, 2, 3]" in message


def test_argument_errors(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 3))
    other = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs), name="cnn")
    with pytest.raises(ValueError, match="Received: model='cnn'"):
        interop.load_mxnet_params(other, {})
    with pytest.raises(TypeError, match="Received: model="):
        interop.load_mxnet_params("aff_resnet32", {})
    with pytest.raises(TypeError, match="Received: params=3"):
        interop.load_mxnet_params(_model("aff_resnet32"), 3)
    with pytest.raises(ValueError, match="Received: params='.*missing'"):
        interop.load_mxnet_params(_model("aff_resnet32"), tmp_path / "missing")


def test_builders_take_a_params_file_by_its_content(tmp_path):
    arrays = _resnet32_arrays()
    # An official file under a misleading extension: the content decides.
    path = mxnet_writer.write_params(tmp_path / "weights.h5", arrays)
    model = models.AFFResNet32(input_shape=(8, 8, 3), weights=path)
    values = {r["variable"]: r["name"] for r in _plan_rows(arrays)}
    assert len(values) == len(model.weights)
    for variable in model.weights:
        want = _to_keras(arrays[values[variable.path]])
        np.testing.assert_array_equal(variable.numpy(), want)
    headless = models.AFFResNet32(
        input_shape=(8, 8, 3), include_top=False, weights=path
    )
    np.testing.assert_array_equal(
        headless.get_layer("post_bn").gamma.numpy(), arrays["features.5.gamma"]
    )
    with pytest.raises(ValueError, match="build the model with classes=100"):
        models.AFFResNet32(input_shape=(8, 8, 3), classes=20, weights=path)


def _plan_rows(arrays):
    # What the loader reports for a fresh model of the same architecture.
    fresh = models.AFFResNet32(input_shape=(8, 8, 3))
    return interop.load_mxnet_params(fresh, arrays).loaded
