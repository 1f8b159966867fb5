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


class StagedPath:
    """Writes an artifact next to its destination and moves it into place
    only once it is verified; on failure nothing is left at `path`.

    `path=None` stages in a scratch directory that is always removed: the
    artifact is checked but not kept (`commit()` keeps nothing).

    Attributes:
        path: the destination (str), or None.
        tmp: where to write the artifact.
    """

    def __init__(self, path):
        self._scratch = None
        if path is None:
            self.path = None
            self._scratch = tempfile.mkdtemp(prefix="keras_aff_export_")
            self.tmp = os.path.join(self._scratch, "artifact")
            return
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path)) or "."
        os.makedirs(parent, exist_ok=True)
        base = os.path.basename(os.path.normpath(self.path))
        self.tmp = os.path.join(parent, f".{base}.unverified")
        _remove(self.tmp)

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
