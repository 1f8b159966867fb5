"""Where an artifact may be written, and its atomic commit (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The rule. An exporter (or `keras-aff convert`) replaces nothing but a
previous artifact of its own kind at its path, and checks that before any
work (`check_destination`); a refusal is a `ValueError` naming the path and
the reason, and nothing is written or removed. The path, seen through
symlinks (`os.path.realpath`), must be

- not empty, not `/`, not the working directory nor one of its parents
  (so never `.` or `..`), and not a symlink to nothing;
- not an input of the export, nor a directory holding one, nor (for an
  existing file) a hard link to one;
- not inside an existing SavedModel directory (replacing that SavedModel
  would take the new file with it);
- for a SavedModel: absent, an empty directory, or a SavedModel
  directory: `saved_model.pb` (or `.pbtxt`) and nothing but the entries
  TensorFlow writes there (`variables/`, `assets/`, `assets.extra/`,
  `fingerprint.pb`, `keras_metadata.pb`);
- for a file: absent, or a regular file of the same kind: a LiteRT
  flatbuffer (`TFL3` at byte 4), an ONNX model (parses, has an IR
  version and an opset), a `.keras` zip holding `config.json`, an HDF5
  file (`.weights.h5`);
- in a directory that exists or can be created, and can be written.

The commit. The artifact is written and verified in a staging directory
beside its path, `.<name>.keras_aff-XXXXXXXX` (`tempfile.mkdtemp`), then
moved in by rename: a file with `os.replace` (atomic), a directory by
exchanging the two (`renameat2(RENAME_EXCHANGE)` on Linux, atomic), or,
where that is missing, by renaming the old one into the staging directory
and the new one in. The old artifact is deleted only after the new one is
in place. A process killed at any point leaves the old or the new artifact
whole at the path, and at most its staging directory beside it (locked
with `flock` while its export runs); the next export to that path removes
such leftovers (restoring the old artifact first if the kill fell between
the two renames), and only directories with that name.
"""

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
import zipfile

from keras_aff._validation import file_type

try:  # POSIX: a live export's staging directory is locked
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None

# Where the kinds of artifact come from, for messages.
KINDS = {
    "saved_model": "a SavedModel",
    "litert": "a LiteRT (.tflite) model",
    "onnx": "an ONNX model",
    "keras": "a Keras model (.keras)",
    "weights": "a Keras weights file (.weights.h5)",
    "file": "a file",
}
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
SAVED_MODEL_ENTRIES = frozenset(
    SAVED_MODEL_FILES
    + (
        "variables",
        "assets",
        "assets.extra",
        "fingerprint.pb",
        "keras_metadata.pb",
    )
)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_LOCK = ".lock"
_NEW = "new"
_PREVIOUS = "previous"


def path_size(path):
    """Bytes of a file, or of every file under a directory."""
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, f))
            for root, _, files in os.walk(path)
            for f in files
        )
    return os.path.getsize(path)


def staging_prefix(path):
    """The name prefix of the staging directories of `path`: only
    directories with it are ever removed beside an artifact."""
    return f".{os.path.basename(path)}.keras_aff-"


# ---------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------
def _refuse(name, path, reason):
    """Raises the `ValueError` of a destination that breaks the rule; its
    `reason` attribute is the reason alone (the CLI prints it after the
    flag)."""
    error = ValueError(
        f"Cannot export to {path!r}: {reason} (nothing was written or "
        f"removed). Received: {name}={path!r}"
    )
    error.reason = reason
    raise error


def _inside(child, parent):
    """Whether the real path `child` is `parent` or below it."""
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def is_saved_model_dir(path):
    """Whether `path` is a directory holding `saved_model.pb(txt)`."""
    return os.path.isdir(path) and any(
        os.path.isfile(os.path.join(path, f)) for f in SAVED_MODEL_FILES
    )


def _file_kind_problem(path, kind):
    """None when the regular file `path` is an artifact of `kind`, else
    what it is not."""
    with open(path, "rb") as f:
        head = f.read(8)
    if kind == "litert" and head[4:8] != b"TFL3":
        return "not a LiteRT flatbuffer (no TFL3 identifier at byte 4)"
    if kind == "weights" and head != HDF5_SIGNATURE:
        return "not an HDF5 file (no HDF5 signature)"
    if kind == "keras":
        try:
            with zipfile.ZipFile(path) as z:
                if "config.json" in z.namelist():
                    return None
        except (zipfile.BadZipFile, OSError):
            pass
        return "not a .keras file (a zip archive holding config.json)"
    if kind == "onnx" and not _is_onnx(path):
        return "not an ONNX model (it does not parse as one)"
    return None


def _is_onnx(path):
    try:
        import onnx
    except ImportError:  # the export itself needs it; be strict here
        return False
    try:
        proto = onnx.load_model(path, load_external_data=False)
    except Exception:  # a DecodeError or worse: not a model
        return False
    return proto.ir_version > 0 and len(proto.opset_import) > 0


def _existing_problem(real, kind):
    """What forbids replacing the existing `real` by a `kind` artifact."""
    what = KINDS[kind]
    if kind == "saved_model":
        if not os.path.isdir(real):
            return (
                "it is an existing file; a SavedModel is a directory, and "
                "only an empty directory or a SavedModel is replaced"
            )
        entries = sorted(os.listdir(real))
        if not entries:
            return None
        if not is_saved_model_dir(real):
            return (
                "it is a directory that is not a SavedModel (no "
                "saved_model.pb) and not empty; only an empty directory or "
                "a SavedModel is replaced"
            )
        others = [e for e in entries if e not in SAVED_MODEL_ENTRIES]
        if others:
            return (
                f"the SavedModel directory also holds {', '.join(others)}, "
                "which are not part of a SavedModel and would be removed"
            )
        return None
    if os.path.isdir(real):
        return f"it is an existing directory; {what} is a file"
    if not os.path.isfile(real):
        return f"it is not a regular file ({file_type(real)})"
    problem = _file_kind_problem(real, kind)
    if problem:
        return f"the existing file is {problem}; only {what} is replaced"
    return None


def _place_problem(real, inputs):
    """What forbids `real` as a destination, whatever is there."""
    if real == os.path.realpath(os.sep):
        return "it is the root directory"
    if _inside(os.path.realpath(os.getcwd()), real):
        return "it is the working directory or one of its parents"
    for given in inputs:
        if given is None or not os.path.lexists(given):
            continue
        source = os.path.realpath(given)
        if real == source or (
            os.path.exists(real) and os.path.samefile(real, source)
        ):
            return f"it is the input {os.fspath(given)!r}"
        if _inside(source, real):
            return f"it holds the input {os.fspath(given)!r}"
    parent = os.path.dirname(real)
    while parent != os.path.dirname(parent):
        if is_saved_model_dir(parent):
            return (
                f"it is inside the SavedModel {parent!r}, which an export "
                "there would replace"
            )
        parent = os.path.dirname(parent)
    return None


def _existing_ancestor(path):
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _make_parents(parent):
    """Creates `parent` and returns the directories created, deepest
    first."""
    missing = []
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        os.mkdir(directory)
    return missing


def _remove_parents(created):
    for directory in created:
        with contextlib.suppress(OSError):
            os.rmdir(directory)  # only when still empty


def _probe(name, path, real):
    """Raises unless a staging directory can be made beside `real`;
    leaves nothing behind."""
    parent = os.path.dirname(real)
    created = []
    try:
        created = _make_parents(parent)
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=staging_prefix(real)))
    except OSError as e:
        why = e.strerror or str(e)
        blocker = _existing_ancestor(parent)
        if not os.path.isdir(blocker):
            why = f"{blocker!r} is a file, not a directory"
        _refuse(
            name,
            path,
            f"cannot write the artifact in {parent!r} ({why}); expected a "
            "directory that exists or can be created, and is writable",
        )
    finally:
        _remove_parents(created)


def check_destination(path, kind, inputs=(), name="path"):
    """Raises a `ValueError` unless a `kind` artifact may be written at
    `path` under the module's rule; returns the real path to write.
    `inputs`: the paths the export reads (never replaced). Writes and
    removes nothing.

    Example:

    >>> from keras_aff.export.staging import check_destination
    >>> check_destination("model.tflite", "litert").endswith("model.tflite")
    True
    >>> check_destination(".", "saved_model")
    Traceback (most recent call last):
    ...
    ValueError: Cannot export to '.': it is the working directory ...
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"Expected `{name}` to be a str or path-like. Received: "
            f"{name}={path!r} (of type {type(path).__name__})"
        )
    path = os.fspath(path)
    if not path:
        raise ValueError(
            f"Expected `{name}` to be a path, not an empty string. "
            f"Received: {name}=''"
        )
    if os.path.islink(path) and not os.path.exists(path):
        _refuse(name, path, "it is a symlink to nothing")
    real = os.path.realpath(path)
    problem = _place_problem(real, inputs)
    if problem is None and os.path.lexists(real):
        problem = _existing_problem(real, kind)
    if problem:
        _refuse(name, path, problem)
    _probe(name, path, real)
    return real


# ---------------------------------------------------------------------------
# The commit
# ---------------------------------------------------------------------------
def _exchange(a, b):
    """Swaps two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`);
    False where the system or the file system cannot."""
    try:
        rename2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):
        return False
    at_fdcwd, exchange = -100, 2
    if rename2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange):
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV):
            return False
        raise OSError(code, os.strerror(code), b)
    return True


def _lock(directory):
    """Opens and locks `directory`'s lock file; None when it is held by a
    live export (or cannot be locked here)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(os.path.join(directory, _LOCK), os.O_RDWR | os.O_CREAT)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def clean_leftovers(real):
    """Removes the staging directories of killed exports to `real` (the
    name `staging_prefix(real)`, not locked by a live export); restores
    the old artifact first when a kill left the path empty."""
    parent, prefix = os.path.dirname(real), staging_prefix(real)
    for entry in sorted(os.listdir(parent)):
        leftover = os.path.join(parent, entry)
        if not entry.startswith(prefix) or os.path.islink(leftover):
            continue
        if not os.path.isdir(leftover):
            continue
        fd = _lock(leftover)
        if fd is None and fcntl is not None:
            continue  # a live export's, or not ours to judge
        try:
            previous = os.path.join(leftover, _PREVIOUS)
            if os.path.lexists(previous) and not os.path.lexists(real):
                os.rename(previous, real)
            shutil.rmtree(leftover, ignore_errors=True)
        finally:
            if fd is not None:
                os.close(fd)


class StagedPath:
    """Writes an artifact beside its destination and moves it into place
    only once it is verified; on failure nothing is left at `path` and
    what was there is untouched.

    `path=None` stages in a scratch directory that is always removed: the
    artifact is checked but not kept (`commit()` keeps nothing).

    Args:
        path: the destination, or None.
        kind: a key of `KINDS`: what may be replaced (see the module).
        inputs: paths the export reads, which are never replaced.

    Attributes:
        path: the destination as given (str), or None.
        tmp: where to write the artifact.
    """

    def __init__(self, path, kind="file", inputs=()):
        self._fd = None
        self._committed = False
        self._created = []
        if path is None:
            self.path = None
            self._dir = tempfile.mkdtemp(prefix="keras_aff_export_")
            self.tmp = os.path.join(self._dir, "artifact")
            return
        self.path = os.fspath(path)
        self.kind = kind
        self._real = check_destination(self.path, kind, inputs)
        parent = os.path.dirname(self._real)
        self._created = _make_parents(parent)
        clean_leftovers(self._real)
        self._dir = tempfile.mkdtemp(
            dir=parent, prefix=staging_prefix(self._real)
        )
        self._fd = _lock(self._dir)
        os.mkdir(os.path.join(self._dir, _NEW))
        self.tmp = os.path.join(self._dir, _NEW, os.path.basename(self._real))

    def __enter__(self):
        return self

    def commit(self):
        """Moves the checked artifact to `path`; the artifact it replaces
        is deleted only after that."""
        if self.path is None:
            return
        real = self._real
        if self.kind != "saved_model" or not os.path.lexists(real):
            os.replace(self.tmp, real)
        elif not _exchange(self.tmp, real):
            os.rename(real, os.path.join(self._dir, _PREVIOUS))
            os.rename(self.tmp, real)
        self._committed = True

    def __exit__(self, exc_type, exc, tb):
        shutil.rmtree(self._dir, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
        if not self._committed:
            _remove_parents(self._created)
        return False
