"""keras_aff.interop: official PyTorch state dicts <-> Keras layers.

The reference below is an independent NumPy transcription of the official
PyTorch modules' eval-mode forward (open-aff `aff_pytorch/aff_net/
fusion.py`), working on NCHW arrays with torch-layout weights. torch is not
needed.
"""

import re

import numpy as np
import pytest

from keras_aff import interop
from keras_aff import layers
from tests.layers import cases
from tests.layers import reference

EPS = 1e-5  # torch.nn.BatchNorm default
CASES = cases.OFFICIAL_CASES  # MultiAFF has no official counterpart


# ---------------------------------------------------------------------------
# NumPy transcription of the official PyTorch modules (eval mode)
# ---------------------------------------------------------------------------
def _conv(z, sd, p):
    w = sd[f"{p}.weight"]
    out = np.einsum("oi,ni...->no...", w.reshape(w.shape[:2]), z)
    return out + sd[f"{p}.bias"].reshape((1, -1) + (1,) * (z.ndim - 2))


def _bn(z, sd, p):
    shape = (1, -1) + (1,) * (z.ndim - 2)

    def g(name):
        return sd[f"{p}.{name}"].reshape(shape)

    return (z - g("running_mean")) / np.sqrt(g("running_var") + EPS) * g(
        "weight"
    ) + g("bias")


def _local_att(z, sd, p):  # Conv, BN, ReLU, Conv, BN
    z = np.maximum(_bn(_conv(z, sd, f"{p}.0"), sd, f"{p}.1"), 0.0)
    return _bn(_conv(z, sd, f"{p}.3"), sd, f"{p}.4")


def _global_att(z, sd, p):  # AdaptiveAvgPool(1), Conv, BN, ReLU, Conv, BN
    z = z.mean(axis=tuple(range(2, z.ndim)), keepdims=True)
    z = np.maximum(_bn(_conv(z, sd, f"{p}.1"), sd, f"{p}.2"), 0.0)
    return _bn(_conv(z, sd, f"{p}.4"), sd, f"{p}.5")


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def torch_ms_cam(sd, x):
    wei = _sigmoid(
        _local_att(x, sd, "local_att") + _global_att(x, sd, "global_att")
    )
    return x * wei


def torch_aff(sd, x, residual):
    xa = x + residual
    xl = _local_att(xa, sd, "local_att")
    xg = _global_att(xa, sd, "global_att")
    wei = _sigmoid(xl + xg)
    return 2 * x * wei + 2 * residual * (1 - wei)


def torch_iaff(sd, x, residual, second_global="global_att2"):
    """second_global="global_att" is the official code's forward (bug:
    the second gate reuses the first global branch)."""
    xa = x + residual
    wei = _sigmoid(
        _local_att(xa, sd, "local_att") + _global_att(xa, sd, "global_att")
    )
    xi = x * wei + residual * (1 - wei)
    wei2 = _sigmoid(
        _local_att(xi, sd, "local_att2") + _global_att(xi, sd, second_global)
    )
    return x * wei2 + residual * (1 - wei2)


_PREFIXES = {
    "MSCAM": ("local_att", "global_att"),
    "AFF": ("local_att", "global_att"),
    "IAFF": ("local_att", "global_att", "local_att2", "global_att2"),
}
_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


def random_state_dict(kind, channels=16, inter=4, spatial_rank=2, seed=0):
    """A state dict shaped like the official module's `state_dict()`, in
    its key order (Sequential indices: local 0 conv, 1 BN, 3 conv, 4 BN;
    global 1 conv, 2 BN, 4 conv, 5 BN)."""
    rng = np.random.default_rng(seed)
    ones = (1,) * spatial_rank
    sd = {}
    for p in _PREFIXES[kind]:
        idx = (0, 1, 3, 4) if p.startswith("local") else (1, 2, 4, 5)
        convs = ((inter, channels), (channels, inter))
        for (conv, bn), (n_out, n_in) in zip((idx[:2], idx[2:]), convs):
            w = rng.normal(0, 0.5, (n_out, n_in) + ones)
            sd[f"{p}.{conv}.weight"] = w.astype("float32")
            sd[f"{p}.{conv}.bias"] = rng.normal(0, 0.3, n_out).astype("f4")
            sd[f"{p}.{bn}.weight"] = rng.uniform(0.5, 1.5, n_out).astype("f4")
            sd[f"{p}.{bn}.bias"] = rng.normal(0, 0.3, n_out).astype("f4")
            sd[f"{p}.{bn}.running_mean"] = rng.normal(0, 0.3, n_out).astype(
                "f4"
            )
            sd[f"{p}.{bn}.running_var"] = rng.uniform(0.5, 2, n_out).astype(
                "f4"
            )
            sd[f"{p}.{bn}.num_batches_tracked"] = np.array(7, np.int64)
    return sd


class FakeTensor:
    """Duck-types a torch tensor: `.detach().cpu().numpy()`."""

    def __init__(self, value):
        self._value = np.asarray(value)
        self.calls = []

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self._value.copy()


def _nchw(shape, seed):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _keras_call(layer, args):
    """Calls a layer on NCHW arrays; returns NCHW."""
    if layer.data_format == "channels_last":
        args = [np.moveaxis(a, 1, -1) for a in args]
    out = cases.to_numpy(layer(args if len(args) == 2 else args[0]))
    if layer.data_format == "channels_last":
        out = np.moveaxis(out, -1, 1)
    return out


# ---------------------------------------------------------------------------
# Parity with the official PyTorch forward
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
@pytest.mark.parametrize("spatial_rank", [2, 1])
def test_aff_reproduces_official_pytorch_forward(data_format, spatial_rank):
    sd = random_state_dict("AFF", spatial_rank=spatial_rank, seed=1)
    layer = layers.AFF(
        reduction_ratio=4, output_scale=2.0, data_format=data_format
    )
    interop.load_torch_state_dict(layer, sd)  # unbuilt: built from sd
    shape = (3, 16) + (5, 7)[:spatial_rank]
    x, residual = _nchw(shape, 2), _nchw(shape, 3)
    want = torch_aff(sd, x.astype("f8"), residual.astype("f8"))
    got = _keras_call(layer, [x, residual])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Sensitive to which input is x: swapping them changes the output.
    swapped = torch_aff(sd, residual.astype("f8"), x.astype("f8"))
    assert np.max(np.abs(swapped - want)) > 1e-2


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_iaff_reproduces_corrected_pytorch_forward(data_format):
    sd = random_state_dict("IAFF", seed=4)
    layer = layers.IAFF(reduction_ratio=4, data_format=data_format)
    interop.load_torch_state_dict(layer, sd)
    x, residual = _nchw((2, 16, 6, 5), 5), _nchw((2, 16, 6, 5), 6)
    want = torch_iaff(sd, x.astype("f8"), residual.astype("f8"))
    got = _keras_call(layer, [x, residual])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    buggy = torch_iaff(sd, x.astype("f8"), residual.astype("f8"), "global_att")
    assert np.max(np.abs(buggy - want)) > 1e-3


def test_iaff_can_reproduce_the_official_global_att_bug():
    sd = random_state_dict("IAFF", seed=7)
    layer = interop.load_torch_state_dict(
        layers.IAFF(reduction_ratio=4), sd, iaff_second_global="global_att"
    )
    x, residual = _nchw((2, 16, 6, 5), 8), _nchw((2, 16, 6, 5), 9)
    want = torch_iaff(sd, x.astype("f8"), residual.astype("f8"), "global_att")
    np.testing.assert_allclose(
        _keras_call(layer, [x, residual]), want, rtol=1e-5, atol=1e-5
    )
    # global_att2 is unused then: a checkpoint may even lack it.
    no_att2 = {k: v for k, v in sd.items() if not k.startswith("global_att2")}
    again = interop.load_torch_state_dict(
        layers.IAFF(reduction_ratio=4), no_att2, iaff_second_global="global_att"
    )
    np.testing.assert_allclose(
        _keras_call(again, [x, residual]), want, rtol=1e-5, atol=1e-5
    )


def test_ms_cam_reproduces_official_pytorch_forward():
    sd = random_state_dict("MSCAM", channels=12, inter=3, seed=10)
    layer = interop.load_torch_state_dict(layers.MSCAM(reduction_ratio=4), sd)
    x = _nchw((2, 12, 5, 5), 11)
    want = torch_ms_cam(sd, x.astype("f8"))
    np.testing.assert_allclose(
        _keras_call(layer, [x]), want, rtol=1e-5, atol=1e-5
    )


def test_rank_5_conv3d_state_dict():
    sd = random_state_dict("AFF", channels=8, inter=2, spatial_rank=3)
    layer = interop.load_torch_state_dict(
        layers.AFF(reduction_ratio=4, output_scale=2.0), sd
    )
    assert layer.weights[0].shape == (1, 1, 1, 8, 2)
    x, residual = _nchw((2, 8, 3, 4, 2), 1), _nchw((2, 8, 3, 4, 2), 2)
    want = torch_aff(sd, x.astype("f8"), residual.astype("f8"))
    np.testing.assert_allclose(
        _keras_call(layer, [x, residual]), want, rtol=1e-5, atol=1e-5
    )


# ---------------------------------------------------------------------------
# Round trip, formats, values
# ---------------------------------------------------------------------------
def test_round_trip(case):
    src = case.cls(reduction_ratio=4)
    case.build(src, (None, 6, 5, 16))
    reference.randomize(src, seed=3)
    sd = interop.to_torch_state_dict(src)
    want_keys = list(random_state_dict(case.name).keys())
    assert list(sd.keys()) == want_keys
    assert sd["local_att.0.weight"].shape == (4, 16, 1, 1)
    assert sd["local_att.3.weight"].shape == (16, 4, 1, 1)
    assert sd["global_att.5.running_var"].shape == (16,)
    assert sd["local_att.1.num_batches_tracked"].dtype == np.int64
    assert all(v.dtype == np.float32 for k, v in sd.items() if "num_b" not in k)
    # Conv kernel layout: torch (out, in, 1, 1) <-> Keras (1, 1, in, out).
    kernel = reference.weights_by_path(src)[
        "attention"
        + ("1" if case.num_gates == 2 else "")
        + "/global/conv2/kernel"
    ]
    np.testing.assert_array_equal(
        sd["global_att.4.weight"][:, :, 0, 0], kernel[0, 0].T
    )
    dst = case.cls(reduction_ratio=4, data_format="channels_first")
    interop.load_torch_state_dict(dst, sd)
    for a, b in zip(src.weights, dst.weights):
        np.testing.assert_array_equal(cases.to_numpy(a), cases.to_numpy(b))
    back = interop.to_torch_state_dict(dst)
    assert list(back) == list(sd)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k])


def test_torch_like_tensors_are_read_by_duck_typing():
    sd = random_state_dict("AFF", seed=12)
    fake = {k: FakeTensor(v) for k, v in sd.items()}
    a = interop.load_torch_state_dict(layers.AFF(output_scale=2.0), fake)
    b = interop.load_torch_state_dict(layers.AFF(output_scale=2.0), sd)
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(cases.to_numpy(va), cases.to_numpy(vb))


def test_prefix_selects_a_submodule():
    # LAION-CLAP style: the fusion block inside a bigger model.
    sd = random_state_dict("AFF", seed=13)
    big = {f"audio_branch.fusion_model.{k}": v for k, v in sd.items()}
    big["audio_branch.conv.weight"] = np.zeros((3, 3))
    layer = interop.load_torch_state_dict(
        layers.AFF(output_scale=2.0), big, prefix="audio_branch.fusion_model."
    )
    np.testing.assert_array_equal(
        interop.to_torch_state_dict(layer)["global_att.2.running_mean"],
        sd["global_att.2.running_mean"],
    )


def test_mixed_precision_layer_keeps_float32_variables():
    sd = {
        k: v.astype("float64") if v.dtype != np.int64 else v
        for k, v in random_state_dict("AFF", seed=14).items()
    }
    layer = interop.load_torch_state_dict(
        layers.AFF(output_scale=2.0, dtype="mixed_float16"), sd
    )
    assert all(v.dtype == "float32" for v in layer.weights)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
def test_missing_unexpected_and_mis_shaped_keys_in_one_error():
    layer = layers.AFF(output_scale=2.0)
    layers_sd = random_state_dict("AFF", seed=15)
    interop.load_torch_state_dict(layer, layers_sd)
    before = [cases.to_numpy(v).copy() for v in layer.weights]
    sd = random_state_dict("AFF", seed=16)
    del sd["global_att.2.running_var"]
    del sd["local_att.3.bias"]
    sd["local_att.5.weight"] = np.zeros(16, "float32")
    sd["local_att.4.weight"] = np.zeros(8, "float32")
    sd["global_att.1.weight"] = np.zeros((4, 16), "float32")
    with pytest.raises(ValueError) as info:
        interop.load_torch_state_dict(layer, sd)
    msg = str(info.value)
    assert (
        "missing keys: ['global_att.2.running_var', 'local_att.3.bias']" in msg
    )
    assert "unexpected keys: ['local_att.5.weight']" in msg
    assert "local_att.4.weight: expected shape (16,), got (8,)" in msg
    assert (
        "global_att.1.weight: expected shape (4, 16, 1, 1), got (4, 16)" in msg
    )
    assert "nothing was assigned" in msg
    assert msg.endswith(f"Received: state_dict with {len(sd)} keys")
    # Nothing was assigned.
    for a, b in zip(before, layer.weights):
        np.testing.assert_array_equal(a, cases.to_numpy(b))


def test_use_bias_false_rejects_conv_biases():
    sd = random_state_dict("MSCAM", seed=17)
    conv_biases = sorted(
        k for k in sd if k.endswith(".bias") and sd[k[:-4] + "weight"].ndim > 1
    )
    assert len(conv_biases) == 4
    with pytest.raises(
        ValueError, match="unexpected keys: " + re.escape(str(conv_biases))
    ):
        interop.load_torch_state_dict(layers.MSCAM(use_bias=False), sd)
    no_bias = {k: v for k, v in sd.items() if k not in conv_biases}
    layer = interop.load_torch_state_dict(layers.MSCAM(use_bias=False), no_bias)
    assert list(interop.to_torch_state_dict(layer)) == list(no_bias)


def test_unsupported_branches():
    with pytest.raises(
        ValueError,
        match=r"supports only the official layout "
        r"branches=\('local', 'global'\).*Received: "
        r"branches=\('global', 'global'\)$",
    ):
        interop.load_torch_state_dict(
            layers.AFF(branches=("global", "global")),
            random_state_dict("AFF"),
        )
    layer = layers.MSCAM(branches=("local", "local"))
    layer.build((None, 4, 4, 8))
    with pytest.raises(
        ValueError,
        match=r"`to_torch_state_dict` supports "
        r"only.*Received: branches=\('local', 'local'\)$",
    ):
        interop.to_torch_state_dict(layer)


def test_not_a_keras_aff_layer():
    import keras

    with pytest.raises(
        TypeError,
        match=r"expects a keras_aff\.layers MSCAM, "
        r"AFF or IAFF layer \(Keras 3\)\. Received: layer=.*"
        r"\(of type Dense\)$",
    ):
        interop.to_torch_state_dict(keras.layers.Dense(2))
    with pytest.raises(TypeError, match=r"of type dict\)$"):
        interop.load_torch_state_dict({}, random_state_dict("AFF"))


def test_reduction_ratio_mismatch_names_the_ratios_that_work():
    sd = random_state_dict("AFF", channels=16, inter=4)
    with pytest.raises(
        ValueError,
        match=r"has reduction_ratio=2, so 16 "
        r"channels give 8 hidden channels, but the state dict "
        r"has 4 .*Use reduction_ratio in \[4\]\. "
        r"Received: reduction_ratio=2$",
    ):
        interop.load_torch_state_dict(layers.AFF(reduction_ratio=2), sd)


def test_built_layer_with_other_channels_lists_every_key():
    layer = layers.AFF()
    layer.build([(None, 4, 4, 8)] * 2)
    with pytest.raises(
        ValueError,
        match=r"8 channels, 2 hidden.*mis-shaped "
        r"keys: local_att\.0\.weight: expected shape "
        r"\(2, 8, 1, 1\), got \(4, 16, 1, 1\);",
    ):
        interop.load_torch_state_dict(layer, random_state_dict("AFF"))


def test_unbuilt_layer_needs_a_conv_weight_to_infer_its_shape():
    sd = random_state_dict("AFF")
    del sd["local_att.0.weight"]
    with pytest.raises(
        ValueError,
        match=r"is not built and its input shape "
        r"cannot be inferred.*Received: local_att\.0\.weight "
        r"shape=None$",
    ):
        interop.load_torch_state_dict(layers.AFF(), sd)


def test_unbuilt_layer_cannot_be_exported():
    with pytest.raises(
        ValueError,
        match=r"is not built.*Received: "
        r"layer\.built=False$",
    ):
        interop.to_torch_state_dict(layers.IAFF())


def test_bad_arguments():
    sd = random_state_dict("IAFF")
    with pytest.raises(
        ValueError,
        match=r"Expected `iaff_second_global` to "
        r"be one of \('global_att2', 'global_att'\)\. "
        r"Received: iaff_second_global='global_att3'$",
    ):
        interop.load_torch_state_dict(
            layers.IAFF(), sd, iaff_second_global="global_att3"
        )
    with pytest.raises(TypeError, match=r"Received: prefix=3 "):
        interop.load_torch_state_dict(layers.IAFF(), sd, prefix=3)
