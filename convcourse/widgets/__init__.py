"""Interactive widgets. Each lesson's widget is a pure model (testable headless) plus a thin view.

The view side is always :class:`FigureView`: ipywidgets controls whose values are passed to a
``draw(**values) -> Figure`` function, redrawn on every change. The figure is painted by the learner's browser
(:mod:`convcourse.scene`: the kernel sends what matplotlib would paint, the browser paints it on a canvas), not
rendered to a PNG in the kernel (issue 16: a redraw within 50 ms). Where no browser will run the widget's
script, the static HTML of ``make html`` (:data:`PICTURES_SWITCH`), the figure goes into an Output as a PNG
instead. When ``draw`` raises, the Output shows the error with its traceback (as ipywidgets' ``interact``
does) and the controls keep working.

Speed (issue 3: a redraw within 100 ms, ``benchmarks/lesson_speed.py``): the PNG is rendered once, at
the figure's own size, not cropped with ``bbox_inches="tight"`` as the inline backend would (that costs a
second layout pass over every artist; it is used only for a frame where a title, label, legend or text
sticks out of the canvas). A widget's ``draw`` therefore lays its figure out to fit the canvas, preferably
with fixed margins (``subplots_adjust``) rather than ``tight_layout`` (another pass), and writes grids of
numbers with :func:`convcourse.plots.cell_labels` rather than a Text per cell.
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
from typing import Callable, Iterator, Mapping

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..mode import grading_mode


class FigureView:
    """Controls + an Output showing ``draw(**control_values)``; ``update()`` is the redraw path."""

    def __init__(
        self,
        draw: Callable[..., plt.Figure],
        controls: Mapping[str, w.ValueWidget],
        *,
        title: str = "",
        description: str = "",
    ):
        from ..scene import SceneCanvas

        self.draw = draw
        self.title = title
        self.controls = dict(controls)
        #: Whether each redraw is a PNG in :attr:`output` (static HTML) instead of a scene on :attr:`canvas`
        #: (None then: a static page would try to load the canvas's script from the internet).
        self.pictures = os.environ.get(PICTURES_SWITCH) == "1"
        self.output = w.Output()
        self.canvas = None if self.pictures else SceneCanvas()
        self.status = w.HTML()
        self.last_figure: plt.Figure | None = None
        self.last_error: Exception | None = None
        self.last_seconds: float = 0.0
        header = [w.HTML(f"<b>{title}</b>")] if title else []
        if description:
            header.append(w.HTML(f"<span style='color:#555'>{description}</span>"))
        self.widget = w.VBox(
            header
            + [w.HBox(list(self.controls.values()), layout=w.Layout(flex_flow="row wrap"))]
            + [self.output, *([self.canvas] if self.canvas is not None else []), self.status]
        )
        self.widget.add_class("convcourse-widget")
        for control in self.controls.values():
            control.observe(lambda _change: self.update(), names="value")
        if grading_mode():
            # Graded (nbgrader, or the self-check, which runs the notebook as nbgrader does): nobody sees or moves
            # this widget, and no feedback page could show its canvas, so it draws when a control first moves
            # (never, there) rather than now. Every lesson's widgets are drawn by tests/test_browser.py.
            self.status.value = "(not drawn while the notebook is graded)"
        else:
            self.update()

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def update(self) -> plt.Figure | None:
        """Redraw; returns the new figure, or None when ``draw`` raised (the Output then shows the error)."""
        start = time.perf_counter()
        self.last_error = None
        self.status.value = ""
        try:
            figure = self.draw(**self.values())
        except Exception as error:  # noqa: BLE001 - shown in the widget, as ipywidgets' interact shows it
            self.last_error = error
            self.output.outputs = (error_output(error),)
            if self.canvas is not None:
                self.canvas.scene = {}
            self.last_seconds = time.perf_counter() - start
            return None
        # The picture replaces the Output's contents through the widget's state: one message to the frontend.
        # (``with output: display(...)`` makes nbclient, which runs lessons headless for the tests, the
        # self-check and grading, echo every output back on the shell channel, and that echo can leave it
        # waiting out the whole cell timeout for an execute reply that has already arrived.)
        if self.pictures:
            self.output.outputs = (figure_output(figure),)
        else:
            self.canvas.scene = figure_scene_if_shown(figure)
            if self.output.outputs:  # the error of an earlier redraw
                self.output.outputs = ()
        # Closed at once: the picture has been sent (scene or PNG), and an open figure would be shown again by
        # the inline backend at the end of whatever cell runs next.
        plt.close(figure)
        self.last_figure = figure
        self.last_seconds = time.perf_counter() - start
        return figure

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


#: The widest picture a widget renders, in pixels: about a notebook output area's width in JupyterLab.
MAX_WIDTH_PX = 1000

#: Environment variable: "1" makes every :class:`FigureView` show PNGs in its Output (``make html`` sets it for
#: the kernel that renders the static pages, which no kernel will ever update and readers may see without the
#: widgets' script).
PICTURES_SWITCH = "CONVCOURSE_WIDGET_PICTURES"


def figure_scene_if_shown(figure: plt.Figure) -> dict:
    """:func:`convcourse.scene.figure_scene` of ``figure``; outside IPython, where nothing would show it, or for
    an empty figure, an empty scene (as :func:`figure_output` then renders no PNG)."""
    from IPython import get_ipython

    from ..scene import figure_scene

    if get_ipython() is None or (not figure.axes and not figure.lines):
        return {}
    return figure_scene(figure)


def error_output(error: BaseException) -> dict:
    """An nbformat error output for ``error``, with its traceback (the frontend colours it like a cell's)."""
    import traceback

    return {
        "output_type": "error",
        "ename": type(error).__name__,
        "evalue": str(error),
        "traceback": "".join(traceback.format_exception(error)).rstrip().splitlines(),
    }


def figure_output(figure: plt.Figure) -> dict:
    """``figure`` as a notebook display_data output: a PNG at the figure's own size and dpi (at most
    :data:`MAX_WIDTH_PX` wide), carrying its alt text (:func:`convcourse.plots.figure_alt_text`) as the course's
    plots do. Outside IPython, where nothing would show it, or for an empty figure, only the text repr.

    Rendered by Agg as ``savefig`` would, on a canvas that keeps the glyphs it has rendered
    (:mod:`convcourse.glyphs`: text is most of a redraw), and encoded unfiltered at zlib level 1
    (:mod:`convcourse.png`): the same pixels, in a third to a half of the encoding time."""
    from IPython import get_ipython
    from IPython.core.pylabtools import print_figure

    from ..glyphs import GlyphCacheCanvas
    from ..plots import figure_alt_text
    from ..png import png_bytes

    output = {"output_type": "display_data", "data": {"text/plain": repr(figure)}, "metadata": {}}
    if get_ipython() is None or (not figure.axes and not figure.lines):  # as IPython shows no empty figure
        return output
    canvas = figure.canvas if type(figure.canvas) is GlyphCacheCanvas else GlyphCacheCanvas(figure)
    _pin_titles(figure)
    # Never more pixels than a notebook's output area shows (wider images are only scaled down by the browser).
    dpi = min(float(figure.dpi), MAX_WIDTH_PX / max(float(figure.get_figwidth()), 1e-3))
    with _dpi(figure, dpi):
        canvas.draw()
        data = None if _sticks_out(figure) else png_bytes(np.asarray(canvas.buffer_rgba()))
    if data is None:  # rare: crop to the content, as the inline backend does
        data = print_figure(figure, "png", bbox_inches="tight", dpi=dpi, pil_kwargs={"compress_level": 1})
    output["data"]["image/png"] = base64.b64encode(data).decode("ascii")
    output["metadata"]["image/png"] = {"alt": figure_alt_text(figure)}
    return output


@contextlib.contextmanager
def _dpi(figure: plt.Figure, dpi: float) -> Iterator[None]:
    """``figure`` at ``dpi`` inside this block (as ``savefig(dpi=...)`` renders it)."""
    saved = figure.dpi
    figure.dpi = dpi
    try:
        yield
    finally:
        figure.dpi = saved


def _pin_titles(figure: plt.Figure) -> None:
    """Skip matplotlib's search for a title position above tick labels where there are none to avoid: on an
    axes with its axis off, or with its x ticks below and no y offset text (no y ticks, or a y formatter that
    writes none, such as a log axis's or fixed labels). The title stays where that search would leave it
    (just above the axes), and each redraw saves a tight-bbox pass over the axes' ticks (the largest cost of
    a redraw of many small panels)."""
    from matplotlib.ticker import ScalarFormatter

    for ax in figure.axes:
        no_ticks = not ax.axison or (
            ax.xaxis.get_ticks_position() == "bottom"
            and ax.xaxis.get_label_position() == "bottom"
            and (len(ax.get_yticks()) == 0 or not isinstance(ax.yaxis.get_major_formatter(), ScalarFormatter))
        )
        if no_ticks and getattr(ax, "_autotitlepos", False) and not ax.child_axes:
            ax._autotitlepos = False


def _sticks_out(figure: plt.Figure, slack: float = 1.0, renderer=None) -> bool:
    """Whether a title, axis label, legend or text of a just-drawn ``figure`` reaches past its canvas (which
    a PNG of the canvas would cut off). Ticks are not checked: they sit in the margins the layout made. Cheap
    after a draw, which cached the text sizes in ``renderer`` (default: the canvas's renderer)."""
    renderer = renderer or figure.canvas.get_renderer()
    width, height = figure.canvas.get_width_height(physical=True)
    artists = list(figure.texts) + list(figure.legends)
    for ax in figure.axes:
        if ax.get_visible():
            artists += [ax.title, ax._left_title, ax._right_title, *ax.texts]
            artists += [ax.xaxis.label, ax.yaxis.label] if ax.axison else []  # an axis turned off draws no label
            artists += [ax.get_legend()] if ax.get_legend() is not None else []
    for artist in artists:
        if not artist.get_visible() or (hasattr(artist, "get_text") and not artist.get_text()):
            continue
        box = artist.get_window_extent(renderer)
        if box.x0 < -slack or box.y0 < -slack or box.x1 > width + slack or box.y1 > height + slack:
            return True
    return False


def in_place(draw: Callable[..., plt.Figure]) -> Callable[..., plt.Figure]:
    """``draw(**values)`` called with ``figure=`` the figure it returned last time (None the first time).

    For a :class:`FigureView` whose draw function can update a figure it built before (new data, titles and
    colours on the same artists) instead of building a new one: a redraw then skips creating the axes,
    images and texts, most of its cost after the PNG itself. The draw function decides whether the figure it
    is given fits (its panels may depend on the values) and builds a new one when it does not."""
    last: plt.Figure | None = None

    def redraw(**values) -> plt.Figure:
        nonlocal last
        last = draw(figure=last, **values)
        return last

    redraw.__wrapped__ = draw  # type: ignore[attr-defined]  # the draw function itself (a figure from scratch)
    return redraw


def picture(ax: plt.Axes, values, *, cmap: str = "RdBu_r", vmin: float | None = None, vmax: float | None = None):
    """``values`` (H, W) shown in ``ax`` as ``ax.imshow`` would, reusing the picture already there (new numbers,
    extent and colour limits; the axes' limits follow the new shape): a redraw that updates its figure in
    place (:func:`in_place`) makes no new image."""
    data = np.asarray(values)
    rows, cols = data.shape[:2]
    if not ax.images:
        return ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax)
    image = ax.images[0]
    image.set_data(data)
    image.set_cmap(cmap)
    image.set_clim(vmin, vmax)
    image.set_extent((-0.5, cols - 0.5, rows - 0.5, -0.5))
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    return image


def clear_drawing(ax: plt.Axes) -> None:
    """Take out what a redraw draws into ``ax`` (images, lines, collections, patches, texts, legend, title and
    axis labels) and forget its data limits, keeping the axes with their ticks and spines: ``ax.cla()`` for a
    redraw that draws everything again (:func:`in_place`), without rebuilding the axis (most of a small
    panel's cost). Settings the redraw changes (axis on or off, aspect, limits) stay as it left them."""
    for container in list(ax.containers):  # bars, error bars: their artists and the container itself
        container.remove()
    for artist in [*ax.images, *ax.lines, *ax.collections, *ax.patches, *ax.texts, *ax.artists, *ax.tables]:
        artist.remove()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    for title in (ax.title, ax._left_title, ax._right_title):
        title.set_text("")
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.ignore_existing_data_limits = True


def kept_axes(
    figure: plt.Figure | None, layout: object, width_ratios: list[float] | None = None
) -> list[plt.Axes] | None:
    """The axes of ``figure`` as they are, when ``figure`` was built for ``layout`` (whatever a draw function's
    panels depend on, stored as ``figure._convcourse_layout``); None when a new figure must be built (then give
    it that attribute). ``width_ratios``: the widths of the columns of the axes' grid, applied (moving the
    axes) only where they changed: a moved axes counts as changed, and the browser's scene records it again.
    Draw into each axes that must change after :func:`redraw_needed`."""
    if figure is None or getattr(figure, "_convcourse_layout", None) != layout:
        return None
    if width_ratios is not None:
        grid = figure.axes[0].get_subplotspec().get_gridspec()
        if list(grid.get_width_ratios() or []) != list(width_ratios):
            grid.set_width_ratios(width_ratios)
            for ax in figure.axes:
                ax.set_position(ax.get_subplotspec().get_position(figure))
    return list(figure.axes)


def reused_axes(
    figure: plt.Figure | None, layout: object, width_ratios: list[float] | None = None
) -> list[plt.Axes] | None:
    """:func:`kept_axes`, each emptied with :func:`clear_drawing` (and the figure's sup-labels; its title,
    suptitle, is always set again): for a draw function that draws every panel again."""
    axes = kept_axes(figure, layout, width_ratios)
    if axes is None:
        return None
    for ax in axes:
        clear_drawing(ax)
    for label in (figure._supxlabel, figure._supylabel):
        if label is not None:
            label.set_text("")
    return axes


def redraw_needed(ax: plt.Axes, key: object) -> bool:
    """Whether ``ax`` must be drawn to show ``key`` (everything its drawing depends on, compared with ==): True
    after emptying it (:func:`clear_drawing`) and noting ``key``; False when it shows ``key`` already. It then
    stays as it is: neither drawn nor recorded again (:mod:`convcourse.scene` keeps an unchanged axes' drawing).
    A redraw that moves one control thus pays only for the panels that control changes."""
    if getattr(ax, "_convcourse_key", _NOTHING) == key:
        return False
    clear_drawing(ax)
    ax._convcourse_key = key
    return True


_NOTHING = object()


def adjust(figure: plt.Figure, **margins: float) -> None:
    """``figure.subplots_adjust(**margins)`` unless they are the margins it was given last: adjusting moves
    every axes again, which counts as a change to each (see :func:`kept_axes`)."""
    if getattr(figure, "_convcourse_margins", None) != margins:
        figure.subplots_adjust(**margins)
        figure._convcourse_margins = margins


def input_output_text_axes(
    figure: plt.Figure | None, layout: object, width_ratios: list[float], height_ratios: list[float]
) -> tuple[plt.Figure, list[plt.Axes]]:
    """``figure`` and its input, output and text axes when it was built for ``layout`` (:func:`reused_axes`),
    else a new Figure outside pyplot (the widget keeps it and redraws on its axes) with those three: input and
    output side by side above one text panel."""
    axes = reused_axes(figure, layout)
    if axes is not None:
        return figure, axes
    fig = Figure(figsize=(9.6, 5.0))
    fig._convcourse_layout = layout
    grid = fig.add_gridspec(2, 2, height_ratios=height_ratios, width_ratios=width_ratios)
    return fig, [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]


def grader_agrees(exercise: str, fn: Callable, **inputs) -> bool:
    """Whether the grader's own check passes for ``fn(**inputs)``: :func:`convcourse.checks.check`, so a
    widget's ✓/✗ uses the same comparison and tolerance as the tests (one tolerance, wherever it is set).
    Warnings the learner's code raises are not shown here (the widget shows its verdict instead)."""
    import warnings

    from ..checks import check

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(check(exercise, fn, **inputs))
    except AssertionError:  # GradingError: the grader's message says what differs
        return False


def grader_verdict(exercise: str, fn: Callable | None, inputs: Mapping, torch_result: Callable[[], object]) -> str:
    """One line for a widget's text panel: the grader's own check of ``fn(**inputs)``. '' without a function,
    "your <exercise> ✗ <the grader's message>", or a ✓ line naming what torch did (``torch_result()``: an
    output, or the exception the learner raised too)."""
    if fn is None:
        return ""
    import warnings

    from ..checks import GradingError, check

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check(exercise, fn, **inputs)
    except GradingError as error:
        return f"your {exercise} ✗ " + str(error)
    result = torch_result()
    if isinstance(result, Exception):
        return f"your {exercise} ✓ raises {type(result).__name__}, like torch"
    return f"your {exercise} ✓ matches torch: output {tuple(result.shape)}"


class KeptChecks:
    """A learner's function whose checked calls (:func:`checked_call`) are kept per input (at most ``limit``):
    moving a control back to a setting seen before neither runs the learner's function (often loops) nor the
    grader's check again. Inputs are compared by value (tensors by dtype, shape and contents). What the
    function raises is not kept: it runs again next time."""

    def __init__(self, fn: Callable, limit: int = 256):
        self.fn, self.limit = fn, limit
        self.calls = 0
        self._kept: dict[tuple, tuple[bool, object]] = {}

    def checked(self, exercise: str, **inputs) -> tuple[bool, object]:
        key = (exercise, *((name, _value_key(value)) for name, value in sorted(inputs.items())))
        if key not in self._kept:
            self.calls += 1
            verdict = checked_call(exercise, self.fn, **inputs)
            if len(self._kept) >= self.limit:
                self._kept.clear()
            self._kept[key] = verdict
        return self._kept[key]


def _value_key(value: object) -> object:
    import torch

    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().flatten().view(torch.uint8)  # any dtype, bfloat16 included
        return "tensor", str(value.dtype), tuple(value.shape), data.numpy().tobytes()
    if isinstance(value, np.ndarray):  # by contents: a large array's repr elides them
        return "array", str(value.dtype), value.shape, np.ascontiguousarray(value).tobytes()
    return type(value).__name__, repr(value)


def checked_call(exercise: str, fn: Callable, **inputs) -> tuple[bool, object]:
    """``fn(**inputs)`` called once, under the grader's own check: (whether the check passes, what ``fn``
    returned). What ``fn`` raised is raised again (a widget shows "not implemented yet" or the error), so a
    slow learner function (loops) runs once per redraw, not once to show and once to check. ``fn`` may be a
    :class:`KeptChecks`, which answers a call it has seen from what it kept."""
    import functools

    if isinstance(fn, KeptChecks):
        return fn.checked(exercise, **inputs)

    record: dict = {}

    @functools.wraps(fn)
    def recorded(*args, **kwargs):
        try:
            record["value"] = fn(*args, **kwargs)
        except BaseException as error:
            if not isinstance(error, AssertionError):  # not the checks' own (e.g. their tripwire on torch's conv)
                record["error"] = error
            raise
        return record["value"]

    ok = grader_agrees(exercise, recorded, **inputs)
    if "error" in record:
        raise record["error"]
    if "value" not in record:  # the check stopped it (a banned call) or never called it: call it plainly
        record["value"] = fn(**inputs)
    return ok, record["value"]


@contextlib.contextmanager
def learner_panel(ax: plt.Axes, name: str, **text_style) -> Iterator[None]:
    """Draw the learner's result into ``ax`` inside this block. When the learner's function (called in the
    block, usually through :func:`checked_call`) is not implemented yet or raises, the panel is cleared and
    says so, in place of a traceback; the rest of the widget keeps working."""
    try:
        yield
    except NotImplementedError:
        _panel_message(ax, f"your {name}:\nnot implemented yet", text_style)
    except Exception as error:  # the learner's bug is shown, not raised  # noqa: BLE001
        _panel_message(ax, f"your {name} raised\n{type(error).__name__}", text_style)


def _panel_message(ax: plt.Axes, message: str, text_style: dict) -> None:
    ax.cla()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, **text_style)
