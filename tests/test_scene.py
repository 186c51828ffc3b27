"""The widgets' live view: a figure recorded as drawing commands (convcourse.scene) and painted by the browser
(convcourse/scene.js). What is recorded is checked against matplotlib's own geometry; what Chromium paints is
compared with matplotlib's Agg picture of the same figure, for every widget of the course."""

from __future__ import annotations

import contextlib
import json

import matplotlib
import numpy as np
import pytest
import torch
from IPython.core.interactiveshell import InteractiveShell
from matplotlib.figure import Figure
from test_widgets_in_place import WIDGETS, png_pixels

from convcourse.plots import cell_labels, figure_alt_text
from convcourse.scene import SceneCanvas, figure_scene, scene_wire
from convcourse.scene_browser import chromium_missing, scene_painter
from convcourse.widgets import FigureView, figure_output, figure_scene_if_shown


@pytest.fixture
def ipython():
    existed = InteractiveShell.initialized()
    yield InteractiveShell.instance()
    if not existed:
        InteractiveShell.clear_instance()


def ops_of(scene: dict, kind: str) -> list[dict]:
    return [op for op in scene["ops"] if op["o"] == kind]


def test_text_is_recorded_where_matplotlib_lays_it_out():
    fig = Figure(figsize=(4, 3), dpi=100)
    ax = fig.add_subplot()
    ax.set_title("a title", fontsize=14, color="red")
    ax.set_ylabel("rows")
    scene = figure_scene(fig)
    renderer = fig.canvas.get_renderer()
    texts = {op["s"]: op for op in ops_of(scene, "t")}
    title = texts["a title"]
    box = ax.title.get_window_extent(renderer)
    assert title["x"] == pytest.approx((box.x0 + box.x1) / 2, abs=1)  # the line's middle, on its baseline
    assert box.y0 <= scene["height"] - title["y"] <= box.y1
    assert title["w"] == pytest.approx(box.width, abs=1) and title["f"] == "rgba(255,0,0,1)"
    assert title["font"].startswith(f'normal 400 {14 * 100 / 72:.2f}px "DejaVu Sans", ')
    label = texts["rows"]
    assert label["a"] == 90
    box = ax.yaxis.label.get_window_extent(renderer)
    assert scene["height"] - label["y"] == pytest.approx((box.y0 + box.y1) / 2, abs=1)


def test_images_are_sent_at_their_data_resolution_and_placed_by_matplotlib():
    fig = Figure(figsize=(4, 4), dpi=100)
    ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
    data = np.arange(12.0).reshape(3, 4)
    ax.imshow(data, cmap="gray")
    ax.set_axis_off()
    [image] = ops_of(figure_scene(fig), "i")
    assert (image["w"], image["h"]) == (4, 3) and len(image["rgba"]) == 4 * 3 * 4
    rgba = np.frombuffer(image["rgba"], np.uint8).reshape(3, 4, 4)
    a, b, c, d, e, f = image["m"]
    corners = [(a * x + c * y + e, b * x + d * y + f) for x, y in [(0, 0), (4, 3)]]
    box = ax.get_window_extent()  # the image fills the axes (aspect equal, centred)
    xs, ys = sorted(p[0] for p in corners), sorted(400 - p[1] for p in corners)
    assert xs[0] >= box.x0 - 1 and xs[1] <= box.x1 + 1 and ys[0] >= box.y0 - 1 and ys[1] <= box.y1 + 1
    # The data's top-left value (0, black) lands at the top left of the picture.
    top_left = min(range(2), key=lambda i: (corners[i][1], corners[i][0]))
    row = 0 if top_left == 0 else 2
    assert rgba[row, 0 if top_left == 0 else 3, :3].tolist() == [0, 0, 0]
    assert not image["smooth"]  # enlarged: crisp pixels, as matplotlib's nearest interpolation


def test_cell_labels_and_grids_are_collections_of_distinct_paths():
    fig = Figure(figsize=(3, 3), dpi=100)
    ax = fig.add_subplot()
    ax.set_xlim(-0.5, 9.5)
    ax.set_ylim(-0.5, 9.5)
    xs, ys = np.meshgrid(np.arange(10), np.arange(10))
    cell_labels(ax, xs.ravel(), ys.ravel(), [str(v % 3) for v in range(100)], color="blue")
    ax.vlines(np.arange(5), 0, 1, colors=["red", "green"])
    collections = ops_of(figure_scene(fig), "pc")
    labels = next(op for op in collections if len(op["xy"]) == 200)
    assert len(labels["paths"]) == 3  # "0", "1", "2" once each, 100 items placing them
    assert labels["f"] == "rgba(0,0,255,1)" and sorted(set(labels["i"])) == [0, 1, 2]
    lines = next(op for op in collections if isinstance(op.get("s"), list))
    assert lines["s"] == ["rgba(255,0,0,1)", "rgba(0,128,0,1)"] * 2 + ["rgba(255,0,0,1)"]  # colours cycle


def test_hatches_markers_dashes_and_math_are_recorded():
    fig = Figure(figsize=(3, 3), dpi=100)
    ax = fig.add_subplot()
    ax.add_patch(matplotlib.patches.Rectangle((0.1, 0.1), 0.3, 0.3, hatch="//", facecolor="none"))
    ax.plot([0, 1], [0, 1], "o--", color="k")
    ax.set_title(r"$\alpha^2$")
    scene = figure_scene(fig)
    assert any("h" in op and op["h"]["size"] == 100 for op in ops_of(scene, "p"))
    assert any(op.get("dash") for op in ops_of(scene, "p"))
    assert any(len(op["xy"]) == 4 and len(op["paths"]) == 1 for op in ops_of(scene, "pc"))  # two markers
    assert not any("$" in op["s"] for op in ops_of(scene, "t"))  # math: matplotlib's glyph outlines, filled
    curves = [op for op in ops_of(scene, "p") if op["c"] and {3, 4} & set(op["c"])]
    assert any(op.get("f") == "rgba(0,0,0,1)" for op in curves)


@contextlib.contextmanager
def drawing_recorded(monkeypatch):
    """(walked, drawn): the axes matplotlib draws (walks to record the scene) and the axes given an image
    (``imshow``) inside this block; both methods are matplotlib's own again after it."""
    from matplotlib.axes import Axes

    walked, drawn = [], []
    draw, imshow = Axes.draw, Axes.imshow
    monkeypatch.setattr(Axes, "draw", lambda ax, renderer: walked.append(ax) or draw(ax, renderer))
    monkeypatch.setattr(Axes, "imshow", lambda ax, *a, **k: drawn.append(ax) or imshow(ax, *a, **k))
    try:
        yield walked, drawn
    finally:
        monkeypatch.setattr(Axes, "draw", draw)
        monkeypatch.setattr(Axes, "imshow", imshow)


def test_only_changed_axes_are_walked_again_whoever_drew_the_figure_between(ipython, monkeypatch):
    fig = Figure(figsize=(6, 2), dpi=100)
    left, right = fig.subplots(1, 2)
    left.imshow(np.eye(3))
    line = right.plot([0, 1], [0, 1])[0]
    first = figure_scene(fig)
    with drawing_recorded(monkeypatch) as (walked, _drawn):
        assert figure_scene(fig) == first and walked == []  # nothing changed: every panel's commands kept
        line.set_ydata([1, 0])
        figure_output(fig)  # a PNG drawn in between resets matplotlib's own stale flags
        walked.clear()
        changed = figure_scene(fig)
    # The changed panel is walked again (the image panel too: the PNG's draw applied its aspect again, which
    # counts as a change; safe, if slower).
    assert right in walked and changed != first
    fresh = Figure(figsize=(6, 2), dpi=100)
    a, b = fresh.subplots(1, 2)
    a.imshow(np.eye(3))
    b.plot([0, 1], [1, 0])
    assert changed == figure_scene(fresh)


def test_a_widget_redraw_walks_only_the_panels_it_changed(ipython, monkeypatch):
    from convcourse.widgets.channels import channels_widget

    view = channels_widget(torch.rand(3, 12, 14, dtype=torch.float64))
    with drawing_recorded(monkeypatch) as (walked, _drawn):
        view.controls["o"].value = 2
    photos = list(view.last_figure._convcourse_axes[0, :3])  # the input photos: the same for every output
    assert walked and not any(ax in walked for ax in photos)
    assert view.canvas.scene == figure_scene(view.draw.__wrapped__(figure=None, **view.values()))


def test_text_is_laid_out_as_agg_lays_it_out():
    """The scene's renderer gives matplotlib the font's line metrics it keeps (matplotlib would read the font's
    tables for every text): every layout, line spacing of several lines included, is Agg's to the last bit."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from convcourse.scene import _renderer

    fig = Figure(figsize=(4, 3), dpi=100)
    ax = fig.add_subplot()
    texts = [
        ax.set_title("a title", fontsize=14),
        ax.text(0.2, 0.5, "two\nlines", fontsize=13, family="monospace"),
        ax.text(0.5, 0.2, "three\nlines of\ntext", fontsize=7, rotation=30, weight="bold"),
        ax.set_xlabel("$x^2$ and $\\alpha$"),
    ]
    agg = FigureCanvasAgg(fig).get_renderer()
    scene = _renderer(*fig.canvas.get_width_height(physical=True), fig.dpi)

    def layout(text, renderer):
        box, lines, descent = text._get_layout(renderer)
        return box.bounds, lines, descent

    for text in texts:
        assert layout(text, scene) == layout(text, agg), text.get_text()
        assert text.get_window_extent(scene).bounds == text.get_window_extent(agg).bounds, text.get_text()


def test_a_step_of_the_sliding_window_draws_only_the_panels_it_changes(ipython, monkeypatch):
    """The kernel and the learner's result do not depend on the step: neither drawn (no call of the learner's
    function) nor recorded again; the scene is still the figure's drawn afresh."""
    from test_checks import corr2d

    from convcourse.widgets.sliding_window import sliding_window_widget

    calls = []

    def counted(x, k):
        calls.append(1)
        return corr2d(x, k)

    view = sliding_window_widget(corr2d=counted)
    kernel, yours = view.last_figure.axes[1], view.last_figure.axes[4]
    assert calls and "✓" in yours.get_title()
    calls.clear()
    with drawing_recorded(monkeypatch) as (walked, drawn):
        view.controls["step"].value = 5
    assert view.last_error is None and not calls
    assert walked and kernel not in walked and yours not in walked
    assert set(drawn) == set(view.last_figure.axes) - {kernel, yours}
    assert view.canvas.scene == figure_scene(view.draw.__wrapped__(figure=None, **view.values()))


def test_a_kernel_size_move_keeps_the_grids_whose_size_stays(ipython, monkeypatch):
    """Lesson 02: a new kernel width redraws the windows on the input grid and the output grid (its size
    changes), not the input grid itself; the scene is still the figure's drawn afresh."""
    from convcourse.widgets.kernel_size import kernel_size_widget

    view = kernel_size_widget()
    grid, output = view.last_figure.axes
    with drawing_recorded(monkeypatch) as (_walked, drawn):
        view.controls["kw"].value = 4
    assert view.last_error is None and drawn == [output]
    assert [p.get_width() for p in grid.patches if p.get_label() == "first position"] == [4]
    assert view.canvas.scene == figure_scene(view.draw.__wrapped__(figure=None, **view.values()))


def test_a_pick_in_input_mode_keeps_the_learners_panel_and_the_grids_it_does_not_change(ipython, monkeypatch):
    """Lesson 11: in input mode grad_output is all ones, so your grad_input does not depend on the pick: a new
    pick neither looks it up nor draws or records its panel again, and a grid whose drawing stays is kept; in
    output mode a new pick is a new example (your function runs). The scene is still the figure's drawn afresh."""
    from test_lesson_11_backward import loop_backward

    from convcourse.widgets.backward import INPUT_TO_OUTPUTS, OUTPUT_TO_INPUTS, backward_widget

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return loop_backward(*args, **kwargs)

    view = backward_widget(conv2d_backward=counted)
    assert view.values()["mode"] == INPUT_TO_OUTPUTS and view.values()["stride"] == 2
    inputs, kernel, outputs, yours = view.last_figure.axes
    assert calls and "✓" in yours.get_title()
    calls.clear()
    with drawing_recorded(monkeypatch) as (walked, drawn):
        view.controls["col"].value = 1  # (2, 3) -> (2, 1): other outputs, through the same kernel taps (stride 2)
        assert view.last_error is None and not calls
        assert drawn == [inputs, outputs] and walked and kernel not in walked and yours not in walked
        view.controls["mode"].value = OUTPUT_TO_INPUTS
        view.controls["row"].value = 1
    assert view.last_error is None and len(calls) == 2 and yours in drawn[2:]
    assert view.canvas.scene == figure_scene(view.draw.__wrapped__(figure=None, **view.values()))


def test_a_label_past_the_edge_widens_the_view_as_the_png_is_cropped(ipython):
    fig = Figure(figsize=(2, 1.5), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlabel("below the canvas")
    scene = figure_scene(fig)
    x, y, width, height = scene["view"]
    assert height > 150 and y + height > 150
    png_height = png_pixels(figure_output(fig)).shape[0]
    assert abs(height - png_height) <= 2


def test_outside_ipython_nothing_is_recorded():
    assert not InteractiveShell.initialized()
    fig = Figure()
    fig.add_subplot()
    assert figure_scene_if_shown(fig) == {}


def test_a_view_sends_scenes_and_shows_errors_in_its_output(ipython):
    import ipywidgets as w

    def draw(n):
        if n == 2:
            raise ValueError("two")
        fig = Figure(figsize=(2, 2))
        fig.add_subplot().plot(range(n))
        return fig

    slider = w.IntSlider(value=1, min=0, max=3)
    view = FigureView(draw, {"n": slider})
    assert isinstance(view.canvas, SceneCanvas) and view.canvas in view.widget.children
    assert view.canvas.scene["ops"] and view.output.outputs == ()
    assert view.canvas.scene["alt"] == figure_alt_text(view.last_figure)
    slider.value = 2
    assert view.canvas.scene == {} and view.output.outputs[0]["ename"] == "ValueError"
    slider.value = 3
    assert view.canvas.scene["ops"] and view.output.outputs == ()
    sent = view.canvas.get_state()["scene"]  # what the frontend receives
    assert set(sent) == {"json", "images"} and json.loads(sent["json"])["alt"] == view.canvas.scene["alt"]


def test_a_scene_travels_as_json_bytes_with_its_images_apart():
    fig = Figure(figsize=(3, 2), dpi=100)
    left, right = fig.subplots(1, 2)
    left.imshow(np.arange(6.0).reshape(2, 3))
    right.imshow(np.ones((4, 4, 3)))
    left.plot([0, 1], [0, 1])
    scene = figure_scene(fig)
    wire = scene_wire(scene)
    assert set(wire) == {"json", "images"} and isinstance(wire["json"], bytes)
    sent = json.loads(wire["json"])
    images = [op for op in scene["ops"] if op["o"] == "i"]
    assert len(images) == 2 == len(wire["images"])
    for op, received in zip(images, [op for op in sent["ops"] if op["o"] == "i"]):
        assert wire["images"][received.pop("rgba")["image"]] == op["rgba"]
        assert received == {key: value for key, value in op.items() if key != "rgba"}
    assert [op for op in sent["ops"] if op["o"] != "i"] == [op for op in scene["ops"] if op["o"] != "i"]
    assert {k: v for k, v in sent.items() if k != "ops"} == {k: v for k, v in scene.items() if k != "ops"}
    assert SceneCanvas(scene=scene).get_state()["scene"] == wire  # the trait sends exactly this
    assert scene_wire({}) == {}  # an empty scene hides the canvas
    # A NaN or an infinity is not JSON: it travels as null (the browser skips what it cannot place).
    odd = scene_wire({"ops": [{"o": "p", "d": [float("nan"), 1.0, float("inf"), 2.0], "c": None}], "alt": "x"})
    assert json.loads(odd["json"])["ops"][0]["d"] == [None, 1.0, None, 2.0]
    with pytest.raises(TypeError, match="set in a scene"):
        scene_wire({"ops": [{"o": "t", "s": {1}}]})


def every_widget() -> dict:
    """One view of each widget module (the in-place test's set covers them all)."""
    return {name: make for name, (make, _moves) in WIDGETS.items()}


def differences(painted: np.ndarray, agg: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference (0-255) and the share of pixels off by more than a quarter of the range, each
    pixel compared with the nearest match among Agg's pixel and its 8 neighbours (an edge placed a pixel apart
    by another rasteriser is the same picture; a missing line, label or panel is not)."""
    painted = painted.astype(int)
    padded = np.pad(agg[..., :3].astype(int), ((1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = painted.shape[:2]
    gap = np.min(
        [np.abs(painted - padded[dy : dy + height, dx : dx + width]).max(axis=2) for dy in range(3) for dx in range(3)],
        axis=0,
    )
    return float(gap.mean()), float((gap > 64).mean())


@pytest.fixture(scope="module")
def painter():
    missing = chromium_missing()
    if missing:
        pytest.skip(f"the browser's side of the widgets is not checked: {missing}")
    with scene_painter() as painter:
        yield painter


@pytest.mark.browser
@pytest.mark.slow  # one worker, one Chromium for all of them (tests/conftest.py groups slow tests by fixture)
@pytest.mark.parametrize("name", list(every_widget()))
def test_chromium_paints_each_widget_as_matplotlib_renders_it(name, painter, ipython):
    """The same picture up to text rasterisation: the browser draws text in its own copy of the font, and
    anti-aliases edges its own way. Measured on every widget (2026-12-01): mean differences of 0.3-2.5 (of
    255) and at most 2.4 % of pixels off by more than 64; the panels' images left out cost more (below). A
    single missing text line or path may pass here: the scene itself is checked against matplotlib above and
    in tests/test_widgets_in_place.py."""
    view = every_widget()[name]()
    assert view.last_error is None
    agg = png_pixels(figure_output(view.last_figure))
    milliseconds = painter.paint(view.canvas.scene)
    painted = painter.pixels()
    assert painted.shape[:2] == agg.shape[:2]
    mean, share = differences(painted, agg)
    assert mean < 5 and share < 0.04, (name, mean, share, milliseconds)


@pytest.mark.browser
@pytest.mark.slow  # one worker, one Chromium for all of them (tests/conftest.py groups slow tests by fixture)
def test_the_comparison_sees_a_missing_part_of_the_picture(painter, ipython):
    view = every_widget()["sliding window"]()
    agg = png_pixels(figure_output(view.last_figure))
    scene = dict(view.canvas.scene)
    scene["ops"] = [op for op in scene["ops"] if op["o"] != "i"]  # the images of the four panels left out
    painter.paint(scene)
    mean, share = differences(painter.pixels(), agg)
    assert mean >= 5 or share >= 0.04, (mean, share)
