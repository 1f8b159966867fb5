"""tf_keras (Keras 2) twins of the MS-CAM, AFF and iAFF layers.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`keras_aff.legacy.MSCAM`, `AFF` and `IAFF` are tf_keras layers written for
tf_keras (`keras_aff.legacy.layers`, with their own small gate in
`keras_aff.legacy.gate`): TensorFlow ops instead of `keras.ops`, the base
class `tf_keras.layers.Layer` and the registry
`tf_keras.saving.register_keras_serializable`. They share only the pure
helpers of `keras_aff.layers` (argument checks, config keys, shape rules)
with the Keras 3 layers, and keep their arguments, config keys and
variable paths (`aff/attention/local/conv1/kernel`); an equivalence test
(tests/qat/test_equivalence.py) pins outputs, moving statistics, configs
and paths to the Keras 3 layers'. Use them where Keras 2 is required,
chiefly for quantization-aware training with
tensorflow-model-optimization (see `keras_aff.qat`).

This package imports `tf_keras` explicitly. It never looks at
`TF_USE_LEGACY_KERAS` and never uses `tf.keras`, so which classes you get
does not depend on import order. It is not imported by `import keras_aff`.

Weights move between a Keras 3 model and its tf_keras twin by variable path
(`copy_weights`, re-exported from `keras_aff.porting`); the `get_weights()`
orders of the two flavours differ, so `set_weights` cannot be used for that.
"""

from keras_aff._optional import require

require("tf_keras", "qat", "`keras_aff.legacy` (Keras 2 layers)")

# The extra is checked before the submodules import it (E402 below).
from keras_aff.legacy.layers import AFF  # noqa: E402
from keras_aff.legacy.layers import IAFF  # noqa: E402
from keras_aff.legacy.layers import MSCAM  # noqa: E402
from keras_aff.porting import copy_weights  # noqa: E402
from keras_aff.porting import weight_paths  # noqa: E402

__all__ = [
    "AFF",
    "IAFF",
    "MSCAM",
    "copy_weights",
    "weight_paths",
]
