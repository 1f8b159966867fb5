"""What a Keras flavour supplies to the fusion layers: the `LayerKit`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The layers are written once (`gate.py`, `ms_cam.py`, `aff.py`, `iaff.py`)
and run on two flavours of Keras: Keras 3 (`keras_aff.layers`) and tf_keras
(`keras_aff.legacy`, for tfmot quantization-aware training). Everything that
differs between the two is a `LayerKit`, set as the class attribute `kit` of
each concrete layer class; the shared code reads nothing else from its
flavour. This module holds the contract and the Keras 3 kit; the tf_keras kit
lives in `keras_aff.legacy`.

Example:

>>> from keras_aff.layers import kit
>>> isinstance(kit.KERAS3, kit.LayerKit)
True
>>> kit.KERAS3.layers.Conv2D is keras.layers.Conv2D
True
"""

import types
import typing

import keras
from keras import ops


@typing.runtime_checkable
class LayerKit(typing.Protocol):
    """The contract between the shared layer code and a Keras flavour.

    Attributes:
        layers: the module that provides `Conv1D`, `Conv2D`, `Conv3D` and
            `BatchNormalization` (`keras.layers`, `tf_keras.layers`).
        initializers: the module with `get` and `serialize` for
            initializers.
        regularizers: the module with `get` and `serialize` for
            regularizers.
        ops: the math the gate uses: `relu(x)`, `sigmoid(x)`,
            `cast(x, dtype)`, `transpose(x, axes)`, `mean(x, axis)`
            (keeping the reduced axes, accumulating half-precision inputs
            in float32) and `convert_to_tensor(x)` (for arrays given to a
            method other than `__call__`, e.g. `fusion_weights`).

    Methods:
        image_data_format(): the flavour's default data format.
        build_child(layer, shape): builds a sublayer outside `__call__`.
        synchronized_bn(requested): the `synchronized` argument to give
            BatchNormalization for a layer's `bn_synchronized=requested`.

    Example:

    >>> from keras_aff.layers import kit
    >>> kit.KERAS3.image_data_format()
    'channels_last'
    """

    layers: types.ModuleType
    initializers: types.ModuleType
    regularizers: types.ModuleType
    ops: typing.Any

    def image_data_format(self) -> str: ...

    def build_child(self, layer, shape) -> None: ...

    def synchronized_bn(self, requested: bool) -> bool: ...


def _mean(x, axis):
    # A float16 reduce_mean over a large map is wrong on TF CPU (0.653 for a
    # 224x224 map of 2.0); accumulate in float32 for half types.
    dtype = keras.backend.standardize_dtype(x.dtype)
    if dtype in ("float16", "bfloat16"):
        m = ops.mean(ops.cast(x, "float32"), axis=axis, keepdims=True)
        return ops.cast(m, dtype)
    return ops.mean(x, axis=axis, keepdims=True)


class Keras3Kit:
    """The Keras 3 kit: `keras.layers` and `keras.ops` (every backend).

    Example:

    >>> from keras_aff.layers import kit
    >>> x = np.full((1, 4, 4, 2), 3.0, "float32")
    >>> tuple(kit.KERAS3.ops.mean(x, (1, 2)).shape)
    (1, 1, 1, 2)
    """

    layers = keras.layers
    initializers = keras.initializers
    regularizers = keras.regularizers
    ops = types.SimpleNamespace(
        relu=ops.relu,
        sigmoid=ops.sigmoid,
        cast=ops.cast,
        transpose=ops.transpose,
        mean=_mean,
        convert_to_tensor=ops.convert_to_tensor,
    )

    @staticmethod
    def image_data_format():
        return keras.config.image_data_format()

    @staticmethod
    def build_child(layer, shape):
        layer.build(shape)

    @staticmethod
    def synchronized_bn(requested):
        """Keras' BatchNormalization takes `synchronized=True` on TensorFlow
        only (cross-replica statistics under a `tf.distribute` strategy) and
        raises `ValueError` elsewhere. On JAX, `keras.distribution.
        DataParallel` jits one computation over the global batch (sharded
        across devices, and across processes in multi-host training), so
        the batch statistics are global already: the request is met
        without the argument (tests/distributed checks that a DataParallel
        run equals one device at the same global batch). torch has no
        multi-device Keras distribution, so there is nothing to
        synchronize.

        Example:

        >>> from keras_aff.layers import kit
        >>> kit.KERAS3.synchronized_bn(False)
        False
        """
        return bool(requested) and keras.backend.backend() == "tensorflow"


KERAS3 = Keras3Kit()


def ensure_built(layer, inputs):
    """Builds `layer` from the shapes of `inputs` (a tensor or a list) if
    it is not built yet, for methods other than `__call__` such as
    `fusion_weights`.

    Example:

    >>> from keras_aff.layers import kit
    >>> layer = keras_aff.layers.MSCAM()
    >>> kit.ensure_built(layer, np.zeros((1, 4, 4, 8), "float32"))
    >>> layer.built
    True
    """
    if layer.built:
        return
    if isinstance(inputs, (list, tuple)):
        shape = [tuple(t.shape) for t in inputs]
    else:
        shape = tuple(inputs.shape)
    layer.kit.build_child(layer, shape)


def as_tensors(layer, inputs):
    """`inputs` (one array or a list) as the flavour's tensors, for methods
    other than `__call__` (which converts by itself): on torch, NumPy and a
    tensor that requires grad do not mix.

    Example:

    >>> from keras_aff.layers import kit
    >>> x = np.ones((1, 2, 2, 4), "float32")
    >>> x2, y2 = kit.as_tensors(keras_aff.layers.AFF(), [x, x])
    >>> keras.ops.is_tensor(x2)
    True
    """
    convert = layer.kit.ops.convert_to_tensor
    if isinstance(inputs, (list, tuple)):
        return [convert(t) for t in inputs]
    return convert(inputs)
