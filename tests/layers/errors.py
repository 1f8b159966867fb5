"""C9 as data: every error a fusion layer can raise, one row each.

A row names what the test does and the STABLE part of the message it must
see: the argument in backticks and the received value (`Received:
name=value`), or for call errors the layer's name and what it received.
The wording around them may change without breaking a test.
"""

import re

import keras
import numpy as np
import pytest


def received(name, value_text):
    """A regex matching "`name` ... Received: name=value_text"."""
    return rf"(?s)`{name}`.*Received: {re.escape(name)}={re.escape(value_text)}"


# (id, constructor kwargs, exception, value as the message prints it)
GATE_ARGUMENT_ERRORS = [
    ("ratio_float", {"reduction_ratio": 4.0}, TypeError, "4.0 (of type float)"),
    ("ratio_bool", {"reduction_ratio": True}, TypeError, "True"),
    ("ratio_str", {"reduction_ratio": "4"}, TypeError, "'4'"),
    ("ratio_none", {"reduction_ratio": None}, TypeError, "None"),
    ("ratio_zero", {"reduction_ratio": 0}, ValueError, "0"),
    ("ratio_negative", {"reduction_ratio": -2}, ValueError, "-2"),
    ("use_bias_int", {"use_bias": 1}, TypeError, "1"),
    ("use_bias_none", {"use_bias": None}, TypeError, "None"),
    ("bn_momentum_one", {"bn_momentum": 1.0}, ValueError, "1.0"),
    ("bn_momentum_negative", {"bn_momentum": -0.1}, ValueError, "-0.1"),
    ("bn_momentum_str", {"bn_momentum": "0.9"}, TypeError, "'0.9'"),
    ("bn_momentum_bool", {"bn_momentum": False}, TypeError, "False"),
    ("bn_epsilon_zero", {"bn_epsilon": 0}, ValueError, "0.0"),
    ("bn_epsilon_negative", {"bn_epsilon": -1e-5}, ValueError, "-1e-05"),
    ("bn_epsilon_nan", {"bn_epsilon": float("nan")}, ValueError, "nan"),
    ("bn_epsilon_inf", {"bn_epsilon": float("inf")}, ValueError, "inf"),
    ("bn_epsilon_none", {"bn_epsilon": None}, TypeError, "None"),
    ("bn_synchronized_int", {"bn_synchronized": 1}, TypeError, "1"),
    (
        "kernel_initializer",
        {"kernel_initializer": "nope"},
        ValueError,
        "'nope'",
    ),
    (
        "kernel_regularizer",
        {"kernel_regularizer": "nope"},
        ValueError,
        "'nope'",
    ),
    ("data_format", {"data_format": "NHWC"}, ValueError, "'NHWC'"),
    ("data_format_int", {"data_format": 4}, TypeError, "4"),
    ("branches_str", {"branches": "local"}, TypeError, "'local'"),
    (
        "branches_unknown",
        {"branches": ("local", "spatial")},
        ValueError,
        "('local', 'spatial')",
    ),
    ("branches_one", {"branches": ["local"]}, ValueError, "('local',)"),
    ("use_batch_norm_int", {"use_batch_norm": 0}, TypeError, "0"),
    (
        "implementation_unknown",
        {"implementation": "cuda"},
        ValueError,
        "'cuda'",
    ),
    ("implementation_int", {"implementation": 1}, TypeError, "1"),
    (
        # The kernel is channels_last only, on every backend.
        "implementation_fused_channels_first",
        {"implementation": "fused", "data_format": "channels_first"},
        ValueError,
        "'fused'",
    ),
    (
        "implementation_fused_ablation",
        {"implementation": "fused", "branches": ("global", "global")},
        ValueError,
        "'fused'",
    ),
    (
        "branches_three",
        {"branches": ("local", "global", "local")},
        ValueError,
        "('local', 'global', 'local')",
    ),
]
ALIGN_ARGUMENT_ERRORS = [
    ("align_inputs_int", {"align_inputs": 1}, TypeError, "1"),
    ("align_inputs_none", {"align_inputs": None}, TypeError, "None"),
    (
        "resize_interpolation",
        {"resize_interpolation": "bicubic"},
        ValueError,
        "'bicubic'",
    ),
    ("resize_interpolation_int", {"resize_interpolation": 1}, TypeError, "1"),
]
OUTPUT_SCALE_ERRORS = [
    ("output_scale_zero", {"output_scale": 0}, ValueError, "0.0"),
    ("output_scale_negative", {"output_scale": -2.0}, ValueError, "-2.0"),
    ("output_scale_inf", {"output_scale": float("inf")}, ValueError, "inf"),
    ("output_scale_nan", {"output_scale": float("nan")}, ValueError, "nan"),
    ("output_scale_bool", {"output_scale": True}, TypeError, "True"),
    ("output_scale_str", {"output_scale": "2"}, TypeError, "'2'"),
]


def constructor_errors(case):
    """`pytest.param(kwargs, exception, match)` for every argument error."""
    rows = list(GATE_ARGUMENT_ERRORS)
    if case.has_output_scale:
        rows += OUTPUT_SCALE_ERRORS
    if case.pairwise:
        rows += ALIGN_ARGUMENT_ERRORS
    table = [
        (i, kw, exc, received(next(iter(kw)), value))
        for i, kw, exc, value in rows
    ]
    table.append(("unknown_kwarg", {"ratio": 4}, ValueError, r"\{'ratio': 4\}"))
    if keras.backend.backend() != "jax":  # the fused kernel is JAX only
        table.append(
            (
                "implementation_fused_backend",
                {"implementation": "fused"},
                ValueError,
                received("implementation", "'fused'"),
            )
        )
    if not case.has_output_scale:  # MSCAM has none (1.0: deprecated)
        table.append(
            (
                "output_scale",
                {"output_scale": 2.0},
                ValueError,
                received("output_scale", "2.0"),
            )
        )
    if not case.pairwise:  # MSCAM and MultiAFF do not align their inputs
        table.append(
            (
                "align_inputs",
                {"align_inputs": True},
                ValueError,
                r"\{'align_inputs': True\}",
            )
        )
    return [pytest.param(k, e, m, id=i) for i, k, e, m in table]


def call_errors(case):
    """`pytest.param(fn, ValueError, match)`: `fn()` builds or calls a
    layer named "lay" on inputs it must reject; `match` is the layer's name
    and what it received."""
    x = np.zeros((2, 6, 5, 8), "float32")

    def new(**kwargs):
        return case.cls(name="lay", **kwargs)

    def call(inputs_fn, **kwargs):
        # Layers and inputs are made when the test runs, not at collection.
        return lambda: case.call(new(**kwargs), inputs_fn())

    def built(inputs):
        def fn():
            layer = new()
            case.call(layer, [x, x])
            layer(inputs)

        return fn

    def lay(text):
        return r"(?s)Layer 'lay'.*" + re.escape(text)

    table = [
        ("rank_2", call(lambda: [x[:, 0, 0]] * 2), "input_shape=(2, 8)"),
        (
            "rank_6",
            call(lambda: [np.zeros((2, 6, 5, 8, 1, 8))] * 2),
            "input_shape=(2, 6, 5, 8, 1, 8)",
        ),
        (
            "unknown_channels",
            call(lambda: case.symbolic_inputs((None, 6, 5, None))),
            "input_shape=(None, 6, 5, None)",
        ),
        (
            "unknown_channels_first",
            call(
                lambda: case.symbolic_inputs((None, None, 6, 5)),
                data_format="channels_first",
            ),
            "input_shape=(None, None, 6, 5)",
        ),
        (
            "ratio_too_large",
            call(lambda: [x, x], reduction_ratio=9),
            "reduction_ratio=9 with input_shape=(2, 6, 5, 8)",
        ),
    ]
    if case.num_inputs == 1:
        table.append(("list_of_two", lambda: new()([x, x]), "input_shape="))
    elif case.pairwise:
        table += pair_errors(new, built, x)
    else:
        table += multi_errors(new, x)
    table.append(
        (
            "zero_channels",
            call(lambda: [np.zeros((2, 6, 5, 0), "float32")] * 2),
            "at least one channel",
        )
    )
    rows = [pytest.param(f, ValueError, lay(m), id=i) for i, f, m in table]
    return rows + input_type_errors(case, call, x)


def input_type_errors(case, call, x):
    """`TypeError`s: integer and boolean arrays name the layer and the
    dtype (a symbolic integer input is cast by Keras itself, as for any
    float layer); `from_config` of something that is not a config names
    `config`."""
    rows = [
        ("int_inputs", call(lambda: [x.astype("int32")] * 2), "int32"),
        ("uint8_inputs", call(lambda: [x.astype("uint8")] * 2), "uint8"),
        ("bool_inputs", call(lambda: [x > 0] * 2), "bool"),
    ]
    params = [
        pytest.param(
            f,
            TypeError,
            rf"(?s)Layer 'lay'.*floating-point.*dtype .*{d}",
            id=i,
        )
        for i, f, d in rows
    ]
    params.append(
        pytest.param(
            lambda: case.cls.from_config(None),
            TypeError,
            received("config", "None"),
            id="from_config_none",
        )
    )
    return params


def multi_errors(new, x):
    """Rows for MultiAFF (a list of N >= 2 tensors of one shape)."""

    def built(inputs):
        def fn():
            layer = new()
            layer([x, x, x])
            layer(inputs)

        return fn

    return [
        ("single_tensor", lambda: new()(x), "a single input"),
        ("list_of_one", lambda: new()([x]), "Received: 1 input"),
        (
            "different_shapes",
            lambda: new()([x, x, x[:, :3]]),
            "inputs[0].shape=(2, 6, 5, 8) and inputs[2].shape=(2, 3, 5, 8)",
        ),
        (
            "different_channels",
            lambda: new()([x, x[..., :4]]),
            "inputs[0].shape=(2, 6, 5, 8) and inputs[1].shape=(2, 6, 5, 4)",
        ),
        (
            "different_ranks",
            lambda: new()([x, x[0]]),
            "inputs[0].shape=(2, 6, 5, 8) and inputs[1].shape=(6, 5, 8)",
        ),
        (
            "symbolic_different_shapes",
            lambda: new()([keras.Input((6, 5, 8)), keras.Input((6, 7, 8))]),
            "inputs[0].shape=(None, 6, 5, 8) and "
            "inputs[1].shape=(None, 6, 7, 8)",
        ),
        ("built_single_tensor", built(x), "Received: 1 input"),
        ("built_two_of_three", built([x, x]), "built for 3 inputs"),
        (
            "built_different_shapes",
            built([x, x, x[:, :1, :1]]),
            "inputs[2].shape=(2, 1, 1, 8)",
        ),
    ]


def pair_errors(new, built, x):
    """Rows for the layers that take `[x, y]`."""
    return [
        ("single_tensor", lambda: new()(x), "a single input"),
        ("list_of_one", lambda: new()([x]), "Received: 1 input"),
        ("list_of_three", lambda: new()([x, x, x]), "Received: 3 input"),
        (
            "different_shapes",
            lambda: new()([x, x[:, :3]]),
            "x.shape=(2, 6, 5, 8) and y.shape=(2, 3, 5, 8)",
        ),
        (
            "different_channels",
            lambda: new()([x, x[..., :4]]),
            "x.shape=(2, 6, 5, 8) and y.shape=(2, 6, 5, 4)",
        ),
        (
            "different_ranks",
            lambda: new()([x, x[0]]),
            "x.shape=(2, 6, 5, 8) and y.shape=(6, 5, 8)",
        ),
        (
            "symbolic_different_shapes",
            lambda: new()([keras.Input((6, 5, 8)), keras.Input((6, 7, 8))]),
            "x.shape=(None, 6, 5, 8) and y.shape=(None, 6, 7, 8)",
        ),
        ("built_single_tensor", built(x), "Received: 1 input"),
        ("built_list_of_three", built([x, x, x]), "Received: 3 input"),
        (
            "built_different_shapes",
            built([x, x[:, :1, :1]]),
            "x.shape=(2, 6, 5, 8) and y.shape=(2, 1, 1, 8)",
        ),
    ]
