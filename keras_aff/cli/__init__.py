"""The `keras-aff` command: `convert`, `demo`, `export` and `info`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

    keras-aff convert IN.params --model NAME --out OUT.keras|OUT.weights.h5
        [--classes N]
    keras-aff demo [--out DIR] [--epochs N] [--seed S] [--no-png]
    keras-aff export MODEL.keras --format saved_model|litert|onnx
        [--quantize float16|dynamic|int8] [--calibration DIR_OR_NPY]
        [--out PATH] [--float-io] [--opset N] [--atol X] [--json]
    keras-aff info MODEL.keras [--json]

Every command also takes `-v/--verbose`: without it TensorFlow's and the
converters' native log stays off the terminal (`keras_aff._quiet`).

Errors print `keras-aff: error: ...` to stderr. Exit status: 0 success, 1 a
failed export or verification, 2 a usage error (bad arguments, a missing
file, a file that is not a Keras model, calibration data that does not fit,
a `.params` file that does not fit the model).

Layout: `parser` (the parser, the exit statuses, `main`), one module per
command (`convert`, `demo`, `export`, `info`), `_common` (what they share).
The demo pipeline itself is `keras_aff.demo`.

Example:

>>> keras_aff.cli.main(["info", "missing.keras"])  # prints the error
2
"""

import importlib
import warnings

from keras_aff.cli._common import UsageError
from keras_aff.cli.info import describe_model
from keras_aff.cli.parser import build_parser
from keras_aff.cli.parser import main
from keras_aff.demo import build_demo_model
from keras_aff.demo import fusion_weight_model
from keras_aff.demo import load_demo_data

# 0.1.0's single-module CLI exported these; they still resolve, with a
# DeprecationWarning naming where they live now (removed in 0.4.0).
_MOVED = {
    "EXIT_FAILURE": ("keras_aff.cli.parser", "EXIT_FAILURE"),
    "EXIT_USAGE": ("keras_aff.cli.parser", "EXIT_USAGE"),
    "FORMATS": ("keras_aff.cli.export", "FORMATS"),
    "QUANTIZATIONS": ("keras_aff.cli.export", "QUANTIZATIONS"),
    "IMAGE_EXTENSIONS": ("keras_aff.cli.export", "IMAGE_EXTENSIONS"),
    "DEMO_EPOCHS": ("keras_aff.demo.train", "EPOCHS"),
    "DEMO_CALIBRATION": ("keras_aff.demo.artifacts", "CALIBRATION_SAMPLES"),
}


def __getattr__(name):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _MOVED[name]
    warnings.warn(
        f"keras_aff.cli.{name} is deprecated since 0.2.0 and will be "
        f"removed in keras_aff 0.4.0: use {module}.{attribute}.",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), attribute)


def model_info(model):
    """Deprecated alias of `describe_model` (renamed so that it is not
    mistaken for `keras_aff.models.model_info(name)`, the registry entry of
    a backbone); warns with a `DeprecationWarning`.

    Example:

    >>> image = keras.Input((8, 8, 4))
    >>> fused = keras_aff.layers.MSCAM(reduction_ratio=2)(image)
    >>> keras_aff.cli.model_info(keras.Model(image, fused))["params"]["total"]
    92
    """
    warnings.warn(
        "keras_aff.cli.model_info is deprecated since 0.2.0 and will be "
        "removed in keras_aff 0.4.0: use keras_aff.cli.describe_model (the "
        "same dict).",
        DeprecationWarning,
        stacklevel=2,
    )
    return describe_model(model)


__all__ = [
    "UsageError",
    "build_demo_model",
    "build_parser",
    "describe_model",
    "fusion_weight_model",
    "load_demo_data",
    "main",
    "model_info",
]
