"""Which implementation a fusion layer runs: `keras.ops` or the fused kernel.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`MSCAM`, `AFF` and `IAFF` take `implementation="auto"|"xla"|"fused"`.
`check_fused_support` rejects "fused" where the kernel cannot run (at
construction); `fused_kernels` picks the path at call time. The kernel
(`keras_aff.kernels`) imports JAX, so it is imported only from here and
only on the JAX backend.
"""

import keras

from keras_aff import _validation
from keras_aff.layers import kit as kit_module
from keras_aff.layers.gate import DEFAULT_BRANCHES

IMPLEMENTATIONS = ("auto", "xla", "fused")


def check_fused_support(kit, arguments):
    """`implementation="fused"` runs the Pallas kernel of
    `keras_aff.kernels`: Keras 3 on the JAX backend, channels_last, one
    local and one global branch. Anything else is a `ValueError` naming
    what is missing ("auto" falls back to `keras.ops` there instead).

    Example:

    >>> from keras_aff.layers import dispatch, kit
    >>> dispatch.check_fused_support(kit.KERAS3, {"implementation": "xla"})
    """
    if arguments["implementation"] != "fused":
        return
    missing = []
    if kit is not kit_module.KERAS3 or keras.backend.backend() != "jax":
        missing.append("the Keras 3 layers on the JAX backend")
    if arguments["data_format"] != "channels_last":
        missing.append("data_format='channels_last'")
    if arguments["branches"] != DEFAULT_BRANCHES:
        missing.append(f"branches={DEFAULT_BRANCHES}")
    if missing:
        raise ValueError(
            "Expected `implementation` to be 'auto' or 'xla' here: "
            "implementation='fused' needs " + ", ".join(missing) + " "
            f"(backend: {keras.backend.backend()}, data_format="
            f"{arguments['data_format']!r}, branches="
            f"{arguments['branches']}). "
            + _validation.received("implementation", "fused")
        )


def fused_kernels(layer, x):
    """The module with the fused Pallas path (`keras_aff.kernels.fused`)
    when `layer` runs it on `x`, else None (the `keras.ops` path).

    "fused" always runs it (in Pallas interpret mode off GPUs); "auto"
    runs it on JAX with a GPU when the shapes allow (a static channel
    count that is a multiple of 16); "xla" never does. Imported only
    here, so no other backend ever imports JAX.

    Example:

    >>> from keras_aff.layers import dispatch
    >>> layer = keras_aff.layers.AFF(implementation="xla")
    >>> dispatch.fused_kernels(layer, np.zeros((1, 4, 4, 16))) is None
    True
    """
    choice = layer.implementation
    if choice == "xla":
        return None
    if choice == "auto":
        if (
            layer.kit is not kit_module.KERAS3
            or keras.backend.backend() != "jax"
            or layer.data_format != "channels_last"
            or layer.branches != DEFAULT_BRANCHES
        ):
            return None
        from keras_aff.kernels import fused

        if not fused.auto_applies(x.shape, layer.compute_dtype):
            return None
        return fused
    from keras_aff.kernels import fused

    return fused
