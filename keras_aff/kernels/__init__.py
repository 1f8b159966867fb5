"""Fused kernels for the fusion layers (JAX backend only).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

- `keras_aff.kernels.chain_body`: what one launch computes (`Plan`) and
  the math, written once for the kernel and its reference.
- `keras_aff.kernels.gate_chain`: the MS-CAM gate chain of MSCAM, AFF and
  IAFF as one Pallas kernel per tile of positions, with its `jnp`
  reference and a `jax.custom_vjp`.
- `keras_aff.kernels.fused`: the layers' fused path on top of it
  (`implementation="fused"`, or "auto" on a GPU): BatchNorm folding or
  batch statistics, the moving-statistics update, the global branch.

These modules import JAX. The layers import them only on the JAX backend
(`keras_aff.layers.dispatch`); this package's `__init__` imports nothing.
"""
