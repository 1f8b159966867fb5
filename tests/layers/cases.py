"""The layers under test, as data: one `Case` per layer class.

A `Case` says what differs between MSCAM, AFF, IAFF and MultiAFF (one, two
or N inputs, one or two gates, a sigmoid or a softmax gate) and computes
the independent NumPy reference for a built layer.
`tests/layers/conftest.py` parametrizes every test that takes a `case`
argument over `CASES`.
"""

import dataclasses

import keras
import numpy as np

from keras_aff import layers
from tests.layers import reference

BACKEND = keras.backend.backend()
SHAPE = (2, 6, 5, 8)  # small: every check runs in well under a second

CONFIG_KEYS = {
    "name",
    "trainable",
    "dtype",
    "reduction_ratio",
    "use_bias",
    "bn_momentum",
    "bn_epsilon",
    "bn_synchronized",
    "kernel_initializer",
    "kernel_regularizer",
    "data_format",
    "branches",
    "use_batch_norm",
    "implementation",
}
ALIGN_KEYS = {"align_inputs", "resize_interpolation"}


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def channels_last(x, data_format):
    """Moves the channel axis of a channels_first array to the end."""
    if data_format == "channels_first":
        return np.moveaxis(x, 1, -1)
    return x


@dataclasses.dataclass(frozen=True)
class Case:
    """What a contract check needs to know about one layer class.

    `num_inputs`: 1 (MSCAM), 2 (AFF, IAFF) or the N a MultiAFF is tested
    with; `multi`: the gate has `num_inputs * C` outputs and a softmax.
    """

    name: str
    cls: type
    num_inputs: int
    num_gates: int
    multi: bool = False

    @property
    def pairwise(self):
        return self.num_inputs == 2

    @property
    def has_output_scale(self):
        return self.num_inputs > 1

    @property
    def gate_outputs(self):
        """Output channels of each branch's last conv, per input channel."""
        return self.num_inputs if self.multi else 1

    @property
    def config_keys(self):
        keys = set(CONFIG_KEYS)
        if self.has_output_scale:
            keys.add("output_scale")
        if self.pairwise:
            keys |= ALIGN_KEYS
        return keys

    def make_inputs(self, shape=SHAPE, seed=0):
        rng = np.random.default_rng(seed)
        n = self.num_inputs
        return [rng.normal(size=shape).astype("float32") for _ in range(n)]

    def pack(self, inputs):
        """The call argument: a list for the fusions, `x` for MSCAM."""
        return list(inputs) if self.num_inputs > 1 else inputs[0]

    def call(self, layer, inputs, **kwargs):
        return layer(self.pack(inputs), **kwargs)

    def symbolic_inputs(self, shape):
        return [keras.Input(batch_shape=shape) for _ in range(self.num_inputs)]

    def build(self, layer, shape):
        layer.build(self.pack([shape] * self.num_inputs))
        return layer

    def closed_form(self, inputs):
        """The output with every last BN zeroed (every gate uniform) and
        `output_scale=num_inputs`: the sum of the inputs (x / 2 for
        MSCAM)."""
        if self.num_inputs == 1:
            return inputs[0] * 0.5
        return sum(inputs[1:], inputs[0])

    def gates(self, layer):
        """The layer's MS-CAM gate sublayers, in order."""
        if self.num_gates == 1:
            return [layer.attention]
        return [layer.attention1, layer.attention2]

    def expected(self, layer, inputs, training=False):
        """The NumPy reference output for `layer` on `inputs` (float64)."""
        config = layer.get_config()
        fmt = config["data_format"]
        w = reference.weights_by_path(layer)
        args = [channels_last(np.asarray(a, np.float64), fmt) for a in inputs]
        common = dict(
            branches=config["branches"],
            epsilon=config["bn_epsilon"],
            training=training,
        )
        if self.name == "MSCAM":
            out = reference.mscam(args[0], w, **common)
        elif self.name == "AFF":
            out = reference.aff(*args, w, config["output_scale"], **common)
        elif self.name == "IAFF":
            out = reference.iaff(*args, w, config["output_scale"], **common)
        else:
            out = reference.multi_aff(args, w, config["output_scale"], **common)
        if fmt == "channels_first":
            out = np.moveaxis(out, -1, 1)
        return out


MSCAM = Case("MSCAM", layers.MSCAM, num_inputs=1, num_gates=1)
AFF = Case("AFF", layers.AFF, num_inputs=2, num_gates=1)
IAFF = Case("IAFF", layers.IAFF, num_inputs=2, num_gates=2)
MULTI_AFF = Case(
    "MultiAFF", layers.MultiAFF, num_inputs=3, num_gates=1, multi=True
)
CASES = (MSCAM, AFF, IAFF, MULTI_AFF)
# The layers with a counterpart in the official code (interop).
OFFICIAL_CASES = (MSCAM, AFF, IAFF)


def non_default_kwargs(case):
    """Every constructor argument set to a non-default value."""
    kwargs = dict(
        reduction_ratio=2,
        use_bias=False,
        bn_momentum=0.8,
        bn_epsilon=1e-3,
        kernel_initializer=keras.initializers.HeNormal(seed=3),
        kernel_regularizer=keras.regularizers.L2(1e-4),
        data_format="channels_first",
        branches=("global", "global"),
        use_batch_norm=False,
        implementation="xla",
        name=f"my_{case.name.lower()}",
    )
    if case.has_output_scale:
        kwargs["output_scale"] = 2.0
    return kwargs
