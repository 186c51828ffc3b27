"""The course's figure style and the plots several lessons share.

Every function returns the matplotlib Figure it drew, so notebooks display it and tests inspect it.
"""

from __future__ import annotations

import functools
from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import PathCollection
from matplotlib.font_manager import FontProperties
from matplotlib.path import Path
from matplotlib.textpath import TextPath
from matplotlib.transforms import Affine2D

STYLE = {
    "figure.dpi": 100,
    "figure.facecolor": "white",
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "font.size": 10,
    "image.interpolation": "nearest",
    "axes.spines.top": False,
    "axes.spines.right": False,
    # Titles at a fixed height: matplotlib's automatic placement measures every tick label of every axes
    # at each draw, to dodge ticks on top (the course never puts ticks there); ~5 ms per axes and redraw.
    "axes.titley": 1.0,
}
#: Colours with fixed meaning across lessons.
COLORS = {"input": "#4C72B0", "kernel": "#DD8452", "output": "#55A868", "padding": "#C8C8C8", "highlight": "#C44E52"}


def use_course_style() -> None:
    """Apply the course's matplotlib style (lessons call this once in their first cell); in a notebook,
    figures are then shown as PNG carrying alt text (see :func:`figure_alt_text`)."""
    matplotlib.rcParams.update(STYLE)
    _show_figures_with_alt_text()


def set_alt_text(fig: plt.Figure, text: str) -> plt.Figure:
    """Give ``fig`` an explicit description for screen readers and the static HTML (returns ``fig``)."""
    fig._convcourse_alt = text
    return fig


def figure_alt_text(fig: plt.Figure) -> str:
    """A description of ``fig``: the text set with :func:`set_alt_text`, else one built from its titles and
    caption (panel titles, suptitle, and the caption that ``show_images(caption=...)`` writes). An axes marked
    ``_convcourse_not_a_panel`` (one that only carries another panel's legend) is not counted as a panel."""
    explicit = getattr(fig, "_convcourse_alt", None)
    if explicit:
        return explicit
    shown = [ax for ax in fig.axes if ax.get_visible() and not getattr(ax, "_convcourse_not_a_panel", False)]
    titles = [ax.get_title() for ax in shown if ax.get_title()]
    parts = [text for text in (fig.get_suptitle(), fig.get_supxlabel()) if text]
    panels = len(shown)
    summary = f"Figure with {panels} panel{'s' if panels != 1 else ''}" + (": " + "; ".join(titles) if titles else "")
    return ". ".join([summary] + parts).replace("$", "")


def _show_figures_with_alt_text() -> None:
    """In IPython, display Figures as PNG whose output metadata has ``alt`` (used by ``make html``)."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or "image/png" not in getattr(shell.display_formatter, "formatters", {}):
        return
    plt.switch_backend(matplotlib.get_backend())  # resolve the backend now, so its own PNG printer is registered first

    def png_with_alt(fig):
        data = print_figure(fig, "png", bbox_inches="tight")  # the inline backend's default rendering
        return None if data is None else (data, {"alt": figure_alt_text(fig)})

    shell.display_formatter.formatters["image/png"].for_type(plt.Figure, png_with_alt)


def to_numpy(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W) or (C, H, W) tensor/array to a numpy image matplotlib can show."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3):
        array = array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))
    return array


def show_images(
    images: Sequence[torch.Tensor | np.ndarray],
    titles: Sequence[str] | None = None,
    *,
    cmap: str = "gray",
    signed: bool = False,
    caption: str | None = None,
    width: float = 3.2,
) -> plt.Figure:
    """Images side by side. ``signed=True`` centres a diverging colour map on zero (for filter
    responses, which are positive and negative)."""
    n = len(images)
    fig, axes = plt.subplots(
        1, n, figsize=(width * n, width * 1.1 + (0.3 if caption else 0)), squeeze=False, layout="constrained"
    )
    for i, (ax, image) in enumerate(zip(axes[0], images)):
        array = to_numpy(image)
        if array.ndim == 3:
            ax.imshow(np.clip(array, 0, 1))
        elif signed:
            limit = float(np.abs(array).max()) or 1.0
            ax.imshow(array, cmap="RdBu_r", vmin=-limit, vmax=limit)
        else:
            ax.imshow(array, cmap=cmap)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i])
    if caption:
        fig.supxlabel(caption, fontsize=9, style="italic")
    return fig


class CellLabels(PathCollection):
    """Short labels centred on data points (numbers in grid cells), drawn as one collection of glyph
    outlines; ``labels`` holds the strings, in the order of the offsets. Made by :func:`cell_labels`."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[str], **kwargs):
        super().__init__(paths, **kwargs)
        self.labels = list(labels)


@functools.lru_cache(maxsize=4096)
def _label_path(text: str, fontsize: float, weight: str) -> Path:
    """The outline of ``text`` in points, centred on (0, 0)."""
    path = TextPath((0, 0), text, size=fontsize, prop=FontProperties(weight=weight))
    box = path.get_extents()
    return path.transformed(Affine2D().translate(-(box.x0 + box.x1) / 2, -(box.y0 + box.y1) / 2))


def cell_labels(
    ax: plt.Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    *,
    fontsize: float = 8,
    color: str | Sequence[str] = "black",
    weight: str = "normal",
) -> CellLabels:
    """Write ``labels[i]`` centred at data point ``(xs[i], ys[i])``, as :func:`show_matrix` does in its cells.

    What ``ax.text`` per cell shows, drawn about five times faster: widgets redraw grids of a hundred
    numbers and more (``benchmarks/lesson_speed.py``), and matplotlib lays out and rasterises every Text
    on every draw, while these outlines are made once per distinct string and filled in one pass.
    ``color``: one colour, or one per label."""
    keep = [i for i, label in enumerate(labels) if label]
    colors = [color] * len(labels) if isinstance(color, str) else list(color)
    collection = CellLabels(
        [_label_path(labels[i], float(fontsize), weight) for i in keep],
        [labels[i] for i in keep],
        offsets=np.column_stack([xs, ys])[keep].reshape(-1, 2),
        offset_transform=ax.transData,
        facecolors=[colors[i] for i in keep],
        edgecolors="none",
        linewidths=0,
        zorder=3,
    )
    collection.set_transform(Affine2D().scale(1 / 72) + ax.figure.dpi_scale_trans)  # points, at any dpi
    ax.add_collection(collection, autolim=False)
    return collection


def grid_lines(
    ax: plt.Axes, rows: int, cols: int, top: int = 0, left: int = 0, color: str = "black", lw: float = 0.5
) -> None:
    """Thin lines around each of ``rows`` × ``cols`` cells whose first cell is at (-top, -left)."""
    ax.vlines(np.arange(cols + 1) - 0.5 - left, -0.5 - top, rows - 0.5 - top, color=color, lw=lw)
    ax.hlines(np.arange(rows + 1) - 0.5 - top, -0.5 - left, cols - 0.5 - left, color=color, lw=lw)


def numbered_grid(ax: plt.Axes, rows: int, cols: int, color: str) -> None:
    """A ``rows`` × ``cols`` grid of cells (one per data unit), framed with a small margin, its rows and columns
    numbered."""
    grid_lines(ax, rows, cols, color=color, lw=0.6)
    ax.set_xlim(-0.7, cols - 0.3)
    ax.set_ylim(rows - 0.3, -0.7)
    index_labels(ax, range(cols), range(rows))
    ax.set_aspect("equal")


def index_labels(
    ax: plt.Axes,
    columns: Sequence[int],
    rows: Sequence[int],
    *,
    fontsize: float = 7,
    color: str = "#333",
    bottom: float | None = None,
) -> CellLabels | None:
    """Column numbers under a grid and row numbers left of it, for grids drawn one cell per data unit
    (centred on the integers): what tick labels would show, as one :class:`CellLabels` outside the axes
    (tick labels cost a Text each on every redraw). Removes the ticks and moves axis labels clear of the
    numbers. ``bottom``: the grid's lower edge (default: the axes' lower limit). Call after the limits are set."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.xaxis.labelpad = ax.yaxis.labelpad = 4 + 1.5 * fontsize
    columns, rows = list(columns), list(rows)
    if not columns and not rows:
        return None
    left, bottom = min(ax.get_xlim()), max(ax.get_ylim()) if bottom is None else bottom
    xs = columns + [left - 0.3] * len(rows)
    ys = [bottom + 0.35] * len(columns) + rows
    labels = cell_labels(ax, xs, ys, [str(n) for n in columns + rows], fontsize=fontsize, color=color)
    labels.set_clip_on(False)
    return labels


def show_matrix(
    ax: plt.Axes,
    values: torch.Tensor | np.ndarray,
    *,
    title: str = "",
    cmap: str = "Blues",
    fmt: str = "{:.2g}",
    highlight: tuple[slice, slice] | None = None,
    highlight_color: str = COLORS["highlight"],
    annotate: bool = True,
    index: str = "xy",
) -> None:
    """Draw a small matrix as coloured cells with its numbers written in (a :class:`CellLabels`), and its
    column (``"x"`` in ``index``) and row (``"y"``) numbers beside it, also as :class:`CellLabels` (tick
    labels would cost a Text each on every redraw)."""
    array = to_numpy(values).astype(float)
    finite = array[np.isfinite(array)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    vmin, vmax = min(low, 0.0), max(high, 1e-9)
    ax.imshow(np.ma.masked_invalid(array), cmap=cmap, vmin=vmin, vmax=vmax)
    if annotate:
        rows, cols = np.nonzero(np.isfinite(array))
        shown = array[rows, cols]
        dark = (shown - vmin) / ((vmax - vmin) or 1.0) > 0.6  # white numbers on the dark end of the colour map
        cell_labels(
            ax, cols, rows, [fmt.format(v) for v in shown], fontsize=8, color=["white" if d else "black" for d in dark]
        )
    index_labels(ax, range(array.shape[1]) if "x" in index else (), range(array.shape[0]) if "y" in index else ())
    ax.set_title(title)
    if highlight is not None:
        rows, cols = highlight
        ax.add_patch(
            matplotlib.patches.Rectangle(
                (cols.start - 0.5, rows.start - 0.5),
                cols.stop - cols.start,
                rows.stop - rows.start,
                fill=False,
                lw=2.5,
                edgecolor=highlight_color,
            )
        )


def filter_gallery(
    image: torch.Tensor, kernels: dict[str, torch.Tensor], corr2d=None, *, caption: str | None = None
) -> plt.Figure:
    """The image and its response to each kernel, computed with ``corr2d`` (a learner's function)
    when it works, else with torch (and the figure says so)."""
    import torch.nn.functional as F

    def torch_corr2d(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x[None, None], k[None, None].to(x.dtype))[0, 0]

    used = "your corr2d"
    responses = []
    for kernel in kernels.values():
        try:
            if corr2d is None:
                raise NotImplementedError
            responses.append(torch.as_tensor(corr2d(image, kernel.to(image.dtype))))
        except NotImplementedError:
            used = "torch (your corr2d is not implemented yet)"
            responses.append(torch_corr2d(image, kernel))
    titles = ["input"] + list(kernels)
    fig = show_images([image] + responses, titles, signed=False, caption=caption or f"Responses computed with {used}.")
    return fig


def touch_counts(
    size: int | tuple[int, int],
    kernel_size: int | tuple[int, int],
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> torch.Tensor:
    """(H, W) int64 tensor: how many window positions of a stride-1 convolution read each input pixel.

    Computed, not derived: the adjoint of the convolution (``F.conv_transpose2d``, with the same kernel
    size, padding and dilation) applied to an all-ones output counts, for every input pixel, the output
    pixels whose window covers it. Padding pixels are not input pixels, so they are not counted."""
    import torch.nn.functional as F

    h, w = (size, size) if isinstance(size, int) else size
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    ones_kernel = torch.ones(1, 1, kh, kw, dtype=torch.float64)
    out = F.conv2d(torch.zeros(1, 1, h, w, dtype=torch.float64), ones_kernel, padding=padding, dilation=dilation)
    counts = F.conv_transpose2d(torch.ones_like(out), ones_kernel, padding=padding, dilation=dilation)[0, 0]
    if tuple(counts.shape) != (h, w):  # conv_transpose2d cannot tell which input size a strided call had
        raise ValueError(f"touch_counts: got counts of shape {tuple(counts.shape)} for input {(h, w)}")
    return counts.round().long()


def coverage_plot(size: int = 6, kernel_size: int = 3, paddings: Sequence[int] = (0, 1, 2)) -> plt.Figure:
    """One heat map per padding: how many windows of a stride-1 ``kernel_size`` convolution read each
    pixel of a ``size`` × ``size`` input (:func:`touch_counts`), on one colour scale, with the counts written in."""
    counts = [touch_counts(size, kernel_size, p) for p in paddings]
    high = max(int(c.max()) for c in counts)
    fig, axes = plt.subplots(1, len(paddings), figsize=(2.7 * len(paddings), 3.5), squeeze=False, layout="constrained")
    for ax, p, c in zip(axes[0], paddings, counts):
        array = c.numpy()
        ax.imshow(array, cmap="Blues", vmin=0, vmax=high)
        rows, cols = np.nonzero(np.ones_like(array, dtype=bool))
        cell_labels(
            ax,
            cols,
            rows,
            [str(v) for v in array[rows, cols]],
            fontsize=8,
            color=["white" if v > 0.6 * high else "black" for v in array[rows, cols]],
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(
            f"padding={p}\ncorner {array[0, 0]}, edge {array[0, size // 2]}, centre {array[size // 2, size // 2]}",
            fontsize=9,
        )
    fig.supxlabel(
        f"How many {kernel_size}×{kernel_size} windows read each pixel of a {size}×{size} input (stride 1).",
        fontsize=9,
        style="italic",
    )
    return fig
