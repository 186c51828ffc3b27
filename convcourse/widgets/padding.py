"""Lesson 05 widget: a small grid padded with each padding mode; every padded cell says where its
value came from."""

from __future__ import annotations

import dataclasses
from typing import Callable

import ipywidgets as w
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from ..plots import COLORS, cell_labels
from . import FigureView

MODES = ("constant", "reflect", "replicate", "circular")


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
        mask[top:top + h, left:left + w] = False
        return mask

    def label(self, i: int, j: int) -> str:
        """Where padded cell (i, j) got its value: 'r,c' of the input, or the constant."""
        r, c = self.sources()[i, j]
        return f"{self.value:g}" if r < 0 else f"{r},{c}"


def _draw_grid(ax: plt.Axes, model: PaddedGrid, values: np.ndarray, title: str, *, sources: bool = True,
               wrong: np.ndarray | None = None) -> None:
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
        cell_labels(ax, cols, rows - 0.12 * labelled[rows, cols], [f"{v:g}" for v in values[rows, cols]],
                    fontsize=8, weight=weight)
    if labelled.any():
        rows, cols = np.nonzero(labelled)
        cell_labels(ax, cols, rows + 0.25, ["const" if r < 0 else f"←{r},{c}" for r, c in copied[rows, cols]],
                    fontsize=6, color=COLORS["highlight"])
    if wrong is not None:
        for i, j in zip(*np.nonzero(wrong)):
            ax.add_patch(matplotlib.patches.Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, lw=1.8,
                                                      edgecolor=COLORS["highlight"]))
    left, right, top, bottom = model.pad
    h, w = model.x.shape
    ax.add_patch(matplotlib.patches.Rectangle((left - 0.5, top - 0.5), w, h, fill=False, lw=2.5,
                                              edgecolor=COLORS["input"]))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)


def draw(model: PaddedGrid, learner: Callable | None = None) -> plt.Figure:
    """The padded grid (torch), and beside it the learner's ``pad2d`` on the same input if given."""
    panels = 2 if learner is not None else 1
    h, w = model.x.shape
    left, right, top, bottom = model.pad
    width = max(0.5 * (w + left + right) + 1.0, 4.6 / panels)  # at least as wide as the two-line suptitle
    height = 0.5 * (h + top + bottom) + 1.2
    fig, axes = plt.subplots(1, panels, figsize=(width * panels, height), squeeze=False)
    # Fixed margins in inches (suptitle and panel title on top); tight_layout would double the redraw time.
    fig.subplots_adjust(left=0.12 / (width * panels), right=1 - 0.12 / (width * panels), bottom=0.1 / height,
                        top=1 - 0.75 / height, wspace=0.1)
    axes = axes[0]
    try:
        values = model.padded().numpy()
    except RuntimeError as error:
        for ax in axes:
            ax.set_axis_off()
        axes[0].text(0.5, 0.5, "torch refuses this padding:\n" + str(error).splitlines()[0][:60],
                     ha="center", va="center", fontsize=9, color=COLORS["highlight"], wrap=True)
        fig.suptitle(f"mode={model.mode!r}, pad={model.pad}", fontsize=9)
        return fig
    _draw_grid(axes[0], model, values, f"F.pad, mode={model.mode!r}")
    if learner is not None:
        try:
            args = (model.x.double()[None], model.pad, model.mode) + ((model.value,) if model.value else ())
            mine = torch.as_tensor(learner(*args), dtype=torch.float64)[0]
            if tuple(mine.shape) == values.shape:
                wrong = ~np.isclose(mine.numpy(), values)
                verdict = f"✗ differs in {int(wrong.sum())} cells (red)" if wrong.any() else "✓ (the same numbers)"
                _draw_grid(axes[1], model, mine.numpy(), f"your pad2d {verdict}", sources=False, wrong=wrong)
            else:
                axes[1].set_axis_off()
                axes[1].text(0.5, 0.5, f"your pad2d: shape\n{tuple(mine.shape)} ✗", ha="center", va="center")
        except NotImplementedError:
            axes[1].set_axis_off()
            axes[1].text(0.5, 0.5, "your pad2d:\nnot implemented yet", ha="center", va="center")
        except Exception as error:  # show the learner's error in the widget, not a traceback
            axes[1].set_axis_off()
            axes[1].text(0.5, 0.5, f"your pad2d raised\n{type(error).__name__}", ha="center", va="center",
                         color=COLORS["highlight"])
    fig.suptitle(f"pad = (left={left}, right={right}, top={top}, bottom={bottom})\n"
                 "grey cells are padding, red text = input (row, col) copied", fontsize=8)
    return fig


def padding_widget(x: torch.Tensor | None = None, pad2d: Callable | None = None) -> FigureView:
    """Pad a small grid; pass your ``pad2d`` to see its result beside torch's."""
    if x is None:
        x = torch.arange(1, 21, dtype=torch.float64).reshape(4, 5)
    x = x.double()
    sliders = {side: w.IntSlider(value=v, min=0, max=5, description=side, continuous_update=False,
                                 layout=w.Layout(width="220px"))
               for side, v in (("left", 2), ("right", 1), ("top", 1), ("bottom", 2))}
    mode = w.Dropdown(options=MODES, value="reflect", description="mode")

    def render(mode, left, right, top, bottom):
        return draw(PaddedGrid(x, (left, right, top, bottom), mode), pad2d)

    return FigureView(render, {"mode": mode, **sliders}, title="Padding modes",
                      description="The blue frame is the input. Grey cells are padding; each says which input "
                      "cell (row, col) its value was copied from.")
