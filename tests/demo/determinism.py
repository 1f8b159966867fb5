"""Two training runs of the demo model in one process, for
test_determinism.py (run in a process of its own: op determinism cannot be
switched off again):

    python tests/demo/determinism.py BACKEND EPOCHS OUT.npz

Each run: `keras.utils.set_random_seed(0)`, then builds, trains
(`keras_aff.demo.train_demo_model`) and saves every variable of the
trained model. TensorFlow also gets
`tf.config.experimental.enable_op_determinism()`; torch
`torch.use_deterministic_algorithms(True)`. A third run with seed 1 shows
that the seed matters.
"""

import os
import sys

BACKEND, EPOCHS, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.environ["KERAS_BACKEND"] = BACKEND
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if BACKEND == "torch":  # see tests/conftest.py: 10x faster on 2 busy cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_aff import demo  # noqa: E402

if BACKEND == "tensorflow":
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
elif BACKEND == "torch":
    import torch

    torch.use_deterministic_algorithms(True)


def run(seed):
    keras.utils.set_random_seed(seed)
    x_train, _, y_train, _ = demo.load_demo_data()
    model = demo.build_demo_model()
    trained = demo.train_demo_model(
        model, x_train, y_train, epochs=EPOCHS, verbose=0
    )
    return [keras.ops.convert_to_numpy(v) for v in trained.variables]


first, second, other = run(0), run(0), run(1)
np.savez(
    OUT,
    **{f"first_{i}": v for i, v in enumerate(first)},
    **{f"second_{i}": v for i, v in enumerate(second)},
    **{f"other_{i}": v for i, v in enumerate(other)},
)
