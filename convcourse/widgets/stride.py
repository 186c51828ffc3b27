"""Lesson 04 widget: a kernel stepping over the input with stride (sH, sW), and the pixels it never reads."""

from __future__ import annotations

import dataclasses

import ipywidgets as widgets
import matplotlib.patches as patches
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..plots import COLORS, numbered_grid
from . import FigureView, in_place, reused_axes


@dataclasses.dataclass(frozen=True)
class StrideGeometry:
    """Window positions of a kH×kW kernel moved by (sH, sW) over an H×W input (no padding)."""

    h: int
    w: int
    kh: int
    kw: int
    sh: int = 1
    sw: int = 1

    def __post_init__(self) -> None:
        if min(self.h, self.w, self.kh, self.kw) < 1:
            raise ValueError("sizes must be at least 1")
        if min(self.sh, self.sw) < 1:
            raise ValueError(f"stride must be at least 1, got ({self.sh}, {self.sw})")
        if self.kh > self.h or self.kw > self.w:
            raise ValueError(f"a {self.kh}×{self.kw} kernel does not fit in a {self.h}×{self.w} input")

    @property
    def out_shape(self) -> tuple[int, int]:
        """floor((H - kH) / sH) + 1 by floor((W - kW) / sW) + 1."""
        return ((self.h - self.kh) // self.sh + 1, (self.w - self.kw) // self.sw + 1)

    @property
    def steps(self) -> int:
        return self.out_shape[0] * self.out_shape[1]

    def output_index(self, step: int) -> tuple[int, int]:
        if not 0 <= step < self.steps:
            raise ValueError(f"step must be in 0..{self.steps - 1}, got {step}")
        return divmod(step, self.out_shape[1])

    def corner(self, i: int, j: int) -> tuple[int, int]:
        """Top-left input pixel of the window that makes output pixel (i, j)."""
        return (i * self.sh, j * self.sw)

    def coverage(self) -> np.ndarray:
        """How many windows read each input pixel (0 = never read)."""
        count = np.zeros((self.h, self.w), dtype=int)
        out_h, out_w = self.out_shape
        for i in range(out_h):
            for j in range(out_w):
                r, c = self.corner(i, j)
                count[r : r + self.kh, c : c + self.kw] += 1
        return count

    @property
    def leftover(self) -> tuple[int, int]:
        """Rows at the bottom and columns at the right that no window reaches."""
        out_h, out_w = self.out_shape
        return (self.h - ((out_h - 1) * self.sh + self.kh), self.w - ((out_w - 1) * self.sw + self.kw))

    def formula(self) -> str:
        out_h, out_w = self.out_shape
        return (
            f"H_out = ⌊(H − kH)/sH⌋ + 1 = ⌊({self.h} − {self.kh})/{self.sh}⌋ + 1 = {out_h}     "
            f"W_out = ⌊(W − kW)/sW⌋ + 1 = ⌊({self.w} − {self.kw})/{self.sw}⌋ + 1 = {out_w}"
        )


def draw(model: StrideGeometry, step: int = 0, figure: Figure | None = None) -> Figure:
    """Input (pixels never read hatched, window corners dotted, current window boxed) and output. ``figure``:
    one this function drew before, redrawn on the same axes (see :func:`convcourse.widgets.in_place`)."""
    step = min(max(step, 0), model.steps - 1)
    i, j = model.output_index(step)
    r, c = model.corner(i, j)
    out_h, out_w = model.out_shape
    ratios = [model.w, max(out_w, 3)]
    axes = reused_axes(figure, "stride", ratios)
    if axes is not None:
        fig = figure
    else:
        # A Figure outside pyplot: the widget keeps it and redraws on its axes.
        fig = Figure(figsize=(8.6, 4.3))
        fig._convcourse_layout = "stride"
        axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": ratios})
    ax = axes[0]
    read = model.coverage() > 0
    ax.imshow(np.where(read, 1.0, 0.0), cmap="Blues", vmin=-2.0, vmax=5.0)
    for rr, cc in zip(*np.nonzero(~read)):
        ax.add_patch(
            patches.Rectangle(
                (cc - 0.5, rr - 0.5), 1, 1, facecolor=COLORS["padding"], hatch="///", edgecolor="white", lw=0
            )
        )
    numbered_grid(ax, model.h, model.w, COLORS["input"])
    corners = np.array([model.corner(a, b) for a in range(out_h) for b in range(out_w)])
    ax.plot(corners[:, 1], corners[:, 0], "o", color=COLORS["kernel"], ms=4)
    ax.add_patch(
        patches.Rectangle((c - 0.5, r - 0.5), model.kw, model.kh, fill=False, lw=2.8, edgecolor=COLORS["highlight"])
    )
    rows_left, cols_left = model.leftover
    ax.set_title(f"input {model.h}×{model.w}, stride ({model.sh}, {model.sw})")
    ax.set_xlabel(
        f"dots: window corners · hatched: never read ({rows_left} row(s), {cols_left} column(s) left over)", fontsize=8
    )
    ax = axes[1]
    ax.imshow(np.ones((out_h, out_w)), cmap="Greens", vmin=0, vmax=4)
    ax.add_patch(patches.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=COLORS["highlight"], alpha=0.85))
    numbered_grid(ax, out_h, out_w, COLORS["output"])
    ax.set_xlim(-0.7, max(out_w, 3) - 0.3)
    ax.set_ylim(max(out_h, model.h) - 0.3, -0.7)
    ax.set_title(f"output {out_h}×{out_w}")
    ax.set_xlabel(
        f"out[{i}, {j}] reads input\nrows {r}..{r + model.kh - 1}, columns {c}..{c + model.kw - 1}", fontsize=8
    )
    fig.suptitle(model.formula(), fontsize=10)
    fig.subplots_adjust(
        left=0.04, right=0.99, top=0.85, bottom=0.16, wspace=0.12
    )  # fixed: tight_layout costs ~30 ms a redraw
    return fig


def stride_widget(
    h: int = 7, w: int = 9, kh: int = 3, kw: int = 3, sh: int = 2, sw: int = 2, max_size: int = 12
) -> FigureView:
    """Sliders for the input size, kernel size, stride and the window step."""

    def slider(name: str, value: int, low: int, high: int) -> widgets.IntSlider:
        return widgets.IntSlider(
            value=value,
            min=low,
            max=high,
            description=name,
            continuous_update=False,
            layout=widgets.Layout(width="220px"),
        )

    controls = {
        "h": slider("H", h, 1, max_size),
        "w": slider("W", w, 1, max_size),
        "kh": slider("kH", kh, 1, 6),
        "kw": slider("kW", kw, 1, 6),
        "sh": slider("sH", sh, 1, 6),
        "sw": slider("sW", sw, 1, 6),
        "step": slider("step", 0, 0, 200),
    }

    def render(h, w, kh, kw, sh, sw, step, figure):
        try:
            model = StrideGeometry(h, w, kh, kw, sh, sw)
        except ValueError as error:
            fig, ax = plt.subplots(figsize=(8.6, 1.5))
            ax.set_axis_off()
            ax.text(
                0.5, 0.5, f"{error} (torch raises RuntimeError)", ha="center", va="center", color=COLORS["highlight"]
            )
            return fig
        controls["step"].max = model.steps - 1  # clamps the value; the view redraws if it changes
        return draw(model, step, figure)

    return FigureView(
        in_place(render),
        controls,
        title="Stride: the window jumps",
        description="The window moves sW columns, then sH rows at a time. Hatched pixels are never "
        "read; the formula rounds down because a window that would stick out is dropped.",
    )
