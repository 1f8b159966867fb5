"""The Examples in the public docstrings of keras_aff.layers and
keras_aff.interop run and print what they show (on every backend)."""

import doctest
import importlib

import keras
import pytest

import keras_aff
import keras_aff.interop  # noqa: F401

MODULES = [
    "keras_aff.layers.ms_cam",
    "keras_aff.layers.aff",
    "keras_aff.layers.iaff",
    "keras_aff.interop.torch",
]
PUBLIC = {
    "keras_aff.layers": ["MSCAM", "AFF", "IAFF"],
    "keras_aff.interop": ["load_torch_state_dict", "to_torch_state_dict"],
}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module,
        extraglobs={"keras": keras, "keras_aff": keras_aff},
        optionflags=doctest.ELLIPSIS,
        report=True,
    )
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_public_names_have_an_example(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PUBLIC[package])
    for name in module.__all__:
        doc = getattr(module, name).__doc__ or ""
        assert "Example:" in doc and ">>> " in doc, name
