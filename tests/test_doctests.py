"""Every docstring example in keras_aff runs as a doctest, and every public
name has one.

The examples run with the module's globals plus `keras`, `np` (NumPy) and
`keras_aff` in scope, in a
fresh temporary working directory (so they may write files), with ELLIPSIS
and NORMALIZE_WHITESPACE. They run under the TensorFlow backend, the
default; `tests/layers/test_docstrings.py` runs the layer examples on the
other backends.
"""

import doctest
import importlib
import os
import pkgutil

import keras
import numpy as np
import pytest

import keras_aff


def _module_names(path, prefix):
    """Every module under `path`, found without importing any of them
    (`pkgutil.walk_packages` imports each package, and `keras_aff.qat`
    imports tfmot, which sets TF_USE_LEGACY_KERAS for the whole session)."""
    for info in pkgutil.iter_modules(path, prefix):
        yield info.name
        if info.ispkg:
            sub = [os.path.join(p, info.name.rsplit(".", 1)[-1]) for p in path]
            yield from _module_names(sub, info.name + ".")


MODULES = sorted(_module_names(keras_aff.__path__, "keras_aff."))
# Subpackages whose `__all__` is public API (each name needs an example).
PUBLIC_PACKAGES = (
    "keras_aff.layers",
    "keras_aff.models",
    "keras_aff.export",
    "keras_aff.interop",
    "keras_aff.optimize",
    "keras_aff.legacy",
    "keras_aff.qat",
    "keras_aff.cli",
    "keras_aff.demo",
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def run_examples(module):
    """(failed, attempted) for every docstring example in `module`."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    extra = {"keras": keras, "np": np, "keras_aff": keras_aff}
    for test in finder.find(module, module.__name__, extraglobs=extra):
        runner.run(test)
    return runner.summarize(verbose=False)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    failed, _ = run_examples(module)
    assert failed == 0, f"{failed} docstring example(s) failed in {name}"


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_public_names_have_an_example(package):
    module = importlib.import_module(package)
    missing = [
        name
        for name in module.__all__
        if ">>> " not in (getattr(module, name).__doc__ or "")
    ]
    assert not missing, f"{package}: no example in {missing}"
