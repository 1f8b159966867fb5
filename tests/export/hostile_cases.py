"""The rows of the hostile-path suite (`test_hostile_paths.py`) and what
they must give; `hostile_sandbox.py` builds the sandbox of each.

A row is an action (a `keras-aff` command or an exporter call), what it
must give (exit status or exception type, and a fragment of the message)
and the filesystem invariant: a refused row leaves its sandbox exactly as
it was (every path, file checksum and link target); a row that succeeds
changes nothing but the artifact's own path, leaves no staging directory,
and the artifact there loads and reproduces the model.
`docs/robustness.md` lists every row.

The sandboxes are `hostile_sandbox.py`'s.
"""

import dataclasses

OK = "ok"


@dataclasses.dataclass
class Row:
    """One hostile case.

    Attributes:
        id: the test id.
        fmt: "saved_model", "litert", "onnx", "convert" or "qat" (the
            format whose rule applies), or "input" for input-file rows.
        dest: the destination setup (a key of `DESTINATIONS`).
        via: "cli" (`keras-aff` in the batched child) or "api".
        expected: OK, an exit status (CLI) or an exception type name.
        fragment: a piece of the message (stderr or exception).
        argv: CLI rows: the arguments, with {out}, {model}, {params},
            {fifo}, {dir} placeholders.
        fsize: optional RLIMIT_FSIZE (bytes) for the row.
        about: what the row is, for the docs table.
    """

    id: str
    fmt: str
    dest: str
    via: str
    expected: object
    fragment: str = ""
    argv: list = dataclasses.field(default_factory=list)
    fsize: int | None = None
    about: str = ""


# ---------------------------------------------------------------------------
# The rows
# ---------------------------------------------------------------------------
def _refusal(fmt, dest):
    """The message fragment of a refused destination, None when allowed."""
    directory = fmt == "saved_model"
    wrong = {
        "saved_model": "it is an existing file; a SavedModel is a directory",
        "litert": "not a LiteRT flatbuffer (no TFL3 identifier at byte 4)",
        "onnx": "not an ONNX model (it does not parse as one)",
        "convert": "not a .keras file (a zip archive holding config.json)",
        "qat": "not a LiteRT flatbuffer",
    }
    table = {
        "absent": None,
        "artifact": None,
        "link_to_artifact": None,
        "empty_dir": None if directory else "is an existing directory",
        "dir_with_files": (
            "a directory that is not a SavedModel (no saved_model.pb) and "
            "not empty"
            if directory
            else "is an existing directory"
        ),
        "wrong_file": wrong[fmt],
        "input": "it is the input",
        "link_to_input": "it is the input",
        "hardlink_to_input": "it is the input",
        "cwd": "it is the working directory or one of its parents",
        "cwd_absolute": "it is the working directory or one of its parents",
        "dotdot": "it is the working directory or one of its parents",
        "root": "it is the root directory",
        "dangling": "it is a symlink to nothing",
        "inside_saved_model": "inside the SavedModel",
        "saved_model_extra": "also holds README.txt, which are not part",
        "parent_is_file": "notes.txt' is a file, not a directory",
        "empty": "an empty path",
    }
    return table[dest]


CLI_ARGV = {
    "saved_model": ["export", "{model}", "--format", "saved_model"],
    "litert": ["export", "{model}", "--format", "litert"],
    "onnx": ["export", "{model}", "--format", "onnx"],
    "convert": ["convert", "{params}", "--model", "aff_resnet32"],
}
REFUSED_DESTINATIONS = (
    "empty_dir",
    "dir_with_files",
    "wrong_file",
    "input",
    "link_to_input",
    "hardlink_to_input",
    "cwd",
    "cwd_absolute",
    "dotdot",
    "root",
    "dangling",
    "inside_saved_model",
    "parent_is_file",
    "empty",
)


# `convert --out` names that fail its suffix check first.
NOT_KERAS_NAMES = ("input", "cwd", "cwd_absolute", "dotdot", "root", "empty")


def _cli_destination_rows():
    rows = []
    for fmt, argv in CLI_ARGV.items():
        for dest in REFUSED_DESTINATIONS + ("saved_model_extra",):
            if dest == "saved_model_extra" and fmt != "saved_model":
                continue
            if dest in ("hardlink_to_input",) and fmt == "convert":
                continue  # the params file is a symlink into the fixtures
            fragment = _refusal(fmt, dest)
            if dest == "empty":
                fragment = "--out: an empty path"
            if fmt == "convert" and dest in NOT_KERAS_NAMES:
                fragment = "--out must end with .keras (a model) or .weights"
            if fragment is None:
                continue  # allowed: an API row checks the success
            rows.append(
                Row(
                    f"cli-{fmt}-{dest}",
                    fmt,
                    dest,
                    "cli",
                    2,
                    fragment,
                    argv + ["--out", "{out}"],
                )
            )
    return rows


def _api_destination_rows():
    rows = []
    for fmt in ("saved_model", "litert", "onnx"):
        for dest in (
            "artifact",
            "link_to_artifact",
            "empty_dir",
            "dir_with_files",
            "wrong_file",
            "cwd",
            "dotdot",
            "root",
            "dangling",
            "inside_saved_model",
            "parent_is_file",
            "empty",
        ):
            fragment = _refusal(fmt, dest)
            if dest == "empty":
                fragment = "to be a path, not an empty string"
            expected = OK if fragment is None else "ValueError"
            rows.append(
                Row(
                    f"api-{fmt}-{dest}",
                    fmt,
                    dest,
                    "api",
                    expected,
                    fragment or "",
                )
            )
    rows.append(
        Row(
            "api-saved_model-saved_model_extra",
            "saved_model",
            "saved_model_extra",
            "api",
            "ValueError",
            _refusal("saved_model", "saved_model_extra"),
        )
    )
    for dest in ("wrong_file", "dir_with_files", "cwd"):
        rows.append(
            Row(
                f"api-qat-{dest}",
                "qat",
                dest,
                "api",
                "ValueError",
                _refusal("qat", dest),
            )
        )
    return rows


FIFO = "is a FIFO, not a regular file"
# Input files and arguments: (id, argv, expected exit, fragment).
CLI_INPUT_ROWS = [
    ("info-fifo", ["info", "{fifo}"], 2, f"fifo.keras {FIFO}"),
    (
        "export-model-fifo",
        ["export", "{fifo}", "--format", "litert", "--out", "m.tflite"],
        2,
        f"fifo.keras {FIFO}",
    ),
    (
        "export-model-socket",
        ["export", "sock.keras", "--format", "onnx", "--out", "m.onnx"],
        2,
        "sock.keras is a socket, not a regular file",
    ),
    (
        "export-model-chardev",
        ["info", "/dev/null"],
        2,
        "/dev/null is a character device, not a regular file",
    ),
    (
        "export-model-empty",
        ["export", "", "--format", "litert"],
        2,
        "an empty path; expected a Keras model file",
    ),
    (
        "export-calibration-fifo",
        ["export", "{model}", "--format", "litert", "--calibration", "{fifo}"],
        2,
        f"calibration data {{fifo}} {FIFO}",
    ),
    (
        "export-calibration-dir-fifo",
        ["export", "{model}", "--format", "litert", "--calibration", "cal"],
        2,
        f"calibration file cal/b.npy {FIFO}",
    ),
    (
        "export-calibration-dir-bad-file",
        ["export", "{model}", "--format", "litert", "--calibration", "bad"],
        2,
        "cannot read calibration file bad/b.npy: ValueError",
    ),
    (
        "export-calibration-npz-keys",
        ["export", "{model}", "--format", "litert", "--calibration", "k.npz"],
        2,
        "are named ['pixels']; expected the model's input names ['image']",
    ),
    (
        "export-calibration-empty",
        ["export", "{model}", "--format", "litert", "--calibration", ""],
        2,
        "--calibration: an empty path",
    ),
    (
        "export-opset-too-high",
        ["export", "{model}", "--format", "onnx", "--opset", "99"],
        2,
        "--opset 99: tf2onnx converts to opsets 7-18",
    ),
    (
        "export-opset-too-low",
        ["export", "{model}", "--format", "onnx", "--opset", "6"],
        2,
        "--opset 6: tf2onnx converts to opsets 7-18",
    ),
    (
        "convert-params-fifo",
        ["convert", "{fifo}", "--model", "aff_resnet32", "--out", "m.keras"],
        2,
        f"fifo.keras {FIFO}; expected an MXNet .params file",
    ),
    (
        "convert-params-empty",
        ["convert", "", "--model", "aff_resnet32", "--out", "m.keras"],
        2,
        "an empty path; expected an MXNet .params file",
    ),
    (
        "convert-classes-absurd",
        ["convert", "{params}", "--model", "aff_resnet32", "--out", "m.keras"]
        + ["--classes", "1000000000"],
        2,
        "--classes 1000000000: expected at most 100,000",
    ),
    (
        "convert-classes-mismatch",
        ["convert", "{params}", "--model", "aff_resnet32", "--out", "m.keras"]
        + ["--classes", "21"],
        2,
        "holds a 100-way classifier, the model 21 classes: pass --classes 100",
    ),
]
# Rows that write: (id, fmt, dest, argv, expected exit, fragment, fsize).
CLI_WRITING_ROWS = [
    (
        "cli-litert-artifact",
        "litert",
        "artifact",
        CLI_ARGV["litert"] + ["--out", "{out}"],
        0,
        "wrote m.tflite (verified",
        None,
    ),
    (
        "cli-litert-full-disk",
        "litert",
        "artifact",
        CLI_ARGV["litert"] + ["--out", "{out}"],
        1,
        "OSError: File too large while writing the export of model.keras: "
        "the disk is full or a file size limit was reached; nothing was "
        "left at m.tflite and what was there is untouched",
        8192,
    ),
]


def cli_rows():
    rows = _cli_destination_rows()
    for id_, argv, code, fragment in CLI_INPUT_ROWS:
        rows.append(
            Row(f"cli-{id_}", "input", "none", "cli", code, fragment, argv)
        )
    for id_, fmt, dest, argv, code, fragment, fsize in CLI_WRITING_ROWS:
        rows.append(Row(id_, fmt, dest, "cli", code, fragment, argv, fsize))
    return rows


def api_rows():
    return _api_destination_rows()
