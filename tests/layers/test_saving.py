"""C8: `.keras` files of every layer load in a fresh process.

Every layer is saved here and loaded in ONE subprocess that does
nothing but `import keras_aff` (no custom_objects, the tests package is not
importable there), once with the default `load_model` and once with an
explicit `safe_mode=True`. AFF and IAFF with `align_inputs=True` (inputs
of different channels and sizes, so with a projection) and `Align` go
through the same subprocess.
"""

import json
import textwrap

import keras
import numpy as np
import pytest

from keras_aff import layers
from tests import processes
from tests.layers import cases
from tests.layers import harness
from tests.layers import reference

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


# name -> (layer, number of MS-CAM gates); x: (6, 5, 8), y: (3, 3, 16).
ALIGNED = {
    "aff_aligned": (
        lambda: layers.AFF(
            reduction_ratio=2,
            output_scale=2.0,
            align_inputs=True,
            resize_interpolation="nearest",
            name="aff_aligned",
        ),
        1,
    ),
    "iaff_aligned": (
        lambda: layers.IAFF(
            reduction_ratio=2, align_inputs=True, name="iaff_aligned"
        ),
        2,
    ),
    "align": (lambda: layers.Align(name="align"), 0),
}


def save_aligned(name, directory):
    inputs = [keras.Input((6, 5, 8)), keras.Input((3, 3, 16))]
    layer = ALIGNED[name][0]()
    model = keras.Model(inputs, layer(inputs))
    reference.randomize(layer, seed=17)
    rng = np.random.default_rng(18)
    data = [rng.normal(size=(2, *t.shape[1:])).astype("f") for t in inputs]
    expected = np.asarray(model.predict(data, verbose=0))
    path = f"{directory}/{name}.keras"
    model.save(path)
    return path, data, expected


@pytest.fixture(scope="module")
def fresh_load(tmp_path_factory):
    directory = tmp_path_factory.mktemp("saved")
    manifest, saved = {}, {}
    savers = [
        (c.name, lambda d, c=c: harness.save_model(c, d)) for c in cases.CASES
    ] + [(n, lambda d, n=n: save_aligned(n, d)) for n in ALIGNED]
    for name, save in savers:
        path, inputs, expected = save(str(directory))
        data = str(directory / f"{name}.npz")
        arrays = {f"in{i}": a for i, a in enumerate(inputs)}
        np.savez(data, expected=expected, **arrays)
        manifest[name] = {"path": path, "data": data, "n_inputs": len(inputs)}
        saved[name] = expected
    (directory / "manifest.json").write_text(json.dumps(manifest))
    (directory / "load.py").write_text(LOAD_SCRIPT)
    argv = ["load.py", "manifest.json"]
    proc = processes.succeeded(processes.run_python(argv, cwd=directory))
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
    if case.has_output_scale:
        assert config["output_scale"] == 2.0
    assert result["n_weights"] == case.num_gates * 24
    # The saved output is not trivial (random weights and BN statistics).
    assert np.std(saved[case.name]) > 0.1


@pytest.mark.parametrize("mode", ["default", "safe_mode"])
@pytest.mark.parametrize("name", sorted(ALIGNED))
def test_aligned_fresh_process_load(fresh_load, name, mode):
    report, saved = fresh_load
    result = report["models"][name][mode]
    cls = type(ALIGNED[name][0]())
    assert result["class"] == f"{cls.__module__}.{cls.__name__}"
    assert result["max_abs_diff"] <= 1e-6, result["max_abs_diff"]
    if name != "align":
        assert result["config"]["align_inputs"] is True
    # The gates, and the projection: conv kernel and four BN vectors.
    assert result["n_weights"] == ALIGNED[name][1] * 24 + 5
    assert saved[name].shape == (2, 6, 5, 8) and np.std(saved[name]) > 0.1
