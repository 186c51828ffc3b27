"""Lesson 14 widget: a convolution as a sparse matrix C, and the transposed convolution as Cᵀ.

The model (:class:`TransposedCall`) builds C for a one-channel convolution from torch itself (column k of C
is the convolution of the k-th basis image), so the picture is torch's map, not a re-derivation; the view
draws C, the small input y, torch's ``F.conv_transpose2d(y)``, Cᵀy, and, when given, the learner's
``conv_transpose2d`` graded on the same call.
"""

from __future__ import annotations

import dataclasses
import functools
import textwrap
from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..geometry import transposed_output_size
from ..plots import show_matrix
from . import FigureView, clear_drawing, grader_verdict, in_place


@dataclasses.dataclass(frozen=True)
class TransposedCall:
    """F.conv_transpose2d on a (1, 1, size, size) input y with a (1, 1, kernel, kernel) weight."""

    size: int = 2
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    dilation: int = 1

    def weight(self) -> torch.Tensor:
        """The kernel 1, 2, ..., k² (row by row): each tap is recognisable in C."""
        return torch.arange(1.0, self.kernel**2 + 1, dtype=torch.float64).reshape(1, 1, self.kernel, self.kernel)

    def y(self) -> torch.Tensor:
        """A small input with distinct values 1, -1, 2, -2, ..."""
        values = [(k // 2 + 1) * (1 if k % 2 == 0 else -1) for k in range(self.size**2)]
        return torch.tensor(values, dtype=torch.float64).reshape(1, 1, self.size, self.size)

    def inputs(self) -> dict:
        """Keyword arguments of the F.conv_transpose2d call."""
        return dict(
            input=self.y(),
            weight=self.weight(),
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
        )

    @property
    def out_size(self) -> int:
        return transposed_output_size(
            self.size, self.kernel, self.stride, self.padding, self.output_padding, self.dilation
        )

    def torch_result(self) -> torch.Tensor | Exception:
        try:
            return F.conv_transpose2d(**self.inputs())
        except Exception as error:  # shown in the widget: torch's own refusal  # noqa: BLE001
            return error

    def matrix(self) -> torch.Tensor:
        """C: the conv2d with the same stride, padding and dilation on an out_size² image, as a matrix with one
        column per input pixel (the convolution of that basis image) and one row per output pixel (size² of them,
        more when output_padding ≥ stride). Computed once per call (a convolution of out_size² basis images:
        a redraw needs C three times); each caller gets its own copy."""
        return _matrix(self).clone()

    def via_matrix(self) -> torch.Tensor:
        """Cᵀ y, reshaped to the output image. (With output_padding ≥ stride, allowed when it is below the
        dilation, C maps to a larger image than y: y is extended by zeros, which is what torch computes.)"""
        rows = int(self.matrix().shape[0] ** 0.5)
        y = F.pad(self.y(), (0, rows - self.size, 0, rows - self.size))
        return (self.matrix().T @ y.flatten()).reshape(1, 1, self.out_size, self.out_size)


@functools.lru_cache(maxsize=32)
def _matrix(call: TransposedCall) -> torch.Tensor:
    n = call.out_size
    basis = torch.eye(n * n, dtype=torch.float64).reshape(n * n, 1, n, n)
    columns = F.conv2d(basis, call.weight(), stride=call.stride, padding=call.padding, dilation=call.dilation)
    return columns.reshape(n * n, -1).T


def learner_verdict(call: TransposedCall, conv_transpose2d: Callable | None) -> str:
    """The grader's verdict on the learner's function for this call ('' without one)."""
    return grader_verdict("conv_transpose2d", conv_transpose2d, call.inputs(), call.torch_result)


def _image(ax: plt.Axes, values: torch.Tensor, title: str) -> None:
    show_matrix(ax, values[0, 0], title=title, cmap="RdBu_r", fmt="{:.0f}", index="", annotate=values.numel() <= 64)
    limit = float(values.abs().max()) or 1.0
    ax.images[-1].set_clim(-limit, limit)
    ax.set_xticks([])
    ax.set_yticks([])


def draw(
    call: TransposedCall,
    conv_transpose2d: Callable | None = None,
    verdict: str | None = None,
    figure: Figure | None = None,
) -> Figure:
    """C (top), then y, torch's transposed convolution of y (compared with Cᵀy) and the learner's verdict.
    ``figure``: one this function drew before, redrawn on the same axes (see :func:`convcourse.widgets.in_place`)."""
    result = call.torch_result()
    refused = isinstance(result, Exception)
    if getattr(figure, "_convcourse_transposed", False):
        # The same four axes whatever torch did (a refused call turns two of them off): a setting that makes
        # torch refuse, or accept again, redraws in place rather than building a figure (issue 16's p95).
        fig = figure
        for ax in fig.axes:
            clear_drawing(ax)
        ax_c, ax_y, ax_out, ax_text = fig.axes
    else:
        # A Figure outside pyplot: the widget keeps it and redraws on its axes.
        fig = Figure(figsize=(10.0, 6.4))
        grid = fig.add_gridspec(2, 3, height_ratios=[1.5, 1], width_ratios=[1, 1.3, 2.2])
        ax_c = fig.add_subplot(grid[0, :])
        ax_y, ax_out, ax_text = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1]), fig.add_subplot(grid[1, 2])
        ax_text.axis("off")
        fig.subplots_adjust(left=0.05, right=0.98, top=0.93, bottom=0.03, wspace=0.3, hspace=0.3)
        fig._convcourse_transposed = True
    for ax in (ax_c, ax_out):
        ax.axis("off" if refused else "on")
    _image(ax_y, call.y(), f"y ({call.size}×{call.size})")
    if refused:
        message = f"torch raises {type(result).__name__}: {str(result).splitlines()[0]}"
    else:
        matrix = call.matrix().numpy()
        show_matrix(
            ax_c,
            np.where(matrix == 0, np.nan, matrix),
            cmap="viridis_r",
            fmt="{:.0f}",
            annotate=matrix.size <= 700,
            index="",
        )
        ax_c.set_aspect("auto")
        ax_c.set_title(
            f"C: conv2d on a {call.out_size}×{call.out_size} image, {matrix.shape[0]}×{matrix.shape[1]}, "
            f"{int((matrix != 0).sum())} non-zeros (blank = 0). A row per pixel of y, a column per output pixel.",
            fontsize=9,
        )
        same = torch.allclose(call.via_matrix(), result)
        _image(ax_out, result, f"conv_transpose2d(y) {'= Cᵀy' if same else '≠ Cᵀy'}")
        message = f"torch: output {tuple(result.shape)}; the same numbers as Cᵀy: {same}"
    if verdict is None:
        verdict = learner_verdict(call, conv_transpose2d)
    text = message + ("\n" + verdict if verdict else "")
    lines = [line for part in text.splitlines() for line in textwrap.wrap(part, 54)]
    ax_text.text(0, 1, "\n".join(lines[:14]), va="top", fontsize=8, family="monospace")
    return fig


def transposed_widget(conv_transpose2d: Callable | None = None) -> FigureView:
    """Sliders for one F.conv_transpose2d call; redraws C, torch's answer, Cᵀy and the learner's verdict."""

    def slider(label: str, value: int, low: int, high: int) -> widgets.IntSlider:
        return widgets.IntSlider(value=value, min=low, max=high, description=label, continuous_update=False)

    controls = {
        "size": slider("y size", 2, 1, 4),
        "kernel": slider("kernel", 3, 1, 4),
        "stride": slider("stride", 1, 1, 3),
        "padding": slider("padding", 0, 0, 2),
        "output_padding": slider("output_pad", 0, 0, 2),
        "dilation": slider("dilation", 1, 1, 2),
    }
    cache: dict = {}

    def render(figure: Figure | None, **values: int) -> Figure:
        call = TransposedCall(**values)
        if call not in cache:
            cache.clear()
            cache[call] = learner_verdict(call, conv_transpose2d)
        return draw(call, conv_transpose2d, cache[call], figure)

    return FigureView(
        in_place(render),
        controls,
        title="A transposed convolution is Cᵀ",
        description="C is the conv2d with the same stride, padding and dilation (kernel 1…k², row by row) "
        "from the big image to y. torch's conv_transpose2d(y) equals Cᵀy for every setting.",
    )
