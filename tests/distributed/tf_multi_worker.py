"""One worker of a two-worker `tf.distribute.MultiWorkerMirroredStrategy`
job on 127.0.0.1, fitting a one-Dense Keras 3 model, for
test_tf_multi_worker.py:

    python tests/distributed/tf_multi_worker.py INDEX PORT0,PORT1

Prints `FIT OK` or `FIT ERROR <type>: <message>`.
"""

import json
import os
import sys

index, ports = int(sys.argv[1]), sys.argv[2].split(",")
os.environ["TF_CONFIG"] = json.dumps(
    {
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": index},
    }
)
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
x = np.ones((32, 4), "float32")
data = tf.data.Dataset.from_tensor_slices((x, x[:, :2])).batch(8)
try:
    model.fit(data, epochs=1, verbose=0)
    print("FIT OK", flush=True)
except Exception as e:
    print(f"FIT ERROR {type(e).__name__}: {e}", flush=True)
