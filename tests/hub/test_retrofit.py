"""`keras_aff.hub.retrofit_backbone` on KerasHub's own backbones
(ResNetBackbone with both block types, CSPNetBackbone): a KerasHub backbone
that starts as the same function, keeps its pyramid, rebuilds itself from
its config, and round-trips through a preset into a fresh process."""

import json

import keras
import numpy as np
import pytest

from tests import processes

hub = pytest.importorskip(
    "keras_aff.hub", reason="keras-hub is not installed (the hub extra)"
)
import keras_hub  # noqa: E402

RESNET = {
    "input_conv_filters": [64],
    "input_conv_kernel_sizes": [3],
    "stackwise_num_filters": [64, 64, 64],
    "stackwise_num_blocks": [1, 1, 1],
    "stackwise_num_strides": [1, 2, 2],
    "image_shape": (32, 32, 3),
}
CSPNET = {
    "stem_filters": 16,
    "stem_kernel_size": 3,
    "stem_strides": 2,
    "stackwise_depth": [1, 1],
    "stackwise_strides": [2, 2],
    "stackwise_num_filters": [32, 64],
    "block_type": "dark_block",
    "stage_type": "dark",
    "bottle_ratio": [0.5],
    "image_shape": (32, 32, 3),
}
BACKBONES = {
    "resnet_basic": lambda: keras_hub.models.ResNetBackbone(
        block_type="basic_block", **RESNET
    ),
    "resnet_bottleneck": lambda: keras_hub.models.ResNetBackbone(
        block_type="bottleneck_block", **RESNET
    ),
    "cspnet_dark": lambda: keras_hub.models.CSPNetBackbone(**CSPNET),
}
# Replaced additions: one per block.
EXPECTED_SITES = {"resnet_basic": 3, "resnet_bottleneck": 3, "cspnet_dark": 2}


def _images(n=2):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, size=(n, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize("kind", list(BACKBONES))
@pytest.mark.parametrize("fusion", ["aff", "iaff"])
def test_retrofitted_backbone_starts_as_the_same_function(kind, fusion):
    original = BACKBONES[kind]()
    backbone = hub.retrofit_backbone(original, fusion=fusion, reduction_ratio=4)
    assert isinstance(backbone, keras_hub.models.FeaturePyramidBackbone)
    assert len(backbone.report.replaced) == EXPECTED_SITES[kind]
    assert list(backbone.pyramid_outputs) == list(original.pyramid_outputs)
    x = _images()
    pyramid = keras.Model(backbone.inputs, backbone.pyramid_outputs)(x)
    before = keras.Model(original.inputs, original.pyramid_outputs)(x)
    for level in before:
        np.testing.assert_allclose(
            pyramid[level], before[level], rtol=0, atol=1e-5
        )
    np.testing.assert_allclose(backbone(x), original(x), rtol=0, atol=1e-5)
    # The config: the original's plus the settings; JSON, and from_config
    # rebuilds the same layers in the same order, every time.
    config = backbone.get_config()
    assert config["backbone"] == keras.saving.serialize_keras_object(original)
    assert (config["fusion"], config["reduction_ratio"]) == (fusion, 4)
    json.dumps(config)
    first = hub.RetrofitBackbone.from_config(config)
    second = hub.RetrofitBackbone.from_config(config)
    paths = [(w.path, w.shape) for w in backbone.weights]
    assert [(w.path, w.shape) for w in first.weights] == paths
    assert [(w.path, w.shape) for w in second.weights] == paths
    assert first.get_config() == config


def test_select_and_bad_backbones():
    original = BACKBONES["resnet_basic"]()
    backbone = hub.retrofit_backbone(
        original, reduction_ratio=4, select=["stack2_block0_add"]
    )
    assert [r["path"] for r in backbone.report.replaced] == [
        "stack2_block0_add"
    ]
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    with pytest.raises(TypeError, match="Expected `backbone` to be a Kera"):
        hub.retrofit_backbone(plain)
    with pytest.raises(TypeError, match="select="):
        hub.retrofit_backbone(original, select="stack2_block0_add")


# The fresh process: argv = preset, inputs, expected predictions.
CHILD = """
import json, sys
import numpy as np
import keras_hub
import keras_aff.hub
preset, inputs, expected = sys.argv[1:]
x, y = np.load(inputs), np.load(expected)
clf = keras_hub.models.ImageClassifier.from_preset(preset)
backbone = keras_hub.models.Backbone.from_preset(preset)
out = clf.predict(x, verbose=0)
print(json.dumps({
    "task": type(clf).__name__,
    "backbone": type(backbone).__name__,
    "preprocessor": type(clf.preprocessor).__name__,
    "error": float(np.abs(out - y).max()),
}))
"""


def test_fine_tuned_retrofit_round_trips_through_a_preset(tmp_path):
    original = BACKBONES["resnet_bottleneck"]()
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32), scale=1 / 255.0
    )
    classifier = hub.RetrofitImageClassifier(
        hub.retrofit_backbone(original, reduction_ratio=4),
        num_classes=3,
        preprocessor=keras_hub.models.ResNetImageClassifierPreprocessor(
            converter
        ),
    )
    x = _images(4) * 255.0
    labels = np.array([0, 1, 2, 1])
    before = classifier.predict(x, verbose=0)
    classifier.fit(x, labels, batch_size=4, epochs=2, verbose=0)
    expected = classifier.predict(x, verbose=0)
    assert np.abs(expected - before).max() > 1e-4  # it trained
    preset = tmp_path / "preset"
    classifier.save_to_preset(str(preset))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", expected)
    proc = processes.run_python(
        ["-c", CHILD, preset, tmp_path / "x.npy", tmp_path / "y.npy"]
    )
    report = processes.last_json(processes.succeeded(proc))
    print(report)
    assert report["task"] == "RetrofitImageClassifier"
    assert report["backbone"] == "RetrofitBackbone"
    assert report["preprocessor"] == "ResNetImageClassifierPreprocessor"
    assert report["error"] <= 1e-6
