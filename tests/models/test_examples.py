"""Smoke runs of the model examples (their `--quick` mode, in process)."""

import importlib.util
import os

import numpy as np
import pytest

_EXAMPLES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "examples"
)


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(_EXAMPLES, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_cifar_like_quick(capsys):
    results = _load("train_cifar_like").main(["--quick"])
    assert set(results) == {"add", "aff"}
    assert all(0.0 <= v <= 1.0 for v in results.values())
    out = capsys.readouterr().out
    assert "plain add test accuracy" in out and "AFF       test accuracy" in out


def test_train_cifar_like_data_is_learnable():
    module = _load("train_cifar_like")
    x, y = module.make_dataset(50, size=16, seed=0)
    assert x.shape == (50, 16, 16, 3) and x.dtype == "float32"
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(y) <= set(range(module.NUM_CLASSES))


@pytest.mark.slow
def test_retrofit_resnet50_quick(capsys):
    rel = _load("retrofit_resnet50").main(["--quick"])
    assert rel < 1e-4
    out = capsys.readouterr().out
    assert "16 addition(s) replaced by AFF" in out
    assert "same top-1 class on 100% of the images" in out


def test_segmentation_smoke(tmp_path, capsys):
    """The CI run of examples/segmentation.py: both networks train, the
    AFF-UNet exports to LiteRT int8 (builtin ops) and ONNX, verified, and
    the figure and the JSON are written."""
    out = tmp_path / "seg"
    summary = _load("segmentation").main(["--smoke", "--out-dir", str(out)])
    assert set(summary["mean_iou"]) == {"aff", "add"}
    for values in summary["mean_iou"].values():
        assert len(values) == 1 and 0.0 <= values[0] <= 1.0
    assert 0.0 <= summary["int8_mean_iou_seed0"] <= 1.0
    litert, onnx = summary["exports"]["litert_int8"], summary["exports"]["onnx"]
    assert litert["quantization"] == "int8"
    assert not [op for op in litert["ops"] if not op.isupper()]
    assert "GATHER" in litert["ops"] and "CONV_2D" in litert["ops"]
    assert litert["mean_abs_error"] <= litert["tolerance"]
    assert onnx["max_abs_error"] <= onnx["tolerance"]
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "aff_unet.onnx",
        "aff_unet_int8.tflite",
        "segmentation.json",
        "segmentation.png",
    ]
    assert (out / "segmentation.png").stat().st_size > 10_000
    assert "| aff |" in capsys.readouterr().out


def test_segmentation_data_and_score():
    module = _load("segmentation")
    x, y = module.make_dataset(40, size=32, seed=3)
    assert x.shape == (40, 32, 32, 3) and x.dtype == "float32"
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y.shape == (40, 32, 32) and set(np.unique(y)) == {0, 1, 2, 3}
    x2, y2 = module.make_dataset(40, size=32, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert module.mean_iou(y, y) == 1.0
    truth = np.array([[0, 0, 1, 1]])
    # class 0: 1 / 2, class 1: 2 / 3 -> mean 7 / 12.
    assert module.mean_iou(truth, np.array([[0, 1, 1, 1]])) == pytest.approx(
        7 / 12
    )


def test_sequence_mnist1d_smoke(capsys):
    module = _load("sequence_mnist1d")
    summary = module.main(["--smoke"])
    assert set(summary["accuracy"]) == {"aff", "add"}
    assert all(0.0 <= a[0] <= 1.0 for a in summary["accuracy"].values())
    (x, y), (x_test, _) = module.load_mnist1d(200)
    assert x.shape == (160, 40, 1) and x_test.shape == (40, 40, 1)
    assert set(np.unique(y)) <= set(range(10))
    model = module.build("aff", width=8, blocks=1)
    fusions = [f for f in model.layers if f.name.endswith("_aff")]
    assert len(fusions) == 3 and fusions[0].input[0].shape == (None, 40, 8)
    assert "| add |" in capsys.readouterr().out
