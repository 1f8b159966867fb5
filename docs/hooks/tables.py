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
