"""Lesson 05 widget: a small grid padded with each padding mode; every padded cell says where its
value came from. The padding is set side by side, or is the one torch uses for ``padding='same'`` with a
kernel of the chosen size (measured from ``F.conv2d``), to show how an even kernel pads unevenly. Passing
the learner's ``pad2d`` (and ``same_padding``) puts their results beside torch's."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable

import ipywidgets as w
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..plots import COLORS, cell_labels
from . import FigureView, KeptChecks, checked_call, in_place, learner_panel, reused_axes

MODES = ("constant", "reflect", "replicate", "circular")
SOURCES = ("sliders", "'same'")


def torch_same_padding(
    kernel_size: int | tuple[int, int], dilation: int | tuple[int, int] = 1
) -> tuple[int, int, int, int]:
    """(left, right, top, bottom): the padding ``F.conv2d(..., padding='same')`` uses, measured, not derived.

    A kernel whose only non-zero tap is its top-left one copies the padded input, shifted: output (i, j)
    is padded input (i, j). So the output pixel that holds input pixel (0, 0) sits at (top, left)."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    if min(kh, kw, dh, dw) < 1:
        raise ValueError(f"kernel_size and dilation must be at least 1, got {kernel_size}, {dilation}")
    total_h, total_w = dh * (kh - 1), dw * (kw - 1)
    h, w = total_h + 1, total_w + 1
    x = torch.arange(1, h * w + 1, dtype=torch.float64).reshape(1, 1, h, w)
    tap = torch.zeros(1, 1, kh, kw, dtype=torch.float64)
    tap[0, 0, 0, 0] = 1
    with warnings.catch_warnings():  # torch warns that an even kernel's 'same' padding needs an extra copy
        warnings.simplefilter("ignore")
        out = F.conv2d(x, tap, padding="same", dilation=(dh, dw))[0, 0]
    top, left = (int(v) for v in (out == 1).nonzero()[0])
    return (left, total_w - left, top, total_h - top)


@dataclasses.dataclass
class PaddedGrid:
    """An (H, W) input padded by ``pad`` = (left, right, top, bottom) with ``mode`` (F.pad semantics)."""

    x: torch.Tensor
    pad: tuple[int, int, int, int]
    mode: str = "constant"
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.x.ndim != 2:
            raise ValueError(f"x must be 2-D (H, W), got shape {tuple(self.x.shape)}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if len(self.pad) != 4 or any(p < 0 for p in self.pad):
            raise ValueError(f"pad must be 4 non-negative ints (left, right, top, bottom), got {self.pad}")
        self.pad = tuple(int(p) for p in self.pad)

    def _pad(self, t: torch.Tensor, value: float) -> torch.Tensor:
        if self.mode == "constant":
            return F.pad(t[None], self.pad, value=value)[0]
        return F.pad(t[None], self.pad, mode=self.mode)[0]

    def padded(self) -> torch.Tensor:
        """The padded input (torch's F.pad); raises RuntimeError where torch does."""
        return self._pad(self.x.double(), self.value)

    def sources(self) -> np.ndarray:
        """(H', W', 2) int array: the input (row, col) each padded cell copies; (-1, -1) for a constant."""
        h, w = self.x.shape
        index = torch.arange(h * w, dtype=torch.float64).reshape(h, w)
        flat = self._pad(index, -1.0).long().numpy()
        rows = np.where(flat >= 0, flat // w, -1)
        cols = np.where(flat >= 0, flat % w, -1)
        return np.stack([rows, cols], axis=-1)

    def is_padding(self) -> np.ndarray:
        """(H', W') bool: True outside the original input."""
        left, right, top, bottom = self.pad
        h, w = self.x.shape
        mask = np.ones((h + top + bottom, w + left + right), dtype=bool)
        mask[top : top + h, left : left + w] = False
        return mask

    def label(self, i: int, j: int) -> str:
        """Where padded cell (i, j) got its value: 'r,c' of the input, or the constant."""
        r, c = self.sources()[i, j]
        return f"{self.value:g}" if r < 0 else f"{r},{c}"


def _draw_grid(
    ax: plt.Axes,
    model: PaddedGrid,
    values: np.ndarray,
    title: str,
    *,
    sources: bool = True,
    wrong: np.ndarray | None = None,
) -> None:
    """One padded grid: input cells blue, padding grey. ``sources``: padding cells also name the input cell
    they copy (torch's panel). ``wrong``: (H', W') bool, cells outlined in red (the learner's panel); only
    those get their number written in (the others equal torch's, beside it: text is most of a redraw's time)."""
    mask = model.is_padding()
    copied = model.sources() if sources else None
    ax.imshow(np.ma.masked_where(mask, values), cmap="Blues", vmin=values.min() - 1, vmax=values.max() + 1)
    ax.imshow(np.ma.masked_where(~mask, np.ones_like(values)), cmap="Greys", vmin=0, vmax=4, alpha=0.9)
    # The numbers as cell_labels, not a Text per cell: a grid has up to 200 cells, and text is most of a redraw.
    shown = np.ones_like(mask) if wrong is None else wrong
    labelled = shown & mask if copied is not None else np.zeros_like(mask)  # padding cells naming their source
    for weight, cells in (("bold", shown & mask), ("normal", shown & ~mask)):
        rows, cols = np.nonzero(cells)
        cell_labels(
            ax,
            cols,
            rows - 0.12 * labelled[rows, cols],
            [f"{v:g}" for v in values[rows, cols]],
            fontsize=8,
            weight=weight,
        )
    if labelled.any():
        rows, cols = np.nonzero(labelled)
        cell_labels(
            ax,
            cols,
            rows + 0.25,
            ["const" if r < 0 else f"←{r},{c}" for r, c in copied[rows, cols]],
            fontsize=6,
            color=COLORS["highlight"],
        )
    if wrong is not None:
        for i, j in zip(*np.nonzero(wrong)):
            ax.add_patch(
                matplotlib.patches.Rectangle(
                    (j - 0.45, i - 0.45), 0.9, 0.9, fill=False, lw=1.8, edgecolor=COLORS["highlight"]
                )
            )
    left, right, top, bottom = model.pad
    h, w = model.x.shape
    ax.add_patch(
        matplotlib.patches.Rectangle((left - 0.5, top - 0.5), w, h, fill=False, lw=2.5, edgecolor=COLORS["input"])
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)


def same_caption(kernel: tuple[int, int], pad: tuple[int, int, int, int], learner_same: Callable | None = None) -> str:
    """What torch's 'same' padding for ``kernel`` is, and (if given) whether the learner's ``same_padding`` agrees."""
    left, right, top, bottom = pad
    text = (
        f"padding='same', {kernel[0]}×{kernel[1]} kernel: total {top + bottom} row(s), top {top} / bottom {bottom}; "
        f"total {left + right} column(s), left {left} / right {right}"
    )
    if (top, left) != (bottom, right):
        text += "\n(an odd total: torch puts the extra pixel at the bottom/right)"
    if learner_same is not None:
        try:
            ok, answer = checked_call("same_padding", learner_same, kernel_size=kernel)  # the grader's check
            mine = tuple(int(v) for v in answer)
            text += f"\nyour same_padding{kernel}: {mine} " + ("✓" if ok else f"✗ torch: {pad}")
        except NotImplementedError:
            text += "\nyour same_padding: not implemented yet"
        except Exception as error:  # the learner's error shown in the widget, not a traceback  # noqa: BLE001
            text += f"\nyour same_padding raised {type(error).__name__}"
    return text


def draw(
    model: PaddedGrid,
    learner: Callable | None = None,
    *,
    kernel: tuple[int, int] | None = None,
    learner_same: Callable | None = None,
    figure: Figure | None = None,
) -> Figure:
    """The padded grid (torch), and beside it the learner's ``pad2d`` on the same input if given. With
    ``kernel`` (the pad being torch's 'same' padding for it), the window of output pixel (0, 0) is outlined
    and the caption says how the padding was split (and whether ``learner_same`` agrees). ``figure``: one this
    function drew before, resized and redrawn on the same axes (see :func:`convcourse.widgets.in_place`)."""
    panels = 2 if learner is not None else 1
    h, w = model.x.shape
    left, right, top, bottom = model.pad
    lines = 2 if kernel is None else 4 + (learner_same is not None)
    # at least as wide as the suptitle's longest line
    width = max(0.5 * (w + left + right) + 1.0, (4.6 if kernel is None else 6.4) / panels)
    height = 0.5 * (h + top + bottom) + 0.75 + 0.15 * lines
    try:
        values, error = model.padded().numpy(), None
    except RuntimeError as refusal:
        values, error = None, refusal
    layout = ("padding", panels, error is None)
    axes = reused_axes(figure, layout)
    if axes is not None:
        fig = figure
        fig.set_size_inches(width * panels, height)
        for ax in axes:
            ax.set_axis_on()  # as a new axes: a panel turned off on the last redraw shows again
    else:
        # A Figure outside pyplot: the widget keeps it and redraws on its axes.
        fig = Figure(figsize=(width * panels, height))
        fig._convcourse_layout = layout
        axes = list(fig.subplots(1, panels, squeeze=False)[0])
    # Fixed margins in inches (suptitle and panel title on top); tight_layout would double the redraw time.
    fig.subplots_adjust(
        left=0.12 / (width * panels),
        right=1 - 0.12 / (width * panels),
        bottom=0.1 / height,
        top=1 - (0.45 + 0.15 * lines) / height,
        wspace=0.1,
    )
    if error is not None:
        for ax in axes:
            ax.set_axis_off()
        axes[0].text(
            0.5,
            0.5,
            "torch refuses this padding:\n" + str(error).splitlines()[0][:60],
            ha="center",
            va="center",
            fontsize=9,
            color=COLORS["highlight"],
            wrap=True,
        )
        fig.suptitle(f"mode={model.mode!r}, pad={model.pad}", fontsize=9)
        return fig
    _draw_grid(axes[0], model, values, f"F.pad, mode={model.mode!r}")
    if kernel is not None:  # the window of output pixel (0, 0): for an even kernel, input (0, 0) is off-centre
        for ax in axes:
            ax.add_patch(
                matplotlib.patches.Rectangle(
                    (-0.5, -0.5), kernel[1], kernel[0], fill=False, lw=2.5, ls="--", edgecolor=COLORS["kernel"]
                )
            )
    if learner is not None:
        with learner_panel(axes[1], "pad2d", color=COLORS["highlight"]):
            inputs = dict(x=model.x.double()[None], pad=model.pad, mode=model.mode)
            if model.value:
                inputs["value"] = model.value
            ok, result = checked_call("pad2d", learner, **inputs)  # ✓/✗ is the grader's own check
            mine = torch.as_tensor(result, dtype=torch.float64)[0]
            if tuple(mine.shape) == values.shape:
                wrong = ~np.isclose(mine.numpy(), values)  # only to colour the cells that differ
                verdict = (
                    "✓ (the same numbers)"
                    if ok
                    else f"✗ differs in {int(wrong.sum())} cells (red)"
                    if wrong.any()
                    else "✗ (see the tests)"
                )
                _draw_grid(axes[1], model, mine.numpy(), f"your pad2d {verdict}", sources=False, wrong=wrong)
            else:
                axes[1].set_axis_off()
                axes[1].text(0.5, 0.5, f"your pad2d: shape\n{tuple(mine.shape)} ✗", ha="center", va="center")
    title = f"pad = (left={left}, right={right}, top={top}, bottom={bottom})\n"
    if kernel is not None:
        title += same_caption(kernel, model.pad, learner_same) + "\norange dashes: the window of output pixel (0, 0); "
    fig.suptitle(title + "grey cells are padding, red text = input (row, col) copied", fontsize=8)
    return fig


def padding_widget(
    x: torch.Tensor | None = None,
    pad2d: Callable | None = None,
    same_padding: Callable | None = None,
    *,
    source: str = "sliders",
    kernel: tuple[int, int] = (2, 4),
) -> FigureView:
    """Pad a small grid; pass your ``pad2d`` (and ``same_padding``) to see their results beside torch's.

    ``source``: ``"sliders"`` sets each side; ``"'same'"`` pads as ``padding='same'`` does for a kernel of
    the size the kernel sliders choose (torch's split, measured)."""
    if x is None:
        x = torch.arange(1, 21, dtype=torch.float64).reshape(4, 5)
    x = x.double()
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    # Each padding's verdict kept: a slider moved back does not run your function (and its check) again.
    pad2d = KeptChecks(pad2d) if pad2d is not None else None
    same_padding = KeptChecks(same_padding) if same_padding is not None else None
    slider = dict(continuous_update=False, layout=w.Layout(width="220px"))
    sliders = {
        side: w.IntSlider(value=v, min=0, max=5, description=side, **slider)
        for side, v in (("left", 2), ("right", 1), ("top", 1), ("bottom", 2))
    }
    kernels = {
        name: w.IntSlider(value=v, min=1, max=6, description=name, **slider)
        for name, v in (("kernel_h", kernel[0]), ("kernel_w", kernel[1]))
    }
    controls = {
        "mode": w.Dropdown(options=MODES, value="reflect", description="mode"),
        "source": w.Dropdown(options=SOURCES, value=source, description="padding"),
        **sliders,
        **kernels,
    }

    def enable_the_sliders_in_use(change=None) -> None:
        same = controls["source"].value == "'same'"
        for control in sliders.values():
            control.disabled = same
        for control in kernels.values():
            control.disabled = not same

    controls["source"].observe(enable_the_sliders_in_use, names="value")
    enable_the_sliders_in_use()

    def render(mode, source, left, right, top, bottom, kernel_h, kernel_w, figure):
        if source == "'same'":
            size = (kernel_h, kernel_w)
            grid = PaddedGrid(x, torch_same_padding(size), mode)
            return draw(grid, pad2d, kernel=size, learner_same=same_padding, figure=figure)
        return draw(PaddedGrid(x, (left, right, top, bottom), mode), pad2d, figure=figure)

    return FigureView(
        in_place(render),
        controls,
        title="Padding modes",
        description="The blue frame is the input. Grey cells are padding; each says which input "
        "cell (row, col) its value was copied from. padding='sliders': you set each side (the "
        "kernel sliders are unused); padding=\"'same'\": the sides are what torch uses for a "
        "kernel_h × kernel_w kernel. The sliders a choice does not use are greyed out.",
    )
