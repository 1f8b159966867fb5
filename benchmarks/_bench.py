"""Shared pieces of the benchmark scripts (private): backend selection,
version and machine facts, and the JSON output."""

import json
import os
import platform

BACKENDS = ("jax", "tensorflow")
DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def add_backend_arguments(parser):
    parser.add_argument("--backend", choices=BACKENDS, default="tensorflow")
    parser.add_argument(
        "--dtype-policy", choices=DTYPE_POLICIES, default="float32"
    )


def select_backend(parser, backend, dtype_policy):
    """Sets `KERAS_BACKEND` before Keras is imported, then the global dtype
    policy; a usage error if Keras was already imported with another
    backend."""
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if keras.backend.backend() != backend:
        parser.error(
            f"Keras was imported with the {keras.backend.backend()} backend "
            f"before the benchmark could select it. Received: "
            f"backend={backend!r}"
        )
    keras.config.set_dtype_policy(dtype_policy)


def versions_and_machine():
    """`(versions, machine)` dicts for the report, for the current backend."""
    import keras

    import keras_aff

    backend = keras.backend.backend()
    versions = {
        "keras_aff": keras_aff.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }
    machine = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    if backend == "jax":
        import jax

        versions["jax"] = jax.__version__
        devices = jax.devices()
        machine["device"] = f"{devices[0].platform}: {devices[0].device_kind}"
        machine["gpus"] = sum(d.platform == "gpu" for d in devices)
    else:
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
        gpus = tf.config.list_physical_devices("GPU")
        machine["device"] = "gpu" if gpus else "cpu"
        machine["gpus"] = len(gpus)
    return versions, machine


def write_report(report, out):
    """Prints the report as JSON and, with `out`, writes it there too."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            f.write(text + "\n")
