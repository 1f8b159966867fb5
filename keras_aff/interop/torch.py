"""Weights of the official PyTorch MS-CAM, AFF and iAFF modules.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The official PyTorch port (`aff_pytorch/aff_net/fusion.py` in
YimianDai/open-aff, copied by LAION-CLAP) names its weights

    local_att.0   Conv (C -> c)        global_att.0  AdaptiveAvgPool (none)
    local_att.1   BatchNorm (c)        global_att.1  Conv (C -> c)
    local_att.2   ReLU (none)          global_att.2  BatchNorm (c)
    local_att.3   Conv (c -> C)        global_att.3  ReLU (none)
    local_att.4   BatchNorm (C)        global_att.4  Conv (c -> C)
                                       global_att.5  BatchNorm (C)

(`local_att2.*` and `global_att2.*` for iAFF's second gate). Conv keys are
`weight` and `bias`; BatchNorm keys are `weight`, `bias`, `running_mean`,
`running_var` and `num_batches_tracked` (ignored on load).

torch is never imported: values may be NumPy arrays or anything with
`.detach().cpu().numpy()` (a torch tensor).
"""

import collections

import numpy as np

from keras_aff import _validation
from keras_aff.layers.aff import AFF
from keras_aff.layers.arguments import DEFAULT_BRANCHES
from keras_aff.layers.iaff import IAFF
from keras_aff.layers.ms_cam import MSCAM

# (Keras sublayer, Keras variable) -> torch suffix, per branch kind.
_CONV = (("kernel", "weight"), ("bias", "bias"))
_BN = (
    ("gamma", "weight"),
    ("beta", "bias"),
    ("moving_mean", "running_mean"),
    ("moving_variance", "running_var"),
)
_SEQUENTIAL_INDEX = {
    "local": {"conv1": 0, "bn1": 1, "conv2": 3, "bn2": 4},
    "global": {"conv1": 1, "bn1": 2, "conv2": 4, "bn2": 5},
}
_GATE_PREFIXES = {
    1: {"attention": ("local_att", "global_att")},
    2: {
        "attention1": ("local_att", "global_att"),
        "attention2": ("local_att2", "global_att2"),
    },
}
_IAFF_SECOND_GLOBAL = ("global_att2", "global_att")


def _to_numpy(value):
    """A NumPy copy of an array or of a torch-like tensor (duck-typed)."""
    for method in ("detach", "cpu"):
        if hasattr(value, method):
            value = getattr(value, method)()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        try:
            value = value.numpy()
        except TypeError:  # e.g. torch.bfloat16 has no NumPy dtype
            value = value.float().numpy()
    return np.array(value)


def _num_gates(layer):
    return 2 if isinstance(layer, IAFF) else 1


def _check_layer(layer, fn_name):
    if not isinstance(layer, (MSCAM, AFF, IAFF)):
        raise TypeError(
            f"`{fn_name}` expects a keras_aff.layers MSCAM, AFF or IAFF "
            "layer (Keras 3). "
            f"Received: layer={layer!r} (of type {type(layer).__name__})"
        )
    if getattr(layer, "projection", None) is not None:
        raise ValueError(
            f"`{fn_name}` maps the official modules, which have no input "
            "projection; this layer's `projection` (1x1 conv + BN of `y`) "
            "has no place in their state dict. Received: a layer with "
            "align_inputs=True and inputs of different channels"
        )
    if tuple(layer.branches) != DEFAULT_BRANCHES:
        raise ValueError(
            f"`{fn_name}` supports only the official layout "
            f"branches={DEFAULT_BRANCHES} (the official modules have "
            "one local and one global branch per gate). "
            f"Received: branches={tuple(layer.branches)}"
        )


def _key_map(layer, iaff_second_global="global_att2"):
    """`[(torch key, variable path relative to the layer, kind), ...]`,
    kind being "conv_kernel" or "vector", in the official module's order."""
    out = []
    for gate, prefixes in _GATE_PREFIXES[_num_gates(layer)].items():
        for kind, prefix in zip(DEFAULT_BRANCHES, prefixes):
            if gate == "attention2" and kind == "global":
                prefix = iaff_second_global
            idx = _SEQUENTIAL_INDEX[kind]
            for sub in ("conv1", "bn1", "conv2", "bn2"):
                pairs = _CONV if sub.startswith("conv") else _BN
                for keras_name, torch_name in pairs:
                    if keras_name == "bias" and not layer.use_bias:
                        continue
                    out.append(
                        (
                            f"{prefix}.{idx[sub]}.{torch_name}",
                            f"{gate}/{kind}/{sub}/{keras_name}",
                            "conv_kernel" if keras_name == "kernel" else "vec",
                        )
                    )
    return out


def _variables_by_path(layer):
    # The last four path components (gate/branch/sublayer/variable) do not
    # depend on the layer's name or on an enclosing model.
    return {"/".join(v.path.split("/")[-4:]): v for v in layer.weights}


def _kernel_to_keras(weight):
    # torch (out, in, 1[, 1[, 1]]) -> Keras (1[, 1[, 1]], in, out)
    nd = weight.ndim
    return np.transpose(weight, tuple(range(2, nd)) + (1, 0))


def _kernel_to_torch(kernel):
    nd = kernel.ndim
    return np.transpose(kernel, (nd - 1, nd - 2) + tuple(range(nd - 2)))


def _strip_prefix(state_dict, prefix):
    if not prefix:
        return dict(state_dict)
    return {
        k[len(prefix) :]: v
        for k, v in state_dict.items()
        if k.startswith(prefix)
    }


def _build_from_state_dict(layer, arrays):
    weight = arrays.get("local_att.0.weight")
    if weight is None or weight.ndim not in (3, 4, 5):
        raise ValueError(
            f"Layer '{layer.name}' is not built and its input shape cannot "
            "be inferred: the state dict needs a conv weight "
            "'local_att.0.weight' of rank 3, 4 or 5 (out, in, 1, ...). "
            "Build the layer first (call it once or `layer.build(shape)`). "
            "Received: local_att.0.weight shape="
            f"{None if weight is None else weight.shape}"
        )
    inter, channels = int(weight.shape[0]), int(weight.shape[1])
    if channels // layer.reduction_ratio != inter:
        ratios = [r for r in range(1, channels + 1) if channels // r == inter]
        raise ValueError(
            f"Layer '{layer.name}' has reduction_ratio="
            f"{layer.reduction_ratio}, so {channels} channels give "
            f"{channels // layer.reduction_ratio} hidden channels, but the "
            f"state dict has {inter} (local_att.0.weight shape "
            f"{tuple(weight.shape)}). Use reduction_ratio in {ratios}. "
            f"Received: reduction_ratio={layer.reduction_ratio}"
        )
    spatial = (None,) * (weight.ndim - 2)
    if layer.data_format == "channels_last":
        shape = (None,) + spatial + (channels,)
    else:
        shape = (None, channels) + spatial
    layer.build(shape if isinstance(layer, MSCAM) else [shape, shape])


def load_torch_state_dict(
    layer, state_dict, prefix="", iaff_second_global="global_att2"
):
    """Loads the weights of an official PyTorch MS_CAM, AFF or iAFF module.

    The keys are those of the official PyTorch port (and LAION-CLAP):
    `local_att.{0,1,3,4}.*`, `global_att.{1,2,4,5}.*`, plus
    `local_att2.*` and `global_att2.*` for iAFF. Conv weights
    `(out, in, 1[, 1[, 1]])` become Keras kernels `(1[, 1[, 1]], in, out)`;
    BatchNorm `weight`, `bias`, `running_mean`, `running_var` become
    `gamma`, `beta`, `moving_mean`, `moving_variance`;
    `num_batches_tracked` is ignored.

    To reproduce the official networks, make the layer as the official
    module: `AFF(output_scale=2.0)` (the official AFF doubles its output),
    `IAFF()` and `MSCAM()` with `use_bias=True` (official convs have a
    bias), `bn_epsilon=1e-5` (the PyTorch default, and this package's) and
    `bn_momentum=0.9` (PyTorch's 0.1). `Conv1d`/`Conv3d` state dicts load
    into rank-3/rank-5 layers. Weights do not depend on `data_format`.

    An unbuilt layer is built from the state dict: the channel count and
    the rank come from `local_att.0.weight` (spatial sizes stay `None`), and
    `reduction_ratio` must give the state dict's hidden channel count.

    Args:
        layer: a `keras_aff.layers.MSCAM`, `AFF` or `IAFF` with the default
            `branches=("local", "global")`.
        state_dict: mapping from key to NumPy array or torch tensor (read
            with `.detach().cpu().numpy()`; torch is not imported).
        prefix: str, default "". Only keys starting with `prefix` are read
            (with the prefix removed) and the others are ignored, e.g.
            `"fusion_model."` for the fusion block of a LAION-CLAP model.
        iaff_second_global: "global_att2" (default) or "global_att". The
            official PyTorch iAFF computes its second gate with `global_att`
            (open-aff issue #31) and never uses `global_att2`; pass
            "global_att" to copy `global_att` into the second gate's global
            branch and reproduce such a checkpoint's inference exactly
            (`global_att2.*` keys are then ignored).

    Returns:
        The layer, with every variable assigned.

    Raises:
        ValueError: one error listing every missing, unexpected and
            mis-shaped key (nothing is assigned then); unsupported
            `branches`; an unbuilt layer whose shape cannot be inferred.
        TypeError: `layer` is not an MSCAM, AFF or IAFF.

    Example:

    >>> import numpy as np
    >>> layer = keras_aff.layers.AFF(reduction_ratio=4, output_scale=2.0)
    >>> # sd = torch_aff.state_dict() for a PyTorch AFF(channels=16, r=4);
    >>> # here the state dict of another layer stands in for it.
    >>> src = keras_aff.layers.AFF(reduction_ratio=4, output_scale=2.0)
    >>> _ = src([np.ones((1, 4, 4, 16))] * 2)
    >>> sd = keras_aff.interop.to_torch_state_dict(src)
    >>> layer = keras_aff.interop.load_torch_state_dict(layer, sd)
    >>> layer.built  # built from local_att.0.weight: 16 channels, rank 4
    True
    """
    _check_layer(layer, "load_torch_state_dict")
    _validation.check_choice(
        "iaff_second_global", iaff_second_global, _IAFF_SECOND_GLOBAL
    )
    _validation.check_one_of_types("prefix", prefix, (str,), "a str")
    arrays = {
        k: _to_numpy(v) for k, v in _strip_prefix(state_dict, prefix).items()
    }
    if not layer.built:
        _build_from_state_dict(layer, arrays)
    values, problems = _match(layer, arrays, iaff_second_global)
    if problems:
        raise ValueError(
            f"Cannot load the state dict into layer '{layer.name}' "
            f"({type(layer).__name__}, {layer.channels} channels, "
            f"{layer.inter_channels} hidden, use_bias={layer.use_bias}); "
            "nothing was assigned. " + ". ".join(problems) + ". "
            f"Received: state_dict with {len(arrays)} keys"
            + (f" under prefix={prefix!r}" if prefix else "")
        )
    for var, value in values:
        var.assign(value.astype(var.dtype))
    return layer


def _match(layer, arrays, iaff_second_global):
    """`(values, problems)`: `[(variable, array), ...]` in Keras layout,
    and one line per kind of mismatch (missing, unexpected, mis-shaped)."""
    variables = _variables_by_path(layer)
    plan = _key_map(layer, iaff_second_global)
    ignored = {k for k in arrays if k.endswith(".num_batches_tracked")}
    if _num_gates(layer) == 2 and iaff_second_global == "global_att":
        ignored |= {k for k in arrays if k.startswith("global_att2.")}
    missing = sorted({key for key, _, _ in plan if key not in arrays})
    unexpected = sorted(set(arrays) - {key for key, _, _ in plan} - ignored)
    mis_shaped, values = [], []
    for key, path, kind in plan:
        if key not in arrays:
            continue
        var, value = variables[path], arrays[key]
        if kind == "conv_kernel" and value.ndim == len(var.shape):
            value = _kernel_to_keras(value)
        if tuple(value.shape) == tuple(var.shape):
            values.append((var, value))
            continue
        want = tuple(var.shape)
        if kind == "conv_kernel":
            want = tuple(_kernel_to_torch(np.empty(want)).shape)
        mis_shaped.append(
            f"{key}: expected shape {want}, got {tuple(arrays[key].shape)}"
        )
    problems = []
    if missing:
        problems.append(f"missing keys: {missing}")
    if unexpected:
        problems.append(f"unexpected keys: {unexpected}")
    if mis_shaped:
        problems.append("mis-shaped keys: " + "; ".join(mis_shaped))
    return values, problems


def to_torch_state_dict(layer):
    """Exports a built MSCAM, AFF or IAFF as an official PyTorch state dict.

    The inverse of `load_torch_state_dict`: keys and shapes are those of
    the official PyTorch module (`local_att.0.weight` ...), in the order of
    its `state_dict()`, with `num_batches_tracked` set to 0. Values are
    NumPy arrays; convert them for `module.load_state_dict`, e.g.
    `{k: torch.from_numpy(v) for k, v in sd.items()}`. An IAFF exports
    its second gate's global branch as `global_att2` (a module with the
    official `global_att` bug would not use it).

    Args:
        layer: a built `keras_aff.layers.MSCAM`, `AFF` or `IAFF` with the
            default `branches=("local", "global")`.

    Returns:
        A `collections.OrderedDict` from key to `numpy.ndarray`.

    Example:

    >>> import numpy as np
    >>> layer = keras_aff.layers.AFF(reduction_ratio=4, output_scale=2.0)
    >>> _ = layer([np.ones((1, 4, 4, 16))] * 2)
    >>> sd = keras_aff.interop.to_torch_state_dict(layer)
    >>> sd["local_att.0.weight"].shape
    (4, 16, 1, 1)
    >>> sd["global_att.5.running_var"].shape
    (16,)
    """
    _check_layer(layer, "to_torch_state_dict")
    if not layer.built:
        raise ValueError(
            f"Layer '{layer.name}' is not built: call it once or "
            "`layer.build(input_shape)` before `to_torch_state_dict`. "
            f"Received: layer.built={layer.built}"
        )
    variables = _variables_by_path(layer)
    out = collections.OrderedDict()
    for key, path, kind in _key_map(layer):
        value = np.array(variables[path].numpy(), dtype=np.float32)
        if kind == "conv_kernel":
            value = _kernel_to_torch(value)
        out[key] = np.ascontiguousarray(value)
        if key.endswith(".running_var"):
            out[key[: -len("running_var")] + "num_batches_tracked"] = np.array(
                0, dtype=np.int64
            )
    return out
