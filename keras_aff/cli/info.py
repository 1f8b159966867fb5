"""`keras-aff info`: a model's inputs, outputs, parameters, layers and
fusion layers (`describe_model`), as tables or JSON.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import json

import numpy as np

from keras_aff import _validation
from keras_aff._tables import markdown_table
from keras_aff.cli._common import echo
from keras_aff.cli._common import load_model

# The fusion-layer settings `describe_model` reports, when a layer has them.
FUSION_SETTINGS = (
    "reduction_ratio",
    "output_scale",
    "branches",
    "data_format",
    "use_bias",
    "bn_momentum",
    "bn_epsilon",
)
FUSION_HEADERS = [
    "name",
    "class",
    "channels",
    "r",
    "hidden",
    "output_scale",
    "branches",
    "data_format",
    "bn momentum / eps",
    "params",
]


def add_parser(subparsers):
    """Adds `info MODEL.keras [--json]`.

    Example:

    >>> import argparse
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> parser = keras_aff.cli.info.add_parser(sub)
    >>> parser.parse_args(["m.keras", "--json"]).json
    True
    """
    info = subparsers.add_parser(
        "info", help="layers, fusion layers and parameter counts"
    )
    info.add_argument("model", help="a Keras model file (.keras)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_run)
    return info


def describe_model(model):
    """A JSON-serializable description of a Keras model: inputs, outputs,
    parameter counts, top-level layers and every fusion layer (MSCAM, AFF,
    IAFF, at any depth) with its settings. (Not to be confused with
    `keras_aff.models.model_info(name)`, the registry entry of a backbone.)

    Args:
        model: a `keras.Model`.

    Returns:
        A dict: "name", "class", "inputs", "outputs", "params" (total,
        trainable, non_trainable), "dtype_policy", "layers" and
        "fusion_layers".

    Example:

    >>> image = keras.Input((8, 8, 4))
    >>> x = keras.layers.Conv2D(4, 3, padding="same")(image)
    >>> fused = keras_aff.layers.AFF(reduction_ratio=2)([x, image])
    >>> info = keras_aff.cli.describe_model(keras.Model(image, fused))
    >>> [(f["class"], f["channels"]) for f in info["fusion_layers"]]
    [('AFF', 4)]
    """
    import keras

    _validation.check_one_of_types("model", model, keras.Model, "a keras.Model")
    return {
        "name": model.name,
        "class": type(model).__name__,
        "inputs": [
            {"name": t.name, "shape": list(t.shape), "dtype": str(t.dtype)}
            for t in model.inputs
        ],
        "outputs": [
            {"shape": list(t.shape), "dtype": str(t.dtype)}
            for t in model.outputs
        ],
        "params": {
            "total": _count(model.weights),
            "trainable": _count(model.trainable_weights),
            "non_trainable": _count(model.non_trainable_weights),
        },
        "dtype_policy": model.dtype_policy.name,
        "layers": [
            {
                "name": layer.name,
                "class": type(layer).__name__,
                "output_shape": _output_shape(layer),
                "params": _count(layer.weights),
            }
            for layer in model.layers
        ],
        "fusion_layers": _fusion_layers(model),
    }


def _count(weights):
    return int(sum(np.prod(w.shape) for w in weights))


def _output_shape(layer):
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(out, (list, tuple)):
        return [list(o.shape) for o in out]
    return list(out.shape)


def _fusion_layers(model):
    from keras_aff.layers import AFF
    from keras_aff.layers import IAFF
    from keras_aff.layers import MSCAM

    fusion = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, (MSCAM, AFF, IAFF)):
            continue
        config = layer.get_config()
        entry = {
            "name": layer.name,
            "class": type(layer).__name__,
            "params": _count(layer.weights),
            "channels": getattr(layer, "channels", None),
            "inter_channels": getattr(layer, "inter_channels", None),
        }
        entry.update({k: config[k] for k in FUSION_SETTINGS if k in config})
        entry["dtype_policy"] = layer.dtype_policy.name
        fusion.append(entry)
    return fusion


def _run(args):
    info = describe_model(load_model(args.model))
    if args.json:
        echo(json.dumps(info, indent=2))
        return 0
    p = info["params"]
    echo(f"model {info['name']} ({info['class']}, {info['dtype_policy']})")
    for t in info["inputs"]:
        echo(f"  input  {t['name']}: {tuple(t['shape'])} {t['dtype']}")
    for t in info["outputs"]:
        echo(f"  output {tuple(t['shape'])} {t['dtype']}")
    echo(
        f"  parameters: {p['total']:,} ({p['trainable']:,} trainable, "
        f"{p['non_trainable']:,} non-trainable)"
    )
    echo("\nlayers:")
    rows = [
        [layer["name"], layer["class"], layer["output_shape"]]
        + [f"{layer['params']:,}"]
        for layer in info["layers"]
    ]
    echo(markdown_table(["name", "class", "output shape", "params"], rows))
    echo(f"\nfusion layers: {len(info['fusion_layers'])}")
    if info["fusion_layers"]:
        rows = [_fusion_row(f) for f in info["fusion_layers"]]
        echo(markdown_table(FUSION_HEADERS, rows))
    return 0


def _fusion_row(f):
    return [
        f["name"],
        f["class"],
        f["channels"],
        f["reduction_ratio"],
        f["inter_channels"],
        f.get("output_scale", "-"),
        "+".join(f["branches"]),
        f["data_format"],
        f"{f['bn_momentum']} / {f['bn_epsilon']:g}",
        f"{f['params']:,}",
    ]
