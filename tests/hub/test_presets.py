"""Presets from the official weights: `keras-aff convert IN.params --model
NAME --preset DIR`, then a fresh process with `import keras_aff.hub` and
`keras_hub.models.ImageClassifier.from_preset(DIR)` reproduces the
official logits (to the tolerances of tests/interop/test_mxnet_fixtures.py),
also through the preprocessor, with a new head and in bfloat16."""

import json
import os

import pytest

from keras_aff import cli
from tests import processes
from tests.interop import fixtures
from tests.interop.test_mxnet_fixtures import CASES

hub = pytest.importorskip(
    "keras_aff.hub", reason="keras-hub is not installed (the hub extra)"
)

# Runs in the fresh process: argv = preset, fixture input, logits64,
# dataset. Prints one JSON line of errors (relative to the largest
# official logit, as the interop tests measure them).
CHILD = """
import json, sys
import numpy as np
import keras, keras_hub
import keras_aff.hub
from keras_aff.models.preprocessing import STATISTICS

preset, inputs, logits, dataset = sys.argv[1:]
x = np.load(inputs)
reference = np.load(logits)
scale = np.abs(reference).max()
def error(y):
    y = np.asarray(keras.ops.convert_to_numpy(y), "float64")
    return float(np.abs(y - reference).max() / scale)
clf = keras_hub.models.ImageClassifier.from_preset(preset)
report = {"task": type(clf).__name__, "logits": error(clf(x))}
if dataset == "cifar":
    mean, std = (np.asarray(v) for v in STATISTICS[dataset])
    images = ((x * std + mean) * 255.0).astype("float32")
    report["through_preprocessor"] = error(clf.predict(images, verbose=0))
    new = keras_hub.models.ImageClassifier.from_preset(preset, num_classes=7)
    report["new_head"] = list(new(x).shape)
    bf16 = keras_hub.models.ImageClassifier.from_preset(
        preset, dtype="bfloat16")
    y = bf16(x)
    dtype = keras.backend.standardize_dtype(y.dtype)
    report["bfloat16"] = [dtype, error(keras.ops.cast(y, "float32"))]
    backbone = keras_hub.models.Backbone.from_preset(preset)
    report["backbone"] = type(backbone).__name__
print(json.dumps(report))
"""


def _convert(fixture, name, preset, capsys):
    params = fixtures.path(f"{fixture}.params")
    status = cli.main(
        ["convert", str(params), "--model", name, "--preset", str(preset)]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "largest logit difference to the converted network 0 " in out
    metadata = json.loads((preset / "metadata.json").read_text())
    assert metadata["keras_aff"]["source"] == params.name
    assert metadata["keras_aff"]["source_sha256"] == hub.presets.sha256(params)
    assert metadata["keras_aff"]["architecture"] == name
    expected = {"config.json", "model.weights.h5", "task.json"}
    expected |= {"task.weights.h5", "preprocessor.json", "metadata.json"}
    expected |= {"image_converter.json"}
    assert set(os.listdir(preset)) == expected


def _reload(fixture, inputs, preset, dataset):
    proc = processes.run_python(
        [
            "-c",
            CHILD,
            preset,
            fixtures.path(f"{inputs}.input.npy"),
            fixtures.path(f"{fixture}.logits64.npy"),
            dataset,
        ],
        timeout=600,
    )
    return processes.last_json(processes.succeeded(proc))


def test_cifar_preset_reproduces_the_official_logits(tmp_path, capsys):
    name, inputs, tolerance = CASES["aff_resnet32"]
    preset = tmp_path / "aff_resnet32"
    _convert("aff_resnet32", name, preset, capsys)
    report = _reload("aff_resnet32", inputs, preset, "cifar")
    print(report)
    assert report["task"] == "AFFImageClassifier"
    assert report["backbone"] == "AFFBackbone"
    assert report["logits"] < tolerance
    assert report["through_preprocessor"] < tolerance
    assert report["new_head"] == [2, 7]
    # bfloat16 keeps 8 bits of mantissa; AFF-ResNet-32 grows activations
    # ~400x over its 15 blocks (see the interop tests), hence the bound.
    assert report["bfloat16"][0] == "bfloat16"
    assert report["bfloat16"][1] < 0.5


@pytest.mark.slow
def test_imagenet_float16_preset_reproduces_the_official_logits(
    tmp_path, capsys
):
    name, inputs, tolerance = CASES["iaff_resnext50.fp16"]
    preset = tmp_path / "iaff_resnext50"
    _convert("iaff_resnext50.fp16", name, preset, capsys)
    report = _reload("iaff_resnext50.fp16", inputs, preset, "imagenet")
    print(report)
    assert report["logits"] < tolerance


def test_an_existing_directory_is_never_written_over(tmp_path, capsys):
    preset = tmp_path / "taken"
    preset.mkdir()
    (preset / "mine.txt").write_text("keep")
    params = fixtures.path("aff_resnet32.params")
    argv = ["convert", str(params), "--model", "aff_resnet32"]
    argv += ["--preset", str(preset)]
    assert cli.main(argv) == 2
    assert "Expected `preset_dir` to be a path that does not exist" in (
        capsys.readouterr().err
    )
    assert os.listdir(preset) == ["mine.txt"]
    assert os.listdir(tmp_path) == ["taken"]


def test_an_unknown_model_is_a_usage_error(tmp_path, capsys):
    params = fixtures.path("aff_resnet32.params")
    argv = ["convert", str(params), "--model", "resnet9"]
    argv += ["--preset", str(tmp_path / "p")]
    assert cli.main(argv) == 2
    # The same check and wording as `convert --out`, before any work.
    assert "unknown model 'resnet9'; choose from" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_a_wrong_classes_is_refused_before_the_network_is_built(
    tmp_path, capsys
):
    params = fixtures.path("aff_resnet32.params")
    argv = ["convert", str(params), "--model", "aff_resnet32"]
    argv += ["--preset", str(tmp_path / "p"), "--classes", "20"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "holds a 100-way classifier, the model 20 classes" in err
    assert os.listdir(tmp_path) == []
