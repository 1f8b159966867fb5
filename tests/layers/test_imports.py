"""keras_aff does not import tensorflow (or torch) when it does not need to.

The layers use `keras.ops` only, so `KERAS_BACKEND=jax` must not pull in
tensorflow; the interop module must never import torch.
"""

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

import keras_aff

PACKAGE = pathlib.Path(keras_aff.__file__).parent
# Modules that must be importable without tensorflow and torch.
BACKEND_AGNOSTIC = ("layers", "interop")
FORBIDDEN = ("tensorflow", "tf_keras", "torch")


def forbidden_imports(source, filename="<string>"):
    """`[(line, module), ...]` for every import of a FORBIDDEN package,
    anywhere in the source (module level or inside functions)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                found.append((node.lineno, name))
    return found


def test_scanner_finds_imports():
    src = "import os\nimport tensorflow as tf\n"
    src += "def f():\n    from torch import nn\n"
    assert forbidden_imports(src) == [(2, "tensorflow"), (4, "torch")]
    assert forbidden_imports("from keras_aff.interop import torch\n") == []


@pytest.mark.parametrize("subpackage", BACKEND_AGNOSTIC)
def test_no_tensorflow_or_torch_import_statements(subpackage):
    files = sorted((PACKAGE / subpackage).glob("*.py"))
    assert files
    bad = {
        str(f.relative_to(PACKAGE)): hits
        for f in files
        if (hits := forbidden_imports(f.read_text(), str(f)))
    }
    assert not bad, bad


def test_import_under_jax_does_not_load_tensorflow():
    pytest.importorskip("jax")
    code = (
        "import json, sys\n"
        "import keras_aff, keras_aff.layers, keras_aff.interop\n"
        "import keras\n"
        "mods = sorted(m.split('.')[0] for m in sys.modules)\n"
        "print(json.dumps({'backend': keras.backend.backend(),\n"
        f"  'loaded': [m for m in {FORBIDDEN!r} if m in mods]}}))\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"backend": "jax", "loaded": []}
