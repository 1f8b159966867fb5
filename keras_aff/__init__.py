"""keras_aff: Attentional Feature Fusion (MS-CAM, AFF, iAFF) for Keras 3.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

Subpackages: `keras_aff.layers` (MSCAM, AFF, IAFF), `keras_aff.models`
(paper backbones, retrofit), `keras_aff.export` (SavedModel, LiteRT, ONNX),
`keras_aff.interop` (official PyTorch weights). `keras_aff.legacy` (tf_keras
twin) and `keras_aff.qat` (tfmot) are imported on demand.
"""

__version__ = "0.1.0"

from keras_aff import layers  # noqa: E402

__all__ = ["__version__", "layers"]
