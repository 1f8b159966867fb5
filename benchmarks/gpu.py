"""Device time of MSCAM/AFF/IAFF and AFF-ResNet-50 on one GPU (JAX).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

One command, under 5 minutes on one H100/H200, JSON and a table out:

    KERAS_BACKEND=jax PYTHONPATH=. python benchmarks/gpu.py \\
        --out benchmarks/results/gpu_h200.json
    python benchmarks/gpu.py --smoke       # tiny shapes, seconds, any CPU

What it measures, and how (the earlier harness timed dispatch and
`predict_on_batch` with host NumPy, not the device):

- Inputs and parameters live on the device before any timing. A layer's
  timed unit is ONE jitted function applying the layer k times, each
  output feeding the next application behind an optimization barrier
  (`_device.chain`); a model's is k dispatches of a jitted step chained
  through its parameters (training) or k dispatches on resident inputs
  (inference), then one wait. Per-call time = unit time / k.
- Once per run, the per-call time of the AFF layer is checked against the
  device busy time that `jax.profiler` records for the same calls.
- Memory bound, same run: `copy` (y = -x over a tensor of the layer's
  size: reads and writes it once). Each layer's achieved bytes/s is given
  with the minimal byte count (tensor passes: MSCAM 3, AFF 5 -- read x and
  y for the mean, read them again and write the output --, IAFF 7, x + y
  3, copy 2) and with XLA's `cost_analysis()` bytes, and as a fraction of
  the copy's bytes/s.
- Layers: MSCAM, AFF, IAFF at the ResNet stage shapes (batch 8; AFF at all
  four, MSCAM and IAFF at 56x56x256 and 14x14x1024), r = 4, float32 and
  bfloat16 (`mixed_bfloat16` layers), `implementation="xla"` and
  `"fused"`, inference and a training step (forward, backward to the
  weights and both inputs, SGD update, BN moving statistics).
- Models: AFF-ResNet-50 against the plain-add ResNet-50-D from the same
  builder, and iAFF-ResNet-50, 224x224, batch 64 and 8, inference and a
  training step (forward, backward, SGD update), float32 and
  mixed_bfloat16, in images/s; AFF-ResNet-50 both with the default
  `implementation="auto"` (the kernel on a GPU) and with "xla".

Work is ordered by priority (the issue's targets first); past `--budget-s`
the rest is listed under "skipped" instead of run.
"""

import argparse
import sys
import time

import _bench
import _device

STAGES = [
    (8, 56, 56, 256),
    (8, 28, 28, 512),
    (8, 14, 14, 1024),
    (8, 7, 7, 2048),
]
CONFIGS = {
    "full": dict(
        layer_shapes={
            "AFF": STAGES,
            "MSCAM": [STAGES[0], STAGES[2]],
            "IAFF": [STAGES[0], STAGES[2]],
        },
        layer_dtypes=("float32", "bfloat16"),
        reduction_ratio=4,
        image_size=224,
        classes=1000,
        batches=(64, 8),
        policies=("mixed_bfloat16", "float32"),
        model_variants=("add", "aff", "aff-xla", "iaff"),
        layer_k=8,
        model_k=8,
        repeats=5,
    ),
    "smoke": dict(
        layer_shapes={"AFF": [(2, 6, 6, 32)], "MSCAM": [], "IAFF": []},
        layer_dtypes=("float32",),
        reduction_ratio=4,
        image_size=32,
        classes=10,
        batches=(2,),
        policies=("float32",),
        model_variants=("add", "aff"),
        layer_k=1,
        model_k=1,
        repeats=1,
    ),
}
MIN_PASSES = {"copy": 2, "x+y": 3, "MSCAM": 3, "AFF": 5, "IAFF": 7}
LAYER_DTYPES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
LR = 1e-3


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------
def _layer_step(layer, name, mode):
    """The step `_device.chain` repeats: inference maps x -> layer(x, y);
    training maps (weights, statistics, x, cotangent) to their next values
    (SGD on the weights, x <- dL/dy, cotangent <- dL/dx)."""
    import jax
    import jax.numpy as jnp

    pair = name != "MSCAM"

    def call(tv, ntv, x, y, training):
        inputs = [x, y] if pair else x
        return layer.stateless_call(tv, ntv, inputs, training=training)

    if mode == "inference":
        return lambda x, y, tv, ntv: call(tv, ntv, x, y, False)[0]

    def loss(tv, x, y, ntv, cot):
        out, new = call(tv, ntv, x, y, True)
        return jnp.sum(out.astype("float32") * cot.astype("float32")), new

    grad = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)

    def train(state, y):
        tv, ntv, x, cot = state
        (g_tv, g_x, g_y), new = grad(tv, x, y, ntv, cot)
        tv = [p - LR * g.astype(p.dtype) for p, g in zip(tv, g_tv)]
        nxt = g_y if pair else x
        return tv, new, nxt.astype(x.dtype), g_x.astype(cot.dtype)

    return train


def _baseline_step(name):
    if name == "copy":
        return lambda x, y: -x
    return lambda x, y: x + y


def layer_jobs(cfg):
    """`_device.Job`s for the layers and the same-shape baselines."""
    import jax
    import jax.numpy as jnp

    from keras_aff import layers

    rng = jax.random.PRNGKey(0)
    jobs = []
    k = cfg["layer_k"]
    for name, shapes in cfg["layer_shapes"].items():
        for shape in shapes:
            for dtype in cfg["layer_dtypes"]:
                policy = LAYER_DTYPES[dtype]
                x, y = jax.random.normal(rng, (2, *shape), dtype)
                base = dict(shape=list(shape), dtype=dtype)
                for b in ("copy", "x+y"):
                    key = ("layer", b, shape, dtype, "-", "inference")
                    if not any(j.key == key for j in jobs):
                        fn = _device.chain(_baseline_step(b), k)
                        meta = dict(base, layer=b, implementation="-")
                        meta["mode"] = "inference"
                        jobs.append(_device.Job(key, fn, (x, y), k, meta))
                weights = None
                for impl in ("fused", "xla"):
                    layer = getattr(layers, name)(
                        reduction_ratio=cfg["reduction_ratio"],
                        implementation=impl,
                        dtype=policy,
                    )
                    layer.build([shape, shape] if name != "MSCAM" else shape)
                    # Both implementations get the same weights, so their
                    # outputs can be compared (`numerics`).
                    weights = weights or (
                        [v.value for v in layer.trainable_variables],
                        [v.value for v in layer.non_trainable_variables],
                    )
                    tv, ntv = weights
                    for mode in ("inference", "train"):
                        step = _layer_step(layer, name, mode)
                        meta = dict(base, layer=name, implementation=impl)
                        meta["mode"] = mode
                        key = ("layer", name, shape, dtype, impl, mode)
                        fn = _device.chain(step, k)
                        if mode == "inference":
                            args = (x, y, tv, ntv)
                        else:
                            cot = jnp.ones_like(x)
                            args = ((tv, ntv, x, cot), y)
                        jobs.append(_device.Job(key, fn, args, k, meta))
    return jobs


def layer_results(jobs, measured):
    """Per-layer rows: ms per call, bytes/s (minimal and XLA), and the
    fraction of the same-shape, same-dtype copy's bytes/s."""
    rows = []
    copy_rate = {}
    for job in jobs:
        if job.key not in measured or job.key[1] != "copy":
            continue
        size = job.args[0].size * job.args[0].dtype.itemsize
        copy_rate[job.key[2:4]] = 2 * size / (measured[job.key][0] / 1e3)
    for job in jobs:
        if job.key not in measured:
            continue
        ms, ms_min = measured[job.key]
        x = job.args[0] if job.meta["mode"] == "inference" else job.args[0][2]
        size = x.size * x.dtype.itemsize
        row = dict(job.meta, ms_per_call=round(ms, 4), min_ms=round(ms_min, 4))
        bound = copy_rate.get(job.key[2:4])
        row["copy_gb_per_s"] = None if bound is None else round(bound / 1e9, 1)
        if job.meta["mode"] == "inference":
            minimal = MIN_PASSES[job.meta["layer"]] * size
            rate = minimal / (ms / 1e3)
            row["bytes_minimal"] = minimal
            row["gb_per_s_minimal"] = round(rate / 1e9, 1)
            row["fraction_of_copy_minimal"] = (
                None if bound is None else round(rate / bound, 3)
            )
            xla_bytes = _device.bytes_per_application(job)
            row["bytes_xla"] = xla_bytes
            if xla_bytes:
                row["gb_per_s_xla_bytes"] = round(xla_bytes / ms / 1e6, 1)
        row["copy_passes_equivalent"] = (
            None if bound is None else round(ms / 1e3 * bound / size, 2)
        )
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
def _build_models(cfg, policy, variants):
    import keras

    from keras_aff import models

    keras.config.set_dtype_policy(policy)
    built = {}
    size = cfg["image_size"]
    for fusion in sorted({v.split("-")[0] for v in variants}):
        keras.utils.set_random_seed(0)
        built[fusion] = models.AFFResNet50(
            fusion=fusion,
            input_shape=(size, size, 3),
            classes=cfg["classes"],
            classifier_activation=None,
        )
    keras.config.set_dtype_policy("float32")
    return built


def _set_implementation(model, implementation):
    from keras_aff import layers

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, (layers.AFF, layers.IAFF, layers.MSCAM)):
            layer.implementation = implementation


def _model_fns(model):
    import jax
    import jax.numpy as jnp

    def infer(tv, ntv, x):
        return model.stateless_call(tv, ntv, x, training=False)[0]

    def loss(tv, ntv, x, labels):
        logits, new = model.stateless_call(tv, ntv, x, training=True)
        logits = logits.astype("float32")
        picked = jnp.take_along_axis(logits, labels[:, None], axis=1)
        nll = jax.nn.logsumexp(logits, axis=1) - picked[:, 0]
        return jnp.mean(nll), new

    grad = jax.grad(loss, has_aux=True)

    def train(state, x, labels):
        tv, ntv = state
        g, new = grad(tv, ntv, x, labels)
        return [p - LR * d.astype(p.dtype) for p, d in zip(tv, g)], new

    return jax.jit(infer), jax.jit(train)


def model_groups(cfg):
    """Yields the `_device.Job`s of the networks, one list per (dtype
    policy, batch), targets first (models are built when first needed)."""
    import jax

    size, k = cfg["image_size"], cfg["model_k"]
    for policy in cfg["policies"]:
        built = _build_models(cfg, policy, cfg["model_variants"])
        for batch in cfg["batches"]:
            jobs = []
            x = jax.random.uniform(
                jax.random.PRNGKey(1), (batch, size, size, 3)
            )
            labels = jax.random.randint(
                jax.random.PRNGKey(2), (batch,), 0, cfg["classes"]
            )
            for variant in cfg["model_variants"]:
                fusion, _, forced = variant.partition("-")
                model = built[fusion]
                infer, train = _model_fns(model)
                tv = [v.value for v in model.trainable_variables]
                ntv = [v.value for v in model.non_trainable_variables]
                for mode in ("inference", "train"):
                    meta = dict(
                        model=model.name,
                        variant=variant,
                        implementation=forced or "auto",
                        batch=batch,
                        dtype_policy=policy,
                        mode=mode,
                    )
                    key = ("model", variant, batch, policy, mode)
                    if mode == "inference":
                        job = _device.Job(key, infer, (tv, ntv, x), k, meta)
                    else:
                        args = ((tv, ntv), x, labels)
                        job = _device.Job(key, train, args, k, meta)
                    job.dispatch = "thread" if mode == "train" else "repeat"
                    job.meta["_model"] = (model, forced or "auto")
                    jobs.append(job)
            yield jobs


def model_results(jobs, measured):
    rows, rate = [], {}
    for job in jobs:
        if job.key not in measured:
            continue
        ms, ms_min = measured[job.key]
        meta = {k: v for k, v in job.meta.items() if not k.startswith("_")}
        images = job.meta["batch"] / (ms / 1e3)
        rate[job.key[1:]] = images
        rows.append(
            dict(meta, ms_per_step=round(ms, 3), images_per_s=round(images, 1))
        )
    ratios = {}
    for (variant, batch, policy, mode), images in rate.items():
        plain = rate.get(("add", batch, policy, mode))
        if variant != "add" and plain:
            key = f"{variant}/add, batch {batch}, {policy}, {mode}"
            ratios[key] = round(images / plain, 3)
        f32 = rate.get((variant, batch, "float32", mode))
        if policy == "mixed_bfloat16" and f32:
            key = f"{variant} mixed_bfloat16/float32, batch {batch}, {mode}"
            ratios[key] = round(images / f32, 3)
    return rows, ratios


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------
def run_jobs(jobs, repeats, deadline, report):
    """Lowers, compiles (in parallel) and times `jobs` until `deadline`."""
    measured = {}
    if time.perf_counter() > deadline:
        report["skipped"] += [_label(j) for j in jobs]
        return measured
    for job in jobs:  # the "xla" model variant needs its switch when traced
        if "_model" in job.meta:
            model, implementation = job.meta["_model"]
            _set_implementation(model, implementation)
            _device.lower_all([job])
            _set_implementation(model, "auto")
        else:
            _device.lower_all([job])
    report["compile_s"] += round(_device.compile_all(jobs), 1)
    for job in jobs:
        if job.error is not None:
            report["errors"].append(f"{_label(job)}: {job.error}")
        elif time.perf_counter() > deadline:
            report["skipped"].append(_label(job))
        else:
            measured[job.key] = _device.measure(job, repeats)
    return measured


def numerics(jobs, measured):
    """Max |fused - xla| / max |xla| of the inference units' outputs (k
    chained applications), per layer, shape and dtype."""
    import numpy as np

    outs = {}
    for job in jobs:
        if job.key in measured and job.meta["mode"] == "inference":
            name, shape, dtype, impl = job.key[1:5]
            if impl in ("fused", "xla"):
                out = np.asarray(job.compiled(*job.args), np.float64)
                outs.setdefault((name, shape, dtype), {})[impl] = out
    result = {}
    for (name, shape, dtype), pair in outs.items():
        if len(pair) == 2:
            scale = float(np.max(np.abs(pair["xla"]))) or 1.0
            diff = float(np.max(np.abs(pair["fused"] - pair["xla"])))
            label = f"{name} {'x'.join(map(str, shape))} {dtype}"
            result[label] = float(f"{diff / scale:.3g}")
    return result


def _label(job):
    return " ".join(str(p) for p in job.key)


def profiler_check(jobs, measured):
    """The AFF layer's per-call time against the profiler's device time."""
    for job in jobs:
        if job.key[1] == "AFF" and job.key in measured:
            try:
                device_ms, note = _device.profile_device_ms(job)
            except Exception as e:  # e.g. no CUPTI: report, do not stop
                device_ms, note = None, f"{type(e).__name__}: {e}"[:400]
            timed = measured[job.key][0]
            return dict(
                workload=_label(job),
                timed_ms_per_call=round(timed, 4),
                profiler_device_ms_per_call=(
                    None if device_ms is None else round(device_ms, 4)
                ),
                ratio=None
                if device_ms is None
                else round(device_ms / timed, 3),
                note=note,
            )
    return {"note": "no AFF layer result to check"}


def table(report):
    lines = [
        "| layer | shape | dtype | impl | mode | ms/call | GB/s (min bytes) "
        "| of copy | copy GB/s |",
        "|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in report["layers"]:
        lines.append(
            f"| {r['layer']} | {'x'.join(map(str, r['shape']))} | {r['dtype']}"
            f" | {r['implementation']} | {r['mode']} | {r['ms_per_call']}"
            f" | {r.get('gb_per_s_minimal', '-')}"
            f" | {r.get('fraction_of_copy_minimal', '-')}"
            f" | {r['copy_gb_per_s']} |"
        )
    lines += [
        "",
        "| model | variant | batch | dtype policy | mode | images/s |",
        "|---|---|---:|---|---|---:|",
    ]
    for r in report["models"]:
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['batch']} | "
            f"{r['dtype_policy']} | {r['mode']} | {r['images_per_s']} |"
        )
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in report["ratios"].items()]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes")
    parser.add_argument("--budget-s", type=float, default=270.0)
    parser.add_argument("--only", choices=("layers", "models"), default=None)
    parser.add_argument("--out", default=None, help="also write JSON here")
    args = parser.parse_args(argv)
    if args.budget_s <= 0:
        parser.error(f"Expected --budget-s > 0. Received: {args.budget_s}")
    start = time.perf_counter()
    deadline = start + args.budget_s
    _bench.select_backend(parser, "jax", "float32")
    cfg = CONFIGS["smoke" if args.smoke else "full"]
    report = dict(
        benchmark="device time on one accelerator, JAX",
        command="python benchmarks/gpu.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        smoke=args.smoke,
        settings={k: v for k, v in cfg.items() if k != "layer_shapes"},
        layer_shapes={
            k: [list(s) for s in v] for k, v in cfg["layer_shapes"].items()
        },
        minimal_tensor_passes=MIN_PASSES,
        timing=__doc__.split("What it measures, and how")[1].strip(),
        compile_s=0.0,
        layers=[],
        models=[],
        ratios={},
        skipped=[],
        errors=[],
    )
    report["versions"], report["machine"] = _bench.versions_and_machine()
    if args.only != "models":
        jobs = layer_jobs(cfg)
        measured = run_jobs(jobs, cfg["repeats"], deadline, report)
        report["layers"] = layer_results(jobs, measured)
        report["profiler_check"] = profiler_check(jobs, measured)
        report["max_rel_diff_fused_vs_xla"] = numerics(jobs, measured)
    if args.only != "layers":
        jobs, measured = [], {}
        for group in model_groups(cfg):  # one (dtype policy, batch) each
            jobs += group
            measured.update(run_jobs(group, cfg["repeats"], deadline, report))
        report["models"], report["ratios"] = model_results(jobs, measured)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    report["table"] = table(report)
    print("\n".join(report["table"]), file=sys.stderr)
    _bench.write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
