"""The tf_keras twin (`keras_aff.legacy`) is the Keras 3 layer, written
twice: for each layer and a spread of configurations, with the Keras 3
weights copied to the twin by variable path, the two agree on

- the output in inference and in training mode (<= 1e-6),
- the moving statistics after a training step (<= 1e-6),
- `get_config` (identical, with two spellings of one value normalised:
  Keras 3 serializes the dtype policy as an object and tf_keras as its
  name, and Keras 3 initializer configs carry the arguments
  `input_axes=None` / `output_axes=None` that tf_keras initializers do not
  have),
- the variable paths (identical sets).

`python -m tests.legacy.test_equivalence` prints the table with the
largest differences measured.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_aff
from keras_aff import legacy
from tests.layers import reference

TOLERANCE = 1e-6
LAYERS = {
    "MSCAM": (keras_aff.layers.MSCAM, legacy.MSCAM, 1),
    "AFF": (keras_aff.layers.AFF, legacy.AFF, 2),
    "IAFF": (keras_aff.layers.IAFF, legacy.IAFF, 2),
}
# id -> (constructor kwargs, input shape without the batch)
CONFIGS = {
    "default": ({}, (6, 5, 8)),
    "r1": ({"reduction_ratio": 1}, (6, 5, 8)),
    "r8_no_bias": ({"reduction_ratio": 8, "use_bias": False}, (6, 5, 16)),
    "rank3": ({"reduction_ratio": 2}, (7, 8)),
    "rank5": ({}, (3, 4, 5, 8)),
    "nchw": ({"data_format": "channels_first"}, (8, 6, 5)),
    "no_batch_norm": ({"use_batch_norm": False}, (6, 5, 8)),
    "global_global": ({"branches": ("global", "global")}, (6, 5, 8)),
    "local_local_bn": (
        {
            "branches": ("local", "local"),
            "bn_momentum": 0.5,
            "bn_epsilon": 1e-3,
        },
        (6, 5, 8),
    ),
    "output_scale_2": ({"output_scale": 2.0}, (6, 5, 8)),
}


def _kwargs(layer, config):
    kwargs = dict(CONFIGS[config][0])
    if layer == "MSCAM":
        kwargs.pop("output_scale", None)
    return kwargs


def _paths(layer):
    """Variable paths: Keras 3 `.path`, tf_keras `.name` without ":0"."""
    return sorted(
        getattr(v, "path", None) or v.name.rsplit(":", 1)[0]
        for v in layer.weights
    )


KERAS3_ONLY = ("input_axes", "output_axes")  # initializer arguments


def _config(layer):
    config = dict(layer.get_config())
    dtype = config.pop("dtype")
    config["dtype"] = (
        dtype["config"]["name"] if isinstance(dtype, dict) else dtype
    )
    init = config["kernel_initializer"]
    if isinstance(init, dict):
        args = {
            k: v
            for k, v in init["config"].items()
            if not (k in KERAS3_ONLY and v is None)
        }
        config["kernel_initializer"] = dict(init, config=args)
    return config


def _config_of(config):
    return _config(type("Configured", (), {"get_config": lambda s: config})())


def _max_diff(a, b):
    a = np.asarray(keras.ops.convert_to_numpy(a), "float64")
    return float(np.max(np.abs(a - np.asarray(b, "float64"))))


def compare(layer, config, seed=0):
    """`{"inference": err, "training": err, "moving stats": err,
    "config": bool, "paths": bool}` for one layer and configuration."""
    k3_cls, k2_cls, num_inputs = LAYERS[layer]
    kwargs, shape = _kwargs(layer, config), CONFIGS[config][1]
    rng = np.random.default_rng(seed)
    xs = [
        rng.normal(size=(4, *shape)).astype("float32")
        for _ in range(num_inputs)
    ]
    inputs = xs if num_inputs > 1 else xs[0]
    k3 = k3_cls(name=layer.lower(), **kwargs)
    k2 = k2_cls(name=layer.lower(), **kwargs)
    k3(inputs)
    k2([tf.constant(x) for x in xs] if num_inputs > 1 else tf.constant(xs[0]))
    reference.randomize(k3, seed=seed)
    legacy.copy_weights(k3, k2)
    result = {
        "inference": _max_diff(
            k3(inputs, training=False), k2(inputs, training=False)
        ),
        "training": _max_diff(
            k3(inputs, training=True), k2(inputs, training=True)
        ),
    }
    # The training calls above were the step: compare every variable,
    # moving statistics included, by path.
    w3 = legacy.weight_paths(k3)
    w2 = legacy.weight_paths(k2)
    result["moving stats"] = (
        max(
            _max_diff(
                w3[p].numpy() if hasattr(w3[p], "numpy") else w3[p],
                w2[p].numpy(),
            )
            for p in w3
            if "moving" in p
        )
        if any("moving" in p for p in w3)
        else 0.0
    )
    # The twin also reads the Keras 3 config back to itself.
    again = k2_cls.from_config(k3.get_config()).get_config()
    result["config"] = _config(k3) == _config(k2) == _config_of(again)
    result["paths"] = _paths(k3) == _paths(k2)
    return result


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("layer", list(LAYERS))
def test_twin_equals_keras3_layer(layer, config):
    got = compare(layer, config)
    assert got["paths"], "variable paths differ"
    assert got["config"], "get_config differs"
    for key in ("inference", "training", "moving stats"):
        assert got[key] <= TOLERANCE, (key, got[key])


def main():
    columns = "inference | training | moving stats | config | paths"
    print(f"| layer | config | {columns} |")
    print("|---|---|---|---|---|---|---|")
    for layer in LAYERS:
        for config in CONFIGS:
            r = compare(layer, config)
            print(
                f"| {layer} | {config} | {r['inference']:.1e} | "
                f"{r['training']:.1e} | {r['moving stats']:.1e} | "
                f"{'same' if r['config'] else 'DIFF'} | "
                f"{'same' if r['paths'] else 'DIFF'} |"
            )


if __name__ == "__main__":
    main()
