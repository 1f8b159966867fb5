"""The demo's picture: where AFF and iAFF prefer which input, from the
layers' fusion weights (`fusion_weight_model`).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""

import os
import tempfile

import numpy as np

from keras_aff import _validation
from keras_aff._optional import require
from keras_aff.demo.model import fusion_weight_model


def save_fusion_weight_png(model, images, labels, path):
    """Plots, for each image, the channel-mean AFF weight `w` per position
    (red: the attention prefers the first input x, the 3x3 branch; blue:
    the second, y, the 1x1 branch) and iAFF's second-stage `w2`, and saves
    the figure as a PNG (written whole or not at all).

    Args:
        model: the model of `build_demo_model`.
        images: float32 (N, 16, 16, 1), a few digits.
        labels: their N labels (the titles).
        path: str, the `.png` to write; its directory must exist.

    Returns:
        (mean AFF w, mean iAFF w2) over the images, floats.

    Example:

    >>> model = keras_aff.demo.build_demo_model()
    >>> images = np.random.default_rng(0).random((2, 16, 16, 1), "float32")
    >>> keras_aff.demo.save_fusion_weight_png(model, images, [3, 5], "w.png")
    (0.5..., 0.5...)
    >>> open("w.png", "rb").read(4)
    b'\\x89PNG'
    """
    matplotlib = require("matplotlib", "demo", "The fusion-weight plot")
    path = _validation.check_writable_path("path", path)
    w_aff, w_iaff = fusion_weight_model(model).predict(images, verbose=0)
    w_aff, w_iaff = w_aff.mean(-1), w_iaff.mean(-1)
    matplotlib.use("Agg")
    fig = _figure(images, labels, w_aff, w_iaff)
    # A name of our own beside `path` (never a file of the user's).
    fd, tmp = tempfile.mkstemp(
        dir=os.path.dirname(os.path.abspath(path)),
        prefix=f".{os.path.basename(path)}.",
        suffix=".partial",
    )
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would create it
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return float(w_aff.mean()), float(w_iaff.mean())


def _figure(images, labels, w_aff, w_iaff):
    import matplotlib.pyplot as plt

    # Channel means sit near 0.5: centre the colours there and stretch them
    # to the largest deviation so the structure shows.
    deviation = np.abs(np.concatenate([w_aff.ravel(), w_iaff.ravel()]) - 0.5)
    spread = max(0.05, float(deviation.max()))
    colours = {"cmap": "RdBu_r", "vmin": 0.5 - spread, "vmax": 0.5 + spread}
    n = len(images)
    # Constrained layout sizes the panels so that the titles, the row
    # labels and the colour bar with its label all fit inside the figure;
    # with its default 3 pt pad the two-line row labels end 0.5 px outside.
    fig, axes = plt.subplots(
        3, n, figsize=(1.9 * n + 1.6, 6.2), squeeze=False, layout="constrained"
    )
    fig.get_layout_engine().set(w_pad=0.1, h_pad=0.1)
    for i in range(n):
        axes[0, i].imshow(images[i, ..., 0], cmap="gray_r")
        axes[0, i].set_title(f"digit {labels[i]}", fontsize=9)
        im = axes[1, i].imshow(w_aff[i], **colours)
        axes[2, i].imshow(w_iaff[i], **colours)
        for row in range(3):
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=9)
    axes[1, 0].set_ylabel("AFF w (16x16)\nx=3x3, y=1x1", fontsize=9)
    axes[2, 0].set_ylabel("iAFF w2 (8x8)\nx=conv, y=proj", fontsize=9)
    bar = fig.colorbar(im, ax=axes[1:, :].ravel().tolist(), shrink=0.9)
    bar.set_label("mean w over channels\nred prefers x, blue prefers y")
    fig.suptitle(
        "Where attentional feature fusion prefers which input "
        "(output = y + w * (x - y))",
        fontsize=10,
    )
    return fig
