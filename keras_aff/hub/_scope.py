"""The dtype policy and data format a keras_aff builder builds under
(private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The builders of `keras_aff.models` read the global dtype policy and
`keras.config.image_data_format()`, as keras.applications does; a KerasHub
backbone takes both as arguments. `building_with` sets them for the
duration of one build and restores them afterwards, whatever happens.
"""

import contextlib

import keras


def compute_policy(dtype):
    """The `keras.DTypePolicy` that the layers of a backbone built with
    `dtype` get: None is the global policy, a `DTypePolicyMap` (KerasHub's
    quantization check) its default policy.

    Example:

    >>> compute_policy("mixed_float16").compute_dtype
    'float16'
    """
    if dtype is None:
        return keras.config.dtype_policy()
    policy = keras.dtype_policies.get(dtype)
    if isinstance(policy, keras.dtype_policies.DTypePolicyMap):
        return policy.default_policy
    return policy


@contextlib.contextmanager
def building_with(dtype, data_format):
    """Sets the global dtype policy to `compute_policy(dtype)` and the image
    data format to `data_format` inside the block, restoring both after.

    Example:

    >>> with building_with("bfloat16", "channels_first"):
    ...     keras.layers.Dense(2).dtype_policy.name, (
    ...         keras.config.image_data_format())
    ('bfloat16', 'channels_first')
    >>> keras.config.image_data_format()
    'channels_last'
    """
    policy = keras.config.dtype_policy()
    image_format = keras.config.image_data_format()
    keras.config.set_dtype_policy(compute_policy(dtype))
    keras.config.set_image_data_format(data_format)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)
        keras.config.set_image_data_format(image_format)
