"""Quantization-aware training models: `quantize_model`, the scope that
loads them, and `calibrate_ranges`.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import contextlib

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from keras_aff._validation import check_bool
from keras_aff.export import model_io
from keras_aff.qat import blocks
from keras_aff.qat.unroll import check_functional
from keras_aff.qat.unroll import unroll_fusion_layers

_qk = tfmot.quantization.keras


def _custom_objects():
    objects = {"OutputQuantizeConfig": blocks.OutputQuantizeConfig}
    for cls in blocks.FUSION_CLASSES:
        objects[cls.__name__] = cls
        objects[f"keras_aff>{cls.__name__}"] = cls
    objects["keras_aff>OutputQuantizeConfig"] = blocks.OutputQuantizeConfig
    return objects


@contextlib.contextmanager
def quantize_scope():
    """tfmot's `quantize_scope` with the keras_aff classes registered.

    Needed to load a saved QAT model (`tf_keras.models.load_model`) and for
    `quantize_apply` on models annotated by hand.

    Example:

    >>> import tf_keras
    >>> import tensorflow_model_optimization as tfmot
    >>> from keras_aff import qat
    >>> qk = tfmot.quantization.keras
    >>> x = tf_keras.Input((8, 8, 4))
    >>> scaled = qk.quantize_annotate_layer(
    ...     tf_keras.layers.Multiply(), qat.OutputQuantizeConfig())([x, x])
    >>> annotated = qk.quantize_annotate_model(tf_keras.Model(x, scaled))
    >>> with qat.quantize_scope():
    ...     q = qk.quantize_apply(annotated)
    >>> type(q.layers[-1].quantize_config).__name__
    'OutputQuantizeConfig'
    """
    with _qk.quantize_scope(_custom_objects()):
        yield


def _annotate(layer):
    if isinstance(
        layer,
        (
            tf_keras.layers.Multiply,
            tf_keras.layers.Subtract,
            tf_keras.layers.Rescaling,
        )
        + blocks.FUSION_CLASSES,
    ):
        return _qk.quantize_annotate_layer(layer, blocks.OutputQuantizeConfig())
    return layer


def quantize_model(model, unroll=True):
    """Quantization-aware training model (tfmot, default 8-bit scheme).

    With `unroll=True` (the default and the recommended path) every legacy
    fusion layer is first replaced by its stock-layer block
    (`unroll_fusion_layers`); the QAT model then converts to a fully int8
    LiteRT model without a representative dataset, and the int8 model
    tracks the QAT model closely. With `unroll=False` each fusion layer is
    kept and only its output is fake-quantized (`OutputQuantizeConfig`):
    the interior trains in float and its int8 ranges come from the
    converter's representative dataset (less faithful).

    Multiply, Subtract and Rescaling layers get `OutputQuantizeConfig`
    (tfmot's default registry lacks them); every other layer is annotated
    with tfmot's defaults. Weights carry over from `model`.

    Args:
        model: a functional or Sequential tf_keras model (use
            `keras_aff.legacy` layers; see `keras_aff.porting.copy_weights`
            to bring weights from a Keras 3 model).
        unroll: bool, default True.

    Returns:
        A new tf_keras model ready for `compile`/`fit`. Save it with
        `save(path, save_format="tf")` or `save_weights`, and load it inside
        `quantize_scope()`.

    Example:

    >>> import tf_keras
    >>> from keras_aff import legacy, qat
    >>> x = tf_keras.Input((8, 8, 3))
    >>> a = tf_keras.layers.Conv2D(16, 3, padding="same", name="a")(x)
    >>> b = tf_keras.layers.Conv2D(16, 1, name="b")(x)
    >>> f = legacy.AFF(name="aff")([a, b])
    >>> out = tf_keras.layers.GlobalAveragePooling2D(name="gap")(f)
    >>> q = qat.quantize_model(tf_keras.Model(x, out))
    >>> sorted({type(layer).__name__ for layer in q.layers})
    ['InputLayer', 'QuantizeLayer', 'QuantizeWrapperV2']
    """
    check_functional("quantize_model", model)
    check_bool("unroll", unroll)
    if unroll:
        model = unroll_fusion_layers(model)
    with quantize_scope():
        # `_annotate` returns the layers themselves (wrapped or not), so the
        # annotated model holds `model`'s weights; quantize_apply copies them.
        annotated = tf_keras.models.clone_model(model, clone_function=_annotate)
        annotated = _qk.quantize_annotate_model(annotated)
        return _qk.quantize_apply(annotated)


def calibrate_ranges(model, x):
    """Sets a QAT model's quantization ranges to those observed on `x`.

    tfmot starts every moving-average activation range at [-6, 6] and moves
    it with an EMA of decay 0.999: after 1,000 training steps it still
    holds 37 % of the initial value, so a short QAT fine-tune trains and
    converts with ranges far wider than the activations (coarse int8
    steps). This runs one training-mode pass over `x` with the EMA decay
    set to 0, so each activation range becomes the observed
    [min(batch), max(batch)] (with 0 included, as tfmot requires);
    fine-tuning then continues the EMA from there. The input range and the
    weight ranges are set as a training step would set them. Every other
    variable (BatchNormalization statistics, weights, tfmot's step
    counters) is restored afterwards.

    It works by wrapping tfmot 0.8's `quant_ops` range functions for the
    duration of the call (eager mode only).

    Args:
        model: a QAT model from `quantize_model` (or tfmot's
            `quantize_apply`).
        x: numpy array, one batch of representative inputs (a few hundred
            samples; BatchNormalization runs on batch statistics). Checked
            as the exporters check data: NaN / Inf is a `ValueError`
            naming the sample, complex, bool, string or object data a
            `TypeError`.

    Returns:
        The number of (min, max) range pairs set.

    Example:

    >>> import tf_keras
    >>> from keras_aff import legacy, qat
    >>> x = tf_keras.Input((8, 8, 3))
    >>> a = tf_keras.layers.Conv2D(8, 3, padding="same", name="a")(x)
    >>> b = tf_keras.layers.Conv2D(8, 1, name="b")(x)
    >>> f = legacy.AFF(reduction_ratio=2, name="aff")([a, b])
    >>> out = tf_keras.layers.GlobalAveragePooling2D(name="gap")(f)
    >>> q = qat.quantize_model(tf_keras.Model(x, out))
    >>> images = np.random.default_rng(0).uniform(size=(32, 8, 8, 3))
    >>> qat.calibrate_ranges(q, images.astype("float32"))
    20
    """
    from tensorflow_model_optimization.python.core.quantization.keras import (
        quant_ops,
    )

    if not tf.executing_eagerly():
        raise RuntimeError(
            "`calibrate_ranges` runs eagerly; call it outside tf.function. "
            "Received: a call in graph mode"
        )
    # NaN / Inf would become NaN ranges, complex data would lose its
    # imaginary part: refused here, with the sample, as in the exporters.
    (batch,) = model_io.normalize_inputs(model, x, "x", limit=None)
    saved = [(v, v.numpy()) for v in model.weights]
    ranges = set()
    originals = {
        name: getattr(quant_ops, name)
        for name in (
            "MovingAvgQuantize",
            "LastValueQuantize",
            "AllValuesQuantize",
        )
    }

    def recording(name):
        def quantize(inputs, min_var, max_var, *args, **kwargs):
            if name == "MovingAvgQuantize":
                kwargs["ema_decay"] = 0.0
            ranges.update((id(min_var), id(max_var)))
            return originals[name](inputs, min_var, max_var, *args, **kwargs)

        return quantize

    for name in originals:
        setattr(quant_ops, name, recording(name))
    try:
        model(batch, training=True)
    finally:
        for name, fn in originals.items():
            setattr(quant_ops, name, fn)
    for variable, value in saved:
        if id(variable) not in ranges:
            variable.assign(value)
    return len(ranges) // 2
