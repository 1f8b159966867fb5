"""The kernel tests take the layer cases of tests/layers (a `case`
argument runs once per layer, narrowed by a module-level `CASES`)."""

from tests.layers.conftest import pytest_generate_tests  # noqa: F401
