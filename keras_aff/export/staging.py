"""Atomic writes of exported artifacts (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

An artifact is written next to its destination, checked there, and moved
into place only once every check passed; on failure nothing is left at the
destination and an artifact already there is untouched.
"""

import os
import shutil
import tempfile


def path_size(path):
    """Bytes of a file, or of every file under a directory."""
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, f))
            for root, _, files in os.walk(path)
            for f in files
        )
    return os.path.getsize(path)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def _existing_ancestor(path):
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _staging_path(path):
    """Where the artifact for `path` is written before it is verified."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    base = os.path.basename(os.path.normpath(path))
    return os.path.join(parent, f".{base}.unverified")


def check_destination(path, directory=False):
    """Raises a `ValueError` unless an artifact can be written at `path`:
    a file artifact never replaces a directory, nor a directory artifact
    (a SavedModel) a file, and the parent directory must exist or be
    creatable, and be writable. Creates the parent; writes nothing else.
    """
    if not directory and os.path.isdir(path):
        raise ValueError(
            "Expected `path` to be a file path; it is an existing directory "
            "(nothing was written or removed). Received: "
            f"path={path!r}"
        )
    if directory and os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(
            "Expected `path` to be a directory path (a SavedModel is a "
            "directory); it is an existing file (nothing was written or "
            f"removed). Received: path={path!r}"
        )
    parent = os.path.dirname(os.path.abspath(path)) or "."
    probe = _staging_path(path)
    try:
        os.makedirs(parent, exist_ok=True)
        _remove(probe)
        with open(probe, "wb"):  # can we write here at all?
            pass
        os.remove(probe)
    except OSError as e:
        why = e.strerror or str(e)
        blocker = _existing_ancestor(parent)
        if not os.path.isdir(blocker):
            why = f"{blocker!r} is a file, not a directory"
        raise ValueError(
            f"Cannot write the artifact in {parent!r} ({why}"
            "): expected `path` in a directory that exists or can be "
            f"created, and is writable. Received: path={path!r}"
        ) from None


class StagedPath:
    """Writes an artifact next to its destination and moves it into place
    only once it is verified; on failure nothing is left at `path`.

    `path=None` stages in a scratch directory that is always removed: the
    artifact is checked but not kept (`commit()` keeps nothing).

    A file artifact (`directory=False`) never replaces a directory, nor a
    directory artifact (a SavedModel) a file: that is a `ValueError`
    before anything is written or removed, and so is a destination whose
    directory cannot be created or written.

    Attributes:
        path: the destination (str), or None.
        tmp: where to write the artifact.
    """

    def __init__(self, path, directory=False):
        self._scratch = None
        if path is None:
            self.path = None
            self._scratch = tempfile.mkdtemp(prefix="keras_aff_export_")
            self.tmp = os.path.join(self._scratch, "artifact")
            return
        self.path = os.fspath(path)
        check_destination(self.path, directory)
        self.tmp = _staging_path(self.path)

    def __enter__(self):
        return self

    def commit(self):
        """Moves the checked artifact to `path` (replacing what is there)."""
        if self.path is None:
            return
        _remove(self.path)
        os.replace(self.tmp, self.path)

    def __exit__(self, exc_type, exc, tb):
        _remove(self.tmp)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return False
