"""SavedModel export for TensorFlow Serving, verified before it returns.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

from keras_aff import _quiet
from keras_aff._validation import check_bool
from keras_aff._validation import check_tolerance
from keras_aff.export import checks
from keras_aff.export import environment
from keras_aff.export import folding
from keras_aff.export import model_io
from keras_aff.export import pipeline
from keras_aff.export import rebuild
from keras_aff.export import staging
from keras_aff.export.runners import SavedModelRunner

# Run by `run_saved_model_standalone` in a fresh interpreter. Importing
# keras, tf_keras or keras_aff fails there, as in a serving process that
# has only TensorFlow installed.
_STANDALONE_SCRIPT = r"""
import importlib.abc
import importlib.machinery
import sys

BLOCKED = ("keras", "tf_keras", "keras_aff")


class _Absent(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(
            f"No module named {spec.name!r} (blocked: a serving process "
            "has only TensorFlow)",
            name=spec.name,
        )

    def exec_module(self, module):
        pass


class _Blocker(importlib.abc.MetaPathFinder):
    # A spec without an origin: `importlib.util.find_spec` callers (TF's
    # lazy keras lookup) see no location, and importing fails.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, _Absent())
        return None


sys.meta_path.insert(0, _Blocker())

import numpy as np
import tensorflow as tf

path, inputs_file, outputs_file = sys.argv[1:4]
inputs = dict(np.load(inputs_file))
fn = tf.saved_model.load(path).signatures["serving_default"]
out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
if loaded:
    raise SystemExit(f"blocked modules were imported: {loaded}")
np.savez(outputs_file, **{k: v.numpy() for k, v in out.items()})
"""


def run_saved_model_standalone(path, inputs, timeout=300):
    """Runs a SavedModel's serving signature in a fresh Python process in
    which `keras`, `tf_keras` and `keras_aff` cannot be imported.

    This is what a TensorFlow Serving host or a plain-TensorFlow service
    sees: if the artifact needed the package's Python code, loading or
    calling it fails here.

    Args:
        path: str, the SavedModel directory.
        inputs: dict, signature input name -> numpy array.
        timeout: float, seconds, default 300.

    Returns:
        A dict: signature output name -> numpy array.

    Raises:
        RuntimeError: when the process fails; the message holds its stderr.

    Example:

    >>> from keras_aff.demo import build_demo_model
    >>> model = build_demo_model()  # AFF + iAFF on 16x16x1 images
    >>> model.export("serving", format="tf_saved_model", verbose=False)
    >>> x = np.zeros((4, 16, 16, 1), "float32")
    >>> out = keras_aff.export.run_saved_model_standalone(
    ...     "serving", {"image": x})
    >>> out["output_0"].shape
    (4, 10)
    """
    with tempfile.TemporaryDirectory() as tmp:
        inputs_file = os.path.join(tmp, "inputs.npz")
        outputs_file = os.path.join(tmp, "outputs.npz")
        np.savez(inputs_file, **inputs)
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _STANDALONE_SCRIPT,
                os.fspath(path),
                inputs_file,
                outputs_file,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                "The SavedModel could not be served by a process without "
                f"keras / keras_aff (exit {proc.returncode}): "
                f"{proc.stderr.strip()[-3000:]}"
            )
        with np.load(outputs_file) as data:
            return {k: data[k] for k in data.files}


def _relax(model, samples, found, notes):
    """The model to export: with None spatial dimensions when it runs so
    (adds a check at another spatial size), else `model`."""
    relaxed = rebuild.relax_spatial_dims(model, samples)
    if relaxed is not None:
        new, other, other_reference = relaxed
        shape = tuple(other[0].shape)
        found.append(
            pipeline.Check(f"inputs of shape {shape}", other, other_reference)
        )
        notes.append("dynamic spatial size (inputs rebuilt with None)")
        return new
    if any(len(t.shape) >= 3 for t in model.inputs):
        notes.append(
            "fixed spatial size: the model does not run with other spatial "
            "sizes"
        )
    return model


def _write(model, path):
    with _quiet.capture_native_stderr():
        model.export(path, format="tf_saved_model", verbose=False)


def _run_standalone(runner, samples):
    out = run_saved_model_standalone(runner.path, runner.arrange(samples))
    return [out[k] for k in runner.output_names]


def export_saved_model(
    model,
    path,
    sample_inputs=None,
    dynamic_spatial=True,
    atol=None,
    standalone_check=True,
    fold_batchnorm=True,
):
    """Exports `model` as a verified SavedModel for TensorFlow Serving.

    The artifact has the `serving_default` signature (and Keras' `serve`
    endpoint), inputs named after the model's `Input` layers, outputs
    `output_0`, `output_1`, ..., a dynamic batch dimension and, when the
    model builds with `None` spatial dimensions (fully convolutional
    models), a dynamic spatial size. It needs only TensorFlow to load
    (`tf.saved_model.load`), not keras or keras_aff. For TF Serving, point
    `path` at a version directory, e.g. `models/aff/1`.

    Before returning, the artifact is loaded and its `serving_default`
    signature is compared with the Keras model at the sample batch size,
    at batch 1 and (for dynamic spatial sizes) at another spatial size; with
    `standalone_check=True` it is also run in a fresh process where keras
    and keras_aff cannot be imported. Max abs error must stay within
    `1e-4 * max(1, max |output|)` (or `atol`).

    Args:
        model: a built `keras.Model` (TensorFlow backend).
        path: str or path-like, the SavedModel directory: absent, empty,
            or a SavedModel (then replaced, once the new one is verified).
            Anything else (a directory with other files, the working
            directory, `/`, a file) is a `ValueError` before any work.
        sample_inputs: optional array, list of arrays (one per input),
            dict name -> array, or an iterable of samples (read lazily, at
            most 500) to check with; default 4 reproducible
            standard-normal samples. Float or integer data, cast to the
            input dtype; complex, bool, string or object data is a
            `TypeError`, NaN / Inf a `ValueError` naming the sample.
        dynamic_spatial: bool, default True. Export with `None` spatial
            dimensions when the model allows it.
        atol: optional finite float >= 0, absolute tolerance replacing
            the default (`inf`, NaN or a negative value: `ValueError`).
        standalone_check: bool, default True. Also serve the artifact from
            a fresh process without keras / keras_aff (a few seconds).
        fold_batchnorm: bool, default True. Convert
            `keras_aff.optimize.fold_batchnorm(model)` (checked against
            `model` first); the report's `batch_norm_folding` gives the op
            counts before and after. False converts `model` as it is.

    Returns:
        An `ExportReport` (`ops` is None for SavedModel).

    Raises:
        ValueError: `path` may not be written (`docs/robustness.md`);
            checked first, nothing is written or removed.
        ExportVerificationError: the artifact does not reproduce the model
            (nothing is left at `path`).
        RuntimeError: the backend is not TensorFlow.

    Example:

    >>> from keras_aff.demo import build_demo_model
    >>> model = build_demo_model()  # AFF + iAFF on 16x16x1 images
    >>> report = keras_aff.export.export_saved_model(
    ...     model, "serving/aff/1", standalone_check=False)  # True: +seconds
    >>> report.inputs["image"]["shape"], report.checked[-1]
    ([None, None, None, 1], 'inputs of shape (2, 24, 24, 1)')
    >>> import tensorflow as tf
    >>> loaded = tf.saved_model.load("serving/aff/1")
    >>> serve = loaded.signatures["serving_default"]
    >>> serve(image=tf.zeros((2, 12, 12, 1)))["output_0"].shape
    TensorShape([2, 10])
    """
    environment.require_tensorflow_backend("export_saved_model")
    model_io.check_model(model)
    check_bool("dynamic_spatial", dynamic_spatial)
    check_bool("standalone_check", standalone_check)
    atol = check_tolerance("atol", atol)
    if path is not None:
        staging.check_destination(path, "saved_model")
    if sample_inputs is None:
        samples = model_io.random_inputs(model)
    else:
        samples = model_io.normalize_inputs(model, sample_inputs)
    reference = model_io.keras_outputs(model, samples)
    model, folded = folding.fold_for_export(model, samples, fold_batchnorm)
    found = pipeline.batch_checks(samples, reference)
    export_model, notes = model, []
    if dynamic_spatial:
        export_model = _relax(model, samples, found, notes)
    if standalone_check:
        found.append(
            pipeline.Check(
                "a fresh process without keras / keras_aff",
                samples,
                reference,
                run=_run_standalone,
            )
        )
    artifact = pipeline.Artifact(
        format="saved_model",
        label="The SavedModel",
        write=lambda tmp: _write(export_model, tmp),
        open_runner=lambda tmp: SavedModelRunner(
            tmp, model_io.input_names(model)
        ),
        policy=checks.Policy(atol=atol),
        notes=notes,
        report_fields={"batch_norm_folding": folded},
    )
    return pipeline.verify_and_commit(path, artifact, found)
