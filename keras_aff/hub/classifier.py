"""The ImageClassifier of the `AFFBackbone`, its preprocessor and its image
converter with the official input pipeline.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import keras
from keras_hub.layers import ImageConverter
from keras_hub.models import ImageClassifier
from keras_hub.models import ImageClassifierPreprocessor

from keras_aff._validation import check_choice
from keras_aff.hub.backbone import AFFBackbone
from keras_aff.models.preprocessing import STATISTICS

# The registry's dataset names, and the input size of the official
# evaluation (None: the CIFAR networks take 32x32 images as they are).
_DATASETS = {"imagenet": "imagenet", "cifar": "cifar", "cifar100": "cifar"}
EVALUATION_SIZE = {"imagenet": (224, 224), "cifar": None}


@keras.saving.register_keras_serializable(package="keras_aff")
class AFFImageConverter(ImageConverter):
    """The image converter of `AFFBackbone` presets (KerasHub's
    `ImageConverter`: resize, then `x * scale + offset`).

    `AFFImageConverter.official(dataset)` gives the official evaluation
    normalisation of `keras_aff.models.preprocess_input` (`scale = 1 /
    (255 std)`, `offset = -mean / std`, equal to 1e-6). Resizing differs
    from `keras_aff.models.evaluation_crop`: KerasHub resizes the central
    square of an image to `image_size` (224x224 for ImageNet), where the
    official evaluation resizes the short side to 256 and keeps the
    central 224x224 (87.5%). Give it images cropped with `evaluation_crop`
    for the official pipeline: a 224x224 image passes unchanged.

    It takes the arguments of `keras_hub.layers.ImageConverter`.

    Example:

    >>> converter = keras_aff.hub.AFFImageConverter.official("cifar")
    >>> pixels = np.full((1, 32, 32, 3), 255.0, "float32")
    >>> np.round(np.asarray(converter(pixels))[0, 0, 0], 4)
    array([2.5141, 2.5968, 2.7537], dtype=float32)
    """

    backbone_cls = AFFBackbone

    @classmethod
    def official(cls, dataset, image_size="default", **kwargs):
        """The converter of the official evaluation of `dataset`.

        Args:
            dataset: "imagenet", "cifar" or "cifar100".
            image_size: (height, width) to resize to, or None (no
                resizing); default (224, 224) for ImageNet, None for
                CIFAR.
            **kwargs: other `ImageConverter` arguments.

        Returns:
            An `AFFImageConverter`.

        Example:

        >>> c = keras_aff.hub.AFFImageConverter.official("imagenet")
        >>> c.image_size, np.round(c.offset, 4).tolist()
        ((224, 224), [-2.1179, -2.0357, -1.8044])
        """
        dataset = _DATASETS[check_choice("dataset", dataset, list(_DATASETS))]
        mean, std = STATISTICS[dataset]
        if image_size == "default":
            image_size = EVALUATION_SIZE[dataset]
        return cls(
            image_size=image_size,
            scale=[1.0 / (255.0 * s) for s in std],
            offset=[-m / s for m, s in zip(mean, std)],
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="keras_aff")
class AFFImageClassifierPreprocessor(ImageClassifierPreprocessor):
    """The preprocessor of `AFFImageClassifier`: its `image_converter`
    (an `AFFImageConverter`) on the images, labels passed through.

    It takes the arguments of
    `keras_hub.models.ImageClassifierPreprocessor`.

    Example:

    >>> preprocessor = keras_aff.hub.AFFImageClassifierPreprocessor(
    ...     keras_aff.hub.AFFImageConverter.official("cifar"))
    >>> x = preprocessor(np.zeros((2, 32, 32, 3), "float32"))
    >>> np.round(np.asarray(x)[0, 0, 0], 4)
    array([-2.4291, -2.4183, -2.2214], dtype=float32)
    """

    backbone_cls = AFFBackbone
    image_converter_cls = AFFImageConverter


@keras.saving.register_keras_serializable(package="keras_aff")
class AFFImageClassifier(ImageClassifier):
    """KerasHub's `ImageClassifier` on an `AFFBackbone`: global pooling,
    dropout and a Dense head named "predictions" (the official head is the
    global average pool and the Dense layer).

    It takes the arguments of `keras_hub.models.ImageClassifier`
    (`backbone`, `num_classes`, `preprocessor`, `pooling`, `activation`,
    `dropout`, `head_dtype`).

    Example:

    >>> backbone = keras_aff.hub.backbone("aff_resnet32",
    ...                                   image_shape=(32, 32, 3))
    >>> classifier = keras_aff.hub.AFFImageClassifier(backbone, 10)
    >>> tuple(classifier(np.zeros((2, 32, 32, 3), "float32")).shape)
    (2, 10)
    """

    backbone_cls = AFFBackbone
    preprocessor_cls = AFFImageClassifierPreprocessor
