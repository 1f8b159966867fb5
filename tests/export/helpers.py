"""Small models and data for the export tests (seeded, a few k parameters)."""

import keras
import numpy as np

from keras_aff.layers import AFF
from keras_aff.layers import IAFF
from keras_aff.layers import MSCAM

L = keras.layers


def fusion_cnn(seed=0, size=16, classes=5, dtype=None, name="fusion_cnn"):
    """Fully convolutional: stem -> AFF of two branches -> iAFF -> MSCAM ->
    GAP -> Dense. Runs at any spatial size."""
    keras.utils.set_random_seed(seed)
    kw = {} if dtype is None else {"dtype": dtype}
    image = keras.Input((size, size, 3), name="image")
    h = L.Conv2D(8, 3, padding="same", activation="relu", **kw)(image)
    a = L.Conv2D(8, 3, padding="same", **kw)(h)
    b = L.Conv2D(8, 1, **kw)(h)
    f = AFF(reduction_ratio=2, name="aff", **kw)([a, b])
    f = IAFF(reduction_ratio=2, name="iaff", **kw)([f, b])
    f = MSCAM(reduction_ratio=2, name="mscam", **kw)(f)
    out = L.Dense(classes, name="logits", dtype="float32")(
        L.GlobalAveragePooling2D(**kw)(f)
    )
    return keras.Model(image, out, name=name)


def flatten_cnn(seed=0):
    """Needs its spatial size: Flatten -> Dense."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((8, 8, 3), name="image")
    h = L.Conv2D(4, 3, padding="same")(image)
    h = AFF(reduction_ratio=2)([h, L.Conv2D(4, 1)(image)])
    return keras.Model(image, L.Dense(3)(L.Flatten()(h)))


def two_input_model(seed=0):
    """Two named inputs (declared in non-alphabetical order) fused by AFF."""
    keras.utils.set_random_seed(seed)
    left = keras.Input((8, 8, 4), name="zeta")
    right = keras.Input((8, 8, 4), name="alpha")
    f = AFF(reduction_ratio=2, name="aff")(
        [L.Conv2D(8, 1)(left), L.Conv2D(8, 3, padding="same")(right)]
    )
    out = L.Dense(4, name="logits")(L.GlobalAveragePooling2D()(f))
    return keras.Model([left, right], out)


def two_input_data(n, seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((n, 8, 8, 4)).astype("float32"),
        (2.0 * rng.standard_normal((n, 8, 8, 4)) + 0.5).astype("float32"),
    ]


def _nchw_conv(h, filters, name):
    """A channels_first conv as TF CPU kernels can run it (NHWC inside)."""
    h = L.Permute((2, 3, 1), name=f"{name}_to_nhwc")(h)
    h = L.Conv2D(filters, 3, padding="same", name=name)(h)
    return L.Permute((3, 1, 2), name=f"{name}_to_nchw")(h)


def channels_first_aff(seed=0, blend_cls=AFF):
    """(3, 8, 8) input, NCHW feature maps fused by a channels_first AFF."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((3, 8, 8), name="image")
    h = _nchw_conv(image, 8, "stem")
    f = blend_cls(reduction_ratio=2, data_format="channels_first", name="aff")(
        [_nchw_conv(h, 8, "a"), _nchw_conv(h, 8, "b")]
    )
    return keras.Model(image, f)


class TextbookBlendAFF(AFF):
    """AFF computing x * w + y * (1 - w), the form that the TF 2.21 LiteRT
    converter miscompiles in NCHW graphs (not registered: tests only)."""

    def call(self, inputs, training=None):
        x, y = inputs
        w = self.attention(x + y, training=training)
        return x * w + y * (1.0 - w)


def one_minus_model(seed=0):
    """The bare converter bug: NCHW conv -> `1 - y`."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((3, 8, 8), name="image")
    y = _nchw_conv(image, 4, "conv")
    return keras.Model(image, L.Lambda(lambda t: 1.0 - t, name="one_minus")(y))


def images(n, size=16, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, size, size, channels)).astype("float32")
