"""The fused path of MSCAM, AFF and IAFF on the JAX backend.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`mscam`, `aff` and `iaff` compute a layer's call with the Pallas kernel of
`keras_aff.kernels.gate_chain`, from the layer's own variables: the
global branches run as Keras sublayers (XLA, on the mean: tiny), the local
branches inside the kernel with their BatchNorms folded into the convs.

BatchNorm behaves exactly as in the `keras.ops` path: with `training` and
a trainable BN the kernel first computes the batch statistics of the
pre-BN activations (per-tile sums and centred sums of squares, combined
here with Chan's formula: no intermediate of full size is written), folds
them, and the moving statistics are updated with Keras' formula;
otherwise the moving statistics are folded. A layer with
`use_batch_norm=False` folds nothing.

Imported only on the JAX backend (`keras_aff.layers.dispatch`).
"""

import math

import jax
import jax.numpy as jnp
from jax import lax

from keras_aff.kernels import chain_body
from keras_aff.kernels import gate_chain

CHANNEL_MULTIPLE = 16  # Triton's matmul tiles are at least 16 wide
# None: Pallas interpret mode exactly when not on a GPU. Tests set False to
# lower the compiled (Triton) kernel for CUDA on a machine without a GPU.
INTERPRET = None


def on_gpu():
    """Whether JAX's default backend is a GPU.

    Example:

    >>> from keras_aff.kernels import fused
    >>> isinstance(fused.on_gpu(), bool)
    True
    """
    return jax.default_backend() == "gpu"


def _channels_ok(shape):
    return (
        len(shape) in (3, 4, 5)
        and all(isinstance(d, int) and d > 0 for d in shape)
        and shape[-1] % CHANNEL_MULTIPLE == 0
    )


def auto_applies(shape, dtype):
    """Whether `implementation="auto"` runs the kernel for an input of
    `shape`: on a GPU, with static dims and channels a multiple of 16, in
    a JAX that still has Pallas' Triton backend.

    Example:

    >>> from keras_aff.kernels import fused
    >>> fused.auto_applies((8, 56, 56, 24), "float32")  # 24 channels: no
    False
    """
    return (
        on_gpu()
        and gate_chain.pltriton is not None
        and _channels_ok(tuple(shape))
    )


def check_shape(layer, shape):
    """A clear error when `implementation="fused"` cannot tile `shape`.

    Example:

    >>> from keras_aff.kernels import fused
    >>> layer = keras_aff.layers.MSCAM()
    >>> fused.check_shape(layer, (2, 7, 7, 8))
    Traceback (most recent call last):
    ...
    ValueError: Layer 'mscam' ... Received: input_shape=(2, 7, 7, 8)
    """
    shape = tuple(shape)
    if not _channels_ok(shape):
        raise ValueError(
            f"Layer '{layer.name}' with implementation='fused' needs a "
            "static input shape of rank 3, 4 or 5 whose channel count is a "
            f"multiple of {CHANNEL_MULTIPLE} (the kernel's matmul tiles); "
            "use implementation='auto' or 'xla' for other shapes. "
            f"Received: input_shape={shape}"
        )


def _as_array(value, dtype="float32"):
    value = getattr(value, "value", value)  # a Keras variable
    return jnp.asarray(value).astype(dtype)


class _Call:
    """The kernel launches of one layer call: the inputs as (N, P, C) and
    the plan options."""

    def __init__(self, layer, kind, x, y, gate):
        check_shape(layer, x.shape)
        self.layer = layer
        self.kind = kind
        self.shape = x.shape
        batch, channels = x.shape[0], x.shape[-1]
        self.positions = math.prod(x.shape[1:-1])
        flat = (batch, self.positions, channels)
        self.x = jnp.reshape(x, flat)
        self.y = None if y is None else jnp.reshape(y, flat)
        self.inter_channels = layer.inter_channels
        dot_dtype = (
            "bfloat16" if gate.compute_dtype == "bfloat16" else "float32"
        )
        precision = None
        if jax.config.jax_default_matmul_precision in ("highest", "float32"):
            precision = lax.Precision.HIGHEST
        self.options = dict(
            output_scale=getattr(layer, "output_scale", 1.0),
            dot_dtype=dot_dtype,
            precision=precision,
            interpret=not on_gpu() if INTERPRET is None else INTERPRET,
        )

    def run(self, target, params):
        plan = chain_body.make_plan(
            self.kind,
            len(params),
            target,
            self.positions,
            self.shape[-1],
            self.inter_channels,
            **self.options,
        )
        flat = [a for gate in params for a in gate]
        return plan, gate_chain.run(plan, self.x, self.y, flat)

    def moments(self, target, params):
        """Mean and (biased) variance over batch and positions of the
        target, from the kernel's per-tile sums (Chan's combination)."""
        plan, stats = self.run(target, params)
        counts = jnp.clip(
            self.positions - plan.rows * jnp.arange(plan.tiles), 0, plan.rows
        ).astype(jnp.float32)[None, :, None]
        total = stats.shape[0] * self.positions
        sums, m2 = stats[:, :, 0, :], stats[:, :, 1, :]
        mean = jnp.sum(sums, axis=(0, 1)) / total
        spread = jnp.sum(counts * (sums / counts - mean) ** 2, axis=(0, 1))
        return mean, (jnp.sum(m2, axis=(0, 1)) + spread) / total

    def position_mean(self, params):
        """(N, C): the mean over positions of the blend of the last gate."""
        _, stats = self.run(("sum",), params)
        return jnp.sum(stats[:, :, 0, :], axis=1) / self.positions


def _bn_affine(bn, moments, training):
    """`(scale, shift)` with `bn(z) == z * scale + shift` for this call;
    with batch statistics, updates the moving ones as Keras does."""
    if bn is None:
        return 1.0, 0.0
    if training and bn.trainable:
        mean, variance = moments()
        for var, value in (
            (bn.moving_mean, mean),
            (bn.moving_variance, variance),
        ):
            old = _as_array(var)
            var.assign(old * bn.momentum + value * (1.0 - bn.momentum))
    else:
        mean, variance = (
            _as_array(bn.moving_mean),
            _as_array(bn.moving_variance),
        )
    scale = lax.rsqrt(variance + bn.epsilon)
    if bn.scale:
        scale = scale * _as_array(bn.gamma)
    shift = -mean * scale
    if bn.center:
        shift = shift + _as_array(bn.beta)
    return scale, shift


def _conv(conv, size):
    """A 1x1 conv's kernel as a (in, out) matrix and its bias."""
    kernel = _as_array(conv.kernel)
    kernel = jnp.reshape(kernel, kernel.shape[-2:])
    bias = _as_array(conv.bias) if conv.use_bias else jnp.zeros((size,))
    return kernel, bias


def _local_params(call, branch, g, previous, training):
    """The five kernel arrays of one gate: its local branch with both BNs
    folded (batch statistics from the kernel in training) and `g`."""
    hidden = chain_body.make_plan(
        "fuse", 1, ("out",), 1, call.shape[-1], call.inter_channels
    ).hidden
    c, channels = call.inter_channels, call.shape[-1]
    dot_dtype = call.options["dot_dtype"]
    w1, b1 = _conv(branch.conv1, c)
    w2, b2 = _conv(branch.conv2, channels)

    def pack(w1, b1, w2, b2):
        pad = hidden - c
        return (
            jnp.pad(w1, ((0, 0), (0, pad))).astype(dot_dtype),
            jnp.pad(b1, (0, pad))[None, :],
            jnp.pad(w2, ((0, pad), (0, 0))).astype(dot_dtype),
            b2[None, :],
            g,
        )

    j = len(previous)

    def moments1():
        mean, var = call.moments(("z1", j), [*previous, pack(w1, b1, w2, b2)])
        return mean[:c], var[:c]

    scale, shift = _bn_affine(branch.bn1, moments1, training)
    w1, b1 = w1 * scale, b1 * scale + shift

    def moments2():
        return call.moments(("z2", j), [*previous, pack(w1, b1, w2, b2)])

    scale, shift = _bn_affine(branch.bn2, moments2, training)
    return pack(w1, b1, w2 * scale, b2 * scale + shift)


def _global_term(gate, z, training):
    """The global branch on `z` (a map, or its mean as a 1x1 map), as
    (N, 1, C) float32."""
    g = gate.branch2(z, training=training)
    return jnp.reshape(g, (g.shape[0], 1, g.shape[-1])).astype(jnp.float32)


def _out(call, params):
    _, out = call.run(("out",), params)
    return jnp.reshape(out, call.shape)


def mscam(layer, x, training):
    """`MSCAM.call` with the fused kernel: `x * M(x)`.

    Runs when the layer's `implementation` selects the kernel
    (`keras_aff.layers.dispatch.fused_kernels`).
    """
    gate = layer.attention
    call = _Call(layer, "mscam", x, None, gate)
    g = _global_term(gate, x, training)
    return _out(call, [_local_params(call, gate.branch1, g, [], training)])


def aff(layer, x, y, training):
    """`AFF.call` with the fused kernel: `y + M(x + y) (x - y)`.

    Runs when the layer's `implementation` selects the kernel
    (`keras_aff.layers.dispatch.fused_kernels`).
    """
    gate = layer.attention
    call = _Call(layer, "fuse", x, y, gate)
    g = _global_term(gate, x + y, training)
    return _out(call, [_local_params(call, gate.branch1, g, [], training)])


def iaff(layer, x, y, training):
    """`IAFF.call` with the fused kernel: two gates, the second on
    `xi = y + M1(x + y) (x - y)`, which is recomputed, never written.

    Runs when the layer's `implementation` selects the kernel
    (`keras_aff.layers.dispatch.fused_kernels`).
    """
    gate1, gate2 = layer.attention1, layer.attention2
    call = _Call(layer, "fuse", x, y, gate1)
    g1 = _global_term(gate1, x + y, training)
    first = _local_params(call, gate1.branch1, g1, [], training)
    xi_mean = call.position_mean([first])
    spatial = (1,) * (len(call.shape) - 2)
    xi_mean = jnp.reshape(xi_mean, (xi_mean.shape[0], *spatial, -1))
    g2 = _global_term(gate2, xi_mean.astype(x.dtype), training)
    second = _local_params(call, gate2.branch1, g2, [first], training)
    return _out(call, [first, second])
