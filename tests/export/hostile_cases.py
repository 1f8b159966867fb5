"""The rows of the hostile-path suite (`test_hostile_paths.py`) and what
they need: a sandbox per row, the snapshot of its tree, the destinations.

A row is an action (a `keras-aff` command or an exporter call), what it
must give (exit status or exception type, and a fragment of the message)
and the filesystem invariant: a refused row leaves its sandbox exactly as
it was (every path, file checksum and link target); a row that succeeds
changes nothing but the artifact's own path, leaves no staging directory,
and the artifact there loads and reproduces the model.
`docs/robustness.md` lists every row.

Each sandbox:

    <row>/work/           the working directory of the row
        model.keras       the input model (the demo network)
        notes.txt         a file of the user's
        weights.params    (convert rows) the official AFF-ResNet-32 file
"""

import dataclasses
import hashlib
import os
import shutil
import socket

# The artifact name each format writes when the destination is "absent".
NAMES = {
    "saved_model": "serving/1",
    "litert": "m.tflite",
    "onnx": "m.onnx",
    "convert": "m.keras",
    "qat": "m.tflite",
}
# Where a kind's ready-made artifact comes from (`assets`).
ASSET = {"saved_model": "saved_model", "litert": "tflite", "onnx": "onnx"}
ASSET["convert"] = "keras"
ASSET["qat"] = "tflite"
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
# Sandboxes
# ---------------------------------------------------------------------------
def snapshot(root):
    """Every path under `root` -> ("file", sha256) / ("dir",) /
    ("link", target) / ("fifo",) / ("socket",); never opens a non-regular
    file."""
    found = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                found[rel] = ("dir",)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[rel] = ("file", hashlib.sha256(f.read()).hexdigest())
            else:
                found[rel] = ("special",)
    return found


def leftovers(root):
    """Staging directories (ours: `.<name>.keras_aff-*`) under `root`."""
    return sorted(
        os.path.relpath(os.path.join(top, d), root)
        for top, dirs, _ in os.walk(root)
        for d in dirs
        if ".keras_aff-" in d
    )


def make_sandbox(root, row, assets):
    """Creates the row's sandbox under `root`; returns (work dir, the
    argv with placeholders filled, the destination as given)."""
    work = os.path.join(root, row.id, "work")
    os.makedirs(work)
    shutil.copy(assets["model"], os.path.join(work, "model.keras"))
    with open(os.path.join(work, "notes.txt"), "w") as f:
        f.write("the user's notes\n")
    if row.fmt == "convert" or "{params}" in " ".join(row.argv):
        os.symlink(assets["params"], os.path.join(work, "weights.params"))
    out = DESTINATIONS[row.dest](work, row.fmt, assets)
    values = {"out": out, "model": "model.keras", "params": "weights.params"}
    if "{fifo}" in " ".join(row.argv):
        values["fifo"] = _special(work, "fifo")
    prepare_inputs(work, row)
    argv = [a.format(**values) for a in row.argv]
    row.fragment = row.fragment.format(**values)
    return work, argv, out


def _special(work, kind, name=None):
    path = os.path.join(work, name or f"{kind}.keras")
    if os.path.lexists(path):
        return os.path.basename(path)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()
    return os.path.basename(path)


def _copy_asset(assets, fmt, target):
    source = assets[ASSET[fmt]]
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    if os.path.isdir(source):
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)


def _at(work, fmt):
    return os.path.join(work, NAMES[fmt])


def _absent(work, fmt, assets):
    return NAMES[fmt]


def _empty_dir(work, fmt, assets):
    os.makedirs(_at(work, fmt))
    return NAMES[fmt]


def _dir_with_files(work, fmt, assets):
    os.makedirs(_at(work, fmt))
    with open(os.path.join(_at(work, fmt), "keep.txt"), "w") as f:
        f.write("keep me\n")
    return NAMES[fmt]


def _artifact(work, fmt, assets):
    _copy_asset(assets, fmt, _at(work, fmt))
    return NAMES[fmt]


def _wrong_file(work, fmt, assets):
    os.makedirs(os.path.dirname(_at(work, fmt)) or work, exist_ok=True)
    with open(_at(work, fmt), "w") as f:
        f.write("not an artifact\n")
    return NAMES[fmt]


def _link_to_input(work, fmt, assets):
    target = "weights.params" if fmt == "convert" else "model.keras"
    name = "link" + os.path.splitext(NAMES[fmt])[1]
    os.symlink(target, os.path.join(work, name))
    return name


def _hardlink_to_input(work, fmt, assets):
    name = "hard" + os.path.splitext(NAMES[fmt])[1]
    os.link(os.path.join(work, "model.keras"), os.path.join(work, name))
    return name


def _dangling(work, fmt, assets):
    name = "dangling" + os.path.splitext(NAMES[fmt])[1]
    os.symlink("missing/nowhere", os.path.join(work, name))
    return name


def _link_to_artifact(work, fmt, assets):
    real = os.path.join(work, "real")
    os.makedirs(real)
    _copy_asset(assets, fmt, os.path.join(real, os.path.basename(NAMES[fmt])))
    name = "link" + os.path.splitext(NAMES[fmt])[1]
    os.symlink(
        os.path.join("real", os.path.basename(NAMES[fmt])),
        os.path.join(work, name),
    )
    return name


def _inside_saved_model(work, fmt, assets):
    _copy_asset(assets, "saved_model", os.path.join(work, "sm", "1"))
    return os.path.join("sm", "1", "extra" + os.path.splitext(NAMES[fmt])[1])


def _saved_model_extra(work, fmt, assets):
    _copy_asset(assets, "saved_model", _at(work, "saved_model"))
    with open(os.path.join(_at(work, "saved_model"), "README.txt"), "w") as f:
        f.write("how to serve\n")
    return NAMES["saved_model"]


def _parent_is_file(work, fmt, assets):
    return os.path.join("notes.txt", "sub", os.path.basename(NAMES[fmt]))


DESTINATIONS = {
    "absent": _absent,
    "empty_dir": _empty_dir,
    "dir_with_files": _dir_with_files,
    "artifact": _artifact,
    "wrong_file": _wrong_file,
    "input": lambda work, fmt, assets: (
        "weights.params" if fmt == "convert" else "model.keras"
    ),
    "cwd": lambda work, fmt, assets: ".",
    "cwd_absolute": lambda work, fmt, assets: os.path.realpath(work),
    "dotdot": lambda work, fmt, assets: "..",
    "root": lambda work, fmt, assets: "/",
    "empty": lambda work, fmt, assets: "",
    "link_to_input": _link_to_input,
    "hardlink_to_input": _hardlink_to_input,
    "dangling": _dangling,
    "link_to_artifact": _link_to_artifact,
    "inside_saved_model": _inside_saved_model,
    "saved_model_extra": _saved_model_extra,
    "parent_is_file": _parent_is_file,
    "none": lambda work, fmt, assets: "unused",
}


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


def prepare_inputs(work, row):
    """The extra input files that the input rows name."""
    import numpy as np

    if "sock.keras" in row.argv:
        _special(work, "socket", "sock.keras")
    if row.id.endswith("calibration-dir-fifo"):
        os.makedirs(os.path.join(work, "cal"))
        np.save(os.path.join(work, "cal", "a.npy"), np.zeros((16, 16, 1)))
        os.mkfifo(os.path.join(work, "cal", "b.npy"))
    if row.id.endswith("calibration-dir-bad-file"):
        os.makedirs(os.path.join(work, "bad"))
        np.save(os.path.join(work, "bad", "a.npy"), np.zeros((16, 16, 1)))
        with open(os.path.join(work, "bad", "b.npy"), "w") as f:
            f.write("not an array")
    if row.id.endswith("npz-keys"):
        np.savez(os.path.join(work, "k.npz"), pixels=np.zeros((4, 16, 16, 1)))
