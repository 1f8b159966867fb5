"""An independent NumPy implementation of MS-CAM, AFF, iAFF, MultiAFF and
the input alignment of AFF(align_inputs=True).

Written from the formulas (c = C // reduction_ratio, every conv 1x1):

    L(z) = BN(Conv(c -> C)(ReLU(BN(Conv(C -> c)(z)))))   per position
    G(z) = the same on the global spatial mean (keepdims, broadcast)
    M(z) = sigmoid(L(z) + G(z))
    MSCAM(x)   = x * M(x)
    AFF(x, y)  = s * (x * w + y * (1 - w)),  w = M(x + y)
    IAFF(x, y) = s * (x * w2 + y * (1 - w2)), w2 = M2(x * w1 + y * (1 - w1)),
                 w1 = M1(x + y)
    MultiAFF(x_1..x_N) = s * sum_i w_i x_i, w = softmax over i of the N
                 chunks (C channels each) of L(sum x) + G(sum x), whose last
                 convs have N * C outputs
    align(y, x) = resize(BN(Conv(y)), size of x): bilinear with half-pixel
                 centres (edge-clamped) or nearest, one axis at a time

It reuses no layer code: weights are read by variable path
(`<gate>/<branch>/<sublayer>/<variable>`, e.g. `attention/local/conv1/kernel`)
and every computation runs in float64 on channels-last arrays.
"""

import keras
import numpy as np


def weights_by_path(layer):
    """Returns `{"attention/local/conv1/kernel": array, ...}` for a layer.

    The key is the last four components of each variable's path, so it does
    not depend on the name of the layer or of an enclosing model.

    Example:

    >>> layer = keras_aff.layers.AFF()
    >>> layer.build([(None, 4, 4, 8)] * 2)
    >>> weights_by_path(layer)["attention/global/bn2/gamma"].shape
    (8,)
    """
    out = {}
    for v in layer.weights:
        key = "/".join(v.path.split("/")[-4:])
        if key in out:
            raise AssertionError(f"duplicate variable path suffix {key}")
        out[key] = np.asarray(keras.ops.convert_to_numpy(v), np.float64)
    return out


def branch_names(branches):
    """Sublayer names of the two branches of a gate, as the paper's
    ablation names them: the default ("local", "global") keeps its names,
    two equal kinds get suffixes 1 and 2."""
    branches = tuple(branches)
    if branches[0] == branches[1]:
        return (f"{branches[0]}1", f"{branches[1]}2")
    return branches


def _conv1x1(z, kernel, bias):
    k = kernel.reshape(kernel.shape[-2], kernel.shape[-1])
    out = np.tensordot(z, k, axes=([-1], [0]))
    if bias is not None:
        out = out + bias
    return out


def _batch_norm(z, w, prefix, epsilon, training):
    if f"{prefix}/moving_mean" not in w:  # use_batch_norm=False
        return z
    if training:
        axes = tuple(range(z.ndim - 1))
        mean = z.mean(axis=axes)
        var = z.var(axis=axes)
    else:
        mean = w[f"{prefix}/moving_mean"]
        var = w[f"{prefix}/moving_variance"]
    gamma = w[f"{prefix}/gamma"]
    beta = w[f"{prefix}/beta"]
    return gamma * (z - mean) / np.sqrt(var + epsilon) + beta


def branch(z, w, prefix, kind, epsilon, training=False):
    """One branch, L (kind "local") or G (kind "global"), channels last."""
    if kind == "global":
        z = z.mean(axis=tuple(range(1, z.ndim - 1)), keepdims=True)
    z = _conv1x1(z, w[f"{prefix}/conv1/kernel"], w.get(f"{prefix}/conv1/bias"))
    z = _batch_norm(z, w, f"{prefix}/bn1", epsilon, training)
    z = np.maximum(z, 0.0)
    z = _conv1x1(z, w[f"{prefix}/conv2/kernel"], w.get(f"{prefix}/conv2/bias"))
    return _batch_norm(z, w, f"{prefix}/bn2", epsilon, training)


def logits(z, w, gate_name, branches, epsilon, training=False):
    """B1(z) + B2(z), broadcasting a global branch."""
    total = 0.0
    for kind, name in zip(branches, branch_names(branches)):
        total = total + branch(
            z, w, f"{gate_name}/{name}", kind, epsilon, training
        )
    return total


def gate(z, w, gate_name, branches, epsilon, training=False):
    """M(z) = sigmoid(B1(z) + B2(z))."""
    total = logits(z, w, gate_name, branches, epsilon, training)
    return 1.0 / (1.0 + np.exp(-total))


def mscam(x, w, branches=("local", "global"), epsilon=1e-5, training=False):
    """x * M(x)."""
    x = np.asarray(x, np.float64)
    return x * gate(x, w, "attention", branches, epsilon, training)


def aff(
    x,
    y,
    w,
    output_scale=1.0,
    branches=("local", "global"),
    epsilon=1e-5,
    training=False,
):
    """output_scale * (x * w + y * (1 - w)) with w = M(x + y)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    wei = gate(x + y, w, "attention", branches, epsilon, training)
    return output_scale * (x * wei + y * (1.0 - wei))


def iaff(
    x,
    y,
    w,
    output_scale=1.0,
    branches=("local", "global"),
    epsilon=1e-5,
    training=False,
):
    """Two gates with their own branches; see the module docstring."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    w1 = gate(x + y, w, "attention1", branches, epsilon, training)
    xi = x * w1 + y * (1.0 - w1)
    w2 = gate(xi, w, "attention2", branches, epsilon, training)
    return output_scale * (x * w2 + y * (1.0 - w2))


def multi_weights(
    xs, w, branches=("local", "global"), epsilon=1e-5, training=False
):
    """[w_1, ..., w_N]: a softmax across the N logit chunks."""
    xs = [np.asarray(x, np.float64) for x in xs]
    z = logits(sum(xs), w, "attention", branches, epsilon, training)
    n, c = len(xs), xs[0].shape[-1]
    z = np.broadcast_to(z, xs[0].shape[:-1] + (n * c,))
    chunks = np.stack([z[..., i * c : (i + 1) * c] for i in range(n)])
    e = np.exp(chunks - chunks.max(axis=0))
    return list(e / e.sum(axis=0))


def multi_aff(
    xs,
    w,
    output_scale=1.0,
    branches=("local", "global"),
    epsilon=1e-5,
    training=False,
):
    """output_scale * sum_i w_i x_i (see `multi_weights`)."""
    weights = multi_weights(xs, w, branches, epsilon, training)
    return output_scale * sum(
        wi * np.asarray(x, np.float64) for wi, x in zip(weights, xs)
    )


def resize_axis(z, axis, size, interpolation="bilinear"):
    """`z` resized along `axis` to `size`: half-pixel centres, the source
    coordinate clamped to the first and last sample."""
    n = z.shape[axis]
    centres = (np.arange(size) + 0.5) * (n / size)
    if interpolation == "nearest":
        index = np.minimum(np.floor(centres).astype(int), n - 1)
        return np.take(z, index, axis=axis)
    pos = np.clip(centres - 0.5, 0.0, n - 1)
    low = np.floor(pos).astype(int)
    high = np.minimum(low + 1, n - 1)
    frac = (pos - low).reshape([-1 if a == axis else 1 for a in range(z.ndim)])
    a = np.take(z, low, axis=axis)
    return a + (np.take(z, high, axis=axis) - a) * frac


def align(
    y, x_shape, w=None, epsilon=1e-5, interpolation="bilinear", training=False
):
    """`y` (channels last) projected by `<...>/projection/{conv,bn}` of `w`
    when it holds them, then resized to the spatial size of `x_shape`."""
    y = np.asarray(y, np.float64)
    conv = [k for k in (w or {}) if k.endswith("projection/conv/kernel")]
    if conv:
        prefix = conv[0][: -len("/conv/kernel")]
        y = _conv1x1(y, w[conv[0]], None)
        y = _batch_norm(y, w, f"{prefix}/bn", epsilon, training)
    for axis in range(1, y.ndim - 1):
        if y.shape[axis] != x_shape[axis]:
            y = resize_axis(y, axis, x_shape[axis], interpolation)
    return y


def randomize(layer, seed=0):
    """Assigns random values to every variable of a built layer, including
    non-trivial BatchNorm moving statistics, so that numerics tests cover
    every weight."""
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        name = v.path.split("/")[-1]
        shape = tuple(v.shape)
        if name == "kernel":
            value = rng.normal(0.0, 0.7, shape)
        elif name == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif name == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        else:  # bias, beta, moving_mean
            value = rng.normal(0.0, 0.3, shape)
        v.assign(value.astype(v.dtype))
