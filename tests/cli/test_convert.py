"""`keras-aff convert`: the official open-aff files to `.keras` and
`.weights.h5` (the converted models reproduce the official logits), and
one clear line, exit status 2 and no output file for every user error."""

import os
import re

import keras
import numpy as np
import pytest

from keras_aff import cli
from keras_aff import interop
from keras_aff import models
from tests import processes
from tests.interop import fixtures
from tests.interop import mxnet_writer


def test_convert_to_keras_from_a_fresh_process(tmp_path):
    params = fixtures.path("aff_resnet32.params")
    out = tmp_path / "aff_resnet32.keras"
    argv = ["convert", params, "--model", "aff_resnet32", "--out", out.name]
    proc = processes.run_python(["-m", "keras_aff.cli", *argv], cwd=tmp_path)
    processes.succeeded(proc)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(
        "aff_resnet32: 521 arrays loaded (float32 x521, cast to float32) "
        f"from {params}"
    )
    assert "checked, not loaded: features.0.gamma (all 1" in lines[1]
    assert sum(line.startswith("| features.") for line in lines) == 519
    assert sum(line.startswith("| output.") for line in lines) == 2
    assert "output (1, 100), finite, top-1 class" in proc.stdout
    assert lines[-1].startswith("wrote aff_resnet32.keras (")
    assert sorted(os.listdir(tmp_path)) == ["aff_resnet32.keras"]

    converted = keras.saving.load_model(out)
    reference = models.AFFResNet32()
    interop.load_mxnet_params(reference, params)
    assert [v.path for v in converted.weights] == [
        v.path for v in reference.weights
    ]
    for got, want in zip(converted.weights, reference.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_convert_float16_imagenet_weights_to_weights_h5(tmp_path, capsys):
    params = fixtures.path("iaff_resnext50.fp16.params")
    out = tmp_path / "iaff_resnext50.weights.h5"
    argv = ["convert", str(params), "--model", "iaff_resnext50_32x4d"]
    assert cli.main(argv + ["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "709 arrays loaded (float16 x" in text
    assert "float32 x" in text and "cast to float32" in text
    assert "output (1, 1000), finite" in text
    assert sorted(os.listdir(tmp_path)) == [out.name]

    model = models.IAFFResNeXt50(classifier_activation=None)
    model.load_weights(out)
    x = fixtures.array("iaff_resnext50.input.npy")
    logits = np.asarray(model(x, training=False))
    reference = fixtures.array("iaff_resnext50.fp16.logits64.npy")
    error = np.abs(logits - reference).max() / np.abs(reference).max()
    assert error < 1e-5, error


def _params_arrays():
    return interop.read_mxnet_params(fixtures.path("aff_resnet32.params"))


def _superclass_file(tmp_path):
    # The official CIFAR-100 file, with a 20-way classifier.
    arrays = dict(_params_arrays())
    arrays["output.weight"] = arrays["output.weight"][:20]
    arrays["output.bias"] = arrays["output.bias"][:20]
    return mxnet_writer.write_params(tmp_path / "coarse.params", arrays)


def test_classes_takes_a_classifier_of_another_size(tmp_path, capsys):
    path = _superclass_file(tmp_path)
    out = tmp_path / "coarse.weights.h5"
    argv = ["convert", path, "--model", "aff_resnet32", "--out", str(out)]
    assert cli.main(argv + ["--classes", "20"]) == 0
    assert "output (1, 20), finite" in capsys.readouterr().out
    model = models.AFFResNet32(classes=20)
    model.load_weights(out)
    np.testing.assert_array_equal(
        model.get_layer("predictions").kernel.numpy(),
        _params_arrays()["output.weight"][:20].T,
    )


def _broken_params(tmp_path):
    data = fixtures.path("aff_resnet32.params").read_bytes()[:5000]
    path = tmp_path / "broken.params"
    path.write_bytes(data)
    return str(path)


def _not_params(tmp_path):
    path = tmp_path / "weights.params"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(32))
    return str(path)


R32 = "aff_resnet32.params"
# (argv with {params}/{tmp} placeholders, message pattern)
USAGE_ERRORS = [
    (["{tmp}/missing.params", "--model", "aff_resnet32"], "no such file"),
    (["{not_params}", "--model", "aff_resnet32"], "is not an MXNet .params"),
    (["{r32}", "--model", "resnet50"], "unknown model 'resnet50'; choose"),
    (["{r32}", "--model", "aff_resnet32", "--out", "{tmp}/m.h5"], ".keras"),
    (
        ["{r32}", "--model", "aff_resnet32", "--out", "{r32}/m.keras"],
        "cannot write the artifact in .* is a file, not a directory",
    ),
    (["{broken}", "--model", "aff_resnet32"], "truncated.*byte offset"),
    (
        ["{r32}", "--model", "aff_resnet32", "--classes", "20"],
        "holds a 100-way classifier, the model 20 classes: pass --classes 100",
    ),
    (
        ["{coarse}", "--model", "aff_resnet32"],
        "holds a 20-way classifier, the model 100 classes: pass --classes 20",
    ),
    (
        ["{r32}", "--model", "aff_resnext38_32x4d"],
        "does not fit aff_resnext38_32x4d: .*the file holds the official "
        "CIFARAFFResNet .* in keras_aff: aff_resnet32.* "
        r"Received: params='.*aff_resnet32\.params'$",
    ),
]


@pytest.mark.parametrize(
    "argv, pattern", USAGE_ERRORS, ids=[p[:24] for _, p in USAGE_ERRORS]
)
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, argv, pattern):
    makers = {
        "tmp": lambda: str(tmp_path),
        "r32": lambda: str(fixtures.path(R32)),
        "not_params": lambda: _not_params(tmp_path),
        "broken": lambda: _broken_params(tmp_path),
        "coarse": lambda: _superclass_file(tmp_path),
    }
    values = {k: make() for k, make in makers.items() if f"{{{k}}}" in argv[0]}
    values["tmp"] = str(tmp_path)
    argv = ["convert"] + [a.format(**values) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "m.keras")]
    before = sorted(os.listdir(tmp_path))
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-aff: error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert "a dict" not in lines[0]  # the file it read is named instead
    assert captured.out == ""
    assert sorted(os.listdir(tmp_path)) == before
