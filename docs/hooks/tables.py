"""MkDocs hook: the tables of measured figures, rendered from their JSON.

A page writes a marker (an HTML comment, so never a code block) where a
table of measured figures goes, naming how to render it and the JSON
files under `benchmarks/results/` it comes from:

    <!-- table: layers-cpu benchmarks/results/layers_cpu.json -->

and the build replaces the marker with the table and, under it, one line
per file naming the command and the machine that produced it, with a link
to the file. A figure on the site therefore cannot disagree with its file;
re-running a benchmark and committing its JSON updates the page. An
unknown kind, a missing file or a marker left unrendered fails the build
(`tests/test_docs.py` checks every page without building the site).
"""

import json
import pathlib
import re

MARKER = re.compile(r"<!-- table: ([\w-]+)((?: [\w./-]+\.json)+) -->")
# Anything that still looks like a marker after rendering is an error.
LEFTOVER = re.compile(r"<!-- table:")
STACK = (
    ("tensorflow", "TensorFlow"),
    ("jax", "JAX"),
    ("torch", "torch"),
    ("keras", "Keras"),
    ("ai_edge_litert", "ai-edge-litert"),
)
BACKENDS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
WORKLOADS = {
    "x+y": "`x + y`",
    "conv1x1_matmuls": "two 1x1 matmuls (C→c→C)",
    "MSCAM": "MSCAM",
    "AFF": "AFF",
    "IAFF": "IAFF",
}
MODES = {"graph": "graph", "xla": "XLA"}


LITERT_MODELS = {
    "mobilenetv2": "MobileNetV2",
    "mobilenetv2_aff": "MobileNetV2 + AFF",
    "demo": "demo network",
}


def _table(headers, rows, numeric_from=1):
    """A Markdown table; columns from `numeric_from` on are right-aligned."""
    rule = ["---" if i < numeric_from else "---:" for i in range(len(headers))]
    lines = [headers, rule, *rows]
    return "\n".join("| " + " | ".join(map(str, r)) + " |" for r in lines)


def _sig(value, digits=3):
    """`value` with `digits` significant digits, trailing zeros kept."""
    return format(value, f"#.{digits}g").rstrip(".")


def machine(data):
    """The machine and software of a result file, in words."""
    facts = data.get("machine", {})
    device = facts.get("device", "cpu")
    cores = facts.get("cpu_count")
    if device == "cpu":
        words = [f"a {cores}-core CPU" if cores else "a CPU"]
    else:
        words = [device.removeprefix("gpu: ")]
        words[0] += f" ({cores} CPU cores)" if cores else ""
    if "load_average_1min" in facts:
        words.append(f"1-minute load average {facts['load_average_1min']}")
    versions = data.get("versions", {})
    words += [f"{name} {versions[k]}" for k, name in STACK if k in versions]
    return ", ".join(words)


def source_line(path, data):
    """The line under a table: the file, its command and its machine."""
    name = pathlib.PurePosixPath(path).name
    return f"[{name}]({path}): `{data['command']}` on {machine(data)}."


def _layers_cpu(files):
    (data,) = files
    results, ratios = data["results_ms"], data["ratio_vs_x_plus_y"]
    rows = []
    for key, label in WORKLOADS.items():
        r = results[key]
        cells = [f"{r[m]['median']:.1f} ({r[m]['min']:.1f})" for m in r]
        ratio = (
            " / ".join(f"{ratios[key][m]:.1f}" for m in r)
            if key in ratios
            else "1"
        )
        first = " / ".join(
            f"{r[m]['first_call']:.0f}" for m in ("graph", "xla")
        )
        rows.append([label, *cells, ratio, first])
    headers = ["workload", "eager", "graph", "XLA"]
    headers += ["ratio eager / graph / XLA", "first call graph / XLA"]
    return _table(headers, rows)


def _layers_jax(files):
    rows = []
    for key, label in WORKLOADS.items():
        row = [label]
        for data in files:
            r = data["results_ms"][key]
            ratio = data["ratio_vs_x_plus_y"].get(key, {}).get("jit", 1.0)
            row += [_sig(r["eager"]["median"]), _sig(r["jit"]["median"])]
            row.append(_sig(ratio))
        rows.append(row)
    headers = ["workload"]
    for data in files:
        dtype = data["dtype_policy"]
        headers += [f"{dtype} eager", f"{dtype} jit", "ratio jit"]
    return _table(headers, rows)


def _throughput(result, mode):
    return (
        f"{result[mode]['images_per_s']:.2f} images/s "
        f"({result[mode]['median_ms_per_batch']:.0f} ms/batch)"
    )


def _models_cpu(files):
    (data,) = files
    res, ratio = data["results"], data["throughput_ratio_aff_over_add"]
    rows = [
        [
            {"graph": "graph", "xla": "XLA"}[mode],
            _throughput(res["aff"], mode),
            _throughput(res["add"], mode),
            f"{ratio[mode]:.2f}",
        ]
        for mode in ("graph", "xla")
    ]
    headers = ["", "AFF-ResNet-50", "ResNet-50-D (add)", "AFF / add"]
    return _table(headers, rows)


def _models_jax(files):
    rows = []
    for data in files:
        res = data["results"]
        pair = {
            k: f"{res[k]['eager']['images_per_s']:,.0f} / "
            f"{res[k]['jit']['images_per_s']:,.0f}"
            for k in ("aff", "add")
        }
        ratio = data["throughput_ratio_aff_over_add"]["jit"]
        label = f"{data['batch']}, {data['dtype_policy']}"
        rows.append([label, pair["aff"], pair["add"], f"{ratio:.2f}"])
    headers = ["batch, dtype policy", "AFF-ResNet-50 eager / jit"]
    headers += ["ResNet-50-D eager / jit", "AFF / add, jit"]
    return _table(headers, rows)


def _models_folded(files):
    (data,) = files
    res = data["results"]
    labels = {
        "aff": "AFF-ResNet-50",
        "aff folded": "AFF-ResNet-50, folded",
        "add": "ResNet-50-D (add)",
        "add folded": "ResNet-50-D (add), folded",
    }
    rows = [
        [label, *(f"{res[k][m]['images_per_s']:.1f}" for m in ("graph", "xla"))]
        for k, label in labels.items()
    ]
    title = (
        f"images/s, batch {data['batch']}, {data['image_size']}x"
        f"{data['image_size']} (median of {data['repeats']})"
    )
    return _table([title, "graph", "XLA"], rows)


def _worst(data, *keys):
    return max(case[k] for case in data["results"].values() for k in keys)


def _torch_parity(files):
    rows = []
    for data in files:
        device = "CPU" if data["torch_device"] == "cpu" else "CUDA"
        backend = BACKENDS[data["keras_backend"]]
        run = f"{device}, Keras on {backend}"
        if data["torch_device"] != "cpu":
            run += ", exact float32" if data.get("exact_float32") else ", TF32"
        inference = _worst(
            data, "inference_channels_last", "inference_channels_first"
        )
        round_trip = _worst(data, "round_trip")
        rows.append(
            [
                run,
                f"≤ {inference:.1e}",
                "0 (exact)" if round_trip == 0 else f"{round_trip:.1e}",
                f"≤ {_worst(data, 'training_output'):.1e}",
                f"{_worst(data, 'training_running_var'):.3f} (≤ "
                f"{_worst(data, 'training_running_var_biased_corrected'):.1e})",
            ]
        )
    headers = ["run", "inference", "`to_torch_state_dict` → strict load"]
    headers += ["training-mode output", "moving variance after one step "]
    headers[-1] += "(PyTorch's correction undone)"
    return _table(headers, rows)


def _profile(files):
    (data,) = files
    rows = [
        [name, f"{r['median_ms']:.1f}", f"{r['min_ms']:.1f}"]
        + [r["full_size_passes"]]
        for name, r in data["results"].items()
    ]
    headers = ["XLA function", "median ms", "min ms", "full-size passes"]
    return _table(headers, rows)


def _litert(files):
    rows = []
    for key, label in LITERT_MODELS.items():
        row = [label]
        for data in files:
            for kind in ("float32", "int8"):
                r = data["results"][key][kind]
                digits = 3 if r["median_ms"] < 1 else 2
                row.append(
                    f"{r['median_ms']:.{digits}f} ({r['min_ms']:.{digits}f})"
                )
        rows.append(row)
    headers = ["model"]
    for data in files:
        n = data["threads"]
        threads = f"{n} thread{'s' if n > 1 else ''}"
        headers += [f"float32, {threads}", f"int8, {threads}"]
    return _table(headers, rows)


def _folding(files):
    folded, unfolded = files
    rows = []
    for key, label in LITERT_MODELS.items():
        fold = folded["results"][key]["float32"]["batch_norm_folding"]
        same = all(
            folded["results"][key][k]["ops"]
            == unfolded["results"][key][k]["ops"]
            for k in ("float32", "int8")
        )
        rows.append(
            [
                label,
                fold["batch_norms_folded"],
                f"{fold['graph_ops_before']} / {fold['graph_ops_after']}",
                "unchanged" if same else "changed",
            ]
        )
    headers = ["model", "BatchNorms folded"]
    headers += ["TF inference graph ops before / after", "LiteRT ops"]
    return _table(headers, rows)


def _demo(files):
    (data,) = files
    rows = []
    for r in data["results"]:
        error = r["max_abs_error"]
        rows.append(
            [
                r["format"],
                f"`{r['file']}`",
                f"{r['size_bytes'] / 1024:.1f} KiB",
                f"{r['accuracy']:.4f}",
                "-" if error is None else f"{error:.2e}",
                f"{r['latency_ms']:.3f}",
            ]
        )
    headers = ["format", "file", "size", "accuracy", "max abs error"]
    return _table(headers + ["batch-1 ms"], rows, numeric_from=2)


def _tolerance(value):
    """`1e-4`, `5e-2`: a tolerance as the export docs write it."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _exports(files):
    (data,) = files
    rows = []
    for label, r in data["results"].items():
        error = f"{r['max_abs_error']:.1e}"
        tolerance = _tolerance(r["tolerance"])
        if r["quantization"] == "int8":
            label += f" ({r['num_samples']} calibration samples)"
            error += f" (mean {r['mean_abs_error']:.1e})"
            tolerance = f"{r['tolerance']:g} (on the mean)"
        opsets = [n for n in r["notes"] if n.startswith("opset")]
        label += f" ({opsets[0]})" if opsets else ""
        rows.append(
            [
                label,
                f"{r['size_bytes']:,} B",
                error,
                tolerance,
                _sig(r["top1_agreement"]),
                f"{r['latency_ms']:.3f}",
            ]
        )
    headers = ["artifact", "size", "max abs error", "tolerance"]
    return _table(headers + ["top-1 agreement", "batch-1 ms"], rows)


def _per_seed(files, get, fmt="{:.2f}"):
    """One figure per seed file, `a / b / c`; one value if all agree."""
    values = [fmt.format(get(data)) for data in files]
    return values[0] if len(set(values)) == 1 else " / ".join(values)


def _qat(files):
    rows = []
    for data in files:
        float_acc = data["float"]["accuracy"]
        rows.append(
            [
                data["seed"],
                f"{100 * float_acc:.2f} %",
                f"{100 * data['ptq_int8']['accuracy']:.2f} %",
                f"{100 * data['qat_int8']['accuracy']:.2f} %",
                f"{data['qat_minus_float_points']:+.2f} pt",
                f"{100 * data['float_after_qat_weights_accuracy']:.2f} %",
            ]
        )
    headers = ["seed", "float (Keras 3)", "PTQ int8 LiteRT", "QAT int8 LiteRT"]
    headers += ["QAT - float", "float, QAT weights copied back"]
    return _table(headers, rows)


def _int8_row(files, key, label, reference_ops):
    first = files[0][key]
    ops = ", ".join(f"{op} {n}" for op, n in sorted(first["ops"].items()))
    if all(d[key]["ops"] == first["ops"] for d in files):
        ops = "the same ops" if first["ops"] == reference_ops else ops
    else:
        ops = "differ by seed"
    if all(d[key]["fully_int8"] for d in files):
        ops += ", all int8, no (DE)QUANTIZE inside"
    error = (
        f"max {_per_seed(files, lambda d: d[key]['max_abs_error'])}, "
        f"mean {_per_seed(files, lambda d: d[key]['mean_abs_error'], '{:.3f}')}"
        f" (bound on the mean {_per_seed(files, lambda d: d[key]['tolerance'])}"
        f"); top-1 agreement "
        + _per_seed(files, lambda d: 100 * d[key]["top1_agreement"], "{:.1f}")
        + f" % on {first['checked_on']}"
    )
    size = _per_seed(files, lambda d: d[key]["size_bytes"], "{:,} B")
    return [label, size, ops, error]


def _qat_artifacts(files):
    float_size = _per_seed(
        files, lambda d: d["float"]["litert_fp32_size_bytes"], "{:,} B"
    )
    ptq_ops = files[0]["ptq_int8"]["ops"]
    rows = [
        ["float32 LiteRT", float_size, "-", "verified by `export_litert`"],
        _int8_row(files, "ptq_int8", "PTQ int8, int8 in/out", None),
        _int8_row(files, "qat_int8", "QAT int8, int8 in/out", ptq_ops),
    ]
    seeds = " / ".join(str(d["seed"]) for d in files)
    headers = ["artifact", "size", "ops"]
    headers.append(f"error against its Keras model (logits; seeds {seeds})")
    return _table(headers, rows, numeric_from=4)


def _threads(n):
    return f"{n} thread{'s' if n > 1 else ''}"


def _ratio_row(target, bound, measured, at_least=False):
    """A target row: `measured` is `[(label, median, minimum)]`; met is
    judged on the median."""
    cells, verdicts = [], []
    for label, median, minimum in measured:
        label = MODES.get(label, label)
        good = median >= bound if at_least else median <= bound
        cells.append(f"{median:.2f}x median / {minimum:.2f}x minima ({label})")
        verdicts.append(f"{label} {'yes' if good else 'no'}")
    return [target, "; ".join(cells), ", ".join(verdicts)]


def _ms_ratio(a, b, modes, median="median", minimum="min"):
    """`[(mode, a/b on the median, a/b on the minimum)]` of two timings."""
    return [
        (m, a[m][median] / b[m][median], a[m][minimum] / b[m][minimum])
        for m in modes
    ]


def _litert_target_rows(litert1, litert2):
    rows = []
    targets = {
        "float32": "LiteRT MobileNetV2 + AFF <= 1.10x plain, float32",
        "int8": "same, int8",
    }
    for kind, target in targets.items():
        measured = []
        for data in (litert1, litert2):
            r = data["results"]
            a, p = r["mobilenetv2_aff"][kind], r["mobilenetv2"][kind]
            ratios = _ms_ratio({0: a}, {0: p}, [0], "median_ms", "min_ms")
            measured.append((_threads(data["threads"]), *ratios[0][1:]))
        rows.append(_ratio_row(target, 1.10, measured))
    int8 = [
        d["results"][k]["int8"]
        for d in (litert1, litert2)
        for k in LITERT_MODELS
    ]
    pairs = sum(r["quantize_dequantize"] for r in int8)
    islands = sum(len(r["float_islands"]) for r in int8)
    rows.append(
        [
            "int8 graph: no float islands or (de)quantize pairs around AFF",
            f"{pairs} QUANTIZE/DEQUANTIZE, {islands} float tensors between ops",
            "yes" if pairs == islands == 0 else "no",
        ]
    )
    demo = []
    for data in (litert1, litert2):
        r = data["results"]["demo"]
        ratio = r["int8"]["median_ms"] / r["float32"]["median_ms"]
        demo.append(f"int8 {ratio:.2f}x float32 ({_threads(data['threads'])})")
    target = "demo int8 not faster than float32"
    rows.append([target, "; ".join(demo), "explained below"])
    return rows


def _cpu_targets(files):
    layers, training, models, litert1, litert2 = files
    ms, steps = layers["results_ms"], training["results_ms"]
    # Times (per image, median; per batch, minimum): add / AFF of a time
    # is AFF / add of a throughput.
    res = {
        k: {
            m: {
                "ms": 1 / v[m]["images_per_s"],
                "min": v[m]["min_ms_per_batch"],
            }
            for m in ("graph", "xla")
        }
        for k, v in models["results"].items()
    }
    rows = [
        _ratio_row(
            "AFF under XLA <= 1.25x its two 1x1 matmuls",
            1.25,
            _ms_ratio(ms["AFF"], ms["conv1x1_matmuls"], ["xla"]),
        ),
        _ratio_row(
            "AFF training step <= 1.4x its six matmuls",
            1.4,
            _ms_ratio(
                steps["AFF train step"], steps["six_matmuls"], ["xla", "graph"]
            ),
        ),
        _ratio_row(
            "AFF-ResNet-50 >= 0.94x plain-add images/s, graph and XLA",
            0.94,
            _ms_ratio(res["add"], res["aff"], ["graph", "xla"], "ms"),
            at_least=True,
        ),
    ]
    rows += _litert_target_rows(litert1, litert2)
    headers = ["target", "measured", "met? (on the median)"]
    return _table(headers, rows, numeric_from=3)


RENDERERS = {
    "layers-cpu": _layers_cpu,
    "layers-jax": _layers_jax,
    "models-cpu": _models_cpu,
    "models-jax": _models_jax,
    "models-folded": _models_folded,
    "torch-parity": _torch_parity,
    "profile": _profile,
    "litert": _litert,
    "folding": _folding,
    "demo": _demo,
    "exports": _exports,
    "qat": _qat,
    "qat-artifacts": _qat_artifacts,
    "cpu-targets": _cpu_targets,
}


def render(kind, paths, root):
    """The Markdown of one marker: the table, then one source line per
    file. Raises ValueError for an unknown kind or a missing file."""
    if kind not in RENDERERS:
        raise ValueError(
            f"Unknown table kind {kind!r}; expected one of "
            f"{sorted(RENDERERS)}. Received: kind={kind!r}"
        )
    files = []
    for path in paths:
        file = pathlib.Path(root, path)
        if not file.is_file():
            raise ValueError(
                f"The table's JSON does not exist. Received: path={path!r}"
            )
        files.append(json.loads(file.read_text(encoding="utf-8")))
    lines = [source_line(p, d) for p, d in zip(paths, files)]
    sources = "\n".join(f"- {line}" for line in lines)
    return f"{RENDERERS[kind](files)}\n\nMeasured by:\n\n{sources}"


def render_page(markdown, root):
    """`markdown` with every table marker replaced by its table."""
    rendered = MARKER.sub(
        lambda m: render(m.group(1), m.group(2).split(), root), markdown
    )
    leftover = LEFTOVER.search(rendered)
    if leftover:
        line = rendered[: leftover.start()].count("\n") + 1
        raise ValueError(
            f"A table marker on line {line} is malformed; expected "
            "`<!-- table: KIND benchmarks/results/FILE.json ... -->`."
        )
    return rendered


def on_page_markdown(markdown, page, config, files):
    root = pathlib.Path(config.config_file_path).parent
    try:
        return render_page(markdown, root)
    except ValueError as e:
        raise ValueError(f"{page.file.src_path}: {e}") from None
