"""Lesson 06 widget: where a dilated kernel's taps land, and how a stack of (dilated) layers grows the
receptive field of one output pixel."""

from __future__ import annotations

import dataclasses
from typing import Callable

import ipywidgets as w
import numpy as np
from matplotlib.figure import Figure

from ..plots import COLORS, cell_labels, index_labels
from . import FigureView, grader_agrees, in_place, reused_axes

SCHEDULES = {
    "1, 1, 1, 1 (no dilation)": (1, 1, 1, 1),
    "1, 2, 4, 8 (doubling)": (1, 2, 4, 8),
    "2, 2, 2, 2": (2, 2, 2, 2),
    "1, 2, 3, 1": (1, 2, 3, 1),
}


def kernel_footprint(kernel_size: int, dilation: int) -> np.ndarray:
    """(span, span) bool grid, span = dilation*(k-1)+1: True where a tap of the k×k kernel lands."""
    if kernel_size < 1 or dilation < 1:
        raise ValueError(f"kernel_size and dilation must be at least 1, got {kernel_size} and {dilation}")
    span = dilation * (kernel_size - 1) + 1
    grid = np.zeros((span, span), dtype=bool)
    grid[::dilation, ::dilation] = True
    return grid


@dataclasses.dataclass
class LayerStack:
    """A stack of stride-1 convolutions along one axis: kernel size k, one dilation per layer."""

    kernel_size: int
    dilations: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kernel_size < 1 or any(d < 1 for d in self.dilations):
            raise ValueError("kernel_size and every dilation must be at least 1")
        self.dilations = tuple(int(d) for d in self.dilations)

    @property
    def receptive_field(self) -> int:
        return 1 + sum(d * (self.kernel_size - 1) for d in self.dilations)

    def paths(self) -> list[np.ndarray]:
        """For level 0 (the output pixel) down to the input: how many paths lead from each position of that
        level to the output pixel. Each array has the receptive field's width; row n is level n, the output
        pixel first and the input last, positioned above the middle of the input columns it reads."""
        width = self.receptive_field
        levels = [np.zeros(width, dtype=np.int64)]
        # Output pixel 0 of the top layer reads columns 0 .. span-1 of the level below, and so on down.
        levels[0][0] = 1
        for d in reversed(self.dilations):
            above = levels[-1]
            below = np.zeros(width, dtype=np.int64)
            for p in np.nonzero(above)[0]:
                for t in range(self.kernel_size):
                    below[p + d * t] += above[p]
            levels.append(below)
        # Draw a pixel above the middle of the input columns it reads: shift level n by half the span of
        # the layers below it (dilations[:L - n]).
        total = len(self.dilations)
        return [
            np.roll(level, sum(d * (self.kernel_size - 1) for d in self.dilations[: total - n]) // 2)
            for n, level in enumerate(levels)
        ]


def learner_verdict(receptive_field: Callable | None, kernel_size: int, dilations: tuple[int, ...]) -> str:
    """One line comparing a learner's ``receptive_field`` with the stack's (stride 1): its value and ✓/✗,
    'not implemented yet', or the exception it raised. Empty when no function is given."""
    if receptive_field is None:
        return ""
    n = len(dilations)
    try:
        mine = receptive_field([kernel_size] * n, [1] * n, list(dilations))
    except NotImplementedError:
        return "your receptive_field: not implemented yet"
    except Exception as error:  # show the learner's error in the widget, not a traceback  # noqa: BLE001
        return f"your receptive_field raised {type(error).__name__}"
    expected = LayerStack(kernel_size, dilations).receptive_field
    ok = grader_agrees(
        "receptive_field", receptive_field, kernel_sizes=[kernel_size] * n, strides=[1] * n, dilations=list(dilations)
    )  # the test cells' own check
    return f"your receptive_field: {mine!r} {'✓' if ok else f'✗ (the picture shows {expected})'}"


def draw(
    kernel_size: int,
    dilation: int,
    dilations: tuple[int, ...],
    receptive_field: Callable | None = None,
    figure: Figure | None = None,
) -> Figure:
    """Left: one dilated kernel's taps. Right: the input pixels feeding one output pixel of a stack, and the
    learner's ``receptive_field`` for that stack when given. ``figure``: one this function drew before, redrawn
    on the same axes (see :func:`convcourse.widgets.in_place`)."""
    footprint = kernel_footprint(kernel_size, dilation)
    stack = LayerStack(kernel_size, dilations)
    levels = stack.paths()
    axes = reused_axes(figure, "dilation")
    if axes is not None:
        fig, (left, right) = figure, axes
    else:
        # A Figure outside pyplot: the widget keeps it and redraws on its axes.
        fig = Figure(figsize=(10, 3.6))
        fig._convcourse_layout = "dilation"
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.4]})
    left.imshow(footprint, cmap="Oranges", vmin=0, vmax=1.3)
    index_labels(left, range(footprint.shape[1]), range(footprint.shape[0]), fontsize=6)
    left.set_title(
        f"{kernel_size}×{kernel_size} kernel, dilation {dilation}\nspans {footprint.shape[0]}×"
        f"{footprint.shape[1]} pixels, {kernel_size * kernel_size} weights",
        fontsize=9,
    )
    counts = np.array(levels, dtype=float)
    right.imshow(np.ma.masked_equal(counts, 0), cmap="Blues", aspect="auto", vmin=0, vmax=max(counts.max(), 1))
    right.imshow(np.ma.masked_not_equal(counts, 0), cmap="Greys", aspect="auto", vmin=0, vmax=8, alpha=0.3)
    if counts.shape[1] <= 40:
        rows, cols = np.nonzero(counts)
        cell_labels(right, cols, rows, [f"{int(v)}" for v in counts[rows, cols]], fontsize=6)
    total = len(dilations)
    names = ["output pixel"] + [f"output of layer {total - n}" for n in range(1, total)] + ["input image"]
    right.set_yticks(range(len(levels)))
    right.set_yticklabels(names, fontsize=7)
    right.set_xticks([])
    rf = stack.receptive_field
    right.set_title(
        f"{len(dilations)} layers, kernel {kernel_size}, dilations {', '.join(map(str, dilations))}: "
        f"receptive field {rf} pixels",
        fontsize=9,
        color=COLORS["input"],
    )
    verdict = learner_verdict(receptive_field, kernel_size, tuple(dilations))
    right.set_xlabel(
        "numbers: how many paths connect that pixel to the output pixel" + (f"\n{verdict}" if verdict else ""),
        fontsize=8,
    )
    # Fixed margins (what tight_layout finds for the widest labels): tight_layout doubles the redraw time.
    fig.subplots_adjust(left=0.03, right=0.985, bottom=0.14, top=0.9, wspace=0.26)
    return fig


def dilation_widget(receptive_field: Callable | None = None) -> FigureView:
    """A dilated kernel's footprint, and the receptive field of a stack of dilated layers. Pass your
    ``receptive_field`` to see its answer for the stack shown."""
    kernel = w.IntSlider(value=3, min=1, max=5, description="kernel", continuous_update=False)
    dilation = w.IntSlider(value=2, min=1, max=4, description="dilation", continuous_update=False)
    layers = w.IntSlider(value=3, min=1, max=4, description="layers", continuous_update=False)
    schedule = w.Dropdown(options=list(SCHEDULES), value="1, 2, 4, 8 (doubling)", description="dilations")

    def render(kernel, dilation, layers, schedule, figure):
        return draw(kernel, dilation, SCHEDULES[schedule][:layers], receptive_field, figure)

    return FigureView(
        in_place(render),
        {"kernel": kernel, "dilation": dilation, "layers": layers, "schedule": schedule},
        title="Dilation and receptive field",
        description="Left: the kernel's taps (orange) inside the area it spans. Right: which input "
        "pixels can influence one output pixel after a stack of layers (stride 1).",
    )
