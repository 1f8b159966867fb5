"""The image input of a backbone, as keras.applications makes it (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras

from keras_aff._validation import check_int
from keras_aff._validation import check_one_of_types
from keras_aff._validation import received

_SHAPE_TEXT = (
    "a tuple of three integers (height, width, channels) (channels first "
    "with data_format='channels_first')"
)


def _check_shape(name, shape, min_size, channels_first):
    """The checked `(h, w, c)` (or `(c, h, w)`) tuple: height and width may
    be None, known sizes at least `min_size`; the channels must be known."""
    if len(shape) != 3:
        raise ValueError(
            f"Expected `{name}` to be {_SHAPE_TEXT}. " + received(name, shape)
        )
    for i, d in enumerate(shape):
        if d is not None:
            check_int(f"{name}[{i}]", d, min_value=1)
    shape = tuple(shape)
    spatial = shape[1:] if channels_first else shape[:2]
    channels = shape[0] if channels_first else shape[2]
    if channels is None:
        raise ValueError(
            f"Expected the channel dimension of `{name}` to be known. "
            + received(name, shape)
        )
    if any(d is not None and d < min_size for d in spatial):
        raise ValueError(
            f"Expected `{name}` to have a height and width of at least "
            f"{min_size}x{min_size} (or None). " + received(name, shape)
        )
    return shape


def image_input(input_tensor, input_shape, default_size, min_size):
    """Returns `(img_input, model_inputs)` as keras.applications does.

    `input_shape` defaults to `(default_size, default_size, 3)` (channels
    first when `keras.config.image_data_format()` says so). Spatial sizes
    may be None (the models end with global pooling); known sizes must be
    at least `min_size`. An `input_tensor` (a symbolic tensor) gives the
    shape instead, and the model's inputs are its source inputs.
    """
    channels_first = keras.config.image_data_format() == "channels_first"
    if input_tensor is not None:
        check_one_of_types(
            "input_tensor",
            input_tensor,
            (keras.KerasTensor,),
            "a symbolic Keras tensor (e.g. the output of `keras.Input`)",
        )
        _check_shape(
            "input_tensor.shape[1:]",
            tuple(input_tensor.shape[1:]),
            min_size,
            channels_first,
        )
        return input_tensor, keras.utils.get_source_inputs(input_tensor)
    if input_shape is None:
        size = default_size
        input_shape = (3, size, size) if channels_first else (size, size, 3)
    check_one_of_types("input_shape", input_shape, (tuple, list), _SHAPE_TEXT)
    shape = _check_shape("input_shape", input_shape, min_size, channels_first)
    img_input = keras.Input(shape=shape, name="input_layer")
    return img_input, img_input
