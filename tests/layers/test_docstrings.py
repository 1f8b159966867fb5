"""The docstring examples of the backend-agnostic modules (layers, the
argument checks, interop) run on every Keras backend, not only on
TensorFlow (`tests/test_doctests.py` runs the whole package there)."""

import importlib

import pytest

from tests.test_doctests import run_examples

MODULES = [
    "keras_aff._validation",
    "keras_aff.layers.shapes",
    "keras_aff.layers.arguments",
    "keras_aff.layers.dispatch",
    "keras_aff.layers.gate",
    "keras_aff.layers.ms_cam",
    "keras_aff.layers.aff",
    "keras_aff.layers.iaff",
    "keras_aff.layers.align",
    "keras_aff.layers.multi_aff",
    "keras_aff.interop.torch",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    failed, attempted = run_examples(importlib.import_module(name))
    assert attempted > 0
    assert failed == 0
