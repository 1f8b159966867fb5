"""Helpers shared by the model tests: the registry as pytest params, with
the large networks marked slow (they still run in CI)."""

import pytest

import keras_aff.models as M

BIG = {
    "aff_resnet50",
    "iaff_resnet50",
    "aff_resnext50_32x4d",
    "iaff_resnext50_32x4d",
}


def model_params(names=None):
    """`pytest.param`s over the registry, the large models marked slow."""
    names = M.list_models() if names is None else names
    return [
        pytest.param(n, id=n, marks=[pytest.mark.slow] if n in BIG else [])
        for n in names
    ]


def small_input_shape(name):
    """The smallest input the tests use: 64x64 for the ImageNet networks
    (stage 4 is then 2x2, so its local BatchNorms see more than one value
    per channel), the native 32x32 for the CIFAR ones."""
    return (64, 64, 3) if M.model_info(name).dataset == "imagenet" else None
