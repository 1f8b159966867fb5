"""The fusion-weight figure's layout: everything drawn lies inside the
figure, and the colour-bar label stays beside its bar."""

import matplotlib
import numpy as np

from keras_aff.demo import plot

matplotlib.use("Agg")


def test_fusion_weight_figure_clips_and_covers_nothing():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    images = rng.random((5, 16, 16, 1))
    w_aff = 0.5 + 0.1 * rng.standard_normal((5, 16, 16))
    w_iaff = 0.5 + 0.1 * rng.standard_normal((5, 8, 8))
    fig = plot._figure(images, [0, 2, 4, 6, 8], w_aff, w_iaff)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        # The box around every drawn artist (titles, row labels, ticks,
        # the colour bar and its label), in inches.
        drawn = fig.get_tightbbox(renderer)
        width, height = fig.get_size_inches()
        assert 0 <= drawn.x0 and drawn.x1 <= width, (drawn, width)
        assert 0 <= drawn.y0 and drawn.y1 <= height, (drawn, height)
        *panels, bar = fig.axes
        assert len(panels) == 15
        label = bar.yaxis.label
        assert label.get_text().startswith("mean w over channels")
        # The label runs along the bar, no longer than it, over no panel.
        extent = label.get_window_extent(renderer)
        assert bar.bbox.y0 <= extent.y0 and extent.y1 <= bar.bbox.y1
        assert [ax for ax in panels if extent.overlaps(ax.bbox)] == []
    finally:
        plt.close(fig)
