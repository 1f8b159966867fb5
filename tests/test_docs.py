"""The documentation and the packaging files agree with the package.

The docs site itself is built by CI (`mkdocs build --strict`); these checks
need no docs dependencies and catch the drift that the build cannot see or
that a restructuring causes: API pages naming objects that are no longer
public, CLI flags missing from the hand-written CLI page, a release without
a changelog entry, `py.typed` or the license left out of the distribution.
"""

import configparser
import contextlib
import importlib
import importlib.util
import io
import json
import pathlib
import re

import pytest

import keras_aff
from keras_aff import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DIRECTIVE = re.compile(r"^::: ([\w.]+)\s*$", re.MULTILINE)
README_COMMANDS = (
    'pip install -e ".[demo,litert,onnx]" && keras-aff demo',
    'pip install -e ".[test,dev]" && python -m pytest && '
    "KERAS_BACKEND=jax python -m pytest tests/layers && "
    "KERAS_BACKEND=torch python -m pytest tests/layers",
)


def _directives():
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for name in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            found.append((page.name, name))
    return found


def _setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser


def _help(command):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    return out.getvalue()


def _resolve(name):
    parent, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(parent), attr)


@pytest.mark.parametrize(
    "package",
    ["layers", "models", "export", "interop", "optimize", "legacy", "qat"],
)
def test_api_pages_document_every_public_name(package):
    documented = {id(_resolve(name)) for _, name in _directives()}
    module = importlib.import_module(f"keras_aff.{package}")
    missing = [
        name
        for name in module.__all__
        if id(getattr(module, name)) not in documented
    ]
    assert not missing, f"keras_aff.{package}: no `:::` page for {missing}"


@pytest.mark.parametrize(
    "page, name", _directives(), ids=[n for _, n in _directives()]
)
def test_api_directive_names_a_public_object(page, name):
    # Only public import paths: the parent is a public module that lists
    # the object in its __all__, and the object has a docstring to render.
    parent, _, attr = name.rpartition(".")
    module = importlib.import_module(parent)
    assert attr in getattr(module, "__all__", ()), (
        f"{page}: `::: {name}` is not in {parent}.__all__"
    )
    assert getattr(module, attr).__doc__, f"{page}: {name} has no docstring"


@pytest.mark.parametrize("command", ["convert", "demo", "export", "info"])
def test_cli_page_lists_every_flag(command):
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert f"## `keras-aff {command}`" in page
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", _help(command)))
    flags.discard("--help")
    assert flags, f"no flags parsed from `keras-aff {command} --help`"
    missing = sorted(flag for flag in flags if f"`{flag}" not in page)
    assert not missing, f"docs/cli.md lacks {command} flags {missing}"


@pytest.mark.parametrize("doc", ["README.md", "docs/index.md"])
def test_the_two_commands_are_stated_verbatim(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    for command in README_COMMANDS:
        assert f"\n{command}\n" in text, f"{doc} lacks: {command}"


def test_changelog_has_an_entry_for_this_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (\S+)", text, re.MULTILINE)
    # The newest entry is the package's own version ("0.2.0 (unreleased)"
    # until it is tagged), under an optional "## Unreleased" section that
    # collects work not yet given a version.
    if headings[0] == "Unreleased":
        headings = headings[1:]
    assert headings[0] == keras_aff.__version__


def test_distribution_ships_license_and_py_typed():
    config = _setup_cfg()
    assert config["metadata"]["license"] == "Apache-2.0"
    assert config["metadata"]["license_files"].split() == ["LICENSE"]
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text
    assert "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    package_data = config["options.package_data"]["keras_aff"]
    assert "py.typed" in re.split(r"[,\s]+", package_data)
    assert (pathlib.Path(keras_aff.__file__).parent / "py.typed").is_file()


def test_extras_hold_the_docs_and_packaging_tools():
    extras = {
        name: {re.split(r"[<>=\[ ]", line)[0] for line in value.split()}
        for name, value in _setup_cfg()["options.extras_require"].items()
    }
    assert {"mkdocs", "mkdocs-material", "mkdocstrings"} <= extras["docs"]
    assert {"ruff", "build", "twine"} <= extras["dev"]
    # tests/test_docs_blocks.py parses the pages with markdown-it-py.
    assert "markdown-it-py" in extras["test"]


def _tables_hook():
    # The mkdocs hook is a file of the docs, not a module of the package.
    path = DOCS / "hooks" / "tables.py"
    spec = importlib.util.spec_from_file_location("docs_tables_hook", path)
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    return hook


def _table_pages():
    return {
        page.name: page.read_text(encoding="utf-8")
        for page in sorted(DOCS.glob("*.md"))
        if "<!-- table:" in page.read_text(encoding="utf-8")
    }


def test_every_table_marker_renders_from_its_json():
    hook = _tables_hook()
    pages = _table_pages()
    assert {"benchmarks.md", "performance.md"} <= set(pages)
    for name, text in pages.items():
        markers = hook.MARKER.findall(text)
        assert len(markers) == text.count("<!-- table:"), name
        rendered = hook.render_page(text, ROOT)
        assert "<!-- table:" not in rendered, name
        for _, paths in markers:
            for path in paths.split():
                data = json.loads((ROOT / path).read_text(encoding="utf-8"))
                # Each table names the command and the machine behind it.
                assert data["command"] and data["machine"], path
                assert f"`{data['command']}` on {hook.machine(data)}" in (
                    rendered
                ), f"{name}: no source line for {path}"


def test_table_markers_are_comments_not_code_blocks():
    # The docs-blocks test reads the raw Markdown: a marker inside a fence
    # would be run (or shown) as code.
    from markdown_it import MarkdownIt

    for name, text in _table_pages().items():
        for token in MarkdownIt("commonmark").parse(text):
            if "<!-- table:" in token.content:
                assert token.type == "html_block", (name, token.type)


def test_the_demo_table_shows_the_figures_of_its_json():
    hook = _tables_hook()
    data = json.loads(
        (ROOT / "benchmarks/results/demo_cpu.json").read_text(encoding="utf-8")
    )
    rendered = hook.render_page(_table_pages()["benchmarks.md"], ROOT)
    for row in data["results"]:
        cells = (
            f"| {row['format']} | `{row['file']}` | "
            f"{row['size_bytes'] / 1024:.1f} KiB | {row['accuracy']:.4f} |"
        )
        assert cells in rendered, cells
    saved_model = data["results"][1]
    assert saved_model["format"] == "SavedModel"
    # BatchNorm folding on export: about 330 KiB, not 0.1.0's 729 KiB.
    assert saved_model["size_bytes"] < 400 * 1024


def _results(name):
    path = ROOT / "benchmarks" / "results" / name
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_exports_table_shows_the_figures_of_its_json():
    hook = _tables_hook()
    data = _results("exports_cpu.json")
    rendered = hook.render_page(
        "<!-- table: exports benchmarks/results/exports_cpu.json -->", ROOT
    )
    assert data["params"] == 1917
    assert list(data["results"]) == [
        "SavedModel",
        "LiteRT float32",
        "LiteRT float16",
        "LiteRT dynamic-range",
        "LiteRT int8",
        "ONNX",
    ]
    for label, r in data["results"].items():
        size = f"{r['size_bytes']:,} B"
        assert f" | {size} | {r['max_abs_error']:.1e}" in rendered, label
        assert f"| {r['latency_ms']:.3f} |" in rendered, label
    assert "| ONNX (opset 15) |" in rendered
    int8 = data["results"]["LiteRT int8"]
    assert int8["num_samples"] == 128 and int8["fully_int8"]
    assert f"(mean {int8['mean_abs_error']:.1e}) | 0.1 (on the mean) |" in (
        rendered
    )
    # BatchNorm folded on export: the SavedModel is well under 0.1.0's
    # 713,052 bytes.
    assert data["results"]["SavedModel"]["size_bytes"] < 400_000


def test_the_qat_tables_show_the_figures_of_their_json():
    hook = _tables_hook()
    names = [f"qat_digits_seed{seed}.json" for seed in (0, 1, 2)]
    paths = " ".join(f"benchmarks/results/{n}" for n in names)
    files = [_results(n) for n in names]
    accuracy = hook.render_page(f"<!-- table: qat {paths} -->", ROOT)
    for data in files:
        row = (
            f"| {data['seed']} | {100 * data['float']['accuracy']:.2f} % | "
            f"{100 * data['ptq_int8']['accuracy']:.2f} % | "
            f"{100 * data['qat_int8']['accuracy']:.2f} % |"
        )
        assert row in accuracy, row
        points = 100 * (
            data["qat_int8"]["accuracy"] - data["float"]["accuracy"]
        )
        assert f"| {points:+.2f} pt |" in accuracy
    artifacts = hook.render_page(f"<!-- table: qat-artifacts {paths} -->", ROOT)
    qat = files[0]["qat_int8"]
    # One size for the three seeds (same architecture, same converter).
    assert len({d["qat_int8"]["size_bytes"] for d in files}) == 1
    assert f"| {qat['size_bytes']:,} B |" in artifacts
    assert "CONV_2D 17" in artifacts
    assert "the same ops, all int8, no (DE)QUANTIZE inside" in artifacts
    assert f"max {qat['max_abs_error']:.2f}" in artifacts


def test_the_cpu_targets_are_computed_from_their_json():
    hook = _tables_hook()
    names = (
        "layers_cpu.json",
        "layers_cpu_training.json",
        "models_cpu_folded.json",
        "litert_cpu_1thread.json",
        "litert_cpu_2thread.json",
    )
    paths = " ".join(f"benchmarks/results/{n}" for n in names)
    rendered = hook.render_page(f"<!-- table: cpu-targets {paths} -->", ROOT)
    layers, training, models, litert1, _ = map(_results, names)
    aff = layers["results_ms"]["AFF"]["xla"]["median"]
    mm = layers["results_ms"]["conv1x1_matmuls"]["xla"]["median"]
    assert f"| {aff / mm:.2f}x median /" in rendered
    step = training["results_ms"]["AFF train step"]["graph"]["median"]
    six = training["results_ms"]["six_matmuls"]["graph"]["median"]
    assert f"; {step / six:.2f}x median /" in rendered
    res = models["results"]
    ratio = (
        res["aff"]["xla"]["images_per_s"] / res["add"]["xla"]["images_per_s"]
    )
    assert f"; {ratio:.2f}x median /" in rendered
    r = litert1["results"]
    int8 = r["mobilenetv2_aff"]["int8"]["median_ms"]
    int8 /= r["mobilenetv2"]["int8"]["median_ms"]
    assert f"| {int8:.2f}x median /" in rendered
    # The verdicts follow the bound: AFF under XLA is over 1.25x here.
    assert ("| XLA no |" in rendered) == (aff / mm > 1.25)
    assert "| 0 QUANTIZE/DEQUANTIZE, 0 float tensors between ops | yes |" in (
        rendered
    )


def test_the_tables_hook_refuses_what_it_cannot_render():
    hook = _tables_hook()
    with pytest.raises(ValueError, match="Received: kind='nope'"):
        hook.render_page("<!-- table: nope benchmarks/results/a.json -->", ROOT)
    with pytest.raises(
        ValueError, match="Received: path='benchmarks/results/missing.json'"
    ):
        hook.render_page(
            "<!-- table: demo benchmarks/results/missing.json -->", ROOT
        )
    with pytest.raises(ValueError, match="line 2 is malformed"):
        hook.render_page("text\n<!-- table: demo -->", ROOT)


def test_the_export_page_quotes_real_report_keys():
    import dataclasses

    from keras_aff.export import ExportReport

    text = (DOCS / "export.md").read_text(encoding="utf-8")
    start = text.index("# Every field of ExportReport")
    comment = text[start : text.index("report.to_dict()", start)]
    quoted = re.findall(r'"(\w+)"', comment)
    fields = [f.name for f in dataclasses.fields(ExportReport)]
    assert len(quoted) >= 10
    assert [k for k in quoted if k not in fields] == []
    # Quoted in the order of the report's fields.
    assert quoted == [f for f in fields if f in quoted]
