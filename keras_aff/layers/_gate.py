"""Keras 3 plumbing for the shared MS-CAM gate (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The math lives once in `keras_aff.layers._impl`; this module binds it to
Keras 3 (`keras.layers` sublayers, `keras.ops` math) through `Keras3Kit`.
"""

import keras
from keras import ops

from keras_aff.layers import _impl


class Keras3Kit:
    """What the shared mixins need from Keras 3."""

    layers = keras.layers
    initializers = keras.initializers
    regularizers = keras.regularizers

    @staticmethod
    def relu(x):
        return ops.relu(x)

    @staticmethod
    def sigmoid(x):
        return ops.sigmoid(x)

    @staticmethod
    def transpose(x, axes):
        return ops.transpose(x, axes)

    @staticmethod
    def mean(x, axis):
        # A float16 reduce_mean over a large map is wrong on TF CPU (0.653
        # for a 224x224 map of 2.0); accumulate in float32 for half types.
        dtype = keras.backend.standardize_dtype(x.dtype)
        if dtype in ("float16", "bfloat16"):
            m = ops.mean(ops.cast(x, "float32"), axis=axis, keepdims=True)
            return ops.cast(m, dtype)
        return ops.mean(x, axis=axis, keepdims=True)

    @staticmethod
    def image_data_format():
        return keras.config.image_data_format()

    @staticmethod
    def build_child(layer, shape):
        layer.build(shape)

    @staticmethod
    def dtype_policy(layer):
        return layer.dtype_policy


class ContextBranch(_impl.ContextBranchMixin, keras.layers.Layer):
    """One local or global MS-CAM branch (private; built by its gate)."""

    _kit = Keras3Kit


class MSCAMGate(_impl.GateMixin, keras.layers.Layer):
    """M(z) = sigmoid(L(z) + G(z)) (private; built by MSCAM, AFF, IAFF)."""

    _kit = Keras3Kit
    _branch_cls = ContextBranch
