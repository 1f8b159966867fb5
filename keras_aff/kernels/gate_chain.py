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

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

try:  # JAX 0.10 and 0.11: the Triton-specific masked load and store
    from jax.experimental.pallas import triton as pltriton
except ImportError:  # pragma: no cover - a JAX without the Triton backend
    pltriton = None

# Elements of one (rows, channels) block held in registers: the tile of
# hidden activations (rows, hidden) and each (rows, chunk) slice of x / y.
BLOCK_ELEMENTS = 8192
MIN_DIM = 16  # Triton dots need every dimension >= 16
MAX_ROWS = 128
MAX_CHUNK = 256


def _pow2_floor(n):
    return 1 << (max(int(n), 1).bit_length() - 1)


def _pow2_ceil(n):
    return 1 << max(int(n) - 1, 0).bit_length()


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one kernel launch computes, and how it is tiled (hashable).

    Attributes:
        kind: "mscam" (`x * w`) or "fuse" (`y + w * (x - y)`).
        gates: number of chained gates whose parameters are passed.
        target: ("out",), ("sum",), ("z1", j) or ("z2", j).
        positions, channels, hidden: P, C and the padded c (a power of 2).
        rows, chunk: tile height and channel chunk (powers of 2).
        output_scale: multiplies the "out" target.
        dot_dtype: dtype of the matmul operands.
        precision: `lax.Precision` of the matmuls (None: the default).
        interpret: Pallas interpret mode (off GPUs).
    """

    kind: str
    gates: int
    target: tuple
    positions: int
    channels: int
    hidden: int
    rows: int
    chunk: int
    output_scale: float
    dot_dtype: str
    precision: object
    interpret: bool

    @property
    def chunks(self):
        return self.channels // self.chunk

    @property
    def tiles(self):
        return -(-self.positions // self.rows)

    @property
    def gates_used(self):
        if self.target[0] in ("z1", "z2"):
            return self.target[1] + 1
        return self.gates

    @property
    def stats_width(self):
        return self.hidden if self.target[0] == "z1" else self.channels


def make_plan(
    kind, gates, target, positions, channels, inter_channels, **options
):
    """A `Plan` with tiles that fit the register budget.

    Example:

    >>> from keras_aff.kernels import gate_chain
    >>> p = gate_chain.make_plan("fuse", 1, ("out",), 49, 2048, 128)
    >>> p.rows, p.chunk, p.hidden, p.tiles
    (64, 128, 128, 1)
    """
    hidden = max(MIN_DIM, _pow2_ceil(inter_channels))
    rows = _pow2_floor(BLOCK_ELEMENTS // hidden)
    rows = max(MIN_DIM, min(MAX_ROWS, rows, _pow2_ceil(positions)))
    chunk = channels & -channels  # the largest power of 2 dividing C
    chunk = min(chunk, MAX_CHUNK, _pow2_floor(BLOCK_ELEMENTS // rows))
    return Plan(
        kind=kind,
        gates=gates,
        target=tuple(target),
        positions=positions,
        channels=channels,
        hidden=hidden,
        rows=rows,
        chunk=chunk,
        output_scale=float(options.get("output_scale", 1.0)),
        dot_dtype=options.get("dot_dtype", "float32"),
        precision=options.get("precision"),
        interpret=bool(options.get("interpret", False)),
    )


# ---------------------------------------------------------------------------
# The body, shared by the kernel and the reference
# ---------------------------------------------------------------------------
def _dot(plan, a, b):
    return jnp.dot(
        a.astype(plan.dot_dtype),
        b,
        precision=plan.precision,
        preferred_element_type=jnp.float32,
    )


def _weight(plan, io, j, k):
    """The gate-j weight `w` of chunk k, and the blend of chunk k."""
    z2 = _dot(plan, io.hidden[j], io.w2(j, k)) + io.b2(j, k)
    return jax.nn.sigmoid(z2 + io.g(j, k))


def _gate_input(plan, io, j, k):
    x = io.x(k)
    if plan.kind == "mscam":
        return x
    y = io.y(k)
    if j == 0:
        return x + y
    return y + _weight(plan, io, j - 1, k) * (x - y)


def _body(plan, io, fori):
    """Evaluates `plan` on one block of rows through `io` (loads and the
    `emit(k, value)` of the target); `fori(n, fn, init)` loops."""
    rows = io.rows
    for j in range(plan.gates_used):

        def accumulate(k, acc, j=j):
            s = _gate_input(plan, io, j, k)
            return acc + _dot(plan, s, io.w1(j, k))

        zeros = jnp.zeros((rows, plan.hidden), jnp.float32)
        z1 = fori(plan.chunks, accumulate, zeros) + io.b1(j)
        if plan.target == ("z1", j):
            io.emit(0, z1)
            return
        io.hidden.append(jnp.maximum(z1, 0.0))
    last = plan.gates_used - 1

    def finish(k, carry):
        if plan.target == ("z2", last):
            z2 = _dot(plan, io.hidden[last], io.w2(last, k))
            io.emit(k, z2 + io.b2(last, k))
            return carry
        w = _weight(plan, io, last, k)
        x = io.x(k)
        if plan.kind == "mscam":
            value = x * w
        else:
            y = io.y(k)
            value = y + w * (x - y)
        if plan.target == ("out",) and plan.output_scale != 1.0:
            value = value * plan.output_scale
        io.emit(k, value)
        return carry

    fori(plan.chunks, finish, 0)


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
    _body(plan, io, lambda n, fn, init: lax.fori_loop(0, n, fn, init))


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
    >>> from keras_aff.kernels import gate_chain
    >>> p = gate_chain.make_plan("mscam", 1, ("out",), 4, 16, 4)
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
        _body(plan, io, lambda n, fn, init: fn(0, init))
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
        plan: a `Plan` (`make_plan`).
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
    >>> from keras_aff.kernels import gate_chain
    >>> p = gate_chain.make_plan(
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
