"""The one verify-and-commit pipeline of every exporter (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

    stage -> write -> open a runner -> checks -> latency -> commit -> report

A format supplies an `Artifact`: how to write itself at the staged path,
how to run what was written, the check policy and its label. The pipeline
runs every `Check` through the policy (the first failure raises
`ExportVerificationError` and nothing is left at the path), times batch 1,
moves the artifact into place and builds the `ExportReport`.
"""

import dataclasses
from collections.abc import Callable

from keras_aff.export import checks
from keras_aff.export.model_io import take
from keras_aff.export.report import ExportReport
from keras_aff.export.staging import KINDS
from keras_aff.export.staging import StagedPath
from keras_aff.export.staging import path_size


@dataclasses.dataclass
class Check:
    """One comparison of the artifact with its Keras model.

    Attributes:
        name: what `ExportReport.checked` lists, e.g. "batch 4".
        inputs: list of arrays, in model input order.
        expected: the Keras outputs on `inputs`.
        run: optional `(runner, inputs) -> outputs`; default
            `runner(inputs)`.
        about: added to `name` in an error message.
    """

    name: str
    inputs: list
    expected: list
    run: Callable | None = None
    about: str = ""


def batch_checks(samples, reference, batch_one=True, about=""):
    """`batch n` on every sample and, with `batch_one`, `batch 1` on the
    first."""
    n = len(samples[0])
    found = [Check(f"batch {n}", samples, reference, about=about)]
    if batch_one:
        first = slice(0, 1)
        found.append(
            Check("batch 1", take(samples, first), take(reference, first))
        )
    return found


@dataclasses.dataclass
class Artifact:
    """What a format gives the pipeline.

    Attributes:
        format: "saved_model", "litert" or "onnx".
        label: names the artifact in error messages.
        write: `write(staged_path)` writes the artifact there; returns a
            dict of extra `ExportReport` fields (e.g. `ops`), or None.
        open_runner: `open_runner(staged_path)` -> a `runners.Runner`.
        policy: the `checks.Policy` every check applies.
        quantization: the report's `quantization`.
        notes: the report's notes; the steps may append to it.
        after_checks: optional `after_checks(runner)` -> dict of extra
            fields, called once every check passed.
        report_fields: extra `ExportReport` fields known before writing
            (e.g. `batch_norm_folding`).
    """

    format: str
    label: str
    write: Callable
    open_runner: Callable
    policy: checks.Policy = checks.Policy()
    quantization: str | None = None
    notes: list = dataclasses.field(default_factory=list)
    after_checks: Callable | None = None
    report_fields: dict = dataclasses.field(default_factory=dict)


def _run_checks(artifact, runner, found):
    parts, tolerance = [], None
    for check in found:
        if check.run is None:
            got = runner(check.inputs)
        else:
            got = check.run(runner, check.inputs)
        stats, tol = artifact.policy.check(
            artifact.label, check.expected, got, where=check.name + check.about
        )
        parts.append(stats)
        tolerance = tol if tolerance is None else tolerance
    return parts, tolerance


def _write(artifact, tmp, path):
    """`artifact.write(tmp)`; an `OSError` (a full disk, a file size limit)
    names the destination and what was kept."""
    try:
        return artifact.write(tmp) or {}
    except OSError as e:
        raise OSError(
            e.errno,
            f"Cannot write {artifact.label} for {path!r}: "
            f"{e.strerror or e} (nothing was left at the path; an artifact "
            "that was there is untouched)",
        ) from e


def verify_and_commit(path, artifact, found):
    """Writes `artifact` next to `path`, checks it (`found`, a list of
    `Check`, the first is the main one), times batch 1, moves it to `path`
    (None: keeps nothing) and returns its `ExportReport`.

    What `path` may hold and what is replaced: `staging`'s rule (a
    previous artifact of the same format only).

    Raises:
        ValueError: `path` breaks that rule (nothing written or removed).
        ExportVerificationError: a check failed; nothing is at `path` and
            what was there before is untouched.
    """
    kind = artifact.format if artifact.format in KINDS else "file"
    with StagedPath(path, kind) as stage:
        fields = dict(artifact.report_fields)
        fields.update(_write(artifact, stage.tmp, path))
        runner = artifact.open_runner(stage.tmp)
        parts, tolerance = _run_checks(artifact, runner, found)
        latency = runner.latency_ms(take(found[0].inputs, slice(0, 1)))
        if artifact.after_checks is not None:
            fields.update(artifact.after_checks(runner))
        size = path_size(stage.tmp)
        stage.commit()
    total = checks.merge_stats(parts)
    return ExportReport(
        format=artifact.format,
        path=stage.path,
        size_bytes=size,
        quantization=artifact.quantization,
        ops=fields.pop("ops", None),
        inputs=runner.inputs,
        outputs=runner.outputs,
        max_abs_error=total.max_abs_error,
        mean_abs_error=total.mean_abs_error,
        tolerance=tolerance,
        output_scale=total.output_scale,
        top1_agreement=total.top1_agreement,
        num_samples=parts[0].num_samples,
        checked=[check.name for check in found],
        latency_ms=latency,
        notes=artifact.notes,
        output_range=total.output_range,
        **fields,
    )
