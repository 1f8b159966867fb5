"""C8: `.keras` files of MSCAM, AFF and IAFF load in a fresh process.

All three layers are saved here and loaded in ONE subprocess that does
nothing but `import keras_aff` (no custom_objects, the tests package is not
importable there), once with the default `load_model` and once with an
explicit `safe_mode=True`.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.layers import cases
from tests.layers import harness

LOAD_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import numpy as np
    import keras
    import keras_aff  # registers the layers; nothing else is needed

    manifest = json.load(open(sys.argv[1]))
    report = {"backend": keras.backend.backend(), "models": {}}
    for name, entry in manifest.items():
        data = np.load(entry["data"])
        inputs = [data[f"in{i}"] for i in range(entry["n_inputs"])]
        feed = inputs if len(inputs) > 1 else inputs[0]
        result = {}
        modes = (("default", {}), ("safe_mode", {"safe_mode": True}))
        for mode, kwargs in modes:
            model = keras.saving.load_model(entry["path"], **kwargs)
            layer = model.get_layer(name.lower())
            out = np.asarray(model.predict(feed, verbose=0))
            result[mode] = {
                "max_abs_diff": float(np.max(np.abs(out - data["expected"]))),
                "class": f"{type(layer).__module__}.{type(layer).__name__}",
                "config": layer.get_config(),
                "n_weights": len(layer.weights),
            }
        report["models"][name] = result
    print("REPORT " + json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def fresh_load(tmp_path_factory):
    directory = tmp_path_factory.mktemp("saved")
    manifest, saved = {}, {}
    for case in cases.CASES:
        path, inputs, expected = harness.save_model(case, str(directory))
        data = str(directory / f"{case.name}.npz")
        arrays = {f"in{i}": a for i, a in enumerate(inputs)}
        np.savez(data, expected=expected, **arrays)
        manifest[case.name] = {
            "path": path,
            "data": data,
            "n_inputs": len(inputs),
        }
        saved[case.name] = expected
    (directory / "manifest.json").write_text(json.dumps(manifest))
    (directory / "load.py").write_text(LOAD_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "load.py", "manifest.json"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("REPORT ")]
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(line[-1][len("REPORT ") :]), saved


@pytest.mark.parametrize("mode", ["default", "safe_mode"])
def test_c8_fresh_process_load(fresh_load, case, mode):
    report, saved = fresh_load
    assert report["backend"] == cases.BACKEND
    result = report["models"][case.name][mode]
    assert result["class"] == f"{case.cls.__module__}.{case.name}"
    assert result["max_abs_diff"] <= 1e-6, result["max_abs_diff"]
    config = result["config"]
    assert config["reduction_ratio"] == 2
    if case.pairwise:
        assert config["output_scale"] == 2.0
    assert result["n_weights"] == case.num_gates * 24
    # The saved output is not trivial (random weights and BN statistics).
    assert np.std(saved[case.name]) > 0.1
