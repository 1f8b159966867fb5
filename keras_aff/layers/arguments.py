"""The fusion layers' constructor arguments: checks and config keys.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Pure functions (no Keras import), shared by the Keras 3 layers
(`keras_aff.layers`) and their tf_keras twins (`keras_aff.legacy`), so
both flavours accept, check and save the same arguments. Each check
returns the canonical value the layer stores under the argument's name.
"""

from keras_aff import _validation

BRANCH_KINDS = ("local", "global")
DEFAULT_BRANCHES = ("local", "global")
INTERPOLATIONS = ("bilinear", "nearest")


def check_ratio(value):
    """`reduction_ratio`: an integer >= 1.

    Example:

    >>> from keras_aff.layers import arguments
    >>> arguments.check_ratio(4)
    4
    """
    return _validation.check_int("reduction_ratio", value, min_value=1)


def check_output_scale(value):
    """`output_scale`: a finite number > 0.

    Example:

    >>> from keras_aff.layers import arguments
    >>> arguments.check_output_scale(2)
    2.0
    """
    return _validation.check_number(
        "output_scale", value, low=0.0, low_open=True
    )


def check_momentum(value):
    """`bn_momentum`: a number in [0, 1).

    Example:

    >>> from keras_aff.layers import arguments
    >>> arguments.check_momentum(0.9)
    0.9
    """
    return _validation.check_number(
        "bn_momentum", value, low=0.0, high=1.0, high_open=True
    )


def check_epsilon(value):
    """`bn_epsilon`: a finite number > 0.

    Example:

    >>> from keras_aff.layers import arguments
    >>> arguments.check_epsilon(1e-5)
    1e-05
    """
    return _validation.check_number("bn_epsilon", value, low=0.0, low_open=True)


def check_branches(value):
    """`branches`: two branch names, each "local" or "global".

    Example:

    >>> from keras_aff.layers import arguments
    >>> arguments.check_branches(["global", "global"])
    ('global', 'global')
    """
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(
            "Expected `branches` to be a list or tuple of two branch names "
            f"from {BRANCH_KINDS}. "
            + _validation.received("branches", value, with_type=True)
        )
    value = tuple(value)
    if len(value) != 2 or any(v not in BRANCH_KINDS for v in value):
        raise ValueError(
            "Expected `branches` to be two branch names, each one of "
            f"{BRANCH_KINDS}, e.g. ('local', 'global'). "
            + _validation.received("branches", value)
        )
    return value


def check_interpolation(name, value):
    """`resize_interpolation` / `interpolation`: "bilinear" or "nearest".

    Example:

    >>> from keras_aff.layers import arguments
    >>> arguments.check_interpolation("interpolation", "NEAREST")
    'nearest'
    """
    return _validation.check_choice(name, value, INTERPOLATIONS)


def check_config(layer_cls, config):
    """The `config` given to `layer_cls.from_config`: a dict.

    Example:

    >>> from keras_aff.layers import arguments
    >>> arguments.check_config(type("AFF", (), {}), None)
    Traceback (most recent call last):
    ...
    TypeError: Expected `config` ... Received: config=None (of type NoneType)
    """
    if not isinstance(config, dict):
        raise TypeError(
            f"Expected `config` to be a dict, as returned by "
            f"`{layer_cls.__name__}.get_config()`. "
            + _validation.received("config", config, with_type=True)
        )
    return config


def gate_config(layer, initializers, regularizers):
    """The gate arguments stored on `layer`, as plain JSON values;
    `initializers` and `regularizers` are the flavour's modules (their
    `serialize`).

    Example:

    >>> from keras_aff.layers import arguments
    >>> layer = keras_aff.layers.MSCAM()
    >>> config = arguments.gate_config(
    ...     layer, keras.initializers, keras.regularizers)
    >>> config["branches"], config["kernel_regularizer"]
    (['local', 'global'], None)
    """
    return {
        "reduction_ratio": layer.reduction_ratio,
        "use_bias": layer.use_bias,
        "bn_momentum": layer.bn_momentum,
        "bn_epsilon": layer.bn_epsilon,
        "bn_synchronized": layer.bn_synchronized,
        "kernel_initializer": initializers.serialize(layer.kernel_initializer),
        "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
        "data_format": layer.data_format,
        "branches": list(layer.branches),
        "use_batch_norm": layer.use_batch_norm,
    }
