"""The official MXNet/Gluon weights in the `keras_aff.models` backbones.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`load_mxnet_params` reads a `.params` file of the official open-aff
networks (or the dict `read_mxnet_params` returns) into a backbone built
by `keras_aff.models`: every official name to one Keras variable, every
Keras variable from one official name. Conv weights `(out, in / groups,
kh, kw)` and Dense weights `(out, in)` are transposed to Keras kernels (as
`keras_aff.interop.torch` does for the PyTorch port); BatchNorm `gamma`,
`beta`, `running_mean`, `running_var` become `gamma`, `beta`,
`moving_mean`, `moving_variance`. The names come from
`keras_aff.interop.mxnet_names`.
"""

import collections
import collections.abc
import dataclasses
import os

import keras
import numpy as np

from keras_aff import _validation
from keras_aff._tables import markdown_table
from keras_aff.interop import mxnet_names
from keras_aff.interop import torch as torch_port
from keras_aff.interop.mxnet_format import read_mxnet_params
from keras_aff.layers.aff import AFF
from keras_aff.layers.iaff import IAFF

__all__ = ["MXNetLoadReport", "load_mxnet_params"]

# How many names of each kind an error message lists.
_SHOWN = 8


@dataclasses.dataclass
class MXNetLoadReport:
    """What `load_mxnet_params` loaded, from which official name and dtype.

    Printing the report gives a summary line and one table row per loaded
    array (`print(report)`).

    Attributes:
        model: the model's name.
        family: the official network family, in words.
        source: the `.params` path, or None when a dict was given.
        loaded: one dict per loaded array, in the model's order: "name"
            (official), "variable" (Keras path), "shape" (in the file) and
            "dtype" (in the file).
        checked: one dict per array that the model has no variable for
            but that was checked: the frozen `gamma` (all 1) and `beta`
            (all 0) of a BatchNorm with `scale=False` / `center=False`
            (the CIFAR ResNet stem): "name" and "value".
        ignored: names left out on purpose: the classifier of a model
            built with `include_top=False`.
        variable_dtype: the dtype the values were cast to.

    Example:

    >>> report = MXNetLoadReport(
    ...     model="m", family="f", source=None, variable_dtype="float32",
    ...     loaded=[{"name": "fc.weight", "variable": "predictions/kernel",
    ...              "shape": (10, 4), "dtype": "float16"}])
    >>> report.dtypes
    {'float16': 1}
    >>> print(report)
    m: 1 array loaded (float16 x1, cast to float32) from a dict (f)
    | official name | Keras variable     | shape   | dtype   |
    |---------------|--------------------|---------|---------|
    | fc.weight     | predictions/kernel | (10, 4) | float16 |
    """

    model: str
    family: str
    source: object
    variable_dtype: str
    loaded: list
    checked: list = dataclasses.field(default_factory=list)
    ignored: list = dataclasses.field(default_factory=list)

    @property
    def dtypes(self):
        """How many loaded arrays had each dtype in the file."""
        return dict(collections.Counter(row["dtype"] for row in self.loaded))

    def __str__(self):

        counts = ", ".join(f"{k} x{v}" for k, v in self.dtypes.items())
        source = self.source if self.source is not None else "a dict"
        lines = [
            f"{self.model}: {len(self.loaded)} array"
            f"{'s' if len(self.loaded) != 1 else ''} loaded ({counts}, cast "
            f"to {self.variable_dtype}) from {source} ({self.family})"
        ]
        for row in self.checked:
            lines.append(
                f"checked, not loaded: {row['name']} (all {row['value']:g}: "
                "the BatchNorm has no such variable)"
            )
        if self.ignored:
            lines.append(
                f"ignored: {', '.join(self.ignored)} (include_top=False)"
            )
        rows = [
            [r["name"], r["variable"], r["shape"], r["dtype"]]
            for r in self.loaded
        ]
        headers = ["official name", "Keras variable", "shape", "dtype"]
        return "\n".join(lines + [markdown_table(headers, rows)])


@dataclasses.dataclass
class _Plan:
    """Every official name the model needs: `entries` are `(name,
    variable, is_kernel)`, `frozen` are `(name, value)` checks."""

    entries: list = dataclasses.field(default_factory=list)
    frozen: list = dataclasses.field(default_factory=list)
    unmapped: list = dataclasses.field(default_factory=list)


def load_mxnet_params(model, params):
    """Loads the official MXNet/Gluon weights into a `keras_aff.models`
    backbone.

    `params` is a `.params` file written by the official open-aff code
    (`net.save_parameters`, as `train_imagenet.py` and `train_cifar.py`
    save their checkpoints) or the dict `read_mxnet_params` returns. The
    model is any of the seven backbones (`AFFResNet50`, `IAFFResNet50`,
    `AFFResNeXt50`, `IAFFResNeXt50`, `AFFResNet32`, `AFFResNeXt38`,
    `AFFResNeXt47`), with the `fusion` and `fusion_stages` of the file.
    Every official name must fill exactly one Keras variable and every
    Keras variable must be filled: the missing, unexpected and mis-shaped
    names are reported together, and nothing is assigned then. A model
    built with `include_top=False` ignores the file's classifier; the
    frozen `gamma` / `beta` of the CIFAR ResNet's stem BatchNorm (Gluon's
    `scale=False, center=False`) are checked to be 1 and 0. Values are cast
    to the variables' dtype: the float16 ImageNet files (trained with
    `--dtype float16`: conv and Dense weights float16, BatchNorm float32)
    load into float32 (or float64) variables.

    The official networks take NCHW input normalised as in
    `keras_aff.models.preprocess_input`; the Keras model takes the same
    images in its own data format (NHWC by default).

    Args:
        model: a `keras.Model` built by a `keras_aff.models` builder.
        params: str or path-like of a `.params` file, or a dict from
            official name to array.

    Returns:
        A `MXNetLoadReport`: what was loaded, from which name and dtype
        (`print(report)` shows it as a table).

    Raises:
        ValueError: one error listing every missing, unexpected and
            mis-shaped name (or a classifier with another number of
            classes, or frozen values that are not 1 / 0) and saying what
            the file holds; a model that is not a keras_aff backbone; a
            file that is not a valid `.params` file.
        TypeError: `model` is not a `keras.Model`, or `params` is neither
            a path nor a dict.

    Example:

    >>> model = keras_aff.models.AFFResNet32(weights=None)
    >>> # With a real file: load_mxnet_params(model, "0.8357-...-best.params").
    >>> # Here zeros with the official names and shapes stand in for it.
    >>> arrays = keras_aff.interop.mxnet.official_arrays(model)
    >>> report = keras_aff.interop.load_mxnet_params(model, arrays)
    >>> len(report.loaded), [row["name"] for row in report.checked]
    (521, ['features.0.gamma', 'features.0.beta'])
    >>> report.loaded[0]
    {'name': 'features.0.running_mean', 'variable': 'stem_bn/moving_mean',
     'shape': (3,), 'dtype': 'float32'}
    """
    _validation.check_one_of_types("model", model, keras.Model, "a keras.Model")
    arrays, source = _arrays(params)
    family = mxnet_names.model_family(model)
    if family is None:
        raise ValueError(
            f"Model '{model.name}' is not a keras_aff.models backbone (no "
            "stem and stage layers named as the builders name them); "
            "build it with keras_aff.models (e.g. `keras_aff.models."
            "AFFResNet50(weights=None)`). "
            f"Received: model={model.name!r}"
        )
    plan = _plan(model, family)
    values, report, problems = _match(model, family, plan, arrays)
    if problems:
        raise ValueError(
            f"Cannot load the MXNet parameters into model '{model.name}' "
            f"({family.description}); nothing was assigned: "
            + mxnet_names.describe_file(arrays)
            + ". "
            + " ".join(problems)
            + " "
            + _received_params(source, arrays)
        )
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))
    report.source = source
    return report


def _received_params(source, arrays):
    # The file when there is one; a dict (e.g. what `keras-aff convert`
    # read from the file it names first) by its size, not as 'a dict'.
    if source is None:
        return f"Received: params=a dict of {len(arrays)} arrays"
    return _validation.received("params", source) + f" ({len(arrays)} arrays)"


def _arrays(params):
    if isinstance(params, (str, os.PathLike)):
        path = _validation.check_existing_file("params", params)
        return read_mxnet_params(path), path
    if isinstance(params, collections.abc.Mapping):
        return {str(k): np.asarray(v) for k, v in params.items()}, None
    _validation.check_one_of_types(
        "params", params, (str, os.PathLike, dict), "a path or a dict"
    )


def _plan(model, family):
    plan = _Plan()
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = family.prefix(layer.name)
        if prefix is None:
            plan.unmapped.append(layer.name)
        elif isinstance(layer, (AFF, IAFF)):
            _plan_fusion(plan, layer, prefix)
        else:
            _plan_layer(plan, layer, prefix)
    return plan


def _plan_layer(plan, layer, prefix):
    for variable in layer.weights:
        suffix = mxnet_names.GLUON_SUFFIX.get(variable.name)
        if suffix is None:
            plan.unmapped.append(variable.path)
            continue
        name = f"{prefix}.{suffix}"
        plan.entries.append((name, variable, variable.name == "kernel"))
    if isinstance(layer, keras.layers.BatchNormalization):
        if not layer.scale:
            plan.frozen.append((f"{prefix}.gamma", 1.0))
        if not layer.center:
            plan.frozen.append((f"{prefix}.beta", 0.0))


def _plan_fusion(plan, layer, prefix):
    # The gate's Sequential indices are those of the PyTorch port; only
    # the last component (the parameter name) differs.
    variables = torch_port._variables_by_path(layer)
    for key, path, kind in torch_port._key_map(layer):
        variable = variables[path]
        module = key.rsplit(".", 1)[0]
        suffix = mxnet_names.GLUON_SUFFIX[variable.name]
        name = f"{prefix}.{module}.{suffix}"
        plan.entries.append((name, variable, kind == "conv_kernel"))


def _official_shape(shape, is_kernel):
    # Keras (kh, kw, in, out) / (in, out) -> Gluon (out, in, kh, kw) /
    # (out, in).
    shape = tuple(shape)
    if not is_kernel:
        return shape
    return shape[-1:] + shape[-2:-1] + shape[:-2]


def _match(model, family, plan, arrays):
    """`(values, report, problems)`: `[(variable, Keras-layout array)]`,
    the report, and one sentence per kind of problem."""
    taken = _take(plan, arrays)
    checked, frozen_problems = _check_frozen(
        plan, arrays, taken.used, taken.missing
    )
    ignored = []
    if "predictions" not in {layer.name for layer in model.layers}:
        head = family.classifier + "."
        ignored = [
            n for n in arrays if n not in taken.used and n.startswith(head)
        ]
    accounted = taken.used | set(ignored)
    unexpected = [n for n in arrays if n not in accounted]
    problems = _classifier_problem(model, family, arrays)
    problems += _problems(plan, taken, unexpected) + frozen_problems
    report = MXNetLoadReport(
        model=model.name,
        family=f"{family.gluon_class}, {family.description}",
        source=None,
        variable_dtype=str(model.weights[0].dtype),
        loaded=taken.loaded,
        checked=checked,
        ignored=ignored,
    )
    return taken.values, report, problems


@dataclasses.dataclass
class _Taken:
    """What `_take` found for the plan's entries."""

    used: set = dataclasses.field(default_factory=set)
    values: list = dataclasses.field(default_factory=list)
    loaded: list = dataclasses.field(default_factory=list)
    missing: list = dataclasses.field(default_factory=list)
    mis_shaped: list = dataclasses.field(default_factory=list)


def _take(plan, arrays):
    """Each entry's array in the Keras layout, or why there is none."""
    taken = _Taken()
    for name, variable, is_kernel in plan.entries:
        if name not in arrays:
            taken.missing.append(name)
            continue
        taken.used.add(name)
        array = value = arrays[name]
        if is_kernel and array.ndim == len(variable.shape):
            value = torch_port._kernel_to_keras(array)
        if tuple(value.shape) != tuple(variable.shape):
            want = _official_shape(variable.shape, is_kernel)
            taken.mis_shaped.append(
                f"{name} {tuple(array.shape)} (expected {want})"
            )
            continue
        taken.values.append((variable, value))
        taken.loaded.append(
            {
                "name": name,
                "variable": variable.path,
                "shape": tuple(array.shape),
                "dtype": str(array.dtype),
            }
        )
    return taken


def _check_frozen(plan, arrays, used, missing):
    checked, problems = [], []
    for name, expected in plan.frozen:
        if name not in arrays:
            missing.append(name)
            continue
        used.add(name)
        array = np.asarray(arrays[name])
        if array.size and np.all(array == expected):
            checked.append({"name": name, "value": expected})
            continue
        problems.append(
            f"{name} must be all {expected:g} (the BatchNorm has "
            f"{'scale' if name.endswith('gamma') else 'center'}=False, as "
            f"the official one), but the file holds {array.ravel()[:4]}."
        )
    return checked, problems


def _listing(kind, names):
    shown = ", ".join(names[:_SHOWN])
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f"{len(names)} {kind}: {shown}{more}."


def _problems(plan, taken, unexpected):
    problems = []
    for kind, names in (
        ("model weights without an official counterpart", plan.unmapped),
        ("missing names", taken.missing),
        ("unexpected names", unexpected),
        ("mis-shaped names", taken.mis_shaped),
    ):
        if names:
            problems.append(_listing(kind, names))
    return problems


def _classifier_problem(model, family, arrays):
    """A plain sentence when the file's classifier has another number of
    classes than the model's."""
    weight = arrays.get(f"{family.classifier}.weight")
    names = {layer.name for layer in model.layers}
    if weight is None or weight.ndim != 2 or "predictions" not in names:
        return []
    units = model.get_layer("predictions").units
    if weight.shape[0] == units:
        return []
    return [
        f"The file's classifier `{family.classifier}.weight` has "
        f"{weight.shape[0]} classes (shape {tuple(weight.shape)}), the model "
        f"{units}: build the model with classes={weight.shape[0]} (or "
        "include_top=False to leave the classifier out)."
    ]


def official_arrays(model, fill=None):
    """A dict with every official name and shape (and a float32 value)
    that `model` takes: zeros, or `fill(name, shape)`; the frozen stem
    BatchNorm `gamma` / `beta` of the CIFAR ResNet are 1 and 0. For tests
    and examples: the layout of a real `.params` file without one.

    Example:

    >>> model = keras_aff.models.AFFResNeXt38(include_top=False)
    >>> arrays = keras_aff.interop.mxnet.official_arrays(model)
    >>> len(arrays), arrays["features.3.0.body.3.weight"].shape
    (488, (128, 4, 3, 3))
    """
    family = mxnet_names.model_family(model)
    plan = _plan(model, family)
    out = {}
    for name, variable, is_kernel in plan.entries:
        shape = _official_shape(variable.shape, is_kernel)
        value = fill(name, shape) if fill else np.zeros(shape, "float32")
        out[name] = value
    for name, value in plan.frozen:
        stats = name.rsplit(".", 1)[0] + ".running_mean"
        out[name] = np.full(out[stats].shape, value, "float32")
    return out
