"""Smoke runs of the model examples (their `--quick` mode, in process)."""

import importlib.util
import os

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
