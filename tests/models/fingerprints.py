"""Fingerprints of the paper backbones: a refactoring check, run by hand.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

For 21 builder / argument combinations (every registered model with its
defaults and two variants each), builds the network with a fixed seed and
hashes (1) the model config (every layer's config and its inbound nodes)
and (2) every weight, moving statistics included, in order; the same for
three `retrofit`s of keras.applications models (with the report's text).
A refactoring of `keras_aff.models` must leave both hashes of every
combination as they were:

    python tests/models/fingerprints.py --out before.json   # old code
    python tests/models/fingerprints.py --check before.json # new code

Not a pytest test: the digests depend on the Keras version (its random
streams), so they are compared between two runs on one installation.
"""

import argparse
import hashlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_aff.models  # noqa: E402

_SMALL = (64, 64, 3)  # ImageNet nets: no weight depends on the input size

COMBINATIONS = {
    "aff_resnet50": [
        {},
        {"fusion": "add"},
        {
            "fusion_stages": (1, 2, 3, 4),
            "reduction_ratio": 8,
            "zero_init_residual": False,
        },
    ],
    "iaff_resnet50": [
        {},
        {"include_top": False, "pooling": "max"},
        {"kernel_initializer": "he_normal", "classes": 10},
    ],
    "aff_resnext50_32x4d": [
        {},
        {"fusion": "iaff", "fusion_stages": (2,)},
        {"include_top": False, "pooling": "avg", "zero_init_residual": False},
    ],
    "iaff_resnext50_32x4d": [
        {},
        {"fusion": "add"},
        {"classifier_activation": None, "classes": 7, "reduction_ratio": 4},
    ],
    "aff_resnet32": [
        {},
        {"fusion": "add"},
        {"fusion": "iaff", "fusion_stages": (3,), "reduction_ratio": 8},
    ],
    "aff_resnext38_32x4d": [
        {},
        {"include_top": False, "pooling": "avg", "fusion_stages": (1,)},
        {"zero_init_residual": False, "kernel_initializer": "he_uniform"},
    ],
    "aff_resnext47_32x4d": [
        {},
        {"fusion": "add", "name": "plain47"},
        {"input_shape": (None, None, 3), "classes": 10},
    ],
}


# `retrofit` on keras.applications models (32x32, seeded): the new model
# and the report's text must not change either.
RETROFITS = {
    "ResNet50": {},
    "MobileNetV2": {"fusion": "iaff"},
    "ConvNeXtTiny": {"reduction_ratio": 8, "min_channels": 96},
}


def _digest(model, extra=""):
    config = json.dumps(model.get_config(), sort_keys=True, default=repr)
    weights = hashlib.sha256()
    for w in model.weights:
        weights.update(w.path.encode())
        weights.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)))
    keras.backend.clear_session()
    return {
        "config": hashlib.sha256((config + extra).encode()).hexdigest(),
        "weights": weights.hexdigest(),
    }


def fingerprint(name, kwargs, seed=0):
    """`{"config": sha256, "weights": sha256}` of one seeded build."""
    kwargs = dict(kwargs)
    if keras_aff.models.model_info(name).dataset == "imagenet":
        kwargs.setdefault("input_shape", _SMALL)
    keras.utils.set_random_seed(seed)
    return _digest(keras_aff.models.model_info(name).builder(**kwargs))


def retrofit_fingerprint(app, kwargs, seed=0):
    """The same digests for `retrofit(app(...), **kwargs)`, the report's
    text included in the config digest."""
    keras.utils.set_random_seed(seed)
    base = getattr(keras.applications, app)(
        weights=None, input_shape=(32, 32, 3)
    )
    new, report = keras_aff.models.retrofit(base, return_report=True, **kwargs)
    return _digest(new, extra=str(report))


def all_fingerprints():
    out = {}
    for name, variants in COMBINATIONS.items():
        for kwargs in variants:
            key = f"{name}({json.dumps(kwargs, sort_keys=True)})"
            out[key] = fingerprint(name, kwargs)
            print(key, out[key]["config"][:12], out[key]["weights"][:12])
    for app, kwargs in RETROFITS.items():
        key = f"retrofit({app}, {json.dumps(kwargs, sort_keys=True)})"
        out[key] = retrofit_fingerprint(app, kwargs)
        print(key, out[key]["config"][:12], out[key]["weights"][:12])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the fingerprints (JSON)")
    parser.add_argument("--check", help="compare with a JSON from --out")
    args = parser.parse_args(argv)
    got = all_fingerprints()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(got, f, indent=1, sort_keys=True)
    if args.check:
        with open(args.check) as f:
            expected = json.load(f)
        changed = sorted(k for k in expected if got.get(k) != expected[k])
        print(f"{len(expected) - len(changed)}/{len(expected)} identical")
        return 1 if changed or set(got) != set(expected) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
