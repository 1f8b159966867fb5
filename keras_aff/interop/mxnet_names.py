"""The official Gluon parameter names of the `keras_aff.models` backbones.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`net.save_parameters` names every array by its place in the Gluon block
tree (`features.12.0.body.3.weight`, `layer3.0.attention.local_att.0.bias`).
The four official network families lay their blocks out differently; each
`Family` below maps the keras_aff layer names (`stem_conv1`,
`stage3_block1_conv2`, `stage3_block1_aff`, `predictions`) onto those
prefixes, and `describe_file` says which official network a file holds,
for error messages. Inside a fusion block the names (`local_att.0`,
`global_att.5`, `local_att2.*`, `global_att2.*`) are those of the PyTorch
port, so `keras_aff.interop.torch` supplies them.
"""

import dataclasses
import re

# Keras variable name -> Gluon parameter name.
GLUON_SUFFIX = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "gamma",
    "beta": "beta",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
_BLOCK_LAYER = re.compile(r"stage(\d+)_block(\d+)_(\w+)$")
_BOTTLENECK = {
    "conv1": "body.0",
    "bn1": "body.1",
    "conv2": "body.3",
    "bn2": "body.4",
    "conv3": "body.6",
    "bn3": "body.7",
    "down_conv": "downsample.1",
    "down_bn": "downsample.2",
    "aff": "attention",
    "iaff": "attention",
}


@dataclasses.dataclass(frozen=True)
class Family:
    """How one official network family names its parameters.

    Attributes:
        key: short name ("resnet_d", "resnext", "cifar_resnet",
            "cifar_resnext").
        description: the network in words.
        gluon_class: the official Gluon class.
        layers: Keras layer name -> Gluon prefix, outside the stages.
        stage: format of a block's prefix from `s` (stage, from 1) and `b`
            (block, from 0), e.g. "layer{s}.{b}".
        stage_offset: Gluon index of stage 1 when `stage` uses `{i}`.
        parts: Keras block part (`conv1`, `down_bn`, `aff`) -> Gluon part.
        first_stage_parts: overrides of `parts` in stage 1.
        classifier: the prefix of the Dense classifier.
        registry: blocks per stage -> registry name of the AFF model.
    """

    key: str
    description: str
    gluon_class: str
    layers: dict
    stage: str
    parts: dict
    classifier: str
    registry: dict
    stage_offset: int = 0
    first_stage_parts: dict = dataclasses.field(default_factory=dict)

    def prefix(self, layer_name):
        """The Gluon prefix of a Keras layer, or None when the official
        network has no such layer.

        Example:

        >>> FAMILIES["resnext"].prefix("stage3_block1_conv2")
        'features.12.0.body.3'
        """
        if layer_name in self.layers:
            return self.layers[layer_name]
        match = _BLOCK_LAYER.match(layer_name)
        if not match:
            return None
        s, b, part = int(match[1]), int(match[2]) - 1, match[3]
        parts = dict(self.parts)
        if s == 1:
            parts.update(self.first_stage_parts)
        if part not in parts:
            return None
        block = self.stage.format(s=s, b=b, i=s + self.stage_offset)
        return f"{block}.{parts[part]}"

    def stage_of(self, name):
        """`(stage, block)` of a Gluon name inside the stages, else None.

        Example:

        >>> FAMILIES["resnet_d"].stage_of("layer3.5.bn1.gamma")
        (3, 5)
        """
        pattern = re.escape(self.stage).replace(r"\{s\}", r"(\d+)")
        pattern = pattern.replace(r"\{i\}", r"(\d+)")
        match = re.match(pattern.replace(r"\{b\}", r"(\d+)") + r"\.", name)
        if not match:
            return None
        return int(match[1]) - self.stage_offset, int(match[2])


FAMILIES = {
    family.key: family
    for family in (
        Family(
            key="resnet_d",
            description="ImageNet ResNet-50-D",
            gluon_class="AFFResNet",
            layers={
                "stem_conv1": "conv1.0",
                "stem_bn1": "conv1.1",
                "stem_conv2": "conv1.3",
                "stem_bn2": "conv1.4",
                "stem_conv3": "conv1.6",
                "stem_bn3": "bn1",
                "predictions": "fc",
            },
            stage="layer{s}.{b}",
            parts={
                **{p: p for p in ("conv1", "conv2", "conv3")},
                **{p: p for p in ("bn1", "bn2", "bn3")},
                "down_conv": "downsample.1",
                "down_bn": "downsample.2",
                "aff": "attention",
                "iaff": "attention",
            },
            classifier="fc",
            registry={(3, 4, 6, 3): "{fusion}_resnet50"},
        ),
        Family(
            key="resnext",
            description="ImageNet ResNeXt 32x4d",
            gluon_class="AFFResNeXt",
            layers={
                "stem_conv1": "features.0",
                "stem_bn1": "features.1",
                "stem_conv2": "features.3",
                "stem_bn2": "features.4",
                "stem_conv3": "features.6",
                "stem_bn3": "features.7",
                "predictions": "output",
            },
            # features.8 is the stem's last ReLU, features.9 its max-pool.
            stage="features.{i}.{b}",
            stage_offset=9,
            parts=_BOTTLENECK,
            # Stage 1 has no AvgPool in its shortcut (`avg_down=False`).
            first_stage_parts={
                "down_conv": "downsample.0",
                "down_bn": "downsample.1",
            },
            classifier="output",
            registry={(3, 4, 6, 3): "{fusion}_resnext50_32x4d"},
        ),
        Family(
            key="cifar_resnet",
            description="CIFAR pre-activation ResNet",
            gluon_class="CIFARAFFResNet",
            layers={
                "stem_bn": "features.0",
                "stem_conv": "features.1",
                "post_bn": "features.5",
                "predictions": "output",
            },
            stage="features.{i}.{b}",
            stage_offset=1,
            parts={
                "bn1": "resfwd.0",
                "conv1": "resfwd.2",
                "bn2": "resfwd.3",
                "conv2": "resfwd.5",
                "down_conv": "downsample.1",
                # A pre-activation block's output is its fusion layer.
                "out": "attention",
            },
            classifier="output",
            registry={(5, 5, 5): "aff_resnet32"},
        ),
        Family(
            key="cifar_resnext",
            description="CIFAR ResNeXt 32x4d",
            gluon_class="CIFARAFFResNeXt",
            layers={
                "stem_conv": "features.0",
                "stem_bn": "features.1",
                "predictions": "output",
            },
            # features.2 is the stem's ReLU; the shortcut always starts
            # with an AvgPool (of size 1 in stage 1).
            stage="features.{i}.{b}",
            stage_offset=2,
            parts=_BOTTLENECK,
            classifier="output",
            registry={
                (4, 4, 4): "aff_resnext38_32x4d",
                (5, 5, 5): "aff_resnext47_32x4d",
            },
        ),
    )
}


def model_family(model):
    """The `Family` of a `keras_aff.models` backbone, from its layers;
    None for any other model.

    Example:

    >>> model = keras_aff.models.AFFResNet32(weights=None)
    >>> model_family(model).key
    'cifar_resnet'
    """
    names = {layer.name for layer in model.layers}
    if "stem_conv1" in names and "stage1_block1_conv2" in names:
        grouped = model.get_layer("stage1_block1_conv2").groups > 1
        return FAMILIES["resnext" if grouped else "resnet_d"]
    if {"stem_bn", "stem_conv", "post_bn"} <= names:
        return FAMILIES["cifar_resnet"]
    if {"stem_conv", "stem_bn", "stage1_block1_conv3"} <= names:
        return FAMILIES["cifar_resnext"]
    return None


def file_family(names):
    """The `Family` whose stem names a file holds, or None.

    Example:

    >>> file_family(["conv1.0.weight", "conv1.1.gamma"]).key
    'resnet_d'
    """
    names = set(names)
    if "conv1.0.weight" in names:
        return FAMILIES["resnet_d"]
    if "features.0.gamma" in names and "features.1.weight" in names:
        return FAMILIES["cifar_resnet"]
    if "features.0.weight" in names:
        deep_stem = "features.6.weight" in names
        return FAMILIES["resnext" if deep_stem else "cifar_resnext"]
    return None


def describe_file(arrays):
    """One sentence on the official network that `arrays` (name -> array)
    holds: family, blocks per stage, fusion, classes and the matching
    registry name, as far as the names tell.

    Example:

    >>> describe_file({"conv1.0.weight": np.zeros((32, 3, 3, 3))})
    'the file holds no stage of the official AFFResNet'
    """
    family = file_family(arrays)
    if family is None:
        return (
            "the file does not hold the parameters of an official open-aff "
            f"network (its first names: {list(arrays)[:3]})"
        )
    blocks, fused, gates = {}, set(), 1
    for name in arrays:
        where = family.stage_of(name)
        if where is None:
            continue
        blocks.setdefault(where[0], set()).add(where[1])
        if ".attention." in name:
            fused.add(where[0])
            gates = 2 if ".local_att2." in name else gates
    if not blocks:
        return f"the file holds no stage of the official {family.gluon_class}"
    per_stage = tuple(len(blocks[s]) for s in sorted(blocks))
    fusion = ("add", "aff", "iaff")[gates if fused else 0]
    text = (
        f"the file holds the official {family.gluon_class} "
        f"({family.description}): blocks per stage {per_stage}, fusion "
        f"{fusion!r} in stages {sorted(fused)}"
    )
    classifier = arrays.get(f"{family.classifier}.weight")
    if classifier is not None and classifier.ndim == 2:
        text += f", a {classifier.shape[0]}-way classifier"
    name = family.registry.get(per_stage)
    if name is not None and fusion != "add":
        registry = name.format(fusion=fusion)
        if "{" not in name and fusion != "aff":
            registry += f" with fusion={fusion!r}"
        text += f"; in keras_aff: {registry}"
    return text
