"""Keras 3's `fit` does not run under TensorFlow's
MultiWorkerMirroredStrategy (keras-team/keras#20585): two workers on
127.0.0.1 fail with the error quoted in docs/scaling_out.md. When this
test fails, Keras has fixed it: update the "Several hosts" section."""

import sys

from tests import processes
from tests.distributed import helpers

SCRIPT = helpers.ROOT / "tests" / "distributed" / "tf_multi_worker.py"


def test_fit_fails_under_multi_worker_mirrored_strategy(tmp_path):
    ports = f"{helpers.free_port()},{helpers.free_port()}"
    env = helpers.environment()
    workers = [
        processes.start(
            [sys.executable, SCRIPT, i, ports], env=env, cwd=tmp_path
        )
        for i in range(2)
    ]
    try:
        outputs = [w.communicate(timeout=240)[0] for w in workers]
    finally:
        helpers.stop(workers)
    for out in outputs:
        assert (
            "FIT ERROR ValueError: Attempt to convert a value (PerReplica"
            in out
        )
        assert "with an unsupported type" in out
        assert "PerReplica'>) to a Tensor" in out
