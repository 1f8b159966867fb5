"""What an export returns (`ExportReport`) and raises
(`ExportVerificationError`).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import dataclasses
import json
import warnings


class ExportVerificationError(RuntimeError, ValueError):
    """An exported artifact does not reproduce its Keras model.

    Raised by `export_saved_model`, `export_litert`, `export_onnx` and
    `keras_aff.qat.convert_to_int8_litert` when the artifact's outputs
    differ from the Keras model's by more than the tolerance, or when an
    int8 LiteRT model is not fully int8; the message gives the error, the
    tolerance and the inputs that failed. Nothing is left at the requested
    path. It is a `RuntimeError` (as the exporters have always raised) and
    a `ValueError` (as `convert_to_int8_litert` raised in 0.1.0), so
    either `except` clause catches it.

    Example:

    >>> from keras_aff.demo import build_demo_model
    >>> model = build_demo_model()  # AFF + iAFF on 16x16x1 images
    >>> x = np.random.default_rng(0).normal(size=(16, 16, 16, 1))
    >>> try:  # no int8 model has a mean error of 1e-9
    ...     keras_aff.export.export_litert(
    ...         model, "m.tflite", quantization="int8",
    ...         representative_data=x.astype("float32"), atol=1e-9)
    ... except keras_aff.export.ExportVerificationError as e:
    ...     print(str(e)[:62])
    The LiteRT model (int8) does not reproduce the Keras model on
    >>> import os
    >>> os.path.exists("m.tflite")
    False
    """


# The keys of the dict that `keras_aff.qat.convert_to_int8_litert` returned
# in 0.1.0 that are not field names, for code that still indexes the report.
_LEGACY_KEYS = {
    "tolerance_abs": lambda r: r.tolerance,
    "input_dtypes": lambda r: [v["dtype"] for v in r.inputs.values()],
    "output_dtypes": lambda r: [v["dtype"] for v in r.outputs.values()],
}


_LEGACY_REPLACEMENTS = {
    "tolerance_abs": "report.tolerance",
    "input_dtypes": "[v['dtype'] for v in report.inputs.values()]",
    "output_dtypes": "[v['dtype'] for v in report.outputs.values()]",
}


@dataclasses.dataclass
class ExportReport:
    """What an export wrote and how well it matches the Keras model.

    Attributes:
        format: "saved_model", "litert" or "onnx".
        path: where the artifact is (None: checked, not written).
        size_bytes: its size (a SavedModel: the whole directory).
        quantization: None (float32), "float16", "dynamic" or "int8".
        ops: op name -> count (LiteRT builtin ops, ONNX node types), or None
            (SavedModel).
        inputs: input name -> {"shape", "dtype"} as the artifact declares
            them (None for a dynamic dimension; quantization scale and zero
            point for int8 inputs).
        outputs: output name -> {"shape", "dtype"}.
        max_abs_error: largest |artifact - Keras| over the checked inputs.
        mean_abs_error: mean |artifact - Keras|.
        tolerance: the bound the check applied (on the max error; on the
            mean error for int8).
        output_scale: max |Keras output| over the checked inputs.
        top1_agreement: share of samples whose argmax agrees (classifier
            outputs), else None.
        num_samples: how many samples the main check (the first of
            `checked`) compared.
        checked: what was checked, e.g. ["batch 4", "batch 1",
            "standalone process"].
        latency_ms: median wall time of one batch-1 call, in ms.
        notes: decisions taken on the way (float32 rebuild, dynamic spatial
            size, ...).
        output_range: max - min of the Keras output (the largest over the
            checks).
        xnnpack: LiteRT only: False when the XNNPACK delegate refused the
            model and the builtin kernels ran the checks.
        fully_int8: int8 LiteRT only: no float tensor between ops and no
            QUANTIZE / DEQUANTIZE inside the graph.
        float_islands: int8 LiteRT only: one line per float tensor or
            inner QUANTIZE / DEQUANTIZE op (`inspect_litert`); empty when
            fully int8.
        inner_quantize_ops: int8 LiteRT only: how many QUANTIZE and
            DEQUANTIZE ops sit inside the graph (the pairs around float
            islands; float I/O's own pair is not counted).
        tensor_dtypes: int8 LiteRT only: dtype -> number of tensors.
        output_step: int8 LiteRT only: the output's quantization step.

    The report also answers the keys of the dict that
    `keras_aff.qat.convert_to_int8_litert` returned in 0.1.0:
    `report["fully_int8"]` is `report.fully_int8`, and so on for every
    field; `report["tolerance_abs"]` is `report.tolerance`, and
    `report["input_dtypes"]` / `report["output_dtypes"]` list the I/O
    dtypes. `report["tolerance"]` is the absolute bound now, no longer the
    relative `tolerance` argument. Indexing is deprecated (a
    `DeprecationWarning` names the attribute to use; removed in 0.4.0).

    Example:

    >>> from keras_aff.demo import build_demo_model
    >>> model = build_demo_model()  # AFF + iAFF on 16x16x1 images
    >>> report = keras_aff.export.export_litert(model, "model.tflite")
    >>> report.max_abs_error <= report.tolerance
    True
    >>> report.checked
    ['batch 4', 'batch 1']
    >>> report.to_dict()["ops"]["CONV_2D"]  # 5 model convs + 4 per gate
    17
    >>> report.to_dict()["max_abs_error"] == report.max_abs_error
    True
    >>> print(report.summary())
    litert: ... B, max |err| ... (tol 1.0e-04), ..., batch-1 latency ... ms
    """

    format: str
    path: str | None
    size_bytes: int
    quantization: str | None
    ops: dict | None
    inputs: dict
    outputs: dict
    max_abs_error: float
    mean_abs_error: float
    tolerance: float
    output_scale: float
    top1_agreement: float | None
    num_samples: int
    checked: list
    latency_ms: float
    notes: list = dataclasses.field(default_factory=list)
    output_range: float | None = None
    xnnpack: bool | None = None
    fully_int8: bool | None = None
    float_islands: list | None = None
    inner_quantize_ops: int | None = None
    tensor_dtypes: dict | None = None
    output_step: float | None = None
    batch_norm_folding: dict | None = None

    def to_dict(self):
        """A JSON-serializable dict of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def summary(self):
        """One line: format, size, error, latency."""
        kind = self.format + (
            f" ({self.quantization})" if self.quantization else ""
        )
        bound = "mean tol" if self.quantization == "int8" else "tol"
        text = (
            f"{kind}: {self.size_bytes:,} B, max |err| "
            f"{self.max_abs_error:.1e} ({bound} {self.tolerance:.1e})"
        )
        if self.top1_agreement is not None:
            text += f", top-1 agreement {self.top1_agreement:.3f}"
        return text + f", batch-1 latency {self.latency_ms:.2f} ms"

    # Read-only mapping access, for code written against 0.1.0's dict.
    def keys(self):
        """Every field name and legacy key that `report[key]` answers."""
        names = [f.name for f in dataclasses.fields(self)]
        return names + list(_LEGACY_KEYS)

    def __getitem__(self, key):
        if key not in self.keys():
            raise KeyError(key)
        replacement = _LEGACY_REPLACEMENTS.get(key, f"report.{key}")
        warnings.warn(
            f"report[{key!r}] is deprecated since keras_aff 0.2.0 and will "
            f"be removed in 0.4.0: use {replacement} (an ExportReport is a "
            "dataclass, no longer 0.1.0's dict).",
            DeprecationWarning,
            stacklevel=2,
        )
        if key in _LEGACY_KEYS:
            return _LEGACY_KEYS[key](self)
        return getattr(self, key)

    def __contains__(self, key):
        return key in self.keys()

    def get(self, key, default=None):
        """`report[key]` (deprecated, as indexing), or `default` when the
        key is unknown."""
        if key not in self:
            return default
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            value = self[key]
        replacement = _LEGACY_REPLACEMENTS.get(key, f"report.{key}")
        warnings.warn(
            f"report.get({key!r}) is deprecated since keras_aff 0.2.0 and "
            f"will be removed in 0.4.0: use {replacement}.",
            DeprecationWarning,
            stacklevel=2,
        )
        return value
