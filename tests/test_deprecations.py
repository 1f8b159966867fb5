"""The 0.1.0 shims announce their end: each emits a DeprecationWarning that
names its replacement and the version that removes it (0.4.0), and still
answers as before; the replacements do not warn.

setup.cfg ignores DeprecationWarning for the suite, so every check here
asks for the warning explicitly.
"""

import warnings

import keras
import numpy as np
import pytest

import keras_aff
from keras_aff import cli
from keras_aff.cli import export as cli_export
from keras_aff.cli import parser as cli_parser
from keras_aff.demo import artifacts as demo_artifacts
from keras_aff.demo import train as demo_train
from keras_aff.export import ExportReport


def _no_warning(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn()


def _report():
    return ExportReport(
        format="litert",
        path="m.tflite",
        size_bytes=1234,
        quantization="int8",
        ops={"CONV_2D": 2},
        inputs={"image": {"shape": [None, 8], "dtype": "int8"}},
        outputs={"output_0": {"shape": [None, 2], "dtype": "int8"}},
        max_abs_error=0.01,
        mean_abs_error=0.001,
        tolerance=0.1,
        output_scale=1.0,
        top1_agreement=0.99,
        num_samples=10,
        checked=["batch 10"],
        latency_ms=0.5,
    )


def test_cli_model_info_names_describe_model():
    image = keras.Input((8, 8, 4))
    model = keras.Model(image, keras_aff.layers.MSCAM(reduction_ratio=2)(image))
    with pytest.deprecated_call(match=r"0\.4\.0.*describe_model"):
        old = cli.model_info(model)
    assert old == _no_warning(lambda: cli.describe_model(model))


@pytest.mark.parametrize(
    "name,module,attribute",
    [
        ("EXIT_FAILURE", cli_parser, "EXIT_FAILURE"),
        ("EXIT_USAGE", cli_parser, "EXIT_USAGE"),
        ("FORMATS", cli_export, "FORMATS"),
        ("QUANTIZATIONS", cli_export, "QUANTIZATIONS"),
        ("IMAGE_EXTENSIONS", cli_export, "IMAGE_EXTENSIONS"),
        ("DEMO_EPOCHS", demo_train, "EPOCHS"),
        ("DEMO_CALIBRATION", demo_artifacts, "CALIBRATION_SAMPLES"),
    ],
)
def test_cli_reexports_name_their_home(name, module, attribute):
    home = f"{module.__name__}.{attribute}"
    with pytest.deprecated_call(match=rf"cli\.{name}.*0\.4\.0.*{home}"):
        value = getattr(cli, name)
    assert value == getattr(module, attribute)
    with pytest.deprecated_call():
        exec(f"from keras_aff.cli import {name}", {})
    with pytest.raises(AttributeError, match="NOPE"):
        cli.NOPE  # noqa: B018


@pytest.mark.parametrize(
    "key,replacement,value",
    [
        ("max_abs_error", "report.max_abs_error", 0.01),
        ("tolerance_abs", "report.tolerance", 0.1),
        ("input_dtypes", "report.inputs", ["int8"]),
    ],
)
def test_report_keys_name_the_attribute(key, replacement, value):
    report = _report()
    with pytest.deprecated_call(match=rf"0\.4\.0.*{replacement}"):
        assert report[key] == value
    with pytest.deprecated_call(match=rf"0\.4\.0.*{replacement}"):
        assert report.get(key) == value
    assert _no_warning(lambda: report.get("nothing", 3)) == 3
    assert _no_warning(lambda: report.max_abs_error) == 0.01
    with pytest.raises(KeyError):
        report["nothing"]


def test_mscam_output_scale_one_is_deprecated_and_ignored():
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype("float32")
    keras.utils.set_random_seed(3)
    with pytest.deprecated_call(match=r"output_scale.*0\.4\.0"):
        old = keras_aff.layers.MSCAM(reduction_ratio=2, output_scale=1.0)
    old_out = keras.ops.convert_to_numpy(old(x))
    keras.utils.set_random_seed(3)
    new = _no_warning(lambda: keras_aff.layers.MSCAM(reduction_ratio=2))
    assert "output_scale" not in old.get_config()
    np.testing.assert_array_equal(old_out, keras.ops.convert_to_numpy(new(x)))
    with pytest.raises(ValueError, match=r"Received: output_scale=2\.0"):
        keras_aff.layers.MSCAM(output_scale=2.0)
