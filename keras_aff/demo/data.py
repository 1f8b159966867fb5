"""The demo's data: scikit-learn's bundled handwritten digits at 16x16.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import numpy as np

from keras_aff import _validation
from keras_aff._optional import require

IMAGE_SIZE = 16
NUM_CLASSES = 10
TEST_SIZE = 0.2


def load_demo_data(seed=0):
    """scikit-learn's handwritten digits (1,797 8x8 grey images, shipped
    with scikit-learn; no download), upsampled to 16x16 in [0, 1] and split
    80/20 (stratified).

    Args:
        seed: int >= 0 or None, default 0. The split's random state.

    Returns:
        (x_train, x_test, y_train, y_test); x: float32 (N, 16, 16, 1),
        y: int32 digit labels.

    Example:

    >>> x_train, x_test, y_train, y_test = keras_aff.demo.load_demo_data()
    >>> x_train.shape, x_test.shape
    ((1437, 16, 16, 1), (360, 16, 16, 1))
    """
    if seed is not None:
        seed = _validation.check_int("seed", seed, min_value=0)
    needed_by = "The demo (scikit-learn's bundled digits)"
    datasets = require("sklearn.datasets", "demo", needed_by)
    selection = require("sklearn.model_selection", "demo", needed_by)
    data = datasets.load_digits()
    x = data.images.astype("float32") / 16.0
    x = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)[..., None]
    y = data.target.astype("int32")
    return selection.train_test_split(
        x, y, test_size=TEST_SIZE, random_state=seed, stratify=y
    )
