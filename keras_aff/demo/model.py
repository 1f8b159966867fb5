"""The demo network (AFF and iAFF on digits) and a model of its fusion
weights, from the layers' own `fusion_weights`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

from keras_aff import _validation
from keras_aff.demo.data import IMAGE_SIZE
from keras_aff.demo.data import NUM_CLASSES


def build_demo_model():
    """The demo network: two conv branches fused by AFF (layer "aff"), then
    a block whose conv path and projection shortcut are fused by iAFF
    (layer "iaff"); softmax over 10 digits. 12 k parameters.

    Returns:
        An uncompiled functional `keras.Model` "aff_digits" taking
        (N, 16, 16, 1) images.

    Example:

    >>> model = keras_aff.demo.build_demo_model()
    >>> model.get_layer("aff").name, model.get_layer("iaff").name
    ('aff', 'iaff')
    >>> model.count_params()
    11906
    """
    import keras

    from keras_aff.layers import AFF
    from keras_aff.layers import IAFF

    image = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="image")
    h = _conv_bn(image, 16, 3, "stem")
    x = _conv_bn(h, 16, 3, "branch3x3")  # AFF's x: w weighs this one
    y = _conv_bn(h, 16, 1, "branch1x1")  # AFF's y: 1 - w weighs this one
    h = AFF(reduction_ratio=4, name="aff")([x, y])
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    x = _conv_bn(h, 32, 3, "block2_conv")
    y = _conv_bn(h, 32, 1, "block2_proj", relu=False)
    h = IAFF(reduction_ratio=4, name="iaff")([x, y])
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    probs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probs")(
        h
    )
    return keras.Model(image, probs, name="aff_digits")


def _conv_bn(h, filters, kernel, name, relu=True):
    import keras

    layers = keras.layers
    h = layers.Conv2D(
        filters, kernel, padding="same", use_bias=False, name=name
    )(h)
    h = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(h)
    return layers.ReLU(name=f"{name}_relu")(h) if relu else h


def fusion_weight_model(model):
    """A probe model: the demo model's input -> the fusion weights `w` of
    its AFF layer and the second-stage `w2` of its iAFF layer (channel
    maps; `w` multiplies the FIRST input x, `1 - w` the second, y). Built
    from each layer's `fusion_weights` on the tensors that feed it, with
    `training=False`.

    Args:
        model: the model of `build_demo_model` (layers "aff" and "iaff").

    Returns:
        A `keras.Model` "fusion_weights" with outputs `[w, w2]`.

    Example:

    >>> model = keras_aff.demo.build_demo_model()
    >>> probe = keras_aff.demo.fusion_weight_model(model)
    >>> w_aff, w_iaff = probe(np.zeros((2, 16, 16, 1), "float32"))
    >>> tuple(w_aff.shape), tuple(w_iaff.shape)
    ((2, 16, 16, 16), (2, 8, 8, 32))
    """
    import keras

    _validation.check_one_of_types("model", model, keras.Model, "a keras.Model")
    aff = model.get_layer("aff")
    w = aff.fusion_weights(aff.input, training=False)
    iaff = model.get_layer("iaff")
    _, w2 = iaff.fusion_weights(iaff.input, training=False)
    return keras.Model(model.input, [w, w2], name="fusion_weights")
