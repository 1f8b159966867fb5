"""Which implementation a fusion layer runs: `keras.ops` or the fused kernel.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`MSCAM`, `AFF` and `IAFF` take `implementation="auto"|"xla"|"fused"`;
this module owns the argument: `check_implementation` checks it at
construction and `fused_kernels` picks the path at call time.

- "auto" (the default) and "xla" run the `keras.ops` path, on every
  backend and device: the path that has been verified where it runs.
- "fused" (opt-in) runs the fused Pallas kernel of `keras_aff.kernels`
  (JAX backend, channels_last, one local and one global branch; off GPUs
  in Pallas interpret mode: exact but slow). It has not yet been compiled
  and timed on a GPU. Once `benchmarks/gpu.py` has measured it correct
  and faster there, "auto" will run it on JAX with a GPU where
  `keras_aff.kernels.fused.auto_applies` allows, and the changelog will
  say so.

The kernel imports JAX, so it is imported only from here, only for
"fused".
"""

import keras

from keras_aff import _validation
from keras_aff.layers.arguments import DEFAULT_BRANCHES

IMPLEMENTATIONS = ("auto", "xla", "fused")


def check_implementation(implementation, data_format, branches):
    """`implementation`: one of IMPLEMENTATIONS; "fused" only where the
    kernel runs (Keras 3 on the JAX backend, channels_last, the default
    branches), else a `ValueError` naming what is missing.

    Example:

    >>> from keras_aff.layers import dispatch
    >>> dispatch.check_implementation("AUTO", "channels_last", None)
    'auto'
    """
    implementation = _validation.check_choice(
        "implementation", implementation, IMPLEMENTATIONS
    )
    if implementation != "fused":
        return implementation
    missing = []
    if keras.backend.backend() != "jax":
        missing.append("the Keras 3 layers on the JAX backend")
    if data_format != "channels_last":
        missing.append("data_format='channels_last'")
    if tuple(branches) != DEFAULT_BRANCHES:
        missing.append(f"branches={DEFAULT_BRANCHES}")
    if missing:
        raise ValueError(
            "Expected `implementation` to be 'auto' or 'xla' here: "
            "implementation='fused' needs " + ", ".join(missing) + " "
            f"(backend: {keras.backend.backend()}, data_format="
            f"{data_format!r}, branches={tuple(branches)}). "
            + _validation.received("implementation", "fused")
        )
    return implementation


def fused_kernels(layer):
    """The module with the fused Pallas path (`keras_aff.kernels.fused`)
    when `layer` runs it, else None (the `keras.ops` path): only
    `implementation="fused"` runs it (see the module docstring).

    Example:

    >>> from keras_aff.layers import dispatch
    >>> dispatch.fused_kernels(keras_aff.layers.AFF()) is None
    True
    """
    if layer.implementation != "fused":
        return None
    from keras_aff.kernels import fused

    return fused
