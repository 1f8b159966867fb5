"""Hostile data: what the exporters and the QAT converter do with sample
and calibration data, and tolerances, that would hang them or pass a
broken artifact as verified. Each row: an API call or a CLI command, the
error it raises (with a fragment of the message), and the invariant that
nothing is written at the path. `docs/robustness.md` ("Data and graphs")
lists every row.

Endless iterables run in a thread with a time-out: a regression fails
here instead of hanging the suite.
"""

import contextlib
import io
import itertools
import threading

import keras
import numpy as np
import pytest

from keras_aff import cli
from keras_aff import export
from keras_aff import qat
from keras_aff.export import ExportVerificationError
from keras_aff.export import checks
from keras_aff.export import model_io
from tests.export import helpers

# Seconds an endless-iterable export may take before the test fails.
GUARD_S = 120
EXPORTERS = {
    "saved_model": lambda m, p, **kw: export.export_saved_model(
        m, p, standalone_check=False, **kw
    ),
    "litert": export.export_litert,
    "onnx": export.export_onnx,
}


@pytest.fixture(scope="module")
def model():
    return helpers.fusion_cnn(seed=0, size=8)


@pytest.fixture(scope="module")
def two():
    return helpers.two_input_model()


def _images(n, seed=0):
    return helpers.images(n, size=8, seed=seed)


def _with(x, index, value, dtype="float32"):
    x = np.array(x, dtype=dtype)
    x[index] = value
    return x


def _endless(samples, drawn=None, wrap=lambda x: x):
    """An endless generator cycling over `samples` (batches of 1, each
    passed through `wrap`), counting what it yields."""
    for i in itertools.count():
        if drawn is not None:
            drawn.append(i)
        j = i % len(samples)
        yield wrap(samples[j : j + 1])


def _guarded(fn):
    """`fn()` in a thread; fails the test after GUARD_S seconds."""
    result = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_S)
    if thread.is_alive():
        pytest.fail(f"did not return within {GUARD_S} s: it reads forever")
    if "error" in result:
        raise result["error"]
    return result["value"]


# ---------------------------------------------------------------------------
# Errors before any work: (id, call(model, two, path), exception, fragment)
# ---------------------------------------------------------------------------
X = _images(6)
NAN_AT_3 = _with(X, (3, 0, 0, 0), np.nan)
BAD_TOLERANCE = "Expected `atol` to be a finite number >= 0. Received: atol="


def _litert_int8(data, **kw):
    return lambda m, t, p: export.export_litert(
        m, p, quantization="int8", representative_data=data, **kw
    )


def _sample(fmt, data, **kw):
    return lambda m, t, p: EXPORTERS[fmt](m, p, sample_inputs=data, **kw)


def _two(fmt, data):
    return lambda m, t, p: EXPORTERS[fmt](t, p, sample_inputs=data)


ROWS = [
    # atol: finite and >= 0, in every exporter.
    *[
        (
            f"{fmt}-atol-{name}",
            lambda m, t, p, fmt=fmt, v=v: EXPORTERS[fmt](m, p, atol=v),
            exc,
            BAD_TOLERANCE + text,
        )
        for fmt in EXPORTERS
        for name, v, exc, text in (
            ("inf", float("inf"), ValueError, "inf"),
            ("nan", float("nan"), ValueError, "nan"),
            ("negative", -1, ValueError, "-1.0"),
            ("bool", True, TypeError, "True (of type bool)"),
            ("str", "1e-3", TypeError, "'1e-3' (of type str)"),
        )
    ],
    (
        "qat-tolerance-inf",
        lambda m, t, p: qat.convert_to_int8_litert(
            m, X, tolerance=float("inf"), path=p
        ),
        ValueError,
        "Received: tolerance=inf",
    ),
    (
        "policy-rtol-negative",
        lambda m, t, p: checks.Policy("int8", rtol=-0.1),
        ValueError,
        "Expected `rtol` to be a finite number >= 0. Received: rtol=-0.1",
    ),
    # NaN / Inf in the data: named, with the sample (and the input).
    (
        "litert-int8-calibration-nan",
        _litert_int8(NAN_AT_3),
        ValueError,
        "`representative_data` holds NaN at sample 3: 1 of 6 samples",
    ),
    (
        "litert-int8-generator-inf",
        _litert_int8(
            lambda: iter([X[:2], _with(X[2:4], (1, 0, 0, 0), -np.inf)])
        ),
        ValueError,
        "holds Inf at sample 3",
    ),
    *[
        (
            f"{fmt}-samples-nan",
            _sample(fmt, NAN_AT_3),
            ValueError,
            "`sample_inputs` holds NaN at sample 3",
        )
        for fmt in EXPORTERS
    ],
    (
        "onnx-two-inputs-inf",
        _two(
            "onnx",
            {
                "zeta": helpers.two_input_data(4)[0],
                "alpha": _with(helpers.two_input_data(4)[1], 2, np.inf),
            },
        ),
        ValueError,
        "holds Inf at sample 2 (input 'alpha')",
    ),
    (
        "saved_model-float64-overflow",
        _sample("saved_model", _with(X, (1, 0, 0, 0), 1e300, "float64")),
        ValueError,
        "holds Inf after the cast to float32 (values beyond its range) at "
        "sample 1",
    ),
    # Complex or non-numeric data: refused, never cast.
    *[
        (
            f"{fmt}-{kind}",
            fn(data),
            TypeError,
            f"Received: {arg}",
        )
        for fmt, fn, arg in (
            ("litert-int8", _litert_int8, "representative_data dtype="),
            (
                "saved_model",
                lambda d: _sample("saved_model", d),
                "sample_inputs dtype=",
            ),
        )
        for kind, data in (
            ("complex", X + 1j),
            ("bool", X > 0),
            ("strings", np.array([["a"]])),
            ("objects", np.array([X[0], None], dtype=object)),
        )
    ],
    (
        "onnx-a-path-string",
        _sample("onnx", "calibration.npy"),
        TypeError,
        "Received: sample_inputs='calibration.npy' (of type str)",
    ),
    # Samples that do not fit.
    (
        "saved_model-zero-samples",
        _sample("saved_model", X[:0]),
        ValueError,
        "`sample_inputs` holds no samples. Received: 0",
    ),
    (
        "litert-int8-empty-generator",
        _litert_int8(lambda: iter(())),
        ValueError,
        "`representative_data` produced no samples",
    ),
    (
        "onnx-two-inputs-batch-mismatch",
        _two(
            "onnx", [helpers.two_input_data(4)[0], helpers.two_input_data(2)[1]]
        ),
        ValueError,
        "need the same number of samples. Received: 4 and 2",
    ),
    (
        "litert-two-inputs-item-mismatch",
        lambda m, t, p: export.export_litert(
            t,
            p,
            quantization="int8",
            representative_data=lambda: iter(
                [[helpers.two_input_data(2)[0], helpers.two_input_data(1)[1]]]
            ),
        ),
        ValueError,
        "same number of samples (item 0). Received: 2 and 1",
    ),
    (
        "saved_model-wrong-rank",
        _sample("saved_model", X[:, :, :, 0]),
        ValueError,
        "does not fit model input 'image' of shape (None, 8, 8, 3). "
        "Received: sample_inputs shape=(6, 8, 8)",
    ),
    (
        "onnx-dict-with-a-label",
        _sample("onnx", {"image": X, "label": np.zeros(6)}),
        ValueError,
        "missing [], not inputs ['label']. Received: sample_inputs keys="
        "['image', 'label']",
    ),
    (
        "litert-labelled-pairs",
        _litert_int8(lambda: iter([(X[:1], np.zeros(1))])),
        ValueError,
        "(an (inputs, labels) pair? Pass the inputs only",
    ),
    (
        "qat-calibrate-ranges-nan",
        lambda m, t, p: qat.calibrate_ranges(
            qat.quantize_model(_tf_keras_model()), NAN_AT_3
        ),
        ValueError,
        "`x` holds NaN at sample 3: 1 of 6 samples",
    ),
    (
        "qat-endless-rows-of-nan",
        lambda m, t, p: qat.convert_to_int8_litert(
            _tf_keras_model(),
            X,
            representative_dataset=lambda: _endless(X * np.nan, wrap=list),
            path=p,
        ),
        ValueError,
        "`representative_dataset` holds NaN at sample 0: 500 of 500",
    ),
]


def _tf_keras_model():
    import tf_keras

    inp = tf_keras.Input((8, 8, 3), name="image")
    out = tf_keras.layers.Dense(2)(tf_keras.layers.Flatten()(inp))
    return tf_keras.Model(inp, out)


@pytest.mark.parametrize(
    "call, error, fragment",
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_refused_before_any_work(model, two, tmp_path, call, error, fragment):
    path = tmp_path / "artifact"
    with pytest.raises(error) as info:
        call(model, two, str(path))
    assert fragment in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written


def _cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, err.getvalue()


def test_cli_atol_is_a_usage_error(tmp_path, model):
    path = tmp_path / "m.keras"
    model.save(path)
    for value in ("inf", "-1", "nan"):
        code, err = _cli(
            ["export", str(path), "--format", "onnx", "--atol", value]
        )
        assert code == cli.EXIT_USAGE
        assert "argument --atol: Expected `atol` to be a finite number" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_cli_complex_calibration_is_a_usage_error(tmp_path, model):
    path = tmp_path / "m.keras"
    model.save(path)
    np.save(tmp_path / "c.npy", X + 1j)
    code, err = _cli(
        [
            "export",
            str(path),
            "--format",
            "litert",
            "--quantize",
            "int8",
            "--calibration",
            str(tmp_path / "c.npy"),
            "--out",
            str(tmp_path / "m.tflite"),
        ]
    )
    assert code == cli.EXIT_USAGE
    assert "Received: calibration dtype=complex64" in err
    assert not (tmp_path / "m.tflite").exists()


# ---------------------------------------------------------------------------
# The model itself outputs NaN on finite data: named as such, not blamed on
# BatchNorm folding or on the converter.
# ---------------------------------------------------------------------------
def _nan_model():
    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 3), name="image")
    h = keras.layers.Conv2D(4, 1)(image)
    bn = keras.layers.BatchNormalization(name="bn")
    h = bn(h)
    model = keras.Model(image, keras.layers.Dense(2)(h))
    bn.moving_variance.assign(-np.ones(4, "float32"))  # sqrt(-1): NaN
    return model


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
@pytest.mark.parametrize("fold", [True, False], ids=["fold", "no_fold"])
def test_model_nan_is_named(tmp_path, fmt, fold):
    path = tmp_path / "artifact"
    with pytest.raises(ExportVerificationError) as info:
        EXPORTERS[fmt](_nan_model(), str(path), fold_batchnorm=fold)
    message = str(info.value)
    assert "The Keras model itself outputs NaN (output 0, sample 0; 4 of 4" in (
        message
    )
    assert "fold_batchnorm=False" not in message
    assert "converter" not in message
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# Endless iterables: read up to the limit, lazily, and the export passes.
# ---------------------------------------------------------------------------
def test_int8_endless_generator_reads_the_limit(model, tmp_path):
    drawn = []
    report = _guarded(
        lambda: export.export_litert(
            model,
            tmp_path / "m.tflite",
            quantization="int8",
            representative_data=lambda: _endless(X, drawn),
            max_calibration_samples=16,
        )
    )
    assert report.num_samples == 16 and report.checked == ["batch 16"]
    assert len(drawn) == 16  # nothing read ahead
    assert report.fully_int8


def test_int8_repeated_dataset_reads_the_limit(model, tmp_path):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensors(X[:4]).repeat()  # batches of 4
    report = _guarded(
        lambda: export.export_litert(
            model,
            tmp_path / "m.tflite",
            quantization="int8",
            representative_data=dataset,
            max_calibration_samples=10,
        )
    )
    assert report.num_samples == 10 and report.fully_int8


def test_sample_inputs_endless_iterator_reads_500(model, tmp_path):
    samples = iter(_endless(X))  # any iterator
    report = _guarded(
        lambda: export.export_onnx(
            model, tmp_path / "m.onnx", sample_inputs=samples
        )
    )
    assert report.num_samples == model_io.MAX_SAMPLES == 500
    assert report.checked == ["batch 500", "batch 1"]
    np.testing.assert_array_equal(next(samples), X[2:3])  # 500 % 6 = 2


def test_qat_endless_representative_dataset(tmp_path):
    drawn = []
    tflite, report = _guarded(
        lambda: qat.convert_to_int8_litert(
            _tf_keras_model(),
            X,
            representative_dataset=lambda: _endless(X, drawn, wrap=list),
            max_calibration_samples=12,
        )
    )
    assert len(drawn) == 12 and report.fully_int8


# ---------------------------------------------------------------------------
# Data that is fine: integer images, a few samples (with a note).
# ---------------------------------------------------------------------------
def test_integer_images_are_cast(model, tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3))
    report = export.export_saved_model(
        model,
        tmp_path / "sm",
        sample_inputs=pixels.astype("uint8"),
        standalone_check=False,
    )
    assert report.num_samples == 4
    (cast,) = model_io.normalize_inputs(model, pixels.astype("uint8"))
    assert cast.dtype == np.float32
    np.testing.assert_array_equal(cast, pixels.astype("float32"))


def test_integer_input_needs_whole_numbers():
    ids = keras.Input((3,), dtype="int32", name="ids")
    emb = keras.layers.Embedding(10, 2)(ids)
    model = keras.Model(ids, keras.layers.Flatten()(emb))
    (got,) = model_io.normalize_inputs(model, np.array([[1.0, 2.0, 3.0]]))
    assert got.dtype == np.int32
    with pytest.raises(ValueError, match=r"whole numbers in \[-2147483648, "):
        model_io.normalize_inputs(model, np.array([[1.0, 2.5, 3.0]]))
    with pytest.raises(ValueError, match=r"Received: sample_inputs\[0\] holds"):
        model_io.normalize_inputs(model, np.array([[1.0, 1e12, 3.0]]))


def test_int8_on_few_samples_warns_and_notes(model, tmp_path):
    with pytest.warns(UserWarning, match="calibrated on 1 sample"):
        report = export.export_litert(
            model,
            tmp_path / "m.tflite",
            quantization="int8",
            representative_data=X[:1],
        )
    assert report.num_samples == 1
    assert any("on 1 sample(s) only" in note for note in report.notes)


def test_int8_checks_held_out_sample_inputs(model, tmp_path):
    held_out = _images(5, seed=9)
    report = export.export_litert(
        model,
        tmp_path / "m.tflite",
        quantization="int8",
        representative_data=_images(32, seed=1),
        sample_inputs=held_out,
    )
    assert report.num_samples == 5 and report.checked == ["batch 5"]
    runner = export.load_artifact(str(tmp_path / "m.tflite"))
    got = runner(held_out)[0]
    want = keras.ops.convert_to_numpy(model(held_out, training=False))
    assert np.abs(got - want).mean() == pytest.approx(
        report.mean_abs_error, rel=1e-3
    )
