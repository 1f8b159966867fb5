"""A timm-style registry of the paper backbones.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import dataclasses
import fnmatch

from keras_aff.models.cifar import AFFResNet32
from keras_aff.models.cifar import AFFResNeXt38
from keras_aff.models.cifar import AFFResNeXt47
from keras_aff.models.resnet import AFFResNet50
from keras_aff.models.resnet import IAFFResNet50
from keras_aff.models.resnext import AFFResNeXt50
from keras_aff.models.resnext import IAFFResNeXt50


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


_IMAGENET = dict(
    dataset="imagenet",
    input_shape=(224, 224, 3),
    classes=1000,
    stage_channels=(256, 512, 1024, 2048),
    stage_strides=(4, 8, 16, 32),
    readme_rule="trainable, truncated to 0.1M",
)
_CIFAR = dict(
    dataset="cifar100",
    input_shape=(32, 32, 3),
    classes=100,
    stage_strides=(1, 2, 4),
    readme_rule="total, rounded to 0.1M",
)

_MODELS = {
    info.name: info
    for info in (
        ModelInfo(
            name="aff_resnet50",
            builder=AFFResNet50,
            trainable_params=30_373_192,
            total_params=30_478_664,
            readme_params_m=30.3,
            readme_top1_err=20.3,
            **_IMAGENET,
        ),
        ModelInfo(
            name="iaff_resnet50",
            builder=IAFFResNet50,
            trainable_params=35_170_120,
            total_params=35_327_816,
            readme_params_m=35.1,
            readme_top1_err=20.2,
            **_IMAGENET,
        ),
        ModelInfo(
            name="aff_resnext50_32x4d",
            builder=AFFResNeXt50,
            trainable_params=29_953_704,
            total_params=30_074_536,
            readme_params_m=29.9,
            readme_top1_err=None,
            **_IMAGENET,
        ),
        ModelInfo(
            name="iaff_resnext50_32x4d",
            builder=IAFFResNeXt50,
            trainable_params=34_750_632,
            total_params=34_923_688,
            readme_params_m=34.7,
            readme_top1_err=19.78,
            **_IMAGENET,
        ),
        ModelInfo(
            name="aff_resnet32",
            builder=AFFResNet32,
            stage_channels=(64, 128, 256),
            trainable_params=7_897_156,
            total_params=7_917_450,
            readme_params_m=7.9,
            **_CIFAR,
        ),
        ModelInfo(
            name="aff_resnext38_32x4d",
            builder=AFFResNeXt38,
            stage_channels=(256, 512, 1024),
            trainable_params=7_770_148,
            total_params=7_832_996,
            readme_params_m=7.8,
            **_CIFAR,
        ),
        ModelInfo(
            name="aff_resnext47_32x4d",
            builder=AFFResNeXt47,
            stage_channels=(256, 512, 1024),
            trainable_params=9_605_828,
            total_params=9_683_460,
            readme_params_m=9.7,
            **_CIFAR,
        ),
    )
}


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
    names = sorted(_MODELS)
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
    if name not in _MODELS:
        raise ValueError(
            f"Unknown model name. Expected one of {list_models()}. "
            f"Received: name={name!r}"
        )
    return _MODELS[name]


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
