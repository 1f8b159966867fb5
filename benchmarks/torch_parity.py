"""keras_aff against PyTorch modules laid out as the official PyTorch port.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The unit tests check `keras_aff.interop` against an independent NumPy
implementation, so that CI never needs torch. This script closes the loop
with real PyTorch where torch is installed (`pip install torch`): it builds
MS-CAM, AFF and iAFF as `torch.nn` modules with the official port's module
layout and state-dict keys (`local_att = Sequential(Conv, BN, ReLU, Conv,
BN)`, `global_att = Sequential(AdaptiveAvgPool, Conv, BN, ReLU, Conv, BN)`,
AFF output `2 * (x * w + y * (1 - w))`, and for iAFF both the official
second gate that reuses `global_att` and the corrected one with
`global_att2`), gives every parameter and BatchNorm statistic random
values, and measures, per case:

- `inference`: max |keras - torch| in eval mode, after
  `load_torch_state_dict(layer, module.state_dict())` (torch tensors
  passed as they are), channels_last and channels_first;
- `round_trip`: `to_torch_state_dict(layer)` loaded into a fresh module
  with `strict=True`, max |torch - torch'|;
- `training`: one training-mode call on both sides, max |output
  difference| and the difference of the updated BatchNorm moving
  statistics. Known difference: PyTorch updates `running_var` with the
  unbiased batch variance (n / (n - 1)), Keras (like MXNet, whose code
  trained the paper's networks) with the biased one, where n is the number
  of values per channel (the batch size in the global branch). Both are
  reported, the unbiased-corrected difference too.

Prints JSON (and writes it with `--out`). Runs on any Keras backend; with
`--device cuda` torch runs on the GPU. GPUs from Ampere on compute float32
convolutions in TF32 by default on both sides (about 1e-3 apart, measured
on an H100); `--exact-float32` turns TF32 off on both.

Example:

    pip install torch
    python benchmarks/torch_parity.py
    KERAS_BACKEND=jax python benchmarks/torch_parity.py --device cuda
    KERAS_BACKEND=jax python benchmarks/torch_parity.py --device cuda \\
        --exact-float32
"""

import argparse
import json
import os
import platform
import sys

import numpy as np

# case -> (torch module, its kwargs, Keras layer, its kwargs,
#          `iaff_second_global` for the loader)
CASES = {
    "MSCAM": ("MSCAM", {}, "MSCAM", {}, None),
    "AFF (official, x2)": ("AFF", {}, "AFF", {"output_scale": 2.0}, None),
    "iAFF (official port, global_att reused)": (
        "IAFF",
        {"reuse_global_att": True},
        "IAFF",
        {},
        "global_att",
    ),
    "iAFF (global_att2, the paper)": ("IAFF", {}, "IAFF", {}, "global_att2"),
}


def torch_modules(torch):
    """MS_CAM, AFF and iAFF as `torch.nn` modules with the official port's
    layout and state-dict keys."""
    nn = torch.nn

    def branch(channels, inter, pooled, dims):
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
        bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
        pool = {
            1: nn.AdaptiveAvgPool1d,
            2: nn.AdaptiveAvgPool2d,
            3: nn.AdaptiveAvgPool3d,
        }[dims]
        layers = [
            conv(channels, inter, 1),
            bn(inter),
            nn.ReLU(),
            conv(inter, channels, 1),
            bn(channels),
        ]
        return nn.Sequential(*([pool(1)] if pooled else []), *layers)

    class Gated(nn.Module):
        def __init__(self, channels, r, gates, dims):
            super().__init__()
            inter = channels // r
            self.local_att = branch(channels, inter, False, dims)
            self.global_att = branch(channels, inter, True, dims)
            if gates == 2:
                self.local_att2 = branch(channels, inter, False, dims)
                self.global_att2 = branch(channels, inter, True, dims)

        def gate(self, z, local, glob):
            return torch.sigmoid(local(z) + glob(z))

    class MSCAM(Gated):
        def __init__(self, channels, r, dims=2):
            super().__init__(channels, r, 1, dims)

        def forward(self, x):
            return x * self.gate(x, self.local_att, self.global_att)

    class AFF(Gated):
        def __init__(self, channels, r, dims=2):
            super().__init__(channels, r, 1, dims)

        def forward(self, x, y):
            w = self.gate(x + y, self.local_att, self.global_att)
            return 2 * x * w + 2 * y * (1 - w)

    class IAFF(Gated):
        def __init__(self, channels, r, reuse_global_att=False, dims=2):
            super().__init__(channels, r, 2, dims)
            self.reuse_global_att = reuse_global_att

        def forward(self, x, y):
            w1 = self.gate(x + y, self.local_att, self.global_att)
            xi = x * w1 + y * (1 - w1)
            second_global = (
                self.global_att if self.reuse_global_att else self.global_att2
            )
            w2 = self.gate(xi, self.local_att2, second_global)
            return x * w2 + y * (1 - w2)

    return MSCAM, AFF, IAFF


def randomize(module, torch, seed):
    """Random weights, biases and BatchNorm statistics (positive
    variances), so that no term of the math is trivially 0 or 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            values = torch.randn(tensor.shape, generator=g) * 0.5
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            tensor.copy_(values)


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, "float64") - b)))


def run_case(case, torch, device, dims=2, batch=8, size=12, channels=32):
    import keras

    import keras_aff
    from keras_aff.interop import load_torch_state_dict
    from keras_aff.interop import to_torch_state_dict

    torch_name, torch_kwargs, keras_name, keras_kwargs, second_global = CASES[
        case
    ]
    torch_cls = dict(zip(("MSCAM", "AFF", "IAFF"), torch_modules(torch)))[
        torch_name
    ]
    r = 4

    def make_torch():
        return torch_cls(channels, r, dims=dims, **torch_kwargs)

    def make_keras(fmt):
        layer_cls = getattr(keras_aff.layers, keras_name)
        return layer_cls(reduction_ratio=r, data_format=fmt, **keras_kwargs)

    load_kwargs = {"iaff_second_global": second_global} if second_global else {}
    two_inputs = case != "MSCAM"

    module = make_torch()
    randomize(module, torch, seed=0)
    before = {k: v.numpy().copy() for k, v in module.state_dict().items()}
    module = module.to(device).eval()
    rng = np.random.default_rng(1)
    spatial = (size,) * dims
    x = rng.normal(size=(batch, channels, *spatial)).astype("float32")
    y = rng.normal(size=(batch, channels, *spatial)).astype("float32")
    tx, ty = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    args = (tx, ty) if two_inputs else (tx,)
    with torch.no_grad():
        expected = module(*args).cpu().numpy().astype("float64")

    # channels_first at the layer's boundary and channels_last.
    to_last = (0, *range(2, dims + 2), 1)
    to_first = (0, dims + 1, *range(1, dims + 1))
    result = {}
    layers = {}
    for fmt in ("channels_last", "channels_first"):
        layer = make_keras(fmt)
        # torch tensors go in as they are (on the GPU too): the loader
        # reads them with .detach().cpu().numpy().
        load_torch_state_dict(layer, module.state_dict(), **load_kwargs)
        layers[fmt] = layer
        if fmt == "channels_last":
            inputs = [x.transpose(to_last), y.transpose(to_last)]
        else:
            inputs = [x, y]
        inputs = inputs if two_inputs else inputs[0]
        out = keras.ops.convert_to_numpy(layer(inputs, training=False))
        if fmt == "channels_last":
            out = out.transpose(to_first)
        result[f"inference_{fmt}"] = _max_diff(out, expected)

    # Round trip: Keras -> official state dict -> a fresh module.
    fresh = make_torch()
    # (With the official port's iAFF, global_att2 is written but unused.)
    sd = to_torch_state_dict(layers["channels_last"])
    fresh.load_state_dict(
        {k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()},
        strict=True,
    )
    fresh = fresh.to(device).eval()
    with torch.no_grad():
        again = fresh(*args).cpu().numpy()
    result["round_trip"] = _max_diff(again, expected)

    # Training mode: batch statistics in the output, moving statistics
    # updated once (PyTorch momentum 0.1 = Keras momentum 0.9).
    layer = layers["channels_last"]
    module.train()
    with torch.no_grad():
        expected_train = module(*args).cpu().numpy()
    inputs = [x.transpose(to_last), y.transpose(to_last)]
    out = layer(inputs if two_inputs else inputs[0], training=True)
    out = keras.ops.convert_to_numpy(out).transpose(to_first)
    result["training_output"] = _max_diff(out, expected_train)
    after = to_torch_state_dict(layer)
    torch_after = {
        k: v.detach().cpu().numpy() for k, v in module.state_dict().items()
    }
    if second_global == "global_att":
        # The official port updates global_att twice per call (it runs in
        # both gates); Keras updates its two copies once each.
        names = [k for k in after if not k.startswith("global_att")]
    else:
        names = list(after)
    mean_diff = max(
        _max_diff(after[k], torch_after[k])
        for k in names
        if k.endswith("running_mean")
    )
    var_keys = [k for k in names if k.endswith("running_var")]
    var_diff = max(_max_diff(after[k], torch_after[k]) for k in var_keys)
    # Undo the unbiased correction on the torch side: running_var =
    # 0.9 * old + 0.1 * var * n / (n - 1), with n values per channel.
    corrected = 0.0
    for k in var_keys:
        n = batch if k.startswith("global") else batch * size**dims
        biased = before[k] * 0.9 + (torch_after[k] - before[k] * 0.9) * (
            (n - 1) / n
        )
        corrected = max(corrected, _max_diff(after[k], biased))
    result["training_running_mean"] = mean_diff
    result["training_running_var"] = var_diff
    result["training_running_var_biased_corrected"] = corrected
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="keras_aff against PyTorch modules laid out as the "
        "official PyTorch port (needs torch)."
    )
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument(
        "--exact-float32",
        action="store_true",
        help="turn TF32 off on both sides (GPUs from Ampere on use it for "
        "float32 convolutions by default)",
    )
    parser.add_argument("--out", default=None, help="also write JSON here")
    args = parser.parse_args(argv)
    if args.exact_float32:
        # Before Keras (and so JAX / TensorFlow) is imported.
        os.environ["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"
        os.environ["NVIDIA_TF32_OVERRIDE"] = "0"
    try:
        import torch
    except ImportError:
        parser.error(
            "This script compares against PyTorch; install it first "
            "(`pip install torch`)."
        )
    import keras

    import keras_aff

    if args.exact_float32:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_tensor_float_32_execution(False)
    torch.manual_seed(0)
    results = {}
    for case in CASES:
        results[case] = run_case(case, torch, args.device)
    results["AFF (official, x2), Conv1d"] = run_case(
        "AFF (official, x2)", torch, args.device, dims=1, size=20
    )
    results["iAFF (global_att2, the paper), Conv3d"] = run_case(
        "iAFF (global_att2, the paper)", torch, args.device, dims=3, size=5
    )
    report = {
        "check": "max |keras_aff - torch| (float32), random weights and "
        "BatchNorm statistics, batch 8, 32 channels, r=4",
        "command": "python benchmarks/torch_parity.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "keras_backend": keras.backend.backend(),
        "torch_device": args.device,
        "exact_float32": args.exact_float32,
        "versions": {
            "keras_aff": keras_aff.__version__,
            "keras": keras.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
