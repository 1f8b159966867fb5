"""A timm-style registry of the paper backbones, built from their builders.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Each public builder is decorated with `@register_model(name, **facts)`
(timm's `@register_model`); the registry holds what the decorators gave
and nothing else, so a builder and its record are written side by side.
"""

import dataclasses
import fnmatch

from keras_aff._validation import check_choice

# What every network of a dataset shares in the registry.
IMAGENET = {
    "dataset": "imagenet",
    "input_shape": (224, 224, 3),
    "classes": 1000,
    "readme_rule": "trainable, truncated to 0.1M",
}
CIFAR100 = {
    "dataset": "cifar100",
    "input_shape": (32, 32, 3),
    "classes": 100,
    "readme_rule": "total, rounded to 0.1M",
}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one backbone.

    Attributes:
        name: registry name (also the default model name).
        builder: the public constructor, e.g. `keras_aff.models.AFFResNet50`.
        dataset: "imagenet" or "cifar100".
        input_shape: default input shape (channels last).
        classes: default number of classes.
        stage_channels: channels of each stage output.
        stage_strides: stride of each stage output w.r.t. the input.
        trainable_params: exact trainable parameter count (default
            arguments, `include_top=True`).
        total_params: exact count including the BatchNorm moving statistics
            (what MXNet's `summary()` calls "Total params").
        readme_params_m: parameter count in the official README, millions.
        readme_rule: how `readme_params_m` follows from the exact counts.
        readme_top1_err: ImageNet top-1 error in the official README (None
            where it gives none).

    Example:

    >>> info = keras_aff.models.model_info("aff_resnext38_32x4d")
    >>> info.builder is keras_aff.models.AFFResNeXt38
    True
    >>> info.dataset, info.input_shape, info.classes
    ('cifar100', (32, 32, 3), 100)
    >>> info.total_params, info.readme_params_m, info.readme_rule
    (7832996, 7.8, 'total, rounded to 0.1M')
    """

    name: str
    builder: object
    dataset: str
    input_shape: tuple
    classes: int
    stage_channels: tuple
    stage_strides: tuple
    trainable_params: int
    total_params: int
    readme_params_m: float
    readme_rule: str
    readme_top1_err: object = None


_REGISTRY = {}


def register_model(name, **facts):
    """Registers the decorated builder under `name` with the `ModelInfo`
    fields `facts` (everything but `name` and `builder`).

    Args:
        name: the registry name, e.g. "aff_resnet50".
        **facts: the other `ModelInfo` fields (dataset, input_shape,
            classes, stage_channels, stage_strides, parameter counts,
            README figures).

    Returns:
        A decorator that records the builder and returns it unchanged.

    Example (what `keras_aff.models.AFFResNet32` is registered with):

    >>> info = keras_aff.models.model_info("aff_resnet32")
    >>> info.stage_channels, info.stage_strides, info.trainable_params
    ((64, 128, 256), (1, 2, 4), 7897156)
    """

    def decorate(builder):
        if name in _REGISTRY:
            raise ValueError(
                f"A backbone named {name!r} is already registered (by "
                f"{_REGISTRY[name].builder.__name__})."
            )
        _REGISTRY[name] = ModelInfo(name=name, builder=builder, **facts)
        return builder

    return decorate


def list_models(pattern=None):
    """Names of the registered backbones, sorted (timm style).

    Args:
        pattern: optional shell-style wildcard, e.g. "*resnext*".

    Returns:
        A list of registry names.

    Example:

    >>> keras_aff.models.list_models("aff_resnet*")
    ['aff_resnet32', 'aff_resnet50']
    """
    names = sorted(_REGISTRY)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def model_info(name):
    """The `ModelInfo` record of a registered backbone.

    Args:
        name: a name from `list_models()`.

    Returns:
        A frozen `ModelInfo` (builder, default input shape, stage channels
        and strides, exact and README parameter counts).

    Example:

    >>> keras_aff.models.model_info("aff_resnet32").stage_channels
    (64, 128, 256)
    """
    return _REGISTRY[check_choice("name", name, list_models())]


def get_model(name, **kwargs):
    """Builds a registered backbone by name (timm's `create_model`).

    Args:
        name: a name from `list_models()`.
        **kwargs: passed to the builder (`include_top`, `input_shape`,
            `pooling`, `classes`, `fusion`, ...).

    Returns:
        A `keras.Model`.

    Example:

    >>> model = keras_aff.models.get_model("aff_resnet32", classes=10)
    >>> model.output.shape
    (None, 10)
    """
    return model_info(name).builder(**kwargs)
