"""The MS-CAM gate chain of MSCAM, AFF and IAFF as one Pallas kernel.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

One program per (batch element, tile of `rows` positions) reads its tile of
`x` (and `y`) chunk by chunk of channels and computes, in registers, the
local branch of each gate (1x1 conv C -> c, ReLU, 1x1 conv c -> C, its
BatchNorms folded into the convs by the caller), adds the global term `g`
(computed by XLA from the mean), applies the sigmoid and writes the blend:
`x * w` (MSCAM) or `y + w * (x - y)` (AFF; the second gate of IAFF takes
`y + w1 * (x - y)`, recomputed, as its input). Nothing of full size but the
output is written, so AFF's inference costs the 5-pass minimum (read x and
y for the mean, read them again and write the output).

The same kernel body also computes, instead of the output, per-tile sums
and centred sums of squares of a gate's pre-BN activations (`("z1", j)`,
`("z2", j)`: the training-mode BatchNorm statistics) or of the blend
(`("sum",)`: the mean IAFF's second global branch needs), so training
never writes an intermediate of full size either.

Backend: Pallas' Triton lowering on GPUs (see the Performance docs for
why not Mosaic GPU), Pallas interpret mode elsewhere (exact, slow; for
tests). The backward pass is XLA's: `run` is a `jax.custom_vjp` whose
backward differentiates `reference`, the same body evaluated with `jnp` on
whole arrays (it recomputes the forward instead of storing it).

This module imports JAX; the layers import it only on the JAX backend.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from keras_aff.kernels import chain_body

try:  # JAX 0.10 and 0.11: the Triton-specific masked load and store
    from jax.experimental.pallas import triton as pltriton
except ImportError:  # pragma: no cover - a JAX without the Triton backend
    pltriton = None


# ---------------------------------------------------------------------------
# The Pallas kernel
# ---------------------------------------------------------------------------
class _KernelIO:
    """Loads and stores of one program: a tile of `plan.rows` positions."""

    def __init__(self, plan, refs):
        self.plan = plan
        n_in = 1 if plan.kind == "mscam" else 2
        self.x_ref = refs[0]
        self.y_ref = refs[1] if n_in == 2 else None
        params = refs[n_in:-1]
        self.gate_refs = [params[5 * j : 5 * j + 5] for j in range(plan.gates)]
        self.out_ref = refs[-1]
        self.rows = plan.rows
        self.hidden = []
        self.start = pl.program_id(1) * plan.rows
        self.mask = self.row_mask(plan.chunk)
        self.count = jnp.minimum(plan.rows, plan.positions - self.start)

    def row_mask(self, width):
        """(rows, width): True on the rows of real positions (the last
        tile is ragged)."""
        shape = (self.plan.rows, width)
        rows = self.start + lax.broadcasted_iota(jnp.int32, shape, 0)
        return rows < self.plan.positions

    def _cols(self, k):
        return pl.ds(
            pl.multiple_of(k * self.plan.chunk, self.plan.chunk),
            self.plan.chunk,
        )

    def x(self, k):
        ref = self.x_ref.at[:, self._cols(k)]
        return pltriton.load(ref, mask=self.mask, other=0).astype(jnp.float32)

    def y(self, k):
        ref = self.y_ref.at[:, self._cols(k)]
        return pltriton.load(ref, mask=self.mask, other=0).astype(jnp.float32)

    def w1(self, j, k):
        return self.gate_refs[j][0][self._cols(k), :]

    def b1(self, j):
        return self.gate_refs[j][1][...]

    def w2(self, j, k):
        return self.gate_refs[j][2][:, self._cols(k)]

    def b2(self, j, k):
        return self.gate_refs[j][3][:, self._cols(k)]

    def g(self, j, k):
        return self.gate_refs[j][4][:, self._cols(k)]

    def emit(self, k, value):
        plan = self.plan
        if plan.target == ("out",):
            ref = self.out_ref.at[:, self._cols(k)]
            value = value.astype(self.out_ref.dtype)
            pltriton.store(ref, value, mask=self.mask)
            return
        mask = self.row_mask(value.shape[1])
        total = jnp.sum(jnp.where(mask, value, 0.0), axis=0)
        mean = total / self.count.astype(jnp.float32)
        dev = jnp.where(mask, value - mean[None, :], 0.0)
        cols = self._cols(k) if plan.target[0] != "z1" else slice(None)
        self.out_ref[0, cols] = total
        self.out_ref[1, cols] = jnp.sum(dev * dev, axis=0)


def _kernel(plan, *refs):
    io = _KernelIO(plan, refs)
    chain_body.body(plan, io, lambda n, fn, init: lax.fori_loop(0, n, fn, init))


def _specs(plan, batch):
    c, h = plan.channels, plan.hidden
    tile = pl.BlockSpec((None, plan.rows, c), lambda n, t: (n, t, 0))
    whole = functools.partial(pl.BlockSpec, index_map=lambda n, t: (0, 0))
    n_in = 1 if plan.kind == "mscam" else 2
    in_specs = [tile] * n_in
    for _ in range(plan.gates):
        in_specs += [
            whole((c, h)),
            whole((1, h)),
            whole((h, c)),
            whole((1, c)),
            pl.BlockSpec((None, 1, c), lambda n, t: (n, 0, 0)),
        ]
    if plan.target == ("out",):
        return in_specs, tile
    width = plan.stats_width
    stats = pl.BlockSpec((None, None, 2, width), lambda n, t: (n, t, 0, 0))
    return in_specs, stats


def _out_shape(plan, x):
    batch = x.shape[0]
    if plan.target == ("out",):
        return jax.ShapeDtypeStruct(x.shape, x.dtype)
    shape = (batch, plan.tiles, 2, plan.stats_width)
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def _cost(plan, x):
    batch = x.shape[0]
    elements = batch * plan.positions * plan.channels
    passes = (1 if plan.kind == "mscam" else 2) + (
        1 if plan.target == ("out",) else 0
    )
    flops = 4 * elements * plan.hidden * plan.gates_used
    return pl.CostEstimate(
        flops=int(flops),
        transcendentals=int(elements * plan.gates_used),
        bytes_accessed=int(passes * elements * x.dtype.itemsize),
    )


def _pallas(plan, x, y, params):
    if pltriton is None:  # pragma: no cover
        raise ImportError(
            "The fused kernel needs Pallas' Triton backend "
            "(jax.experimental.pallas.triton), which this JAX lacks."
        )
    in_specs, out_spec = _specs(plan, x.shape[0])
    call = pl.pallas_call(
        functools.partial(_kernel, plan),
        out_shape=_out_shape(plan, x),
        grid=(x.shape[0], plan.tiles),
        in_specs=in_specs,
        out_specs=out_spec,
        interpret=plan.interpret,
        compiler_params=pltriton.CompilerParams(num_warps=4, num_stages=2),
        cost_estimate=_cost(plan, x),
        name=f"aff_gate_chain_{plan.kind}_{plan.gates}",
    )
    inputs = [x] if y is None else [x, y]
    return call(*inputs, *params)


# ---------------------------------------------------------------------------
# The reference: the same body on whole arrays, with jnp
# ---------------------------------------------------------------------------
class _ArrayIO:
    """The body's view of one batch element: all positions, all channels
    in one chunk."""

    def __init__(self, plan, x, y, params):
        self.x_all = x.astype(jnp.float32)
        self.y_all = None if y is None else y.astype(jnp.float32)
        self.gate_params = [
            params[5 * j : 5 * j + 5] for j in range(plan.gates)
        ]
        self.rows = x.shape[0]
        self.hidden = []
        self.value = None

    def x(self, k):
        return self.x_all

    def y(self, k):
        return self.y_all

    def w1(self, j, k):
        return self.gate_params[j][0]

    def b1(self, j):
        return self.gate_params[j][1]

    def w2(self, j, k):
        return self.gate_params[j][2]

    def b2(self, j, k):
        return self.gate_params[j][3]

    def g(self, j, k):
        return self.gate_params[j][4]

    def emit(self, k, value):
        self.value = value


def _tile_stats(plan, value):
    """(tiles, 2, width): per-tile sums and centred sums of squares."""
    pad = plan.tiles * plan.rows - plan.positions
    value = jnp.pad(value, ((0, pad), (0, 0)))
    value = value.reshape(plan.tiles, plan.rows, -1)
    valid = jnp.arange(plan.tiles * plan.rows) < plan.positions
    valid = valid.reshape(plan.tiles, plan.rows, 1)
    total = jnp.sum(jnp.where(valid, value, 0.0), axis=1)
    counts = jnp.sum(valid, axis=1).astype(jnp.float32)
    dev = jnp.where(valid, value - (total / counts)[:, None, :], 0.0)
    return jnp.stack([total, jnp.sum(dev * dev, axis=1)], axis=1)


def reference(plan, x, y, params):
    """What `run` computes, with `jnp` (XLA); differentiable.

    Example:

    >>> import jax.numpy as jnp
    >>> from keras_aff.kernels import chain_body, gate_chain
    >>> p = chain_body.make_plan("mscam", 1, ("out",), 4, 16, 4)
    >>> params = [jnp.zeros((16, 16)), jnp.zeros((1, 16)),
    ...           jnp.zeros((16, 16)), jnp.zeros((1, 16)),
    ...           jnp.zeros((1, 1, 16))]
    >>> out = gate_chain.reference(p, jnp.ones((1, 4, 16)), None, params)
    >>> float(out[0, 0, 0])  # x * sigmoid(0)
    0.5
    """

    def one(xb, yb, gb):
        full = list(params)
        for j in range(plan.gates):
            full[5 * j + 4] = gb[j]
        io = _ArrayIO(plan, xb, yb, full)
        chain_body.body(plan, io, lambda n, fn, init: fn(0, init))
        if plan.target == ("out",):
            return io.value.astype(x.dtype)
        return _tile_stats(plan, io.value)

    g = [params[5 * j + 4] for j in range(plan.gates)]
    in_axes = (0, None if y is None else 0, 0)
    return jax.vmap(one, in_axes=in_axes)(x, y, g)


# ---------------------------------------------------------------------------
# The differentiable entry point
# ---------------------------------------------------------------------------
@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def run(plan, x, y, params):
    """Runs `plan` with the Pallas kernel.

    Args:
        plan: a `chain_body.Plan` (`chain_body.make_plan`).
        x, y: (N, P, C) arrays; `y` is None for MSCAM.
        params: per gate, 5 arrays: w1 (C, hidden) and w2 (hidden, C) in
            `plan.dot_dtype`, b1 (1, hidden), b2 (1, C) and the global
            term g (N, 1, C) in float32.

    Returns:
        ("out",): the output, shaped and typed like `x`. Otherwise
        (N, tiles, 2, width) float32: per tile of `plan.rows` positions,
        the sum and the centred sum of squares of the target.

    Example:

    >>> import jax.numpy as jnp
    >>> from keras_aff.kernels import chain_body, gate_chain
    >>> p = chain_body.make_plan(
    ...     "fuse", 1, ("out",), 20, 16, 4, interpret=True)
    >>> params = [jnp.zeros((16, 16)), jnp.zeros((1, 16)),
    ...           jnp.zeros((16, 16)), jnp.zeros((1, 16)),
    ...           jnp.zeros((2, 1, 16))]
    >>> x, y = jnp.ones((2, 20, 16)), jnp.zeros((2, 20, 16))
    >>> float(gate_chain.run(p, x, y, params).mean())  # y + 0.5 (x - y)
    0.5
    """
    return _pallas(plan, x, y, params)


def _run_fwd(plan, x, y, params):
    return _pallas(plan, x, y, params), (x, y, params)


def _run_bwd(plan, residuals, cotangent):
    x, y, params = residuals
    _, vjp = jax.vjp(functools.partial(reference, plan), x, y, params)
    return vjp(cotangent)


run.defvjp(_run_fwd, _run_bwd)
