"""The official input pipeline of the paper's networks: normalisation
(`preprocess_input`) and the ImageNet evaluation crop (`evaluation_crop`).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The official training scripts (`train_imagenet.py`, `train_cifar.py` of
YimianDai/open-aff) evaluate with Gluon's `transforms.ToTensor()` (RGB in
[0, 255] -> [0, 1]) then `transforms.Normalize(mean, std)`; ImageNet images
are first resized to a short side of 256 and centre-cropped to 224
(`crop_ratio=0.875`). The networks were trained on RGB images.
"""

import keras
import numpy as np

from keras_aff import _validation

__all__ = ["evaluation_crop", "preprocess_input"]

# (mean, std) per channel, on [0, 1] RGB images.
STATISTICS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
}
# The registry's name for the CIFAR-100 networks' dataset.
_ALIASES = {"cifar100": "cifar"}


def _channel_axis(ndim, data_format):
    if ndim < 3:
        raise ValueError(
            "Expected images of rank 3 (height, width, channels) or 4 "
            "(batch, height, width, channels), channels first with "
            f"data_format='channels_first'. Received: an input of rank {ndim}"
        )
    if data_format == "channels_last":
        return ndim - 1
    return ndim - 3


def preprocess_input(x, dataset="imagenet", data_format=None):
    """Normalises RGB images as the official networks expect them.

    `x / 255`, then minus the mean and divided by the standard deviation
    of each channel, as the official evaluation does (Gluon's `ToTensor`
    and `Normalize`): ImageNet mean (0.485, 0.456, 0.406), std (0.229,
    0.224, 0.225); CIFAR mean (0.4914, 0.4822, 0.4465), std (0.2023,
    0.1994, 0.2010). Follows `keras.applications`' `preprocess_input`: a
    NumPy array (or anything array-like) gives a new NumPy array (float
    inputs keep their dtype, others become `keras.config.floatx()`; the
    input is not modified), a tensor gives a tensor.

    Args:
        x: RGB images with values in [0, 255], of rank 3 (one image) or 4
            (a batch), channels last (or first, see `data_format`).
        dataset: "imagenet" (default) or "cifar" ("cifar100" is accepted
            too: the registry's name for the CIFAR-100 networks).
        data_format: "channels_last" or "channels_first"; default
            `keras.config.image_data_format()`.

    Returns:
        The normalised images, same shape.

    Example:

    >>> pixels = np.full((1, 2, 2, 3), 255.0, "float32")
    >>> x = keras_aff.models.preprocess_input(pixels)
    >>> np.round(x[0, 0, 0], 4)
    array([2.2489, 2.4286, 2.64  ], dtype=float32)
    >>> keras_aff.models.preprocess_input(pixels, dataset="cifar").shape
    (1, 2, 2, 3)
    """
    dataset = _ALIASES.get(dataset, dataset)
    dataset = _validation.check_choice("dataset", dataset, tuple(STATISTICS))
    data_format = _validation.check_data_format(data_format)
    mean, std = STATISTICS[dataset]
    if not keras.ops.is_tensor(x) and not isinstance(x, keras.KerasTensor):
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(keras.config.floatx())
        shape = _statistics_shape(x.ndim, x.shape, data_format)
        mean = np.reshape(np.asarray(mean, x.dtype), shape)
        std = np.reshape(np.asarray(std, x.dtype), shape)
        return ((x / x.dtype.type(255.0) - mean) / std).astype(x.dtype)
    if not keras.backend.is_float_dtype(x.dtype):
        x = keras.ops.cast(x, keras.config.floatx())
    shape = _statistics_shape(len(x.shape), x.shape, data_format)
    mean = keras.ops.reshape(keras.ops.convert_to_tensor(mean, x.dtype), shape)
    std = keras.ops.reshape(keras.ops.convert_to_tensor(std, x.dtype), shape)
    return (x / 255.0 - mean) / std


def _statistics_shape(ndim, shape, data_format):
    axis = _channel_axis(ndim, data_format)
    if shape[axis] is not None and shape[axis] != 3:
        raise ValueError(
            "Expected RGB images (3 channels on axis "
            f"{axis} for data_format='{data_format}'). "
            f"Received: an input of shape {tuple(shape)}"
        )
    out = [1] * ndim
    out[axis] = 3
    return out


def evaluation_crop(images, size=224, resize=256, data_format=None):
    """The official ImageNet evaluation crop: short side to `resize`, then
    the central `size` x `size` square.

    As Gluon's `transforms.Resize(256, keep_ratio=True)` and
    `transforms.CenterCrop(224)` in the official `train_imagenet.py`: the
    short side becomes `resize` and the long side `int(long * resize /
    short)`, with bilinear interpolation (OpenCV's in the official code,
    `keras.ops.image.resize` here: the same sampling, up to OpenCV's
    rounding of uint8 values), and the crop starts at `int((side - size)
    / 2)`. Apply `preprocess_input` afterwards.

    Args:
        images: one image (rank 3) or a batch of images of one size (rank
            4), values in [0, 255].
        size: int, default 224. Side of the square crop.
        resize: int, default 256. Short side after resizing; at least
            `size`.
        data_format: "channels_last" or "channels_first"; default
            `keras.config.image_data_format()`.

    Returns:
        The cropped images as a float32 NumPy array.

    Example:

    >>> image = np.zeros((300, 400, 3), "uint8")
    >>> keras_aff.models.evaluation_crop(image).shape
    (224, 224, 3)
    >>> keras_aff.models.evaluation_crop(image, size=32, resize=36).shape
    (32, 32, 3)
    """
    size = _validation.check_int("size", size, min_value=1)
    resize = _validation.check_int("resize", resize, min_value=size)
    data_format = _validation.check_data_format(data_format)
    images = keras.ops.convert_to_tensor(images)
    axis = _channel_axis(len(images.shape), data_format)
    spatial = [a for a in range(len(images.shape) - 3, len(images.shape))]
    spatial.remove(axis)
    height, width = (int(images.shape[a]) for a in spatial)
    if height > width:
        new = (int(height * resize / width), resize)
    else:
        new = (resize, int(width * resize / height))
    images = keras.ops.image.resize(
        keras.ops.cast(images, "float32"),
        new,
        interpolation="bilinear",
        antialias=False,
        data_format=data_format,
    )
    top, left = (int((n - size) / 2) for n in new)
    index = [slice(None)] * len(images.shape)
    index[spatial[0]] = slice(top, top + size)
    index[spatial[1]] = slice(left, left + size)
    return keras.ops.convert_to_numpy(images)[tuple(index)]
