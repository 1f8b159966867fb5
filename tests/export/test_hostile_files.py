"""Hostile files: tampered `.keras` configs loaded with `safe_mode=True`,
corrupt and truncated `.keras`, `.weights.h5` and `.tflite` files, output
paths that cannot be written or that are directories. Each case is a clear
error naming what is wrong; no code from the file runs and nothing is
half-written. `docs/robustness.md` lists every case with its error.
"""

import json
import os
import zipfile

import keras
import numpy as np
import pytest

import keras_aff
from keras_aff import cli
from keras_aff import export
from keras_aff import models

MARKER = "keras_aff_code_ran.txt"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small model with an AFF layer, its `.keras` file and a LiteRT
    export of it."""
    directory = tmp_path_factory.mktemp("hostile")
    image = keras.Input((8, 8, 8), name="image")
    branch = keras.layers.Conv2D(8, 1, name="conv")(image)
    fused = keras_aff.layers.AFF(reduction_ratio=2, name="aff")([image, branch])
    model = keras.Model(image, fused)
    path = directory / "good.keras"
    model.save(path)
    tflite = directory / "good.tflite"
    export.export_litert(model, tflite)
    return directory, model, path, tflite


def _tamper(source, target, edit):
    with zipfile.ZipFile(source) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    layers = {layer["name"]: layer for layer in config["config"]["layers"]}
    edit(layers)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return target


def _set(layer, **values):
    return lambda layers: layers[layer]["config"].update(values)


def _replace_class(layer, module, class_name):
    def edit(layers):
        layers[layer].update(
            module=module, class_name=class_name, registered_name=None
        )

    return edit


TAMPERED = [
    ("unknown_key", _set("aff", foo=1), "Unrecognized keyword arguments"),
    (
        "wrong_type",
        _set("aff", reduction_ratio="4"),
        r"Expected `reduction_ratio` to be an integer >= 1\. "
        r"Received: reduction_ratio='4' \(of type str\)",
    ),
    (
        "zero_ratio",
        _set("aff", reduction_ratio=0),
        r"Received: reduction_ratio=0",
    ),
    (
        "absurd_ratio",
        _set("aff", reduction_ratio=10**9),
        r"`reduction_ratio` is too large for 8 channels.*"
        r"Received: reduction_ratio=1000000000",
    ),
    (
        "negative_dimension",
        _set("image", batch_shape=[None, 8, -8, 8]),
        "Negative dimensions are not allowed",
    ),
    (
        "zero_dimension",
        _set("image", batch_shape=[None, 8, 8, 0]),
        r"expected axis -1 of input shape to have value 8",
    ),
    (
        "negative_filters",
        _set("conv", filters=-3),
        r"filters",
    ),
    (
        "unregistered_class",
        _replace_class("aff", "evil", "Evil"),
        "Could not locate class 'Evil'",
    ),
    (
        "module_function",
        # An attempt to have the loader call os.system.
        _replace_class("aff", "os", "system"),
        "Could not locate class 'system'",
    ),
]


@pytest.mark.parametrize(
    "name, edit, match", TAMPERED, ids=[t[0] for t in TAMPERED]
)
def test_tampered_config_is_refused(saved, name, edit, match, monkeypatch):
    directory, _, good, _ = saved
    path = _tamper(good, directory / f"{name}.keras", edit)
    monkeypatch.chdir(directory)
    with pytest.raises((TypeError, ValueError), match=match):
        keras.saving.load_model(path)  # safe_mode=True is the default
    # The CLI names the innermost cause, not Keras' wrapper.
    message = _cli_error(["info", str(path)])
    assert "could not be deserialized properly" not in message
    assert f"{path} is not a loadable Keras model" in message


def _cli_error(argv):
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(argv)
    assert code == cli.EXIT_USAGE, err.getvalue()
    return err.getvalue()


def test_lambda_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    # A Lambda whose code would write a marker file when called.
    monkeypatch.chdir(tmp_path)
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: (open(MARKER, "w").close(), x)[1])(
        inputs
    )
    model = keras.Model(inputs, outputs)
    os.remove(MARKER)  # tracing the Lambda ran it once, here
    model.save("lambda.keras")
    with pytest.raises(ValueError, match="deserialization of a `Lambda`"):
        keras.saving.load_model("lambda.keras")
    message = _cli_error(["info", "lambda.keras"])
    assert "safe_mode=False" in message
    assert not os.path.exists(MARKER)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty"])
def test_corrupt_keras_file(saved, tmp_path, kind):
    _, _, good, _ = saved
    data = good.read_bytes()
    body = {
        "truncated": data[: len(data) // 2],
        "garbage": b"not a zip archive" * 10,
        "empty": b"",
    }[kind]
    path = tmp_path / f"{kind}.keras"
    path.write_bytes(body)
    # Keras' own message for a file that is not a zip archive.
    with pytest.raises(ValueError, match="accessible `.keras` zip file"):
        keras.saving.load_model(path)
    for command in (["info"], ["export", "--format", "onnx"]):
        argv = [command[0], str(path), *command[1:]]
        message = _cli_error(argv)
        assert "not a zip archive, so a truncated or corrupt" in message


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
def test_corrupt_weights_file(tmp_path, kind):
    model = models.AFFResNet32(input_shape=(8, 8, 3), classes=3)
    good = tmp_path / "good.weights.h5"
    model.save_weights(good)
    data = good.read_bytes()
    path = tmp_path / f"{kind}.weights.h5"
    path.write_bytes(data[: len(data) // 3] if kind == "truncated" else b"x")
    with pytest.raises(ValueError, match=r"`weights`.*Received: weights="):
        models.AFFResNet32(input_shape=(8, 8, 3), classes=3, weights=path)
    # Another architecture's file: the same error, with Keras' cause.
    with pytest.raises(ValueError, match=r"`weights`.*could not be loaded"):
        models.AFFResNet32(input_shape=(8, 8, 3), classes=5, weights=good)


@pytest.mark.parametrize("kind", ["truncated", "zeros", "empty"])
def test_corrupt_tflite_file(saved, tmp_path, kind):
    _, _, _, tflite = saved
    data = tflite.read_bytes()
    body = {
        "truncated": data[: len(data) // 2],
        "zeros": b"\0" * 64,
        "empty": b"",
    }[kind]
    path = tmp_path / f"{kind}.tflite"
    path.write_bytes(body)
    with pytest.raises(
        ValueError, match=r"LiteRT model, but it cannot be loaded.*Received"
    ):
        export.load_artifact(path)


def test_artifact_paths_that_are_not_models(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ValueError, match="SavedModel model, but it cannot"):
        export.load_artifact(tmp_path / "empty_dir")
    with pytest.raises(FileNotFoundError, match="No exported artifact"):
        export.load_artifact(tmp_path / "missing.tflite")


def test_file_export_never_replaces_a_directory(saved, tmp_path):
    _, model, good, _ = saved
    target = tmp_path / "model.tflite"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    for exporter in (export.export_litert, export.export_onnx):
        with pytest.raises(ValueError, match="is an existing directory"):
            exporter(model, target)
        assert (target / "keep.txt").read_text() == "mine"
    message = _cli_error(
        ["export", str(good), "--format", "litert", "--out", str(target)]
    )
    assert "is an existing directory" in message
    assert (target / "keep.txt").read_text() == "mine"


def test_saved_model_never_replaces_a_file(saved, tmp_path):
    _, model, _, _ = saved
    target = tmp_path / "serving"
    target.write_text("mine")
    with pytest.raises(ValueError, match="it is an existing file"):
        export.export_saved_model(model, target)
    assert target.read_text() == "mine"


def test_unwritable_destination(saved, tmp_path):
    _, model, good, _ = saved
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        export.export_litert(model, blocker / "sub" / "m.tflite")
    for fmt in ("litert", "onnx", "saved_model"):
        out = str(blocker / "sub" / "m")
        message = _cli_error(
            ["export", str(good), "--format", fmt, "--out", out]
        )
        assert f"--out {out}: cannot write the artifact in" in message
        assert "is a file, not a directory" in message
    assert blocker.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_dir"]


def test_read_only_directory(saved, tmp_path):
    """A directory that cannot be written: made read-only, or, for root
    (who writes anywhere), sysfs, which the kernel keeps read-only."""
    _, model, good, _ = saved
    if os.geteuid() == 0:
        target = "/sys/keras_aff_test/m.tflite"
        assert os.path.isdir("/sys")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        target = locked / "m.tflite"
    with pytest.raises(ValueError, match="cannot write the artifact in"):
        export.export_litert(model, target)
    message = _cli_error(
        ["export", str(good), "--format", "litert", "--out", str(target)]
    )
    assert "cannot write the artifact in" in message
    assert not os.path.exists(target)


def test_clean_file_still_loads(saved):
    # The fixtures themselves are fine: the errors above come from the
    # tampering, not from the setup.
    directory, model, good, tflite = saved
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 8)).astype("float32")
    want = np.asarray(model.predict(x, verbose=0))
    got = np.asarray(keras.saving.load_model(good).predict(x, verbose=0))
    np.testing.assert_allclose(got, want, atol=1e-6)
    (out,) = export.load_artifact(tflite)(x)
    np.testing.assert_allclose(out, want, atol=1e-4)
