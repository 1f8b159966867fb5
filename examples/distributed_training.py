"""Distributed training of an AFF + iAFF network on Keras' own engines.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

One host, several devices:

    # TensorFlow: tf.distribute.MirroredStrategy (GPUs, or N logical CPUs)
    python examples/distributed_training.py --mode mirrored --devices 2
    # JAX: keras.distribution.DataParallel over the local devices
    python examples/distributed_training.py --mode data-parallel --devices 2

Several hosts (JAX: `keras.distribution.initialize`, CPU collectives over
gloo, DataParallel over every process's devices; each process feeds its
shard of each global batch). On each host, with the same coordinator:

    python examples/distributed_training.py --mode multi-worker \\
        --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0

or, to try it on one machine, `--launch 2` starts the workers on
127.0.0.1 (a free port), supervises them, stops them all as soon as one
fails, and says so:

    python examples/distributed_training.py --launch 2 --backup-dir ckpt

Rerun the same command after a failure: `keras.callbacks.BackupAndRestore`
resumes from the last finished epoch (`--backup-dir`). Keras 3's `fit`
does not run under TensorFlow's MultiWorkerMirroredStrategy
(keras-team/keras#20585); see the "Scaling out" docs.

`--out weights.npz` saves the final variables (by path) for comparison;
`--mode single` is the one-device reference at the same global batch (on
the default backend; `--mode data-parallel --devices 1` on JAX).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback

import numpy as np

MODES = ("single", "mirrored", "data-parallel", "multi-worker")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=MODES, default="single")
    p.add_argument("--devices", type=int, default=2, help="local devices")
    p.add_argument("--bn-synchronized", action="store_true")
    p.add_argument("--global-batch", type=int, default=16)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rate", type=float, default=0.02)
    p.add_argument("--backup-dir", help="BackupAndRestore directory")
    p.add_argument("--out", help="save the final variables (.npz)")
    p.add_argument("--coordinator", help="HOST:PORT of process 0")
    p.add_argument("--num-processes", type=int, default=1)
    p.add_argument("--process-id", type=int, default=0)
    p.add_argument("--launch", type=int, metavar="N", help="N local workers")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds")
    p.add_argument(
        "--simulate-failure",
        type=int,
        metavar="EPOCH",
        help="failure drill: the last process kills itself (SIGKILL) when "
        "EPOCH (0-based) starts, after the previous epoch's checkpoint",
    )
    args = p.parse_args(argv)
    if args.global_batch % max(args.num_processes, 1):
        p.error("--global-batch must be a multiple of --num-processes")
    return args


def set_up_backend(args):
    """Backend and devices, before Keras (and the backend) is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.mode in ("data-parallel", "multi-worker"):
        os.environ["KERAS_BACKEND"] = "jax"
        flag = f"--xla_force_host_platform_device_count={args.devices}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}"
    elif args.mode == "mirrored":
        os.environ["KERAS_BACKEND"] = "tensorflow"
        logical_cpus(args.devices)
    if args.mode == "multi-worker":
        import jax

        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def build_model(bn_synchronized=False):
    """A stem, two branches fused by AFF, a block whose conv path and
    shortcut are fused by iAFF, a classifier; every BatchNormalization
    (the fusion layers' too) follows `bn_synchronized`."""
    import keras

    from keras_aff.layers import AFF
    from keras_aff.layers import IAFF
    from keras_aff.layers.gate import synchronized_bn

    sync = synchronized_bn(bn_synchronized)

    def conv_bn(x, filters, kernel, name):
        x = keras.layers.Conv2D(
            filters, kernel, padding="same", use_bias=False, name=name
        )(x)
        return keras.layers.BatchNormalization(
            momentum=0.9, synchronized=sync, name=f"{name}_bn"
        )(x)

    image = keras.Input((16, 16, 3), name="image")
    h = keras.layers.ReLU()(conv_bn(image, 16, 3, "stem"))
    x = conv_bn(h, 16, 3, "branch3x3")
    y = conv_bn(h, 16, 1, "branch1x1")
    fusion = dict(reduction_ratio=4, bn_synchronized=bn_synchronized)
    h = AFF(name="aff", **fusion)([x, y])
    x = conv_bn(
        keras.layers.ReLU()(conv_bn(h, 16, 3, "block_conv1")),
        16,
        3,
        "block_conv2",
    )
    h = IAFF(name="iaff", **fusion)([x, h])
    h = keras.layers.GlobalAveragePooling2D()(h)
    logits = keras.layers.Dense(10, name="logits")(h)
    return keras.Model(image, logits, name="aff_iaff_net")


def make_data(n, seed):
    """Images of 10 classes (a colour and a texture per class, plus noise)."""
    teacher = np.random.default_rng(42)
    colours = teacher.normal(0.0, 0.5, size=(10, 1, 1, 3))
    textures = teacher.normal(0.0, 0.5, size=(10, 16, 16, 3))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n).astype("int32")
    x = colours[y] + textures[y] + rng.normal(size=(n, 16, 16, 3))
    return x.astype("float32"), y


def local_shard(x, global_batch, num_processes, process_id):
    """This process's rows of every global batch, in step order."""
    local = global_batch // num_processes
    steps = len(x) // global_batch
    rows = [
        np.arange(local) + s * global_batch + process_id * local
        for s in range(steps)
    ]
    return x[np.concatenate(rows)]


def logical_cpus(n):
    """Splits TensorFlow's CPU into `n` logical devices (before TensorFlow
    starts its runtime), when there is no GPU to mirror over."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    if tf.config.get_logical_device_configuration(cpu) is None:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * n
        )


_STRATEGIES = {}


def strategy(args):
    """The MirroredStrategy over `args.devices` GPUs or logical CPUs (one
    per process: two strategies' collectives would collide)."""
    import tensorflow as tf

    if args.devices in _STRATEGIES:
        return _STRATEGIES[args.devices]

    devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    if not devices:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    found = tf.distribute.MirroredStrategy(devices[: args.devices])
    return _STRATEGIES.setdefault(args.devices, found)


def _strategy_scope(args):
    import contextlib

    if args.mode != "mirrored":
        return contextlib.nullcontext()
    return strategy(args).scope()


def _set_distribution(args):
    import keras

    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(None)

    if args.mode == "multi-worker":
        keras.distribution.initialize(
            job_addresses=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    if args.mode in ("data-parallel", "multi-worker"):
        devices = keras.distribution.list_devices()  # every process's
        distribution = keras.distribution.DataParallel(devices=devices)
        # Each process feeds its own shard of every global batch
        # (`local_shard`), so Keras must not shard the data again.
        distribution.auto_shard_dataset = False
        keras.distribution.set_distribution(distribution)
        return len(devices)
    return args.devices if args.mode == "mirrored" else 1


def backup_directory(args):
    # One directory per process: every process holds every variable.
    return os.path.join(args.backup_dir, f"process_{args.process_id}")


def restored_epoch(args):
    """The epoch BackupAndRestore resumes from (0: a fresh start)."""
    path = os.path.join(backup_directory(args), "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


def check_same_restart(args):
    """Every process must resume from the same epoch: a process killed
    while it wrote its checkpoint falls back to its previous one
    (`double_checkpoint`), and its variables would then differ from the
    other processes' copies."""
    from jax.experimental import multihost_utils

    mine = restored_epoch(args)
    every = multihost_utils.process_allgather(np.int32(mine)).tolist()
    if len(set(every)) > 1:
        raise RuntimeError(
            f"The processes would resume from different epochs {every} "
            f"(checkpoints in {args.backup_dir}): restore every process's "
            "directory from the same epoch, or delete them to start over."
        )
    return mine


class _Terminate(Exception):
    pass


class StopOnTerminate:
    """SIGTERM (the launcher stopping a job) ends the process between two
    callbacks, never in the middle of a checkpoint write."""

    requested = False

    @classmethod
    def install(cls):
        def handler(signum, frame):
            cls.requested = True

        signal.signal(signal.SIGTERM, handler)

    @classmethod
    def callback(cls):
        import keras

        class Stop(keras.callbacks.Callback):
            def _check(self, *args, **kwargs):
                if cls.requested:
                    raise _Terminate()

            on_train_batch_begin = on_epoch_begin = on_epoch_end = _check

        return Stop()


def _callbacks(args):
    import keras

    callbacks = []
    if args.backup_dir:
        callbacks.append(
            keras.callbacks.BackupAndRestore(
                backup_directory(args), double_checkpoint=True
            )
        )
    # After BackupAndRestore: a stop request waits for its write.
    callbacks.append(StopOnTerminate.callback())
    last = args.process_id == args.num_processes - 1
    if args.simulate_failure is not None and last:

        class Drill(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == args.simulate_failure:
                    print(
                        f"drill: killing process {args.process_id}", flush=True
                    )
                    os.kill(os.getpid(), signal.SIGKILL)

        callbacks.append(Drill())
    return callbacks


def train(args):
    """Builds, trains and returns the model (in the chosen mode)."""
    import keras

    keras.utils.set_random_seed(args.seed)
    num_devices = _set_distribution(args)
    if args.mode == "multi-worker" and args.backup_dir:
        check_same_restart(args)
    x, y = make_data(args.samples, seed=args.seed + 1)
    batch = args.global_batch
    if args.mode == "multi-worker":
        x = local_shard(x, batch, args.num_processes, args.process_id)
        y = local_shard(y, batch, args.num_processes, args.process_id)
        batch //= args.num_processes
    with _strategy_scope(args):
        model = build_model(args.bn_synchronized)
        model.compile(
            optimizer=keras.optimizers.SGD(args.learning_rate, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    history = model.fit(
        x,
        y,
        batch_size=batch,
        epochs=args.epochs,
        shuffle=False,
        verbose=0,
        callbacks=_callbacks(args),
    )
    print(
        f"{args.mode}: process {args.process_id}/{args.num_processes}, "
        f"{num_devices} device(s), global batch {args.global_batch}, "
        f"loss {history.history['loss'][0]:.4f} -> "
        f"{history.history['loss'][-1]:.4f}",
        flush=True,
    )
    return model


def save_variables(model, path):
    """Every variable (moving statistics included) by path, as .npz."""
    import keras

    np.savez(
        path,
        **{v.path: keras.ops.convert_to_numpy(v) for v in model.variables},
    )


def free_port():
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The launcher's own flags, replaced by each worker's.
_LAUNCH_FLAGS = (
    "--launch",
    "--mode",
    "--process-id",
    "--num-processes",
    "--coordinator",
)


def _worker_argv(argv, port, n, i):
    keep, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a.split("=", 1)[0] in _LAUNCH_FLAGS:
            skip = "=" not in a  # "--flag value": drop the value too
        else:
            keep.append(a)
    return [
        sys.executable,
        os.path.abspath(__file__),
        *keep,
        "--mode=multi-worker",
        f"--coordinator=127.0.0.1:{port}",
        f"--num-processes={n}",
        f"--process-id={i}",
    ]


def _stop(procs, grace=5.0):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    end = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(end - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def describe_exit(code):
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def launch(args, argv):
    """Runs `args.launch` workers on 127.0.0.1 and supervises them: the
    first worker to fail stops the job (every other worker is stopped at
    once) and so does the time limit. Returns the exit status."""
    port = free_port()
    procs = [
        subprocess.Popen(_worker_argv(argv, port, args.launch, i))
        for i in range(args.launch)
    ]
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                _stop(procs)
                # A worker killed by a signal first: its peers' failures
                # follow from it (their collectives lose a member).
                failed.sort(key=lambda f: (f[1] >= 0, f[0]))
                what = ", ".join(
                    f"worker {i} of {args.launch} {describe_exit(c)}"
                    for i, c in failed
                )
                print(
                    f"error: {what}; "
                    "stopped the other workers. Rerun the same command to "
                    "resume from the last checkpoint"
                    + (f" in {args.backup_dir}." if args.backup_dir else "."),
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            if all(c == 0 for c in codes):
                return 0
            if time.monotonic() > deadline:
                _stop(procs)
                print(
                    f"error: the job did not finish in {args.timeout:g} s; "
                    "stopped every worker.",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            time.sleep(0.2)
    finally:
        _stop(procs)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.launch:
        return launch(args, argv)
    set_up_backend(args)
    if args.mode != "multi-worker":
        model = train(args)
        if args.out:
            save_variables(model, args.out)
        return 0
    StopOnTerminate.install()
    try:
        model = train(args)
        if args.out and args.process_id == 0:
            save_variables(model, args.out)
    except BaseException as e:
        # Exit at once: the distributed runtime's exit handlers wait for
        # the other processes (up to minutes) when one of them is gone.
        if not isinstance(e, _Terminate):
            traceback.print_exc()
        print(f"process {args.process_id}: stopped", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
