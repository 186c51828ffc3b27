"""Lesson 01 widget: a kernel sliding over a small input, showing the products that are summed."""

from __future__ import annotations

import dataclasses
from typing import Callable

import ipywidgets as w
import torch
from matplotlib.figure import Figure

from ..plots import COLORS, show_matrix
from . import FigureView, adjust, checked_call, in_place, kept_axes, learner_panel, redraw_needed


@dataclasses.dataclass
class SlidingWindow:
    """Cross-correlation of a 2-D input with a 2-D kernel, one window position at a time."""

    x: torch.Tensor
    k: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.k.ndim != 2:
            raise ValueError(f"x and k must be 2-D, got shapes {tuple(self.x.shape)} and {tuple(self.k.shape)}")
        if self.k.shape[0] > self.x.shape[0] or self.k.shape[1] > self.x.shape[1]:
            raise ValueError(f"kernel {tuple(self.k.shape)} does not fit in input {tuple(self.x.shape)}")

    @property
    def out_shape(self) -> tuple[int, int]:
        return (self.x.shape[0] - self.k.shape[0] + 1, self.x.shape[1] - self.k.shape[1] + 1)

    @property
    def steps(self) -> int:
        return self.out_shape[0] * self.out_shape[1]

    def position(self, step: int) -> tuple[int, int]:
        if not 0 <= step < self.steps:
            raise ValueError(f"step must be in 0..{self.steps - 1}, got {step}")
        return divmod(step, self.out_shape[1])

    def window(self, i: int, j: int) -> torch.Tensor:
        kh, kw = self.k.shape
        return self.x[i : i + kh, j : j + kw]

    def products(self, i: int, j: int) -> torch.Tensor:
        return self.window(i, j) * self.k

    def value(self, i: int, j: int) -> float:
        return float(self.products(i, j).sum())

    def partial_output(self, step: int) -> torch.Tensor:
        """Output with positions 0..step filled in and NaN where the window has not been yet."""
        out = torch.full(self.out_shape, float("nan"), dtype=torch.float64)
        for s in range(step + 1):
            out[self.position(s)] = self.value(*self.position(s))
        return out

    def equation(self, i: int, j: int) -> str:
        def num(v: float) -> str:
            return f"({v:.3g})" if v < 0 else f"{v:.3g}"

        terms = [f"{num(a)}·{num(b)}" for a, b in zip(self.window(i, j).flatten().tolist(), self.k.flatten().tolist())]
        return f"out[{i}, {j}] = " + " + ".join(terms) + f" = {self.value(i, j):.4g}"


def draw(model: SlidingWindow, step: int, learner: Callable | None = None, figure: Figure | None = None) -> Figure:
    """Input with the window highlighted, the kernel, the products, and the output so far. ``figure``: one this
    function drew before, redrawn on the same axes (see :func:`convcourse.widgets.in_place`); a panel whose
    contents a step does not change (the kernel, your corr2d's result) is kept as it is."""
    i, j = model.position(step)
    kh, kw = model.k.shape
    panels = 5 if learner is not None else 4
    ratios = [model.x.shape[1], kw, kw, model.out_shape[1]] + ([model.out_shape[1]] if learner is not None else [])
    axes = kept_axes(figure, ("sliding window", panels), ratios)
    if axes is not None:
        fig = figure
    else:
        # A Figure outside pyplot: the widget keeps it and redraws on its axes.
        fig = Figure(figsize=(3.1 * panels, 3.4))
        fig._convcourse_layout = ("sliding window", panels)
        axes = fig.subplots(1, panels, gridspec_kw={"width_ratios": ratios})
    data = tuple((tuple(t.shape), t.numpy().tobytes()) for t in (model.x, model.k))
    if redraw_needed(axes[0], ("input", data, i, j)):
        show_matrix(axes[0], model.x, title="input x", highlight=(slice(i, i + kh), slice(j, j + kw)))
    if redraw_needed(axes[1], ("kernel", data)):
        show_matrix(axes[1], model.k, title="kernel k", cmap="Oranges")
    if redraw_needed(axes[2], ("products", data, i, j)):
        show_matrix(axes[2], model.products(i, j), title="x-window × k", cmap="Purples")
    if redraw_needed(axes[3], ("output", data, step)):
        partial = model.partial_output(step).numpy()
        highlight = (slice(i, i + 1), slice(j, j + 1))
        show_matrix(axes[3], partial, title="output (so far)", cmap="Greens", highlight=highlight)
    # Your corr2d's result does not depend on the step: computed and drawn once (for this function and input).
    if learner is not None and redraw_needed(axes[4], ("yours", data, learner)):
        with learner_panel(axes[4], "corr2d", color=COLORS["highlight"]):
            ok, mine = checked_call("corr2d", learner, x=model.x, k=model.k)  # the test cells' own check
            mine = torch.as_tensor(mine, dtype=torch.float64)
            show_matrix(axes[4], mine, title=f"your corr2d {'✓' if ok else '✗ differs'}", cmap="Greens")
    fig.suptitle(
        model.equation(i, j)
        if kh * kw <= 9
        else f"out[{i}, {j}] = sum of {kh * kw} products = {model.value(i, j):.4g}",
        fontsize=9,
    )
    # Fixed margins in inches (what tight_layout finds): tight_layout would double the redraw time.
    width, height = fig.get_size_inches()
    adjust(fig, left=0.26 / width, right=1 - 0.15 / width, bottom=0.3 / height, top=1 - 0.64 / height, wspace=0.1)
    return fig


def sliding_window_widget(
    x: torch.Tensor | None = None, k: torch.Tensor | None = None, corr2d: Callable | None = None
) -> FigureView:
    """Step a kernel over an input. Pass your ``corr2d`` to see its full output beside the answer."""
    if x is None:
        x = torch.arange(30, dtype=torch.float64).reshape(5, 6) % 7
    if k is None:
        k = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], dtype=torch.float64)
    model = SlidingWindow(x.double(), k.double())
    step = w.IntSlider(value=0, min=0, max=model.steps - 1, description="window", continuous_update=True)
    play = w.Play(value=0, min=0, max=model.steps - 1, interval=700, description="play")
    w.jslink((play, "value"), (step, "value"))
    view = FigureView(
        in_place(lambda step, figure: draw(model, step, corr2d, figure)),
        {"step": step},
        title="Sliding window",
        description="Each output number is the sum of the products of the highlighted window and the kernel.",
    )
    view.widget.children = (w.HBox([play]),) + view.widget.children
    return view
