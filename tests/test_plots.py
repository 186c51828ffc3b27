"""Shared plotting helpers return figures and never crash on a learner's unfinished function."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from convcourse import plots


def test_show_images_grey_colour_and_signed():
    fig = plots.show_images(
        [torch.rand(8, 9), torch.rand(3, 8, 9), torch.randn(8, 9)], ["a", "b", "c"], caption="three images"
    )
    assert len(fig.axes) == 3 and [a.get_title() for a in fig.axes] == ["a", "b", "c"]
    assert any("three images" in t.get_text() for t in fig.texts)
    plt.close(fig)
    fig = plots.show_images([torch.randn(5, 5)], signed=True)
    low, high = fig.axes[0].images[0].get_clim()
    assert low == -high
    plt.close(fig)


def test_filter_gallery_falls_back_to_torch_until_corr2d_exists():
    image = torch.rand(12, 12, dtype=torch.float64)
    kernels = {"blur": torch.full((3, 3), 1 / 9)}

    def unfinished(x, k):
        raise NotImplementedError

    fig = plots.filter_gallery(image, kernels, unfinished)
    assert "torch" in fig.texts[0].get_text() and fig.axes[1].images[0].get_array().shape == (10, 10)
    plt.close(fig)
    fig = plots.filter_gallery(image, kernels, lambda x, k: torch.zeros(10, 10))
    assert "your corr2d" in fig.texts[0].get_text()
    plt.close(fig)


def test_show_matrix_writes_numbers_and_highlight():
    fig, ax = plt.subplots()
    plots.show_matrix(ax, torch.arange(6.0).reshape(2, 3), title="m", highlight=(slice(0, 1), slice(1, 3)))
    numbers, index = [c for c in ax.collections if isinstance(c, plots.CellLabels)]
    assert numbers.labels == ["0", "1", "2", "3", "4", "5"] and len(ax.patches) == 1 and ax.get_title() == "m"
    assert numbers.get_offsets().tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]]  # (col, row)
    # Column numbers below the matrix, row numbers left of it, drawn outside the axes (not clipped); no ticks.
    assert index.labels == ["0", "1", "2", "0", "1"] and not index.get_clip_on()
    assert [x for x, _ in index.get_offsets().tolist()[:3]] == [0, 1, 2] and index.get_offsets()[3][0] < -0.5
    assert len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0
    plt.close(fig)
    fig, ax = plt.subplots()
    plots.show_matrix(ax, torch.zeros(2, 3), index="")
    assert len([c for c in ax.collections if isinstance(c, plots.CellLabels)]) == 1
    plt.close(fig)


def test_widget_figures_become_png_outputs_with_alt_text_cropped_only_when_something_sticks_out(monkeypatch):
    import base64
    import io

    import IPython
    from PIL import Image

    from convcourse.widgets import figure_output

    def png_size(output: dict) -> tuple[int, int]:
        return Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"]))).size

    fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
    ax.set_title("inside")
    assert "image/png" not in figure_output(fig)["data"]  # outside IPython nothing would show it
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())  # as in a kernel
    output = figure_output(fig)
    assert png_size(output) == (200, 150)  # the whole canvas, not cropped
    assert "inside" in output["metadata"]["image/png"]["alt"]
    fig.text(1.1, 0.5, "past the right edge")
    assert png_size(figure_output(fig))[0] > 200  # cropped to the content instead, which shows all of it
    fig.texts[-1].remove()
    ax.set_xlabel("\n".join(["a label far below the canvas"] * 8))
    assert png_size(figure_output(fig))[1] > 150  # cropped to the content: the label below the axes shows
    ax.set_axis_off()  # an axis turned off draws no label: nothing sticks out, one PNG of the canvas
    assert png_size(figure_output(fig)) == (200, 150)
    plt.close(fig)


def _touch_counts_by_loops(size, k, p):
    counts = torch.zeros(size, size, dtype=torch.long)
    out = size + 2 * p - k + 1
    for i in range(out):
        for j in range(out):
            for a in range(k):
                for b in range(k):
                    r, c = i + a - p, j + b - p
                    if 0 <= r < size and 0 <= c < size:
                        counts[r, c] += 1
    return counts


def test_touch_counts_match_counting_windows_by_hand():
    for size, k, p in [(6, 3, 0), (6, 3, 1), (6, 3, 2), (7, 4, 1), (5, 5, 4), (4, 2, 0)]:
        assert torch.equal(plots.touch_counts(size, k, p), _touch_counts_by_loops(size, k, p)), (size, k, p)
    same = plots.touch_counts(6, 3, 1)
    assert (same[0, 0], same[0, 3], same[3, 3]) == (4, 6, 9)  # corner, edge, interior with 'same' padding
    full = plots.touch_counts(6, 3, 2)
    assert bool((full == 9).all())  # p = k - 1 reads every pixel k*k times
    assert tuple(plots.touch_counts((4, 7), (3, 1), dilation=(1, 2)).shape) == (4, 7)


def test_coverage_plot_draws_one_map_per_padding():
    fig = plots.coverage_plot(6, 3, (0, 1, 2))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "padding=0\ncorner 1, edge 3, centre 9",
        "padding=1\ncorner 4, edge 6, centre 9",
        "padding=2\ncorner 9, edge 9, centre 9",
    ]
    assert len(fig.axes[0].collections[0].labels) == 36
    plt.close(fig)


def test_a_widget_whose_draw_raises_shows_the_error_and_keeps_working():
    """FigureView catches what ``draw`` raises (learner code runs in it) and shows it with its traceback, as
    ipywidgets' interact does; the next control change that draws again replaces the error with the figure."""
    import ipywidgets as w

    from convcourse.widgets import FigureView

    def draw(n):
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot(range(n + 2))
        return fig

    slider = w.IntSlider(value=-1, min=-1, max=3)
    view = FigureView(draw, {"n": slider})  # the first draw raises: the widget is built anyway
    (shown,) = view.output.outputs
    assert shown["output_type"] == "error" and shown["ename"] == "ValueError"
    assert "n must be >= 0, got -1" in shown["evalue"] and any("draw" in line for line in shown["traceback"])
    assert isinstance(view.last_error, ValueError) and view.last_figure is None
    slider.value = 2
    assert view.output.outputs == ()  # the error is gone; the figure goes to the browser (tests/test_scene.py)
    assert view.last_error is None and view.last_figure is not None


def test_learner_panel_replaces_a_half_drawn_panel_with_what_went_wrong():
    from convcourse.widgets import learner_panel

    fig, ax = plt.subplots()
    for error, message in [
        (NotImplementedError(), "your f:\nnot implemented yet"),
        (IndexError(), "your f raised\nIndexError"),
    ]:
        with learner_panel(ax, "f"):
            ax.imshow([[1.0, 2.0]])
            ax.set_title("your f ✓")
            raise error
        assert [t.get_text() for t in ax.texts] == [message] and not ax.images and ax.get_title() == ""
    with learner_panel(ax, "f"):
        ax.set_title("your f ✓")
    assert ax.get_title() == "your f ✓"
    plt.close(fig)
