"""`keras_aff.hub`'s backbones and image converter: the optional import,
every registered network as an `AFFBackbone` with the functional network's
weights, and the official normalisation."""

import keras
import numpy as np
import pytest

from keras_aff import models
from tests import processes

hub = pytest.importorskip(
    "keras_aff.hub", reason="keras-hub is not installed (the hub extra)"
)


def test_import_keras_aff_does_not_import_keras_hub():
    code = (
        "import sys, keras_aff, keras_aff.models, keras_aff.layers\n"
        "print('keras_hub' in sys.modules)"
    )
    proc = processes.succeeded(processes.run_python(["-c", code]))
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_without_keras_hub_the_import_error_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['keras_hub'] = None\n"
        "try:\n"
        "    import keras_aff.hub\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    proc = processes.succeeded(processes.run_python(["-c", code]))
    assert 'pip install "keras-aff[hub]"' in proc.stdout
    assert "keras_aff.hub needs `keras_hub`" in proc.stdout


def _levels(info):
    return {
        f"P{int(np.log2(s))}": (c, s)
        for c, s in zip(info.stage_channels, info.stage_strides)
    }


@pytest.mark.parametrize("name", models.list_models())
def test_every_network_is_a_backbone_with_its_weights(name):
    info = models.model_info(name)
    size = 32
    backbone = hub.backbone(name, image_shape=(size, size, 3))
    assert isinstance(backbone, hub.AFFBackbone)
    config = backbone.get_config()
    assert config["architecture"] == name
    assert config["image_shape"] == (size, size, 3)
    assert config["data_format"] == "channels_last"
    assert config["dtype"]["config"]["name"] == "float32"
    assert config["fusion"] == name.split("_")[0]
    # The pyramid: one level per stage, named by its stride.
    levels = _levels(info)
    assert list(backbone.pyramid_outputs) == list(levels)
    for key, (channels, stride) in levels.items():
        shape = backbone.pyramid_outputs[key].shape
        assert shape == (None, size // stride, size // stride, channels)
    # The functional network's weights, copied in, give identical outputs.
    network = models.get_model(
        name, include_top=False, input_shape=(size, size, 3)
    )
    assert [w.shape for w in backbone.weights] == [
        w.shape for w in network.weights
    ]
    backbone.set_weights(network.get_weights())
    x = np.random.default_rng(0).normal(size=(2, size, size, 3))
    expected = np.asarray(network(x, training=False))
    np.testing.assert_array_equal(np.asarray(backbone(x)), expected)


def test_config_round_trip_rebuilds_the_architecture():
    backbone = hub.AFFBackbone(
        "aff_resnext38_32x4d",
        fusion="iaff",
        fusion_stages=[3, 2],
        reduction_ratio=8,
        image_shape=(None, None, 3),
        name="mine",
    )
    config = backbone.get_config()
    assert (config["fusion"], config["fusion_stages"]) == ("iaff", [2, 3])
    revived = hub.AFFBackbone.from_config(config)
    assert revived.get_config() == config
    assert revived.count_params() == backbone.count_params()
    assert revived.get_layer("stage2_block1_iaff").reduction_ratio == 8
    assert backbone.output.shape == (None, None, None, 1024)


def test_dtype_policy_and_data_format_apply_to_every_layer():
    backbone = hub.backbone(
        "aff_resnet32",
        image_shape=(3, 32, 32),
        data_format="channels_first",
        dtype="bfloat16",
    )
    assert keras.config.image_data_format() == "channels_last"
    assert keras.config.dtype_policy().name == "float32"
    assert backbone.pyramid_outputs["P2"].shape == (None, 256, 8, 8)
    names = {layer.dtype_policy.name for layer in backbone.layers[1:]}
    assert names == {"bfloat16"}
    assert backbone.get_config()["data_format"] == "channels_first"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"architecture": "resnet50"}, ValueError, "architecture='resnet50'"),
        (
            {"architecture": "aff_resnet32", "image_shape": (32, 32)},
            ValueError,
            r"image_shape=\(32, 32\)",
        ),
        (
            {"architecture": "aff_resnet32", "data_format": "nhwc"},
            ValueError,
            "data_format='nhwc'",
        ),
        (
            {"architecture": "aff_resnet32", "fusion": "sum"},
            ValueError,
            "fusion='sum'",
        ),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        hub.AFFBackbone(**kwargs)


@pytest.mark.parametrize("dataset", ["imagenet", "cifar", "cifar100"])
def test_converter_normalises_as_preprocess_input(dataset):
    converter = hub.AFFImageConverter.official(dataset, image_size=None)
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    expected = models.preprocess_input(pixels.astype("float64"), dataset)
    np.testing.assert_allclose(
        np.asarray(converter(pixels)), expected, rtol=0, atol=1e-6
    )


def test_official_imagenet_converter_passes_an_evaluation_crop_through():
    converter = hub.AFFImageConverter.official("imagenet")
    assert converter.image_size == (224, 224)
    image = np.random.default_rng(0).uniform(0, 255, (300, 400, 3))
    crop = models.evaluation_crop(image)
    expected = models.preprocess_input(crop[None].astype("float64"))
    np.testing.assert_allclose(
        np.asarray(converter(crop[None])), expected, rtol=0, atol=1e-5
    )
    assert hub.AFFImageConverter.official("cifar").image_size is None
