"""keras_aff does not import tensorflow (or torch) when it does not need to.

The layers use `keras.ops` only, so `KERAS_BACKEND=jax` must not pull in
tensorflow; the interop module must never import torch.
"""

import ast
import pathlib

import pytest

import keras_aff
from tests import processes

PACKAGE = pathlib.Path(keras_aff.__file__).parent
# Modules that must be importable without tensorflow and torch.
BACKEND_AGNOSTIC = ("layers", "interop", "kernels", "optimize")
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
    code = (
        "import json, sys\n"
        "import keras_aff, keras_aff.layers, keras_aff.interop\n"
        "import keras\n"
        "mods = sorted(m.split('.')[0] for m in sys.modules)\n"
        "print(json.dumps({'backend': keras.backend.backend(),\n"
        f"  'loaded': [m for m in {FORBIDDEN!r} if m in mods]}}))\n"
    )
    env = processes.environment(backend="jax")
    proc = processes.succeeded(processes.run_python(["-c", code], env=env))
    assert processes.last_json(proc) == {"backend": "jax", "loaded": []}


def test_layers_run_without_jax_on_tensorflow(tmp_path):
    # The fused kernel (keras_aff.kernels) imports JAX; the layers import it
    # only on the JAX backend. A jax package that fails to import stands in
    # for a machine without JAX.
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text(
        "raise ImportError('no jax here')\n"
    )
    code = (
        "import numpy as np, keras, keras_aff\n"
        "from keras_aff import layers, optimize\n"
        "x = np.ones((2, 4, 4, 16), 'float32')\n"
        "outs = [layers.AFF()([x, x]), layers.IAFF()([x, x]),\n"
        "        layers.MSCAM(implementation='auto')(x)]\n"
        "i = keras.Input((4, 4, 16))\n"
        "optimize.fold_batchnorm(keras.Model(i, layers.AFF()([i, i])))\n"
        "print(keras.backend.backend(), [tuple(o.shape) for o in outs])\n"
    )
    env = processes.environment(backend="tensorflow", pythonpath=[tmp_path])
    proc = processes.succeeded(processes.run_python(["-c", code], env=env))
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "tensorflow [(2, 4, 4, 16), (2, 4, 4, 16), (2, 4, 4, 16)]"
