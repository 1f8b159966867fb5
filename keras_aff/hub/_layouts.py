"""Each registered network's family builder and block counts, so that an
`AFFBackbone` can be built at another depth (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

A public builder of `keras_aff.models` calls its family builder with its
`locals()` and fixed block counts; `build` does the same with the public
builder's defaults, the caller's overrides and any `blocks_per_stage`, so
the default depth gives the registered network itself.
"""

import inspect

from keras_aff._validation import check_int
from keras_aff._validation import check_one_of_types
from keras_aff._validation import received
from keras_aff.models import cifar
from keras_aff.models import model_info
from keras_aff.models import resnet
from keras_aff.models import resnext


def _imagenet(arguments, blocks):
    return resnet.resnet_d(arguments, blocks_per_stage=blocks)


def _imagenet_resnext(arguments, blocks):
    return resnet.resnet_d(
        arguments,
        resnext.RESNEXT50,
        stem_width=64,
        cardinality=32,
        bottleneck_width=4,
        blocks_per_stage=blocks,
    )


def _cifar_resnet(arguments, blocks):
    return cifar.cifar_resnet(arguments, blocks_per_stage=blocks[0])


def _cifar_resnext(arguments, blocks):
    return cifar.cifar_resnext(arguments, blocks_per_stage=blocks[0])


# name -> (family builder, default blocks per stage, equal counts only)
LAYOUTS = {
    "aff_resnet50": (_imagenet, (3, 4, 6, 3), False),
    "iaff_resnet50": (_imagenet, (3, 4, 6, 3), False),
    "aff_resnext50_32x4d": (_imagenet_resnext, (3, 4, 6, 3), False),
    "iaff_resnext50_32x4d": (_imagenet_resnext, (3, 4, 6, 3), False),
    "aff_resnet32": (_cifar_resnet, (5, 5, 5), True),
    "aff_resnext38_32x4d": (_cifar_resnext, (4, 4, 4), True),
    "aff_resnext47_32x4d": (_cifar_resnext, (5, 5, 5), True),
}


def default_argument(name, argument):
    """The public builder's default for `argument`.

    Example:

    >>> default_argument("aff_resnet32", "reduction_ratio")
    4
    """
    parameters = inspect.signature(model_info(name).builder).parameters
    return parameters[argument].default


def check_blocks(name, value):
    """`blocks_per_stage` for the network `name`: None gives its own
    counts; otherwise one count >= 1 per stage (equal counts for the CIFAR
    networks, whose official builders take one count).

    Example:

    >>> check_blocks("aff_resnet50", None)
    (3, 4, 6, 3)
    >>> check_blocks("aff_resnet32", [1, 2, 1])
    Traceback (most recent call last):
    ...
    ValueError: Expected `blocks_per_stage` ... Received: ...
    """
    _, default, equal = LAYOUTS[name]
    if value is None:
        return default
    check_one_of_types(
        "blocks_per_stage", value, (tuple, list), "a tuple of ints"
    )
    blocks = tuple(
        check_int(f"blocks_per_stage[{i}]", b, 1) for i, b in enumerate(value)
    )
    if len(blocks) != len(default) or (equal and len(set(blocks)) != 1):
        expected = f"{len(default)} block counts" + (
            ", all equal" if equal else ""
        )
        raise ValueError(
            f"Expected `blocks_per_stage` to be {expected} for {name!r}. "
            + received("blocks_per_stage", value)
        )
    return blocks


def build(name, blocks, **overrides):
    """The functional network `name` with `blocks` per stage and the
    public builder's other arguments as `overrides` change them.

    Example:

    >>> net = build("aff_resnet32", (1, 1, 1), include_top=False)
    >>> net.name, net.output.shape
    ('aff_resnet8', (None, 8, 8, 256))
    """
    builder = model_info(name).builder
    parameters = inspect.signature(builder).parameters
    arguments = {k: p.default for k, p in parameters.items()}
    arguments.update(overrides)
    return LAYOUTS[name][0](arguments, blocks)
