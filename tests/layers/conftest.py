"""Every test in tests/layers that takes a `case` argument runs once per
layer (`tests/layers/cases.py`), with the layer's name as its id; a test
module may narrow the layers with a module-level `CASES`."""

from tests.layers import cases


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        chosen = getattr(metafunc.module, "CASES", cases.CASES)
        metafunc.parametrize("case", chosen, ids=[c.name for c in chosen])
