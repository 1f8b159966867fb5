"""`keras_aff.models.retrofit`: AFF / iAFF in place of residual additions."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_aff
import keras_aff.models as M

# keras.applications models with weights=None at their minimum size, 32x32
# (the last stage is 1x1; the training step uses a batch of 4, so its
# BatchNorms still see 4 values per channel).
_APPS = {
    "ResNet50": (keras.applications.ResNet50, 16),
    "ResNet50V2": (keras.applications.ResNet50V2, 16),
    "MobileNetV2": (keras.applications.MobileNetV2, 10),
    "EfficientNetB0": (keras.applications.EfficientNetB0, 9),
    "ConvNeXtTiny": (keras.applications.ConvNeXtTiny, 18),
}
_BUILT = {}


def _app(name):
    """(original, retrofitted, report), built once per session."""
    if name not in _BUILT:
        ctor, _ = _APPS[name]
        keras.utils.set_random_seed(0)
        base = ctor(
            weights=None,
            input_shape=(32, 32, 3),
            classifier_activation=None,  # compare logits, not a softmax
        )
        new, report = M.retrofit(base, return_report=True)
        _BUILT[name] = (base, new, report)
    return _BUILT[name]


def _images(n=2, seed=0, size=32):
    rng = np.random.RandomState(seed)
    return rng.uniform(0, 255, (n, size, size, 3)).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _assert_same_function(a, b, x, rtol=1e-4, modes=(False, True)):
    """Equal up to float32 rounding: rtol on the output, with an absolute
    floor at rtol x the output's scale (logits near zero). Training mode
    only for models without dropout (and it moves BatchNorm statistics)."""
    for training in modes:
        ya, yb = _np(a(x, training=training)), _np(b(x, training=training))
        scale = np.abs(ya).max()
        np.testing.assert_allclose(yb, ya, rtol=rtol, atol=rtol * scale)


# ---------------------------------------------------------------------------
# keras.applications
# ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", list(_APPS))
def test_retrofit_keeps_the_function(name):
    base, new, report = _app(name)
    expected = _APPS[name][1]
    assert len(report.replaced) == expected
    assert report.skipped == []
    fusions = [
        layer for layer in new.layers if isinstance(layer, keras_aff.layers.AFF)
    ]
    assert len(fusions) == expected
    assert {f.output_scale for f in fusions} == {2.0}
    assert report.params_added == sum(r["params"] for r in report.replaced)
    assert report.params_after == sum(
        int(np.prod(w.shape)) for w in new.weights
    )

    # Every other layer kept (inputs included, by name), with its weights.
    def input_names(m):
        return [x._keras_history.operation.name for x in m.inputs]

    assert input_names(new) == input_names(base)
    kept = {layer.name for layer in new.layers} - {f.name for f in fusions}
    for layer_name in kept:
        old_w = base.get_layer(layer_name).get_weights()
        new_w = new.get_layer(layer_name).get_weights()
        assert len(old_w) == len(new_w)
        for o, n in zip(old_w, new_w):
            np.testing.assert_array_equal(o, n)
    # The same function before fine-tuning (inference mode; these models
    # have dropout, so training mode is compared on the models below).
    x = _images(seed=1)
    _assert_same_function(base, new, x, modes=(False,))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_APPS))
def test_retrofit_fine_tunes_and_leaves_the_original_alone(name):
    base, new, _ = _app(name)
    base_before = [_np(w) for w in base.weights]
    new_before = {w.path: _np(w) for w in new.trainable_weights}
    x = _images(n=4, seed=2)
    y = np.arange(4)
    with tf.GradientTape() as tape:
        logits = new(x, training=True)
        loss = keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True
            )
        )
    grads = tape.gradient(loss, new.trainable_weights)
    assert all(g is not None for g in grads)
    keras.optimizers.Adam(1e-3).apply(grads, new.trainable_weights)
    moved = {
        w.path
        for w in new.trainable_weights
        if not np.array_equal(new_before[w.path], _np(w))
    }
    # The zero-initialised gate BNs start learning ...
    for fusion in (
        layer for layer in new.layers if isinstance(layer, keras_aff.layers.AFF)
    ):
        for branch in ("local", "global"):
            for var in ("gamma", "beta"):
                path = f"{fusion.name}/attention/{branch}/bn2/{var}"
                assert path in moved, path
    # ... and so do the pretrained layers (the classifier and the convs).
    head = [
        layer for layer in base.layers if isinstance(layer, keras.layers.Dense)
    ][-1]
    assert f"{head.name}/kernel" in moved
    conv_kernels = [
        w.path
        for w in new.trainable_weights
        if w.path.endswith("/kernel") and "_aff/" not in w.path
    ]
    assert sum(p in moved for p in conv_kernels) > 0.9 * len(conv_kernels)
    # The original model is untouched.
    for w, b in zip(base.weights, base_before):
        np.testing.assert_array_equal(_np(w), b)


def test_retrofit_iaff_keeps_the_function():
    base, _, _ = _app("MobileNetV2")
    new, report = M.retrofit(base, fusion="iaff", return_report=True)
    assert len(report.replaced) == 10
    fusions = [
        lay for lay in new.layers if isinstance(lay, keras_aff.layers.IAFF)
    ]
    assert len(fusions) == 10
    assert {f.output_scale for f in fusions} == {2.0}
    # Both gates, both branches: gamma and beta of the last BN start at 0.
    for f in fusions:
        zeroed = [
            w.path
            for w in f.weights
            if w.path.endswith(("/bn2/gamma", "/bn2/beta"))
            and not np.any(_np(w))
        ]
        assert len(zeroed) == 8, zeroed
    _assert_same_function(base, new, _images(seed=3), modes=(False,))


# ---------------------------------------------------------------------------
# Selection and report
# ---------------------------------------------------------------------------
def _toy(channels=(8, 32), three_way=False, dense_residual=False):
    """conv -> [block: conv + Add] per width, optionally a 3-input Add and a
    rank-2 residual."""
    inp = keras.Input((16, 16, 3), name="img")
    x = inp
    for i, c in enumerate(channels):
        x = keras.layers.Conv2D(c, 3, padding="same", name=f"c{i}a")(x)
        y = keras.layers.Conv2D(c, 3, padding="same", name=f"c{i}b")(x)
        y = keras.layers.BatchNormalization(name=f"bn{i}")(y)
        x = keras.layers.Add(name=f"add{i}")([x, y])
    if three_way:
        x = keras.layers.Add(name="add3way")([x, x, x])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if dense_residual:
        d = keras.layers.Dense(channels[-1], name="dense")(x)
        x = keras.layers.Add(name="add_dense")([x, d])
    out = keras.layers.Dense(5, name="head")(x)
    return keras.Model(inp, out, name="toy")


def test_select_by_name_and_by_callable():
    model = _toy()
    new, report = M.retrofit(
        model, reduction_ratio=4, select=["add1"], return_report=True
    )
    assert [r["path"] for r in report.replaced] == ["add1"]
    assert report.replaced[0]["fusion_layer"] == "add1_aff"
    assert report.replaced[0]["channels"] == 32
    assert report.replaced[0]["inter_channels"] == 8
    assert [(s["path"], s["reason"]) for s in report.skipped] == [
        ("add0", "not selected")
    ]
    assert isinstance(new.get_layer("add0"), keras.layers.Add)
    _, report = M.retrofit(
        model,
        reduction_ratio=4,
        select=lambda site: site.channels == 8,
        return_report=True,
    )
    assert [r["path"] for r in report.replaced] == ["add0"]


def test_min_channels_skips_and_reports():
    model = _toy()
    new, report = M.retrofit(
        model, reduction_ratio=4, min_channels=16, return_report=True
    )
    assert [r["path"] for r in report.replaced] == ["add1"]
    assert report.skipped[0]["path"] == "add0"
    assert "8 channels < min_channels=16" in report.skipped[0]["reason"]
    text = str(report)
    assert "1 addition(s) replaced by AFF" in text
    assert "skipped  add0" in text
    # Default min_channels is the reduction ratio (one hidden channel).
    _, report = M.retrofit(model, reduction_ratio=16, return_report=True)
    assert [r["path"] for r in report.replaced] == ["add1"]


def test_three_input_and_rank_2_additions():
    model = _toy(three_way=True, dense_residual=True)
    new, report = M.retrofit(model, reduction_ratio=4, return_report=True)
    assert [r["path"] for r in report.replaced] == ["add0", "add1"]
    reasons = {s["path"]: s["reason"] for s in report.skipped}
    assert "adds 3 tensors" in reasons["add3way"]
    assert "rank 2" in reasons["add_dense"]
    x = np.random.RandomState(0).rand(2, 16, 16, 3).astype("float32")
    _assert_same_function(model, new, x)
    with pytest.raises(ValueError, match="adds 3 tensors"):
        M.retrofit(model, reduction_ratio=4, select=["add3way"])


def test_ops_add_nested_models_and_shared_layers():
    # `x + y` on symbolic tensors (ConvNeXt style) inside a nested model,
    # and an Add layer shared by two calls.
    inner_in = keras.Input((8, 8, 16))
    h = keras.layers.Conv2D(16, 1, name="inner_conv")(inner_in)
    inner = keras.Model(inner_in, inner_in + h, name="inner")
    shared = keras.layers.Add(name="shared_add")
    inp = keras.Input((8, 8, 16))
    a = inner(inp)
    b = shared([a, keras.layers.Conv2D(16, 1, name="c1")(a)])
    c = shared([b, keras.layers.Conv2D(16, 1, name="c2")(b)])
    model = keras.Model(inp, c, name="outer")
    new, report = M.retrofit(model, reduction_ratio=4, return_report=True)
    rows = [(r["path"], r["call"], r["calls"]) for r in report.replaced]
    assert rows[0][0].startswith("inner/") and rows[0][1:] == (0, 1)
    assert rows[1:] == [("shared_add", 0, 2), ("shared_add", 1, 2)]
    kinds = [r["kind"] for r in report.replaced]
    assert kinds == ["ops.add", "Add layer", "Add layer"]
    # One fusion layer per call of the shared Add, each with its own
    # weights, each called once.
    names = [r["fusion_layer"] for r in report.replaced[1:]]
    assert names == ["shared_add_aff", "shared_add_aff_1"]
    first, second = (new.get_layer(n) for n in names)
    assert len(first._inbound_nodes) == len(second._inbound_nodes) == 1
    assert not {id(w) for w in first.weights} & {id(w) for w in second.weights}
    assert "shared_add [call 2/2]" in str(report)
    assert isinstance(new.get_layer("inner"), keras.Model)
    x = np.random.RandomState(1).randn(2, 8, 8, 16).astype("float32")
    _assert_same_function(model, new, x)


def _shared_add_model(channels=(16, 16, 16)):
    """One Add layer called at three places: a = add([x, y]),
    b = add([a, z]), c = add([p, q]) (the last on `channels[2]`
    channels)."""
    inp = keras.Input((8, 8, 16))
    add = keras.layers.Add(name="add")
    y = keras.layers.Conv2D(channels[0], 1, name="y")(inp)
    a = add([keras.layers.Conv2D(channels[0], 1, name="x")(inp), y])
    b = add([a, keras.layers.Conv2D(channels[1], 1, name="z")(a)])
    p = keras.layers.Conv2D(channels[2], 3, padding="same", name="p")(b)
    c = add([p, keras.layers.Conv2D(channels[2], 1, name="q")(b)])
    return keras.Model(inp, keras.layers.GlobalAveragePooling2D()(c))


def _weights_of(layer):
    return [_np(w).copy() for w in layer.weights]


def test_shared_add_layer_gets_one_fusion_per_call():
    keras.utils.set_random_seed(3)
    model = _shared_add_model()
    new, report = M.retrofit(model, reduction_ratio=4, return_report=True)
    assert [(r["path"], r["call"], r["calls"]) for r in report.replaced] == [
        ("add", 0, 3),
        ("add", 1, 3),
        ("add", 2, 3),
    ]
    names = [r["fusion_layer"] for r in report.replaced]
    assert names == ["add_aff", "add_aff_1", "add_aff_2"]
    # Three independent fusion layers: every weight counted once.
    per_fusion = report.replaced[0]["params"]
    assert per_fusion == 16 * 4 * 2 * 2 + 4 * 2 + 16 * 2 + (4 + 16) * 4 * 2
    assert report.params_added == 3 * per_fusion
    assert {r["params"] for r in report.replaced} == {per_fusion}
    x = np.random.RandomState(4).randn(2, 8, 8, 16).astype("float32")
    _assert_same_function(model, new, x, rtol=1e-5)
    # Changing one fusion leaves the others as they were.
    before = [_weights_of(new.get_layer(n)) for n in names[1:]]
    for w in new.get_layer(names[0]).weights:
        w.assign(w + 0.5)
    after = [_weights_of(new.get_layer(n)) for n in names[1:]]
    for old, now in zip(before, after):
        for a, b in zip(old, now):
            np.testing.assert_array_equal(a, b)
    assert "add [call 3/3]" in str(report)


def test_shared_add_calls_are_decided_one_by_one():
    # Different shapes per call (refused before 0.3), one call below
    # min_channels (skipped and reported), one not selected.
    keras.utils.set_random_seed(5)
    model = _shared_add_model(channels=(16, 16, 8))
    new, report = M.retrofit(
        model, reduction_ratio=4, min_channels=12, return_report=True
    )
    assert [(r["call"], r["channels"]) for r in report.replaced] == [
        (0, 16),
        (1, 16),
    ]
    assert [(s["call"], s["reason"]) for s in report.skipped] == [
        (2, "8 channels < min_channels=12")
    ]
    x = np.random.RandomState(6).randn(2, 8, 8, 16).astype("float32")
    _assert_same_function(model, new, x, rtol=1e-5)
    only_second = M.retrofit(
        model,
        reduction_ratio=4,
        select=lambda site: site.call == 1,
        return_report=True,
    )[1]
    assert [r["call"] for r in only_second.replaced] == [1]
    assert [s["call"] for s in only_second.skipped] == [0, 2]
    assert {s["reason"] for s in only_second.skipped} == {"not selected"}
    # Selecting the layer by name selects every call.
    named = M.retrofit(model, reduction_ratio=2, select=["add"])
    aff = keras_aff.layers.AFF
    assert sum(isinstance(la, aff) for la in named.layers) == 3
    _assert_same_function(model, named, x, rtol=1e-5)


def test_nested_model_called_twice_is_retrofitted_once():
    inner_in = keras.Input((8, 8, 16))
    h = keras.layers.Conv2D(16, 1, name="inner_conv")(inner_in)
    inner = keras.Model(
        inner_in, keras.layers.Add(name="inner_add")([inner_in, h]), name="blk"
    )
    inp = keras.Input((8, 8, 16))
    model = keras.Model(inp, inner(inner(inp)))
    new, report = M.retrofit(model, reduction_ratio=4, return_report=True)
    assert [(r["path"], r["calls"]) for r in report.replaced] == [
        ("blk/inner_add", 1)
    ]
    assert report.params_added == report.replaced[0]["params"]
    # Still one shared block, called twice.
    assert len(new.get_layer("blk")._inbound_nodes) == 2
    x = np.random.RandomState(7).randn(2, 8, 8, 16).astype("float32")
    _assert_same_function(model, new, x, rtol=1e-5)


def test_retrofit_round_trips_through_keras_file(tmp_path):
    new = M.retrofit(_toy(), reduction_ratio=4)
    path = str(tmp_path / "toy_aff.keras")
    new.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.RandomState(2).rand(2, 16, 16, 3).astype("float32")
    np.testing.assert_allclose(
        _np(loaded(x, training=False)), _np(new(x, training=False)), rtol=1e-6
    )


def test_compiled_model_stays_compiled():
    model = _toy()
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.5),
        loss="mse",
        metrics=["mae"],
    )
    x = np.random.RandomState(3).rand(4, 16, 16, 3).astype("float32")
    model.train_on_batch(x, np.zeros((4, 5), "float32"))
    new = M.retrofit(model, reduction_ratio=4)
    assert new.compiled
    # A fresh optimizer of the same config, the same loss and metrics.
    assert new.optimizer is not model.optimizer
    assert type(new.optimizer) is keras.optimizers.SGD
    assert new.optimizer.get_config() == model.optimizer.get_config()
    assert int(new.optimizer.iterations) == 0
    assert int(model.optimizer.iterations) == 1
    assert new.get_compile_config() == model.get_compile_config()
    logs = new.train_on_batch(x, np.zeros((4, 5), "float32"), return_dict=True)
    assert set(logs) == {"loss", "mae"}
    assert int(new.optimizer.iterations) == 1
    # Uncompiled stays uncompiled.
    assert not M.retrofit(_toy(), reduction_ratio=4).compiled


def test_compile_like_compiles_an_uncompiled_copy():
    """The step that keeps the compile promise, on a model that
    `clone_model` did not compile."""
    from keras_aff.models._retrofit_apply import _compile_like

    model = _toy()
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="mse")
    copy = keras.Model(model.inputs, model.outputs)
    assert not copy.compiled
    _compile_like(model, copy)
    assert copy.compiled
    assert copy.optimizer is not model.optimizer
    assert copy.optimizer.get_config() == model.optimizer.get_config()
    assert copy.get_compile_config() == model.get_compile_config()


def test_mixed_precision_policy_is_kept():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = _toy()
    keras.mixed_precision.set_global_policy("float32")
    new = M.retrofit(model, reduction_ratio=4)
    aff = new.get_layer("add1_aff")
    assert aff.dtype_policy.name == "mixed_float16"
    assert aff.variable_dtype == "float32"


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
def test_sequential_model_is_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="Sequential model"):
        M.retrofit(model)


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x) + x

    model = Net()
    model(np.zeros((1, 2), "float32"))
    with pytest.raises(ValueError, match="subclassed model of type 'Net'"):
        M.retrofit(model)
    with pytest.raises(TypeError, match="Received: model=<Dense"):
        M.retrofit(keras.layers.Dense(2))


def test_inputs_of_different_shapes_are_refused():
    inp = keras.Input((8, 8, 16))
    gap = keras.layers.GlobalAveragePooling2D(keepdims=True)(inp)
    model = keras.Model(inp, keras.layers.Add(name="bcast")([inp, gap]))
    with pytest.raises(ValueError, match="'bcast'.*differ in shape"):
        M.retrofit(model, reduction_ratio=4)
    # The message says how to leave it out; leaving it out works.
    new, report = M.retrofit(
        model, reduction_ratio=4, select=lambda s: False, return_report=True
    )
    assert report.replaced == [] and len(report.skipped) == 1


# Wrong types are TypeErrors, wrong values ValueErrors; each message names
# the argument and the received value.
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"fusion": "add"}, ValueError, "Received: fusion='add'"),
        ({"fusion": 1}, TypeError, "Received: fusion=1"),
        ({"reduction_ratio": 0}, ValueError, "Received: reduction_ratio=0"),
        (
            {"reduction_ratio": 4.0},
            TypeError,
            "Received: reduction_ratio=4.0",
        ),
        (
            {"min_channels": 2, "reduction_ratio": 4},
            ValueError,
            "Received: min_channels=2",
        ),
        ({"min_channels": 8.0}, TypeError, "Received: min_channels=8.0"),
        (
            {"select": ["nope"]},
            ValueError,
            r"\['nope'\] are not two-input additions",
        ),
        ({"select": 3}, TypeError, "Received: select=3"),
        ({"select": ["add0", 3]}, TypeError, r"Received: select\[1\]=3"),
        ({"data_format": "nhwc"}, ValueError, "Received: data_format='nhwc'"),
        ({"return_report": "yes"}, TypeError, "Received: return_report="),
        # The fusion layer's own arguments are checked before any work,
        # even when no addition is replaced.
        (
            {"select": [], "bn_momentum": 1.5},
            ValueError,
            "Received: bn_momentum=1.5",
        ),
        ({"select": [], "use_bias": "yes"}, TypeError, "use_bias='yes'"),
        (
            {"select": [], "kernel_initializer": "nope"},
            ValueError,
            "kernel_initializer='nope'",
        ),
    ],
)
def test_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        M.retrofit(_toy(), **kwargs)


def test_checking_the_fusion_arguments_draws_no_random_numbers():
    """The check creates a fusion layer (its initializers draw seeds from
    Python's `random`) and restores the state, so a seeded retrofit gets
    the same gate weights as without it."""
    import random

    from keras_aff.models.retrofit import _fusion_kwargs

    keras.utils.set_random_seed(5)
    before = random.getstate()
    kwargs = _fusion_kwargs(keras_aff.layers.AFF, reduction_ratio=4)
    assert random.getstate() == before
    assert kwargs == {"output_scale": 2.0, "reduction_ratio": 4}


# ---------------------------------------------------------------------------
# The decision for one addition (a pure function of the site's facts)
# ---------------------------------------------------------------------------
def _site(shapes, channels):
    from keras_aff.models import AddSite

    return AddSite("a", "m/a", "Add layer", shapes, channels)


_S4 = (None, 8, 8, 16)


@pytest.mark.parametrize(
    "shapes,channels,requested,named,expected",
    [
        ((_S4, _S4), 16, True, False, ("replace", "")),
        ((_S4, _S4), 16, False, False, ("skip", "not selected")),
        ((_S4,) * 3, None, True, False, ("skip", "it adds 3 tensors")),
        ((_S4,) * 3, None, True, True, ("refuse", "it adds 3 tensors")),
        ((_S4, (None, 1, 1, 16)), None, True, False, ("refuse", "differ")),
        (((None, 16), (None, 16)), None, True, False, ("skip", "rank 2")),
        (((None, 16), (None, 16)), None, True, True, ("refuse", "rank 2")),
        (((None, 8, 8, None),) * 2, None, True, False, ("refuse", "not known")),
        (
            ((None, 8, 8, 4),) * 2,
            4,
            True,
            False,
            ("skip", "4 channels < min_channels=8"),
        ),
        (
            ((None, 8, 8, 4),) * 2,
            4,
            True,
            True,
            ("refuse", "4 channels < min_channels=8"),
        ),
    ],
)
def test_decide(shapes, channels, requested, named, expected):
    from keras_aff.models._retrofit_plan import decide

    decision = decide(_site(shapes, channels), requested, named, 8)
    assert decision.action == expected[0]
    assert expected[1] in decision.reason
    assert (decision.reason == "") == (expected[0] == "replace")
