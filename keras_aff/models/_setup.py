"""The arguments every backbone builder shares, checked once (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

A public builder (`AFFResNet50`, ...) hands its arguments, `locals()` as
its only statement, to its family builder, which calls `setup(arguments,
family)`: every shared argument is checked here and lands in one frozen
`Options`, with the image input. The blocks read the options
(`keras_aff.models._blocks`) and `finish` adds the head and loads the
weights. A new shared argument is a field of `Options`, a check in
`setup`, and a line in each public signature and docstring; an argument
that reaches `setup` without a field is a `TypeError`.
"""

import dataclasses
import os

import keras

from keras_aff._validation import check_bool
from keras_aff._validation import check_choice
from keras_aff._validation import check_existing_file
from keras_aff._validation import check_int
from keras_aff._validation import check_keras_object
from keras_aff._validation import check_one_of_types
from keras_aff._validation import received
from keras_aff.models import _blocks
from keras_aff.models._inputs import image_input

FUSIONS = ("aff", "iaff", "add")
POOLINGS = (None, "avg", "max")
# Names that other libraries download weights for; keras_aff does not.
_PRETRAINED_NAMES = ("imagenet", "cifar100", "cifar10")


@dataclasses.dataclass(frozen=True)
class Family:
    """What a family builder tells `setup` about its networks.

    Attributes:
        num_stages: number of stages (`fusion_stages` are in 1..num_stages).
        default_size: default input height and width.
        min_size: smallest known input height and width.
        base_name: the default model name is `f"{fusion}_{base_name}"`...
        plain_name: ... and `plain_name` for `fusion="add"`.
    """

    num_stages: int
    default_size: int
    min_size: int
    base_name: str
    plain_name: str


@dataclasses.dataclass(frozen=True)
class Options:
    """The checked shared arguments of one network and its image input.

    `kernel_initializer` is serialized (each layer gets a fresh object);
    `zero_init_residual` is False for the families without the flag;
    `bn_synchronized` applies to every BatchNormalization of the network
    (the backbone's and the fusion layers');
    `img_input` is the image tensor and `inputs` the model's inputs.
    """

    name: str
    include_top: bool
    weights: object
    pooling: object
    classes: int
    classifier_activation: object
    fusion: str
    fusion_stages: tuple
    reduction_ratio: int
    kernel_initializer: dict
    zero_init_residual: bool
    bn_synchronized: bool
    img_input: object
    inputs: object


def check_weights(weights):
    """None (random initialization) or the path of an existing file."""
    if weights is None:
        return None
    if (
        isinstance(weights, str)
        and weights in _PRETRAINED_NAMES
        and not os.path.isfile(weights)
    ):
        raise ValueError(
            "Expected `weights` to be None (random initialization) or the "
            "path of an existing weights file. No pretrained weights are "
            "downloaded by keras_aff: pass the path of the official MXNet "
            "`.params` file (from the official repository, "
            "YimianDai/open-aff) or of a `.weights.h5` file. "
            + received("weights", weights)
        )
    return check_existing_file("weights", weights)


def check_fusion_stages(value, num_stages):
    """A collection of stage numbers in [1, num_stages], as a sorted tuple
    without repeats (empty: no stage fuses)."""
    check_one_of_types(
        "fusion_stages",
        value,
        (tuple, list, set, frozenset, range),
        f"a collection of stage numbers in [1, {num_stages}]",
    )
    stages = tuple(value)
    for i, stage in enumerate(stages):
        check_int(f"fusion_stages[{i}]", stage, 1, num_stages)
    return tuple(sorted(set(int(s) for s in stages)))


def setup(arguments, family):
    """Checks the arguments of a public builder (a dict: its `locals()`)
    and creates the image input. Returns the `Options`."""
    args = dict(arguments)
    fusion = check_choice("fusion", args.pop("fusion"), FUSIONS)
    weights = check_weights(args.pop("weights"))
    pooling = check_choice("pooling", args.pop("pooling"), POOLINGS)
    include_top = check_bool("include_top", args.pop("include_top"))
    classes = check_int("classes", args.pop("classes"), min_value=1)
    activation = args.pop("classifier_activation")
    check_keras_object(
        "classifier_activation", activation, keras.activations.get
    )
    stages = check_fusion_stages(args.pop("fusion_stages"), family.num_stages)
    ratio = check_int("reduction_ratio", args.pop("reduction_ratio"), 1)
    initializer = check_keras_object(
        "kernel_initializer",
        args.pop("kernel_initializer"),
        keras.initializers.get,
        serializer=keras.initializers.serialize,
    )
    zero_init_residual = check_bool(
        "zero_init_residual", args.pop("zero_init_residual", False)
    )
    bn_synchronized = check_bool(
        "bn_synchronized", args.pop("bn_synchronized", False)
    )
    name = args.pop("name")
    check_one_of_types("name", name, (str, type(None)), "a str or None")
    if not name:
        name = (
            family.plain_name
            if fusion == "add"
            else f"{fusion}_{family.base_name}"
        )
    img_input, inputs = image_input(
        args.pop("input_tensor"),
        args.pop("input_shape"),
        family.default_size,
        family.min_size,
    )
    if args:
        raise TypeError(f"setup() got unexpected arguments {sorted(args)}")
    return Options(
        name=name,
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classes=classes,
        classifier_activation=activation,
        fusion=fusion,
        fusion_stages=stages,
        reduction_ratio=ratio,
        kernel_initializer=initializer,
        zero_init_residual=zero_init_residual,
        bn_synchronized=bn_synchronized,
        img_input=img_input,
        inputs=inputs,
    )


def finish(opts, x):
    """The head (or pooling) on `x`, then the model, with the weights file
    loaded when one was given."""
    outputs = _blocks.head(x, opts)
    model = keras.Model(opts.inputs, outputs, name=opts.name)
    if opts.weights is not None:
        load_weights(model, opts.weights)
    return model


def load_weights(model, path):
    """A Keras weights file, or an official MXNet `.params` file
    (recognised by its content, whatever its extension); a file that
    cannot be loaded is a ValueError naming `weights`.

    Example:

    >>> from keras_aff.models import _setup
    >>> model = keras_aff.models.AFFResNet32(classes=10)
    >>> model.save_weights("m.weights.h5")
    >>> _setup.load_weights(model, "m.weights.h5")
    """
    from keras_aff.interop import mxnet_format

    if mxnet_format.is_mxnet_params(path):
        from keras_aff.interop import load_mxnet_params

        load_mxnet_params(model, path)
        return
    try:
        model.load_weights(path)
    except (OSError, ValueError) as e:
        cause = str(e).strip().splitlines()[0][:300]
        raise ValueError(
            "Expected `weights` to be a weights file (`.weights.h5`) saved "
            "from this architecture, or an official MXNet `.params` file; "
            f"it cannot be loaded ({cause}). " + received("weights", path)
        ) from None
