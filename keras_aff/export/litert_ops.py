"""What a LiteRT flatbuffer holds: its ops, non-builtin ops, and the float
islands of an int8 model.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`inspect_litert` is public as `keras_aff.qat.inspect_litert` too.
"""

import collections
import re

import numpy as np

from keras_aff.export import checks
from keras_aff.export import environment
from keras_aff.export.report import ExportVerificationError

_BUILTIN_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Constant tensors of these dtypes may sit in an int8 graph (biases, axes,
# shapes).
_INTEGER_AUX = ("int32", "int64")


def _interpreter(flatbuffer):
    """An interpreter on the builtin kernels: no delegate has to accept the
    model to list its ops and tensors."""
    module = environment.import_litert_interpreter()
    return module.Interpreter(
        model_content=bytes(flatbuffer),
        experimental_op_resolver_type=(
            module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )


def list_ops(flatbuffer):
    """Op name -> count of a LiteRT model (builtin names such as CONV_2D;
    a custom or Flex op appears under its custom code, e.g. FlexConv2D)."""
    counts = collections.Counter(
        op["op_name"] for op in _interpreter(flatbuffer)._get_ops_details()
    )
    return dict(sorted(counts.items()))


def non_builtin(ops):
    """The op names of `ops` that a stock LiteRT runtime lacks (custom and
    Flex ops)."""
    return sorted(
        name
        for name in ops
        if name == "CUSTOM"
        or name.startswith("Flex")
        or not _BUILTIN_NAME.match(name)
    )


class _Graph:
    """The tensors and ops of an interpreter, indexed for the checks."""

    def __init__(self, interpreter):
        self.tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
        self.ops = interpreter._get_ops_details()
        self.inputs = {d["index"] for d in interpreter.get_input_details()}
        self.outputs = {d["index"] for d in interpreter.get_output_details()}
        self.producers, self.consumers, self.producer_ops = {}, {}, {}
        for op in self.ops:
            for i in op["outputs"]:
                self.producers[i] = op["op_name"]
                self.producer_ops[i] = op
            for i in op["inputs"]:
                if i >= 0:
                    self.consumers.setdefault(i, []).append(op["op_name"])

    def dtype(self, i):
        return np.dtype(self.tensors[i]["dtype"]).name

    def allowed_float(self, i):
        """A non-int8 tensor that an int8 graph may hold: a float input
        read only by QUANTIZE, a float output written by DEQUANTIZE, an
        integer constant, integer shape arithmetic, or an unused tensor."""
        consumers = self.consumers.get(i, [])
        if i in self.inputs and set(consumers) <= {"QUANTIZE"}:
            return True
        if i in self.outputs and self.producers.get(i) == "DEQUANTIZE":
            return True
        constant = i not in self.producers and i not in self.inputs
        if constant and self.dtype(i) in _INTEGER_AUX:
            return True
        if self.is_shape_arithmetic(i):
            return True
        return not (i in self.producers or consumers or i in self.outputs)

    def is_shape_arithmetic(self, i, seen=None):
        """An integer tensor computed from a SHAPE op and integer constants
        only (run-time sizes, e.g. for a RESHAPE): metadata, not data."""
        if self.dtype(i) not in _INTEGER_AUX or i in self.inputs:
            return False
        op = self.producer_ops.get(i)
        if op is None:
            return True  # an integer constant
        if op["op_name"] == "SHAPE":
            return True
        seen = set() if seen is None else seen
        if i in seen:
            return False
        seen.add(i)
        return all(
            self.is_shape_arithmetic(j, seen) for j in op["inputs"] if j >= 0
        )

    def float_tensors(self):
        islands = []
        for i, tensor in self.tensors.items():
            if self.dtype(i) == "int8" or self.allowed_float(i):
                continue
            readers = sorted(set(self.consumers.get(i, [])))
            where = f"made by {self.producers.get(i, 'a constant')}, read by "
            where += ", ".join(readers) or "nothing"
            islands.append(
                f"tensor {tensor['name']!r} ({self.dtype(i)}) {where}"
            )
        return islands

    def inner_quantize_ops(self):
        """QUANTIZE ops that read no model input and DEQUANTIZE ops that
        write no model output."""
        inner = []
        for op in self.ops:
            if op["op_name"] == "QUANTIZE" and not set(op["inputs"]) <= (
                self.inputs
            ):
                inner.append(f"QUANTIZE op {op['index']} inside the graph")
            if op["op_name"] == "DEQUANTIZE" and not set(op["outputs"]) <= (
                self.outputs
            ):
                inner.append(f"DEQUANTIZE op {op['index']} inside the graph")
        return inner

    def output_step(self):
        """The quantization step of the output: of the output tensor itself
        (int8 I/O) or of the tensor a final DEQUANTIZE reads (float I/O)."""
        step = 0.0
        for i in sorted(self.outputs):
            source = i
            for op in self.ops:
                if i in op["outputs"] and op["op_name"] == "DEQUANTIZE":
                    source = op["inputs"][0]
            step = max(step, float(self.tensors[source]["quantization"][0]))
        return step


def inspect_litert(tflite_model: bytes) -> dict:
    """Op counts and tensor dtypes of a LiteRT model; finds float islands.

    A tensor that flows between two ops (produced by one op, read by
    another) must be int8. Constant tensors may be int8 (weights) or int32
    (biases, axes, shapes). Float tensors are allowed only at the model's
    input and output, and only where a QUANTIZE op reads the input or a
    DEQUANTIZE op writes the output (float I/O); any other float tensor, or
    a QUANTIZE/DEQUANTIZE op elsewhere, is a float island.

    Args:
        tflite_model: bytes of a `.tflite` flatbuffer.

    Returns:
        A dict: `ops` (op name -> count), `tensor_dtypes` (dtype -> count),
        `float_islands` (list of "tensor 'name' (dtype) ..." strings and
        inner (DE)QUANTIZE ops; empty when the model is fully int8),
        `inner_quantize_ops` (how many QUANTIZE / DEQUANTIZE ops sit inside
        the graph), `fully_int8` (bool), `input_dtypes` and
        `output_dtypes`, `output_step` (the output's quantization scale;
        0.0 for a float output), `size_bytes`.

    Example:

    >>> from keras_aff.demo import build_demo_model
    >>> model = build_demo_model()  # AFF + iAFF on 16x16x1 images
    >>> _ = keras_aff.export.export_litert(model, "model.tflite")
    >>> with open("model.tflite", "rb") as f:  # a float32 model
    ...     graph = keras_aff.export.litert_ops.inspect_litert(f.read())
    >>> graph["fully_int8"], graph["ops"]["CONV_2D"], graph["output_step"]
    (False, 17, 0.0)
    >>> len(graph["float_islands"]) > 0  # every float tensor is one
    True
    """
    graph = _Graph(_interpreter(tflite_model))
    islands = graph.float_tensors()
    inner = graph.inner_quantize_ops()
    op_counts = collections.Counter(op["op_name"] for op in graph.ops)
    dtype_counts = collections.Counter(graph.dtype(i) for i in graph.tensors)
    return {
        "ops": dict(sorted(op_counts.items())),
        "tensor_dtypes": dict(sorted(dtype_counts.items())),
        "float_islands": islands + inner,
        "inner_quantize_ops": len(inner),
        "fully_int8": not (islands or inner),
        "input_dtypes": [graph.dtype(i) for i in sorted(graph.inputs)],
        "output_dtypes": [graph.dtype(i) for i in sorted(graph.outputs)],
        "output_step": graph.output_step(),
        "size_bytes": len(tflite_model),
    }


def graph_fields(flatbuffer, quantization, label):
    """Op counts (and, for int8, the int8 graph facts) of the flatbuffer;
    raises ExportVerificationError on non-builtin ops or float islands."""
    if quantization != "int8":
        ops = list_ops(flatbuffer)
        graph = None
    else:
        graph = inspect_litert(flatbuffer)
        ops = graph["ops"]
    bad = non_builtin(ops)
    if bad:
        raise ExportVerificationError(
            f"The LiteRT model contains non-builtin ops {bad}; only builtin "
            "ops run on a stock LiteRT runtime."
        )
    if graph is None:
        return {"ops": ops}
    checks.check_int8_graph(label, graph)
    keys = ("fully_int8", "float_islands", "inner_quantize_ops")
    keys += ("tensor_dtypes", "output_step")
    return dict({k: graph[k] for k in keys}, ops=ops)
