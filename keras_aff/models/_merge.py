"""The fusion merge of the dense-prediction models (FPN, U-Net): AFF, iAFF
or the "add" ablation of two maps of different shapes (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras

from keras_aff import _validation
from keras_aff.layers import AFF
from keras_aff.layers import IAFF
from keras_aff.layers import Align

FUSIONS = ("aff", "iaff", "add")
# As the official networks: AFF doubles its output ("the weights sum to 2,
# like x + y"), iAFF does not.
OUTPUT_SCALE = {"aff": 2.0, "iaff": 1.0}


def check_fusion(fusion):
    """The `fusion` argument, canonical.

    Example:

    >>> from keras_aff.models import _merge
    >>> _merge.check_fusion("AFF")
    'aff'
    """
    return _validation.check_choice("fusion", fusion, FUSIONS)


def merge(x, y, fusion, name, reduction_ratio, interpolation):
    """`fusion(x, y)` with `y` aligned to `x` (projected to its channels
    when they differ, resized to its size when it differs): an AFF or IAFF
    with `align_inputs=True` named `{name}_{fusion}`, or, for "add",
    `x + Align()([x, y])` (the same alignment, layers `{name}_align` and
    `{name}_add`).

    Example:

    >>> from keras_aff.models import _merge
    >>> x = keras.Input((16, 16, 32))
    >>> y = keras.Input((8, 8, 64))
    >>> _merge.merge(x, y, "add", "up1", 4, "bilinear").shape
    (None, 16, 16, 32)
    """
    if fusion == "add":
        aligned = Align(interpolation=interpolation, name=f"{name}_align")(
            [x, y]
        )
        return keras.layers.Add(name=f"{name}_add")([x, aligned])
    cls = AFF if fusion == "aff" else IAFF
    layer = cls(
        reduction_ratio=reduction_ratio,
        output_scale=OUTPUT_SCALE[fusion],
        align_inputs=True,
        resize_interpolation=interpolation,
        name=f"{name}_{fusion}",
    )
    return layer([x, y])
