"""Every code block of README.md and docs/*.md runs as written.

One test per page (README.md and every docs/*.md, found by glob, so a new
page is picked up without editing this file). A page's ```python blocks
run in order in one namespace, its ```bash blocks in order with them
(`keras-aff` is this checkout's command), all in a scratch working
directory, so nothing lands in the checkout. The test fails if any block
that is not marked fails. The Markdown is parsed with markdown-it-py, the
CommonMark parser that pytest-markdown-docs is built on; the runner is
here because neither pytest-markdown-docs (one test per block, a namespace
shared only by re-running every earlier block) nor mktestdocs (no info
strings or comments, Python and shell blocks apart) runs a page the way a
reader does.

The marker convention, written in the Markdown:

- ```python / ```bash: runs. Any other info string (none, `console`,
  `text`) is a listing (an equation, a transcript, a usage line) and never
  runs.
- A block that needs the reader's own data (official weights, a data set,
  several hosts) says so in its first line, a comment that every reader
  sees:

      # Needs your own data: the official iaff_resnet50.params

  It does not run, unless a stand-in comes right before it (hidden from
  readers), Python that runs in the page's namespace first and provides
  the data, e.g. a fixture file of `../shared/fixtures/open-aff`
  (`FIXTURES` in the stand-in; when the checkout has no `../shared`, the
  page is skipped with that reason):

      <!-- docs-test stand-in
      import os
      os.symlink(FIXTURES / "aff_resnet32.params", "aff_resnet32.params")
      -->

- A block that must not run in a test (it installs packages, runs the
  test suite, needs a GPU or minutes of benchmarking) has the line before
  it (hidden from readers):

      <!-- docs-test skip: installs packages -->

`python -m tests.test_docs_blocks` prints, per page, how many blocks run,
need the reader's data (and of those, how many run on a stand-in) and are
skipped, with the reasons.
"""

import dataclasses
import pathlib
import sys
import time
import types

import keras
import pytest
from markdown_it import MarkdownIt

import keras_aff
from tests import processes

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "open-aff"
RUNNABLE = {"python": "python", "py": "python", "bash": "bash", "sh": "bash"}
NEEDS_DATA = "# Needs your own "
COMMENT = "<!-- docs-test"
# `keras-aff` as this interpreter runs it, with this checkout first on
# PYTHONPATH (processes.environment), whatever is installed on PATH.
BASH_PRELUDE = f'keras-aff() {{ "{sys.executable}" -m keras_aff.cli "$@"; }}\n'
BASH_TIMEOUT_S = 300


@dataclasses.dataclass
class Block:
    """One fenced block: its language, first code line, code, and how the
    test treats it: "run", "needs-data", "stand-in" (needs data, runs on
    the stand-in) or "skip" (with `reason`)."""

    lang: str
    line: int
    code: str
    status: str
    reason: str = ""
    stand_in: str = ""


def _comment(token):
    """The docs-test comment in an html_block token, else None."""
    if token.type != "html_block":
        return None
    text = token.content.strip()
    if not text.startswith(COMMENT):
        return None
    assert text.endswith("-->"), f"line {token.map[0] + 1}: unclosed {text!r}"
    return text[len(COMMENT) : -3].strip()


def _classify(block, comment, where):
    if comment is None:
        if block.code.startswith(NEEDS_DATA):
            block.status = "needs-data"
            block.reason = block.code.splitlines()[0][2:]
        return block
    if comment.startswith("skip:") and comment[5:].strip():
        block.status, block.reason = "skip", comment[5:].strip()
    elif comment.startswith("stand-in\n"):
        assert block.code.startswith(NEEDS_DATA), (
            f"{where}: a stand-in precedes a block that does not start "
            f"with {NEEDS_DATA!r}"
        )
        block.status, block.reason = "stand-in", block.code.splitlines()[0][2:]
        block.stand_in = comment[len("stand-in\n") :]
    else:
        raise AssertionError(
            f"{where}: unknown marker <!-- docs-test {comment[:40]} -->; "
            "use `skip: REASON` or `stand-in` and code"
        )
    return block


def blocks(page):
    """The runnable blocks of `page` in order, as `Block`s. A docs-test
    comment that is not right before a python or bash block fails."""
    tokens = MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8"))
    found = []
    for i, token in enumerate(tokens):
        comment = _comment(token)
        where = f"{page.name}:{token.map[0] + 1 if token.map else '?'}"
        if comment is not None:
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            assert (
                following is not None
                and following.type == "fence"
                and following.info.split()[:1] in ([k] for k in RUNNABLE)
            ), f"{where}: a docs-test marker must come right before a block"
        if token.type != "fence":
            continue
        lang = RUNNABLE.get((token.info.split() or [""])[0])
        if lang is None:
            continue
        previous = _comment(tokens[i - 1]) if i else None
        block = Block(lang, token.map[0] + 2, token.content, "run")
        found.append(_classify(block, previous, where))
    return found


def _run_python(code, page, line, namespace):
    # Padded so that tracebacks name the page and its own line numbers.
    compiled = compile("\n" * (line - 1) + code, str(page), "exec")
    exec(compiled, namespace)


def _run_bash(code, page, line, cwd):
    proc = processes.run_command(
        ["bash", "-euo", "pipefail", "-c", BASH_PRELUDE + code],
        cwd=cwd,
        timeout=BASH_TIMEOUT_S,
    )
    assert proc.returncode == 0, (
        f"{page.name}:{line}: bash block exited {proc.returncode}\n{code}\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )


def run_page(page, cwd):
    """Runs the page's blocks in `cwd`; returns how many ran."""
    namespace = {"__name__": "__main__"}
    ran = 0
    for block in blocks(page):
        if block.status in ("needs-data", "skip"):
            continue
        if block.status == "stand-in":
            if "FIXTURES" in block.stand_in and not FIXTURES.is_dir():
                pytest.skip(
                    f"{page.name}:{block.line} runs on the open-aff fixtures "
                    f"in {FIXTURES}, and this checkout has no ../shared"
                )
            namespace["FIXTURES"] = FIXTURES
            _run_python(block.stand_in, page, block.line, namespace)
        start = time.perf_counter()
        if block.lang == "python":
            _run_python(block.code, page, block.line, namespace)
        else:
            _run_bash(block.code, page, block.line, cwd)
        seconds = time.perf_counter() - start
        print(f"{page.name}:{block.line} {block.status} {seconds:.1f} s")
        ran += 1
    return ran


@pytest.fixture
def clean_state(tmp_path, monkeypatch):
    """A scratch working directory; Keras' global settings restored; the
    subpackages that `import keras_aff` does not import hidden, as in a
    fresh process (`keras_aff.demo` must fail unless a block imports it)."""
    monkeypatch.chdir(tmp_path)
    for name, value in list(vars(keras_aff).items()):
        public = not name.startswith("_") and name not in keras_aff.__all__
        if public and isinstance(value, types.ModuleType):
            monkeypatch.delattr(keras_aff, name)
            # Imported by an earlier test: a block's `import keras_aff.X`
            # must bind it again, as it does in a fresh process.
            monkeypatch.delitem(sys.modules, f"keras_aff.{name}", raising=False)
    yield tmp_path
    keras.distribution.set_distribution(None)
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_runs_as_written(page, clean_state):
    run_page(page, clean_state)
    # Nothing written beside the checkout's own files.
    assert not (ROOT / "savedmodels" / "aff").exists()


MARKED_PAGE = """# A page

```python
x = 1
```

<!-- docs-test skip: installs packages -->
```bash
pip install something
```

```python
# Needs your own data: weights.h5
load("weights.h5")
```

<!-- docs-test stand-in
x += 1
-->
```python
# Needs your own data: x
assert x == 2
```

```console
$ not run
```
"""


def test_the_markers_give_each_block_its_status(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(MARKED_PAGE)
    found = [(b.lang, b.line, b.status, b.reason) for b in blocks(page)]
    assert found == [
        ("python", 4, "run", ""),
        ("bash", 9, "skip", "installs packages"),
        ("python", 13, "needs-data", "Needs your own data: weights.h5"),
        ("python", 21, "stand-in", "Needs your own data: x"),
    ]
    assert blocks(page)[3].stand_in == "x += 1"
    # The first block, and the last one on its stand-in (x becomes 2).
    assert run_page(page, tmp_path) == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("<!-- docs-test skip: why -->\n\ntext\n", "must come right before"),
        ("<!-- docs-test skip: -->\n```bash\nls\n```\n", "unknown marker"),
        (
            "<!-- docs-test stand-in\nx = 1\n-->\n```python\nx\n```\n",
            "does not start with",
        ),
    ],
)
def test_a_misplaced_or_malformed_marker_fails(tmp_path, text, message):
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(AssertionError, match=message):
        blocks(page)


def counts():
    """Page -> {status: number of blocks}, for the report."""
    table = {}
    for page in PAGES:
        row = table.setdefault(page.relative_to(ROOT).as_posix(), {})
        for block in blocks(page):
            row[block.status] = row.get(block.status, 0) + 1
    return table


if __name__ == "__main__":
    total = {}
    for page, row in counts().items():
        print(f"{page:28} {row}")
        for status, n in row.items():
            total[status] = total.get(status, 0) + n
    print(f"{'total':28} {total}")
    for page in PAGES:
        for block in blocks(page):
            if block.status != "run":
                where = f"{page.name}:{block.line}"
                print(f"{where} {block.status}: {block.reason}")
