"""Runs many `keras-aff` rows of the hostile suite in one process.

    python -m tests.export.hostile_child JOBS.json RESULTS.json

JOBS: a list of {"id", "cwd", "argv", "fsize", "timeout"}. Each row runs
`keras_aff.cli.main(argv)` in its working directory, with stdout and
stderr captured and, with "fsize", the file size limit RLIMIT_FSIZE set
for the row (SIGXFSZ ignored, so a write past it fails with EFBIG, as on
a full disk). RESULTS is rewritten after every row, so a row that hangs
(the watchdog ends the process after "timeout" seconds) is the first one
missing.
"""

import contextlib
import faulthandler
import io
import json
import os
import resource
import signal
import sys


def _run(job):
    from keras_aff import cli

    out, err = io.StringIO(), io.StringIO()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    os.chdir(job["cwd"])
    faulthandler.dump_traceback_later(job["timeout"], exit=True)
    try:
        if job.get("fsize"):
            resource.setrlimit(resource.RLIMIT_FSIZE, (job["fsize"], limits[1]))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(job["argv"])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        faulthandler.cancel_dump_traceback_later()
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main(jobs_file, results_file):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    with open(jobs_file) as f:
        jobs = json.load(f)
    results = {}
    for job in jobs:
        results[job["id"]] = _run(job)
        with open(results_file, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
