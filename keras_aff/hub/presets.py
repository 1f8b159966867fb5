"""KerasHub classifier presets from the official weights.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`classifier_from_network` turns a functional `keras_aff.models` network
(with its classifier) into an `AFFImageClassifier` with the same weights
and the official preprocessing; `preset_from_params` does that for an
official MXNet `.params` file and writes a KerasHub preset directory (what
`keras-aff convert IN.params --model NAME --preset OUT_DIR` runs).
"""

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from keras_aff import __version__
from keras_aff import models
from keras_aff._validation import check_choice
from keras_aff._validation import check_int
from keras_aff._validation import received
from keras_aff.hub.backbone import AFFBackbone
from keras_aff.hub.classifier import AFFImageClassifier
from keras_aff.hub.classifier import AFFImageClassifierPreprocessor
from keras_aff.hub.classifier import AFFImageConverter

CHECK_SEED = 0
METADATA_FILE = "metadata.json"


@dataclasses.dataclass
class PresetReport:
    """What `preset_from_params` wrote and checked.

    Attributes:
        preset: the preset directory.
        architecture: the registry name.
        classes: classes of the classifier.
        source: the `.params` file.
        source_sha256: its SHA-256, hex.
        max_abs_difference: largest |classifier - functional network|
            logit on a fixed standard-normal batch (0.0: same weights, same
            graph).

    Example:

    >>> PresetReport("p", "aff_resnet32", 100, "w.params", "ab", 0.0).classes
    100
    """

    preset: str
    architecture: str
    classes: int
    source: str
    source_sha256: str
    max_abs_difference: float


def sha256(path):
    """The SHA-256 of the file at `path`, hex.

    Example:

    >>> with open("f.bin", "wb") as f:
    ...     _ = f.write(b"aff")
    >>> sha256("f.bin")[:12]
    '543b4bb6a59b'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def classifier_from_network(network, architecture, image_shape=None):
    """An `AFFImageClassifier` holding the weights of `network`.

    Args:
        network: a functional network of `keras_aff.models` with
            `include_top=True` and `classifier_activation=None` (logits),
            built from the registry name `architecture` with its default
            fusion.
        architecture: str, the registry name.
        image_shape: the backbone's input shape; default (None, None, 3).

    Returns:
        An `AFFImageClassifier` with the official preprocessor of the
        network's dataset; its logits equal the network's.

    Example:

    >>> net = keras_aff.models.AFFResNet32(classes=10,
    ...                                   classifier_activation=None)
    >>> clf = keras_aff.hub.presets.classifier_from_network(
    ...     net, "aff_resnet32")
    >>> x = np.random.default_rng(0).normal(size=(1, 32, 32, 3))
    >>> float(np.abs(clf(x) - net(x)).max())
    0.0
    """
    architecture = check_choice(
        "architecture", architecture, models.list_models()
    )
    info = models.model_info(architecture)
    head = network.get_layer("predictions")
    backbone = AFFBackbone(architecture, image_shape=image_shape)
    for layer in backbone.layers:
        layer.set_weights(network.get_layer(layer.name).get_weights())
    preprocessor = AFFImageClassifierPreprocessor(
        AFFImageConverter.official(info.dataset)
    )
    classifier = AFFImageClassifier(
        backbone, head.units, preprocessor=preprocessor
    )
    classifier.output_dense.set_weights(head.get_weights())
    return classifier


def _check_output_dir(preset_dir):
    preset_dir = os.fspath(preset_dir)
    parent = os.path.dirname(os.path.abspath(preset_dir))
    if os.path.lexists(preset_dir):
        raise ValueError(
            "Expected `preset_dir` to be a path that does not exist yet (a "
            "preset is never written over an existing path). "
            + received("preset_dir", preset_dir)
        )
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise ValueError(
            "Expected `preset_dir` to be a path in an existing, writable "
            "directory. " + received("preset_dir", preset_dir)
        )
    return preset_dir, parent


def _max_difference(classifier, network, seed=CHECK_SEED):
    shape = (2,) + tuple(network.input_shape[1:])
    x = np.random.default_rng(seed).normal(size=shape).astype("float32")
    a = np.asarray(classifier(x), "float64")
    b = np.asarray(network(x, training=False), "float64")
    if not np.isfinite(a).all():
        raise RuntimeError(
            f"the classifier's logits on a fixed input (seed {seed}) are not "
            "finite"
        )
    return float(np.abs(a - b).max())


def preset_from_params(params, architecture, preset_dir, classes=None):
    """Writes a KerasHub `AFFImageClassifier` preset from an official MXNet
    `.params` file.

    The preset directory (config, weights, preprocessor, image converter,
    task, and `metadata.json` naming the source file and its SHA-256 under
    "keras_aff") is written next to `preset_dir` and renamed into place
    once complete; an existing `preset_dir` is an error, never replaced.
    Reload it in any process with `import keras_aff.hub` then
    `keras_hub.models.ImageClassifier.from_preset(preset_dir)`.

    Args:
        params: path of the official `.params` file.
        architecture: str, its registry name (`keras_aff.models.
            list_models()`).
        preset_dir: the directory to create.
        classes: classes of the file's classifier; default the network's
            (1000 ImageNet, 100 CIFAR).

    Returns:
        A `PresetReport`.

    Example (`keras-aff convert` runs it; an existing directory is never
    written over):

    >>> keras_aff.hub.presets.preset_from_params(
    ...     "w.params", "aff_resnet32", ".")
    Traceback (most recent call last):
    ...
    ValueError: Expected `preset_dir` to be a path that does not exist ...
    """
    architecture = check_choice(
        "architecture", architecture, models.list_models()
    )
    preset_dir, parent = _check_output_dir(preset_dir)
    kwargs = {}
    if classes is not None:
        kwargs["classes"] = check_int("classes", classes, 1)
    network = models.get_model(
        architecture,
        weights=os.fspath(params),
        classifier_activation=None,
        **kwargs,
    )
    classifier = classifier_from_network(network, architecture)
    difference = _max_difference(classifier, network)
    report = PresetReport(
        preset=preset_dir,
        architecture=architecture,
        classes=classifier.num_classes,
        source=os.fspath(params),
        source_sha256=sha256(params),
        max_abs_difference=difference,
    )
    _save(classifier, report, parent)
    return report


def _save(classifier, report, parent):
    """Saves into a new hidden directory beside the preset, then renames
    it: the preset appears complete or not at all, and only the directory
    made here is ever removed."""
    staging = tempfile.mkdtemp(prefix=".preset-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # as a plain os.mkdir would
    try:
        classifier.save_to_preset(staging)
        path = os.path.join(staging, METADATA_FILE)
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
        metadata["keras_aff"] = {
            "version": __version__,
            "architecture": report.architecture,
            "classes": report.classes,
            "source": os.path.basename(report.source),
            "source_sha256": report.source_sha256,
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=4)
        os.rename(staging, report.preset)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)


def run_convert(args, usage_error, echo):
    """`keras-aff convert IN.params --model NAME --preset DIR [--classes
    N]`: `preset_from_params`, with bad input as `usage_error` (exit
    status 2) and the report printed with `echo`. Returns 0.

    Example:

    >>> import argparse
    >>> args = argparse.Namespace(params="missing.params",
    ...     model="aff_resnet32", preset="p", classes=None)
    >>> keras_aff.hub.presets.run_convert(args, ValueError, print)
    Traceback (most recent call last):
    ...
    ValueError: no such file: missing.params
    """
    from keras_aff.interop import mxnet_format

    if not os.path.isfile(args.params):
        raise usage_error(f"no such file: {args.params}")
    if not mxnet_format.is_mxnet_params(args.params):
        raise usage_error(f"{args.params} is not an MXNet .params file")
    try:
        report = preset_from_params(
            args.params, args.model, args.preset, classes=args.classes
        )
    except ValueError as e:
        raise usage_error(str(e)) from None
    echo(
        f"check: {report.architecture} as a KerasHub AFFImageClassifier "
        f"({report.classes} classes): largest logit difference to the "
        f"converted network {report.max_abs_difference:.3g} on a fixed "
        f"input (seed {CHECK_SEED})"
    )
    echo(f"source: {report.source} (sha256 {report.source_sha256})")
    echo(f"wrote the preset {report.preset}")
    return 0
