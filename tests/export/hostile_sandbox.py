"""The sandboxes of the hostile-path suite (`hostile_cases.py` holds
the rows): one directory per row, its destination set up, and the
snapshot of its tree that the invariants compare.

Each sandbox:

    <row>/work/           the working directory of the row
        model.keras       the input model (the demo network)
        notes.txt         a file of the user's
        weights.params    (convert rows) the official AFF-ResNet-32 file
"""

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
