"""keras_aff.models.preprocess_input and evaluation_crop: the official
evaluation pipeline (ToTensor + Normalize; resize 256, centre crop 224)."""

import keras
import numpy as np
import pytest

from keras_aff import models

MEANS = {
    "imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    "cifar": ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]),
}


def _reference(x, dataset):
    # Channel by channel, channels last, in float64.
    mean, std = MEANS[dataset]
    out = np.empty(x.shape, "float64")
    for c in range(3):
        out[..., c] = (x[..., c] / 255.0 - mean[c]) / std[c]
    return out


def _pixels(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype("uint8")


@pytest.mark.parametrize("dataset", ["imagenet", "cifar", "cifar100"])
def test_normalisation_matches_the_official_statistics(dataset):
    x = _pixels((2, 5, 4, 3))
    got = models.preprocess_input(x, dataset=dataset)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    want = _reference(x.astype("float64"), dataset.replace("100", ""))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_dtypes_and_the_input_is_left_alone():
    x = _pixels((5, 4, 3)).astype("float64")
    copy = x.copy()
    got = models.preprocess_input(x)
    np.testing.assert_array_equal(x, copy)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _reference(x, "imagenet"), rtol=1e-12)
    listed = models.preprocess_input(x.tolist())
    np.testing.assert_allclose(listed, got, rtol=1e-12)


def test_channels_first_equals_transposed_channels_last():
    x = _pixels((2, 6, 5, 3)).astype("float32")
    last = models.preprocess_input(x, dataset="cifar")
    first = models.preprocess_input(
        np.transpose(x, (0, 3, 1, 2)),
        dataset="cifar",
        data_format="channels_first",
    )
    np.testing.assert_allclose(np.transpose(first, (0, 2, 3, 1)), last)
    one = models.preprocess_input(
        np.transpose(x[0], (2, 0, 1)), data_format="channels_first"
    )
    np.testing.assert_allclose(
        np.transpose(one, (1, 2, 0)), models.preprocess_input(x[0])
    )


def test_tensors_give_tensors_and_a_model_can_start_with_it():
    x = _pixels((2, 4, 4, 3))
    tensor = models.preprocess_input(keras.ops.convert_to_tensor(x))
    assert keras.ops.is_tensor(tensor)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(tensor),
        models.preprocess_input(x),
        rtol=1e-6,
        atol=1e-6,
    )
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, models.preprocess_input(inputs))
    np.testing.assert_allclose(
        model.predict(x.astype("float32"), verbose=0),
        models.preprocess_input(x),
        rtol=1e-6,
        atol=1e-6,
    )


def test_preprocess_input_errors():
    x = np.zeros((2, 4, 4, 3))
    with pytest.raises(ValueError, match="Received: dataset='coco'"):
        models.preprocess_input(x, dataset="coco")
    with pytest.raises(TypeError, match="Received: dataset=1"):
        models.preprocess_input(x, dataset=1)
    with pytest.raises(ValueError, match=r"shape \(2, 4, 4, 4\)"):
        models.preprocess_input(np.zeros((2, 4, 4, 4)))
    with pytest.raises(ValueError, match="rank 2"):
        models.preprocess_input(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="Received: data_format='nhwc'"):
        models.preprocess_input(x, data_format="nhwc")


@pytest.mark.parametrize(
    "shape, top, left", [((256, 320, 3), 16, 48), ((400, 256, 3), 88, 16)]
)
def test_a_short_side_of_256_is_only_cropped(shape, top, left):
    image = _pixels(shape, seed=1)
    crop = models.evaluation_crop(image)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.float32
    np.testing.assert_array_equal(
        crop, image[top : top + 224, left : left + 224].astype("float32")
    )


def test_the_short_side_is_resized_to_256_keeping_the_ratio():
    # 300 x 500 -> 256 x int(500 * 256 / 300) = 256 x 426; a horizontal
    # ramp stays a ramp, so the crop's columns tell where it started.
    ramp = np.tile(np.arange(500, dtype="float32"), (300, 1))
    image = np.repeat(ramp[..., None], 3, axis=-1)
    crop = models.evaluation_crop(image)
    assert crop.shape == (224, 224, 3)
    scale = 500 / 426
    left = int((426 - 224) / 2)
    centres = (np.arange(left, left + 224) + 0.5) * scale - 0.5
    np.testing.assert_allclose(crop[100, :, 0], centres, atol=1e-3)
    np.testing.assert_allclose(crop[:, 7, 1], crop[0, 7, 1])


def test_batches_and_channels_first():
    batch = _pixels((2, 260, 300, 3), seed=2)
    last = models.evaluation_crop(batch, size=200, resize=240)
    assert last.shape == (2, 200, 200, 3)
    first = models.evaluation_crop(
        np.transpose(batch, (0, 3, 1, 2)),
        size=200,
        resize=240,
        data_format="channels_first",
    )
    np.testing.assert_allclose(np.transpose(first, (0, 2, 3, 1)), last)
    with pytest.raises(ValueError, match="Received: resize=100"):
        models.evaluation_crop(batch, size=200, resize=100)
