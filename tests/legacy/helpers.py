"""Shared builders for the tf_keras twin and QAT tests."""

import keras
import numpy as np
import tf_keras

import keras_aff
from keras_aff import legacy

SHAPE = (6, 5, 8)  # (H, W, C) of a feature map: small and not square

# name, Keras 3 class, tf_keras class, pairwise
LAYERS = [
    ("ms_cam", keras_aff.layers.MSCAM, legacy.MSCAM, False),
    ("aff", keras_aff.layers.AFF, legacy.AFF, True),
    ("iaff", keras_aff.layers.IAFF, legacy.IAFF, True),
]
LAYER_IDS = [case[0] for case in LAYERS]


def fusion_model(flavour, cls, pairwise, shape=SHAPE, name=None, **kwargs):
    """A model holding one fusion layer (inputs: one map, or [x, y])."""
    kl, model_cls = (
        (keras.layers, keras.Model)
        if flavour == "keras3"
        else (tf_keras.layers, tf_keras.Model)
    )
    name = name or cls.__name__.lower()
    if pairwise:
        x = kl.Input(shape, name="x")
        y = kl.Input(shape, name="y")
        return model_cls([x, y], cls(name=name, **kwargs)([x, y]))
    x = kl.Input(shape, name="x")
    return model_cls(x, cls(name=name, **kwargs)(x))


def randomize(model, seed=0):
    """Non-trivial weights: normal kernels/biases/betas, gammas around 1,
    positive moving variances, so that BN folding and every branch matter.
    """
    rng = np.random.default_rng(seed)
    for path, variable in sorted(legacy.weight_paths(model).items()):
        shape = tuple(variable.shape)
        if path.endswith(("moving_variance", "gamma")):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.5, shape)
        variable.assign(value.astype("float32"))


def inputs_for(pairwise, shape=SHAPE, batch=3, seed=1):
    rng = np.random.default_rng(seed)
    xs = [
        rng.normal(size=(batch,) + tuple(shape)).astype("float32")
        for _ in range(2 if pairwise else 1)
    ]
    return xs if pairwise else xs[0]


def predict(model, inputs):
    return np.asarray(model(inputs, training=False))


def small_cnn(flavour, input_shape=(8, 8, 3), output_scale=1.0):
    """Stock layers around an AFF and an IAFF; every layer named, so the
    Keras 3 model and its tf_keras twin have the same variable paths."""
    if flavour == "keras3":
        kl, aff, iaff, model_cls = (
            keras.layers,
            keras_aff.layers.AFF,
            keras_aff.layers.IAFF,
            keras.Model,
        )
    else:
        kl, aff, iaff, model_cls = (
            tf_keras.layers,
            legacy.AFF,
            legacy.IAFF,
            tf_keras.Model,
        )
    x = kl.Input(input_shape, name="image")
    h = kl.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(x)
    h = kl.BatchNormalization(momentum=0.9, name="stem_bn")(h)
    h = kl.ReLU(name="stem_relu")(h)
    a = kl.Conv2D(8, 3, padding="same", name="branch3")(h)
    b = kl.Conv2D(8, 1, name="branch1")(h)
    h = aff(name="aff", output_scale=output_scale)([a, b])
    c = kl.Conv2D(8, 3, padding="same", name="res")(h)
    h = iaff(name="iaff")([c, h])
    h = kl.GlobalAveragePooling2D(name="gap")(h)
    return model_cls(x, kl.Dense(4, name="head")(h), name="small_cnn")
