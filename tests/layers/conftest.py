"""Every test in tests/layers that takes a `case` argument runs once per
layer (`tests/layers/cases.py`), with the layer's name as its id."""

from tests.layers.cases import CASES


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", CASES, ids=[c.name for c in CASES])
