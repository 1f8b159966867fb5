"""Training the demo network: Adam with cosine decay, then an uncompiled
copy for export.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import sys

import numpy as np

from keras_aff import _validation

EPOCHS = 8
BATCH_SIZE = 32
LEARNING_RATE = 3e-3


def train_demo_model(model, x, y, epochs=EPOCHS, verbose="auto"):
    """Trains the demo model on digits (sparse cross-entropy, Adam, batch
    32, learning rate 3e-3 decaying to 0 over the run on a cosine) and
    returns a fresh copy with the trained weights, ready to save and export
    (`keras.models.clone_model`: the copy keeps the compile settings but
    its optimizer holds no state, so none is saved in the `.keras` file).

    Args:
        model: a `keras.Model` with a softmax output (`build_demo_model`).
        x: float32 images, (N, 16, 16, 1).
        y: int labels, (N,).
        epochs: int >= 1, default 8.
        verbose: "auto" (default: a progress bar on a terminal, one line
            per epoch in logs and pipes), 0, 1 or 2 as in `Model.fit`.

    Returns:
        The trained copy, a `keras.Model`.

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((16, 16, 1)),
    ...     keras.layers.Flatten(),
    ...     keras.layers.Dense(10, activation="softmax"),
    ... ])  # or keras_aff.demo.build_demo_model()
    >>> x = np.random.default_rng(0).random((32, 16, 16, 1), "float32")
    >>> y = np.arange(32) % 10
    >>> trained = keras_aff.demo.train_demo_model(
    ...     model, x, y, epochs=1, verbose=0
    ... )
    >>> trained is model
    False
    >>> [np.array_equal(a, b) for a, b in zip(
    ...     trained.get_weights(), model.get_weights())][:2]
    [True, True]
    """
    import keras

    _validation.check_one_of_types("model", model, keras.Model, "a keras.Model")
    epochs = _validation.check_int("epochs", epochs, min_value=1)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    verbose = _validation.check_choice("verbose", verbose, (0, 1, 2))
    steps = int(np.ceil(len(x) / BATCH_SIZE)) * epochs
    # Cosine decay to 0: with a constant rate the global branches'
    # BatchNorm statistics lag the moving weights and held-out accuracy
    # swings between 0.4 and 0.9 from epoch to epoch.
    schedule = keras.optimizers.schedules.CosineDecay(
        LEARNING_RATE, max(steps, 1)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, verbose=verbose)
    # Deploy a copy: no optimizer state in the .keras file.
    trained = keras.models.clone_model(model)
    trained.set_weights(model.get_weights())
    return trained
