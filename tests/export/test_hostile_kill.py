"""A killed export: a child process writing over an existing artifact is
killed with SIGKILL at each step of the commit. The path then holds the
old or the new artifact, whole (every file's checksum); the next export
to that path removes the leftovers (restoring the old artifact first when
the kill fell between the two renames of the fallback commit).

The commit steps run in light children that load `staging` without the
package (`keras_aff/__init__` imports Keras), a fraction of a second per
kill; a real `export_saved_model` child is killed after the exchange,
and both the artifact at the path and the old one beside it load and run.
"""

import os
import signal
import sys

import keras
import numpy as np
import pytest

from keras_aff import export
from keras_aff.demo import build_demo_model
from keras_aff.export import staging
from tests import processes
from tests.export import hostile_sandbox as sandbox

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="SIGKILL and flock are POSIX"
)

# Loads keras_aff.export.staging without running keras_aff/__init__.py
# (which imports Keras), then writes a fake artifact over `path` and dies
# at `point`. `kind` "saved_model" writes a directory, "litert" a file.
_LIGHT_CHILD = r"""
import os, shutil, signal, sys, types

root, path, kind, point = sys.argv[1:5]
for name, sub in (("keras_aff", ""), ("keras_aff.export", "export")):
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(root, "keras_aff", sub)]
    sys.modules[name] = module
from keras_aff.export import staging


def die():
    os.kill(os.getpid(), signal.SIGKILL)


exchange, rename, rmtree = staging._exchange, os.rename, shutil.rmtree
if point == "before_exchange":
    staging._exchange = lambda a, b: die()
if point == "after_exchange":
    staging._exchange = lambda a, b: (exchange(a, b), die())
if point in ("after_aside", "after_rename_in"):
    staging._exchange = lambda a, b: False  # the fallback commit
    calls = []

    def rename_then_die(a, b):
        rename(a, b)
        calls.append(b)
        if point == "after_aside" or len(calls) == 2:
            die()

    os.rename = rename_then_die
if point == "before_replace":
    os.replace = lambda a, b: die()
if point == "after_commit":
    shutil.rmtree = lambda *a, **k: die()
if point == "full_disk":  # writes past RLIMIT_FSIZE fail with EFBIG
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
with staging.StagedPath(path, kind) as stage:
    if kind == "saved_model":
        os.makedirs(os.path.join(stage.tmp, "variables"))
        for name in ("saved_model.pb", "variables/variables.data"):
            with open(os.path.join(stage.tmp, name), "w") as f:
                f.write("new " + name * 2000)
    else:
        with open(stage.tmp, "wb") as f:
            f.write(b"0000TFL3" + b"new" * 5000)
    if point == "while_writing":
        die()
    stage.commit()
"""
# point -> what the path holds after the kill: "old", "new" or None
# (nothing: the old artifact waits in the staging directory).
POINTS = [
    ("saved_model", "while_writing", "old"),
    ("saved_model", "before_exchange", "old"),
    ("saved_model", "after_exchange", "new"),
    ("saved_model", "after_aside", None),
    ("saved_model", "after_rename_in", "new"),
    ("saved_model", "after_commit", "new"),
    ("litert", "while_writing", "old"),
    ("litert", "before_replace", "old"),
    ("litert", "after_commit", "new"),
]


def _old_artifact(path, kind):
    if kind == "saved_model":
        os.makedirs(os.path.join(path, "variables"))
        for name in ("saved_model.pb", "variables/variables.data"):
            with open(os.path.join(path, name), "w") as f:
                f.write("old " + name * 3000)
    else:
        with open(path, "wb") as f:
            f.write(b"0000TFL3" + b"old" * 4000)


def _tree(path):
    if os.path.isdir(path):
        return sandbox.snapshot(path)
    return sandbox.snapshot(os.path.dirname(path)).get(os.path.basename(path))


def _new_tree(tmp_path, kind):
    """The tree a child writes when it is not killed."""
    path = str(
        tmp_path
        / "reference"
        / ("serving" if kind == "saved_model" else "m.tflite")
    )
    proc = processes.run_python(
        ["-c", _LIGHT_CHILD, processes.ROOT, path, kind, "none"], timeout=60
    )
    processes.succeeded(proc)
    return _tree(path)


@pytest.mark.parametrize(
    "kind, point, holds", POINTS, ids=[f"{k}-{p}" for k, p, _ in POINTS]
)
def test_commit_killed_at_each_step(tmp_path, kind, point, holds):
    parent = tmp_path / "models"
    parent.mkdir()
    (parent / "keep.txt").write_text("the user's")
    path = str(parent / ("serving" if kind == "saved_model" else "m.tflite"))
    _old_artifact(path, kind)
    old = _tree(path)
    new = _new_tree(tmp_path, kind)
    proc = processes.run_python(
        ["-c", _LIGHT_CHILD, processes.ROOT, path, kind, point], timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    if holds is None:  # only where renameat2's exchange is missing
        assert not os.path.lexists(path)
    else:
        assert _tree(path) == {"old": old, "new": new}[holds]
    assert (parent / "keep.txt").read_text() == "the user's"
    # The next export to the path: leftovers go (restored first if the
    # path was empty), then it commits.
    staging.clean_leftovers(os.path.realpath(path))
    assert _tree(path) == ({"new": new}.get(holds) or old)
    assert sandbox.leftovers(str(parent)) == []
    with staging.StagedPath(path, kind) as stage:
        _old_artifact(stage.tmp, kind)
        stage.commit()
    assert sorted(os.listdir(parent)) == sorted(
        ["keep.txt", os.path.basename(path)]
    )


@pytest.mark.parametrize("kind", ["saved_model", "litert"])
def test_full_disk_while_staging(tmp_path, kind):
    parent = tmp_path / "models"
    parent.mkdir()
    path = str(parent / ("serving" if kind == "saved_model" else "m.tflite"))
    _old_artifact(path, kind)
    old = _tree(path)
    proc = processes.run_python(
        ["-c", _LIGHT_CHILD, processes.ROOT, path, kind, "full_disk"],
        timeout=60,
    )
    assert proc.returncode == 1
    assert "OSError: [Errno 27] File too large" in proc.stderr
    assert _tree(path) == old  # the old artifact, whole
    assert os.listdir(parent) == [os.path.basename(path)]  # nothing partial


# A real export over an existing SavedModel, killed once the new one is
# swapped in and before the old one is deleted; the parent loads what is
# left at the path.
_EXPORT_CHILD = r"""
import os, signal, sys
import keras
from keras_aff import export
from keras_aff.export import staging

model_file, path = sys.argv[1:3]
exchange = staging._exchange


def swap_then_die(a, b):
    exchange(a, b)
    os.kill(os.getpid(), signal.SIGKILL)


staging._exchange = swap_then_die
model = keras.saving.load_model(model_file)
export.export_saved_model(model, path, standalone_check=False)
"""


@pytest.mark.export
def test_real_saved_model_export_killed(tmp_path):
    keras.utils.set_random_seed(1)
    new_model = build_demo_model()
    keras.utils.set_random_seed(2)
    old_model = build_demo_model()
    model_file = tmp_path / "new.keras"
    new_model.save(model_file)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 1)).astype("float32")
    path = str(tmp_path / "models" / "serving")
    export.export_saved_model(old_model, path, standalone_check=False)
    proc = processes.run_python(
        ["-c", _EXPORT_CHILD, model_file, path], timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    want = np.asarray(new_model(x, training=False))
    (got,) = export.load_artifact(path)(x)  # whole and loadable
    np.testing.assert_allclose(got, want, atol=1e-4)
    (leftover,) = sandbox.leftovers(os.path.dirname(path))
    old_copy = os.path.join(os.path.dirname(path), leftover, "new", "serving")
    (got,) = export.load_artifact(old_copy)(x)  # the old one, whole
    np.testing.assert_allclose(
        got, np.asarray(old_model(x, training=False)), atol=1e-4
    )
    # The next export removes the leftover and replaces the artifact.
    export.export_saved_model(new_model, path, standalone_check=False)
    assert os.listdir(os.path.dirname(path)) == ["serving"]
    (got,) = export.load_artifact(path)(x)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_leftovers_of_a_live_export_are_left_alone(tmp_path):
    """Two exports to one path at once: the second removes only staging
    directories that no live export holds, and nothing but ours."""
    import fcntl

    path = str(tmp_path / "m.tflite")
    _old_artifact(path, "litert")
    live = tmp_path / f"{staging.staging_prefix(path)}live"
    dead = tmp_path / f"{staging.staging_prefix(path)}dead"
    mine = tmp_path / ".m.tflite.partial"  # a user's, not our prefix
    for directory in (live, dead, mine):
        directory.mkdir()
        (directory / "x").write_text("x")
    fd = os.open(live / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running export holds it
        staging.clean_leftovers(os.path.realpath(path))
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [".m.tflite.partial", live.name, "m.tflite"]
    )
