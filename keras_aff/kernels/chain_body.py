"""The plan and the math of the fused MS-CAM gate chain, written once.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`Plan` says what one launch of the kernel of
`keras_aff.kernels.gate_chain` computes and how it is tiled; `body`
evaluates it on one block of rows through an `io` object (loads of x, y
and the weights, and `emit` of the result). The Pallas kernel and its
`jnp` reference both run `body`, so the backward pass (the reference's
VJP) differentiates exactly what the kernel computes.

This module imports JAX; the layers import it only on the JAX backend.
"""

import dataclasses

import jax
import jax.numpy as jnp

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

    >>> from keras_aff.kernels import chain_body
    >>> p = chain_body.make_plan("fuse", 1, ("out",), 49, 2048, 128)
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


def body(plan, io, fori):
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
