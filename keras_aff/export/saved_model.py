"""SavedModel export for TensorFlow Serving, verified before it returns.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

from keras_aff.export import _verify
from keras_aff.export import folding

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


def _describe(specs):
    return {
        name: {"shape": list(spec.shape), "dtype": spec.dtype.name}
        for name, spec in specs.items()
    }


class SavedModelRunner(_verify.Runner):
    """Runs a SavedModel's `serving_default` signature (private; see
    `keras_aff.export.load_artifact`).

    Example:

    >>> predict = keras_aff.export.load_artifact("serving/aff/1")
    >>> outputs = predict(x)  # a list of float32 arrays
    """

    format = "saved_model"

    def __init__(self, path, input_names=None):
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(os.fspath(path))
        if "serving_default" not in self._loaded.signatures:
            raise ValueError(
                "The SavedModel has no `serving_default` signature. "
                f"Received: signatures {list(self._loaded.signatures)}"
            )
        self.signature = self._loaded.signatures["serving_default"]
        specs = self.signature.structured_input_signature[1]
        self._bind_names(specs, input_names)
        self.inputs = _describe(specs)
        self.outputs = _describe(self.signature.structured_outputs)
        self.output_names = _verify.output_order(self.outputs)

    def _run(self, feed):
        tf = self._tf
        out = self.signature(**{k: tf.constant(v) for k, v in feed.items()})
        return [out[k].numpy() for k in self.output_names]


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

    >>> out = keras_aff.export.run_saved_model_standalone(
    ...     "savedmodels/demo/aff_digits/1", {"image": x})
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
        path: str or path-like, the SavedModel directory (replaced if it
            exists).
        sample_inputs: optional array, list of arrays (one per input) or
            dict name -> array to check with; default 4 reproducible
            standard-normal samples.
        dynamic_spatial: bool, default True. Export with `None` spatial
            dimensions when the model allows it.
        atol: optional float, absolute tolerance replacing the default.
        standalone_check: bool, default True. Also serve the artifact from
            a fresh process without keras / keras_aff (a few seconds).
        fold_batchnorm: bool, default True. Convert
            `keras_aff.optimize.fold_batchnorm(model)` (checked against
            `model` first); the report's `batch_norm_folding` gives the op
            counts before and after. False converts `model` as it is.

    Returns:
        An `ExportReport` (`ops` is None for SavedModel).

    Raises:
        ExportVerificationError: the artifact does not reproduce the model
            (nothing is left at `path`).
        RuntimeError: the backend is not TensorFlow.

    Example:

    >>> report = keras_aff.export.export_saved_model(model, "serving/aff/1")
    >>> loaded = tf.saved_model.load("serving/aff/1")
    >>> probs = loaded.signatures["serving_default"](image=x)["output_0"]
    """
    _verify.require_tensorflow_backend("export_saved_model")
    _verify.check_model(model)
    _verify.validate_flag("dynamic_spatial", dynamic_spatial)
    _verify.validate_flag("standalone_check", standalone_check)
    if sample_inputs is None:
        samples = _verify.random_inputs(model)
    else:
        samples = _verify.normalize_inputs(model, sample_inputs)
    reference = _verify.keras_outputs(model, samples)
    model, folded = folding.fold_for_export(model, samples, fold_batchnorm)
    notes = []
    export_model = model
    relaxed = None
    if dynamic_spatial:
        relaxed = _verify.relax_spatial_dims(model, samples)
        if relaxed is not None:
            export_model = relaxed[0]
            notes.append("dynamic spatial size (inputs rebuilt with None)")
        elif any(len(t.shape) >= 3 for t in model.inputs):
            notes.append(
                "fixed spatial size: the model does not run with other "
                "spatial sizes"
            )
    label = "The SavedModel"
    names = _verify.input_names(model)
    with _verify.StagedPath(path) as stage:
        export_model.export(stage.tmp, format="tf_saved_model", verbose=False)
        runner = SavedModelRunner(stage.tmp, names)
        n = len(samples[0])
        one = _verify.take(samples, slice(0, 1))
        checks = [
            (f"batch {n}", samples, reference),
            ("batch 1", one, _verify.take(reference, slice(0, 1))),
        ]
        if relaxed is not None:
            _, other, other_reference = relaxed
            shape = tuple(other[0].shape)
            checks.append((f"inputs of shape {shape}", other, other_reference))
        parts, tols = [], []
        for where, inputs, expected in checks:
            stats, tol = _verify.check(
                label, expected, runner(inputs), atol=atol, where=where
            )
            parts.append(stats)
            tols.append(tol)
        checked = [where for where, _, _ in checks]
        if standalone_check:
            out = run_saved_model_standalone(stage.tmp, runner.arrange(samples))
            where = "a fresh process without keras / keras_aff"
            stats, _ = _verify.check(
                label,
                reference,
                [out[k] for k in runner.output_names],
                atol=atol,
                where=where,
            )
            parts.append(stats)
            checked.append(where)
        latency = runner.latency_ms(one)
        inputs, outputs = runner.inputs, runner.outputs
        stage.commit()
    total = _verify.merge_stats(parts)
    return _verify.ExportReport(
        format="saved_model",
        path=os.fspath(path),
        size_bytes=_verify.path_size(path),
        quantization=None,
        ops=None,
        inputs=inputs,
        outputs=outputs,
        max_abs_error=total.max_abs_error,
        mean_abs_error=total.mean_abs_error,
        tolerance=tols[0],
        output_scale=total.output_scale,
        top1_agreement=total.top1_agreement,
        num_samples=total.num_samples,
        checked=checked,
        latency_ms=latency,
        notes=notes,
        batch_norm_folding=folded,
    )
