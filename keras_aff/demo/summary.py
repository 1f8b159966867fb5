"""The demo's summary: every figure of a run, as `demo_report.json`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import dataclasses
import json
import os
import tempfile

REPORT_FILE = "demo_report.json"


@dataclasses.dataclass
class DemoSummary:
    """What a demo run measured.

    Attributes:
        epochs: training epochs.
        seed: the random seed.
        train_images: number of training digits.
        test_images: number of held-out digits.
        results: one dict per table row ("format", "file", "size_bytes",
            "accuracy", "max_abs_error", "latency_ms"), Keras first.
        reports: artifact label -> its `keras_aff.export.ExportReport`.
        png: path of the fusion-weight plot, or None.
        seconds: wall time of the run.

    Example:

    >>> summary = keras_aff.demo.DemoSummary(
    ...     epochs=8, seed=0, train_images=1437, test_images=360,
    ...     results=[], reports={}, png=None, seconds=36.0,
    ... )
    >>> summary.write_json("demo_report.json")["epochs"]
    8
    """

    epochs: int
    seed: int
    train_images: int
    test_images: int
    results: list
    reports: dict
    png: str | None
    seconds: float

    def to_dict(self):
        """A JSON-serializable dict (the reports as `ExportReport.to_dict`).

        Example:

        >>> keras_aff.demo.DemoSummary(
        ...     1, 0, 10, 5, [], {}, None, 1.5
        ... ).to_dict()["seconds"]
        1.5
        """
        data = dataclasses.asdict(self)
        data["reports"] = {k: r.to_dict() for k, r in self.reports.items()}
        return data

    def write_json(self, path):
        """Writes `to_dict()` to `path` as indented JSON (whole or not at
        all) and returns it.

        Example:

        >>> keras_aff.demo.DemoSummary(
        ...     1, 0, 10, 5, [], {}, None, 1.5
        ... ).write_json("report.json")["png"] is None
        True
        """
        data = self.to_dict()
        # A name of our own beside `path` (never a file of the user's).
        fd, tmp = tempfile.mkstemp(
            dir=os.path.dirname(os.path.abspath(path)),
            prefix=f".{os.path.basename(path)}.",
            suffix=".partial",
        )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would create it
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return data
