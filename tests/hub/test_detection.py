"""RetinaNet with the AFF-FPN neck, DeepLabV3 on the ImageNet-family
backbones, and examples/detection.py (smoke run, data, the pycocotools
score)."""

import importlib.util

import keras
import numpy as np
import pytest

from tests import processes

hub = pytest.importorskip(
    "keras_aff.hub", reason="keras-hub is not installed (the hub extra)"
)
import keras_hub  # noqa: E402

pytest.importorskip("pycocotools", reason="pycocotools is not installed")


def _encoder(name="iaff_resnet50"):
    return hub.backbone(name, blocks_per_stage=(1, 1, 1, 1))


def _images(n=1, size=64):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, size=(n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("fusion", ["aff", "add"])
def test_retinanet_neck_gives_p3_to_p7(fusion):
    neck = hub.AFFRetinaNetBackbone(_encoder(), fpn_channels=16, fusion=fusion)
    out = neck(_images())
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "P3": (1, 8, 8, 16),
        "P4": (1, 4, 4, 16),
        "P5": (1, 2, 2, 16),
        "P6": (1, 1, 1, 16),
        "P7": (1, 1, 1, 16),
    }
    fpn = neck.get_layer("fpn")
    fused = [x.name for x in fpn.layers if type(x).__name__ == "AFF"]
    assert len(fused) == (2 if fusion == "aff" else 0)
    config = neck.get_config()
    assert config["fusion"] == fusion
    assert hub.AFFRetinaNetBackbone.from_config(config).get_config() == config


def test_retinanet_neck_refuses_an_encoder_without_p3_to_p5():
    cifar = hub.backbone("aff_resnet32", blocks_per_stage=(1, 1, 1))
    with pytest.raises(ValueError, match="lacks \\['P3', 'P4', 'P5'\\]"):
        hub.AFFRetinaNetBackbone(cifar)


def test_detector_round_trips_through_a_preset(tmp_path):
    detector = hub.AFFRetinaNetObjectDetector(
        hub.AFFRetinaNetBackbone(_encoder(), fpn_channels=16),
        num_classes=2,
        pre_logits_num_conv_layers=1,
    )
    x = _images()
    expected = detector(x)
    detector.save_to_preset(str(tmp_path / "retinanet"))
    loaded = keras_hub.models.ObjectDetector.from_preset(
        str(tmp_path / "retinanet")
    )
    assert type(loaded) is hub.AFFRetinaNetObjectDetector
    assert type(loaded.backbone.image_encoder) is hub.AFFBackbone
    out = loaded(x)
    for key in ("cls_logits", "bbox_regression"):
        np.testing.assert_allclose(out[key], expected[key], atol=1e-6)


@pytest.mark.parametrize("name", ["aff_resnet50", "iaff_resnext50_32x4d"])
def test_deeplabv3_segmenter_on_imagenet_backbones(name, tmp_path):
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=_encoder(name),
        spatial_pyramid_pooling_key="P5",
        low_level_feature_key="P2",
        upsampling_size=8,
        dilation_rates=[1, 2],
    )
    segmenter = keras_hub.models.DeepLabV3ImageSegmenter(backbone, 3)
    x = _images()
    expected = segmenter(x)
    assert tuple(expected.shape) == (1, 64, 64, 3)
    segmenter.save_to_preset(str(tmp_path / "deeplab"))
    loaded = keras_hub.models.ImageSegmenter.from_preset(
        str(tmp_path / "deeplab")
    )
    np.testing.assert_allclose(loaded(x), expected, atol=1e-6)


def _example():
    path = processes.ROOT / "examples" / "detection.py"
    spec = importlib.util.spec_from_file_location("detection_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_data_and_score():
    module = _example()
    x, y = module.make_dataset(20, seed=3)
    assert x.shape == (20, 64, 64, 3) and 0 <= x.min() and x.max() <= 1
    x2, y2 = module.make_dataset(20, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y["boxes"], y2["boxes"])
    sizes = y["boxes"][..., 2] - y["boxes"][..., 0]
    assert set(np.unique(y["labels"])) == {-1.0, 0.0, 1.0}
    assert sizes[y["labels"] >= 0].min() >= 10
    assert sizes[y["labels"] >= 0].max() <= 36
    # The truth as predictions scores 1; every box moved off the image
    # scores 0.
    count = (y["labels"] >= 0).sum(axis=1)
    perfect = {
        "boxes": y["boxes"],
        "labels": np.maximum(y["labels"], 0),
        "confidence": np.ones_like(y["labels"]),
        "num_detections": count,
    }
    assert module.map50(y, perfect) == pytest.approx(1.0)
    shifted = dict(perfect)
    shifted["boxes"] = y["boxes"] + 200.0
    assert module.map50(y, shifted) == 0.0


def test_example_smoke(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    summary = _example().main(["--smoke", "--out-dir", str(tmp_path)])
    assert set(summary["map50"]) == {"aff", "add"}
    for values in summary["map50"].values():
        assert len(values) == 1 and 0.0 <= values[0] <= 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "detection.json",
        "detection.png",
    ]
    assert (tmp_path / "detection.png").stat().st_size > 5_000
    assert "| aff |" in capsys.readouterr().out
