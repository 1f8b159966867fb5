"""Where the official open-aff fixtures are: `<repository>/../shared/
fixtures/open-aff` (CI always has it). Tests that need them skip, saying
what is missing, only where that directory is absent."""

import json
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIRECTORY = ROOT.parent / "shared" / "fixtures" / "open-aff"
# The two files MXNet 1.9.1 wrote from the official Gluon networks.
PARAMS_FILES = ("aff_resnet32.params", "iaff_resnext50.fp16.params")


def path(name):
    """The fixture `name`; skips the test when the directory is absent."""
    if not DIRECTORY.is_dir():
        pytest.skip(
            f"the official open-aff fixtures are not here: {DIRECTORY} is "
            "missing (it sits beside the repository, as ../shared)"
        )
    return DIRECTORY / name


def manifest():
    """`{file: [[name, shape, dtype], ...]}` of the seven official networks
    and the float16 variants."""
    return json.loads(path("manifest.json").read_text(encoding="utf-8"))


def array(name):
    """A `.npy` fixture (inputs and logits)."""
    return np.load(path(name), allow_pickle=False)
