"""Lesson 02 widget: where a kH×kW kernel fits in an H×W input, and the output size that follows."""

from __future__ import annotations

import dataclasses
from typing import Callable

import ipywidgets as widgets
import matplotlib.patches as patches
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..plots import COLORS, numbered_grid
from . import FigureView, adjust, grader_agrees, in_place, kept_axes, redraw_needed


@dataclasses.dataclass(frozen=True)
class KernelFit:
    """An H×W input and a kH×kW kernel (no padding, stride 1, dilation 1)."""

    h: int
    w: int
    kh: int
    kw: int

    def __post_init__(self) -> None:
        if min(self.h, self.w, self.kh, self.kw) < 1:
            raise ValueError(f"sizes must be at least 1, got H={self.h}, W={self.w}, kH={self.kh}, kW={self.kw}")

    @property
    def fits(self) -> bool:
        return self.kh <= self.h and self.kw <= self.w

    @property
    def out_shape(self) -> tuple[int, int]:
        """(H - kH + 1, W - kW + 1): the number of positions of the window's top-left corner."""
        if not self.fits:
            raise ValueError(f"a {self.kh}×{self.kw} kernel does not fit in a {self.h}×{self.w} input")
        return (self.h - self.kh + 1, self.w - self.kw + 1)

    @property
    def first(self) -> tuple[int, int]:
        return (0, 0)

    @property
    def last(self) -> tuple[int, int]:
        """Top-left corner of the last window: row H - kH, column W - kW."""
        out_h, out_w = self.out_shape
        return (out_h - 1, out_w - 1)

    def formula(self) -> str:
        """The output-size formula with this model's numbers filled in."""
        if not self.fits:
            return (
                f"kernel {self.kh}×{self.kw} is larger than input {self.h}×{self.w}: "
                "no position fits (torch raises RuntimeError)"
            )
        out_h, out_w = self.out_shape
        return (
            f"H_out = H − kH + 1 = {self.h} − {self.kh} + 1 = {out_h}     "
            f"W_out = W − kW + 1 = {self.w} − {self.kw} + 1 = {out_w}"
        )


def learner_verdict(model: KernelFit, conv_output_size: Callable | None) -> str:
    """One line comparing a learner's ``conv_output_size`` (called once per axis) with the model's answer;
    where the kernel does not fit along an axis, the learner's function should raise RuntimeError there."""
    if conv_output_size is None:
        return ""
    name = "your conv_output_size"
    got = []
    for axis, size, k in (("H", model.h, model.kh), ("W", model.w, model.kw)):
        fits = k <= size
        try:
            value = conv_output_size(size, k)
        except NotImplementedError:
            return f"{name}: not implemented yet"
        except Exception as error:  # shown in the figure instead of a traceback  # noqa: BLE001
            value = error
        # ✓/✗ is the test cells' own check (it also expects torch's RuntimeError where the kernel does not fit)
        if not grader_agrees("conv_output_size", conv_output_size, size=size, kernel_size=k):
            if isinstance(value, RuntimeError) and fits:
                return f"{name} raised RuntimeError for {axis}={size}, k{axis}={k}, but the kernel fits ✗"
            if isinstance(value, Exception):
                return f"{name}({size}, {k}) raised {type(value).__name__} ✗"
            if not fits:
                return f"{name}({size}, {k}) returned {value!r}; it should raise RuntimeError ✗"
            return f"{name}({size}, {k}) returned {value!r}, expected {size - k + 1} ✗"
        got.append(f"{axis}: RuntimeError" if isinstance(value, Exception) else f"{axis}_out = {value}")
    return f"{name}: " + ", ".join(got) + " ✓"


def _grid(ax: plt.Axes, rows: int, cols: int, color: str, title: str) -> None:
    ax.imshow(np.zeros((rows, cols)), cmap="Greys", vmin=0, vmax=1, extent=(-0.5, cols - 0.5, rows - 0.5, -0.5))
    # add_artist, not add_patch: numbered_grid sets the limits, so matplotlib need not work them out from the patch
    ax.add_artist(patches.Rectangle((-0.5, -0.5), cols, rows, facecolor=color, alpha=0.18, edgecolor=color, lw=1.5))
    numbered_grid(ax, rows, cols, color)
    ax.set_title(title)
    ax._convcourse_marks = []


def _grid_kept(ax: plt.Axes, rows: int, cols: int, color: str, title: str) -> None:
    """The grid of :func:`_grid` in ``ax``, kept from the last redraw where its size is the same (building it is
    most of a redraw's drawing); what was marked on it (:func:`_mark`) and its legend are taken off."""
    if redraw_needed(ax, ("grid", rows, cols, color, title)):
        _grid(ax, rows, cols, color, title)
        return
    for artist in ax._convcourse_marks:
        artist.remove()
    ax._convcourse_marks = []
    if ax.get_legend() is not None:
        ax.get_legend().remove()


def _mark(ax: plt.Axes, patch: patches.Patch) -> None:
    """``patch`` on the grid in ``ax`` (whose limits are set: no limit update), taken off on the next redraw."""
    ax.add_artist(patch)
    ax._convcourse_marks.append(patch)


def draw(model: KernelFit, conv_output_size: Callable | None = None, figure: Figure | None = None) -> Figure:
    """Input grid with the kernel at its first and last positions, and the output grid; with a learner's
    ``conv_output_size``, a line saying whether it agrees. ``figure``: one this function drew before, redrawn
    on the same axes (see :func:`convcourse.widgets.in_place`); a grid whose size did not change is kept."""
    ratios = [model.w, max(model.w, 4)]
    axes = kept_axes(figure, ("kernel size", model.fits), ratios)
    if axes is not None:
        fig = figure
    else:
        # A Figure outside pyplot: the widget keeps it and redraws on its axes.
        fig = Figure(figsize=(8.4, 4.2))
        fig._convcourse_layout = ("kernel size", model.fits)
        axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": ratios})
    _grid_kept(axes[0], model.h, model.w, COLORS["input"], f"input {model.h}×{model.w}")
    if model.fits:
        for (r, c), color, style, label in [
            (model.first, COLORS["kernel"], "-", "first position"),
            (model.last, COLORS["highlight"], "--", "last position"),
        ]:
            window = patches.Rectangle(
                (c - 0.5, r - 0.5),
                model.kw,
                model.kh,
                fill=False,
                lw=2.8,
                edgecolor=color,
                linestyle=style,
                label=label,
            )
            _mark(axes[0], window)
        axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=2, fontsize=8, frameon=False)
        out_h, out_w = model.out_shape
        _grid_kept(axes[1], out_h, out_w, COLORS["output"], f"output {out_h}×{out_w}")
        xlim, ylim = (-0.7, max(out_w, 4) - 0.3), (max(out_h, model.h) - 0.3, -0.7)
        if (axes[1].get_xlim(), axes[1].get_ylim()) != (xlim, ylim):
            axes[1].set(xlim=xlim, ylim=ylim)
        for (r, c), color in [(model.first, COLORS["kernel"]), (model.last, COLORS["highlight"])]:
            _mark(axes[1], patches.Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=color, alpha=0.8))
    else:
        kernel = patches.Rectangle(
            (-0.5, -0.5), model.kw, model.kh, fill=False, lw=2.8, edgecolor=COLORS["highlight"], ls=":", label="kernel"
        )
        _mark(axes[0], kernel)
        axes[0].set_xlim(-0.7, max(model.w, model.kw) - 0.3)
        axes[0].set_ylim(max(model.h, model.kh) - 0.3, -0.7)
        if redraw_needed(axes[1], "no output"):
            axes[1].set_axis_off()
            axes[1].text(
                0.5, 0.5, "no output:\nthe kernel does not fit", ha="center", va="center", color=COLORS["highlight"]
            )
    fig.suptitle(model.formula(), fontsize=10)
    verdict = learner_verdict(model, conv_output_size)
    if verdict:
        fig.supxlabel(verdict, fontsize=9, color=COLORS["highlight"] if "✓" not in verdict else "black")
    elif fig._supxlabel is not None:
        fig._supxlabel.set_text("")
    adjust(fig, left=0.04, right=0.99, top=0.85, bottom=0.14, wspace=0.12)  # fixed: tight_layout costs ~30 ms
    return fig


def kernel_size_widget(
    h: int = 6, w: int = 8, kh: int = 3, kw: int = 3, max_size: int = 12, conv_output_size: Callable | None = None
) -> FigureView:
    """Sliders for H, W, kH, kW; the figure shows where the kernel fits and the output size. Pass your
    ``conv_output_size`` to see whether it gives the same numbers (and raises where nothing fits)."""

    def slider(name: str, value: int) -> widgets.IntSlider:
        return widgets.IntSlider(
            value=value,
            min=1,
            max=max_size,
            description=name,
            continuous_update=False,
            layout=widgets.Layout(width="230px"),
        )

    controls = {"h": slider("H", h), "w": slider("W", w), "kh": slider("kH", kh), "kw": slider("kW", kw)}
    return FigureView(
        in_place(lambda h, w, kh, kw, figure: draw(KernelFit(h, w, kh, kw), conv_output_size, figure)),
        controls,
        title="Where does the kernel fit?",
        description="Solid: the kernel's first position; dashed: its last. Every top-left corner in "
        "between gives one output pixel.",
    )
