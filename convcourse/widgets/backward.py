"""Lesson 11 widget: which outputs an input pixel touches, and which inputs and weights an output uses.

The model, :class:`ConvGeometry`, is pure index arithmetic (no torch convolution), so it can be
tested headless against torch's autograd. :func:`draw` shows the input (with its padding), the
kernel and the output side by side; :func:`backward_widget` wraps it in controls.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..geometry import Pair, output_size, pair
from ..plots import COLORS, cell_labels
from . import FigureView, checked_call, in_place, kept_axes, learner_panel, redraw_needed

Link = tuple[Pair, Pair]  # ((row, col) of the other pixel, (a, b) kernel tap)
Verdict = tuple[bool, torch.Tensor, torch.Tensor]  # (the grader's check passes, learner's grad_input, torch's)

INPUT_TO_OUTPUTS = "input → outputs"
OUTPUT_TO_INPUTS = "output → inputs"


@dataclasses.dataclass
class ConvGeometry:
    """Index bookkeeping of one 2-D convolution: who touches whom, through which kernel tap."""

    height: int
    width: int
    kernel_size: int | tuple[int, int] = 3
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1

    def __post_init__(self) -> None:
        self.kernel_size, self.stride = pair(self.kernel_size), pair(self.stride)
        self.padding, self.dilation = pair(self.padding), pair(self.dilation)
        if min(self.kernel_size + self.stride + self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError("kernel size, stride and dilation must be >= 1 and padding >= 0")
        if min(self.out_shape) < 1:
            raise ValueError(f"the kernel (with dilation) does not fit in the padded {self.height}x{self.width} input")

    @property
    def out_shape(self) -> Pair:
        return tuple(  # type: ignore[return-value]
            output_size(*axis)
            for axis in zip((self.height, self.width), self.kernel_size, self.stride, self.padding, self.dilation)
        )

    def inputs_of(self, i: int, j: int) -> list[Link]:
        """The input pixels output (i, j) reads, with the tap that multiplies each. Rows/columns
        outside 0..H-1 / 0..W-1 are padding (zeros)."""
        if not (0 <= i < self.out_shape[0] and 0 <= j < self.out_shape[1]):
            raise ValueError(f"output pixel ({i}, {j}) is outside the {self.out_shape} output")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return [((i * sh + a * dh - ph, j * sw + b * dw - pw), (a, b)) for a in range(kh) for b in range(kw)]

    def outputs_of(self, r: int, c: int) -> list[Link]:
        """The output pixels input pixel (r, c) contributes to, with the tap that multiplies it."""
        if not (0 <= r < self.height and 0 <= c < self.width):
            raise ValueError(f"input pixel ({r}, {c}) is outside the {self.height}x{self.width} input")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        links = []
        for a in range(kh):
            for b in range(kw):
                top, left = r + ph - a * dh, c + pw - b * dw  # where the window's corner must be
                if top % sh or left % sw:
                    continue
                i, j = top // sh, left // sw
                if 0 <= i < self.out_shape[0] and 0 <= j < self.out_shape[1]:
                    links.append(((i, j), (a, b)))
        return links

    def touch_counts(self) -> torch.Tensor:
        """(H, W): how many (output pixel, tap) products each input pixel takes part in."""
        counts = torch.zeros(self.height, self.width, dtype=torch.int64)
        for r in range(self.height):
            for c in range(self.width):
                counts[r, c] = len(self.outputs_of(r, c))
        return counts

    def clamp(self, mode: str, row: int, col: int) -> Pair:
        """(row, col) clipped to the grid that ``mode`` picks from (input or output)."""
        rows, cols = (self.height, self.width) if mode == INPUT_TO_OUTPUTS else self.out_shape
        return min(max(row, 0), rows - 1), min(max(col, 0), cols - 1)


def example_kernel(kernel_size: int | tuple[int, int]) -> torch.Tensor:
    """A kernel whose taps are 1, 2, 3, ... so that every tap is recognisable in a gradient."""
    kh, kw = pair(kernel_size)
    return torch.arange(1, kh * kw + 1, dtype=torch.float64).reshape(kh, kw)


def example_call(geometry: ConvGeometry, mode: str, row: int, col: int) -> dict:
    """The widget's example as ``conv2d_backward``'s keyword arguments: input zeros, the example kernel, and
    grad_output 1 at the picked output pixel (output mode) or all ones (input mode)."""
    grad_output = torch.zeros(1, 1, *geometry.out_shape, dtype=torch.float64)
    if mode == OUTPUT_TO_INPUTS:
        grad_output[0, 0, row, col] = 1.0
    else:
        grad_output += 1.0
    return dict(
        grad_output=grad_output,
        input=torch.zeros(1, 1, geometry.height, geometry.width, dtype=torch.float64),
        weight=example_kernel(geometry.kernel_size)[None, None],
        stride=geometry.stride,
        padding=geometry.padding,
        dilation=geometry.dilation,
        groups=1,
    )


def learner_grad_input(conv2d_backward: Callable, geometry: ConvGeometry, mode: str, row: int, col: int) -> Verdict:
    """(whether the grader's check passes, the learner's grad_input, torch's) on the widget's example, the
    gradients as (H, W) tensors. The learner's function runs once, under the grader's own check
    (:func:`convcourse.widgets.checked_call`); what it raises is raised.

    Output mode: grad_output is 1 at the chosen output pixel, so grad_input is the kernel laid
    over the inputs that pixel reads. Input mode: grad_output is all ones, so grad_input[r, c] is
    the sum of the taps that touch (r, c)."""
    inputs = example_call(geometry, mode, row, col)
    grad_output, x, weight = inputs["grad_output"], inputs["input"], inputs["weight"]
    args = {name: inputs[name] for name in ("stride", "padding", "dilation", "groups")}
    x_ref = x.clone().requires_grad_(True)
    with torch.enable_grad():
        out = torch.nn.functional.conv2d(x_ref, weight, None, **args)
        (expected,) = torch.autograd.grad(out, x_ref, grad_output)
    ok, grads = checked_call("conv2d_backward", conv2d_backward, **inputs)
    mine = torch.as_tensor(grads[0], dtype=torch.float64).reshape(expected.shape)
    return ok, mine[0, 0], expected[0, 0]


class LearnerResults:
    """:func:`learner_grad_input` for one learner function, each example computed once and kept: the example
    depends on the geometry, and on the picked pixel only in output mode, so moving the pick in input mode, or
    back to a pixel seen before, redraws without running the learner's (loop-based, slow) backward again.
    What the function raises is not kept (it is raised again next time)."""

    def __init__(self, conv2d_backward: Callable, limit: int = 512):
        self.conv2d_backward, self.limit = conv2d_backward, limit
        self.calls = 0
        self._kept: dict[tuple, Verdict] = {}

    def __call__(self, geometry: ConvGeometry, mode: str, row: int, col: int) -> Verdict:
        key = (dataclasses.astuple(geometry), mode, (row, col) if mode == OUTPUT_TO_INPUTS else None)
        if key not in self._kept:
            self.calls += 1
            result = learner_grad_input(self.conv2d_backward, geometry, mode, row, col)
            if len(self._kept) >= self.limit:
                self._kept.clear()
            self._kept[key] = result
        return self._kept[key]


def _grid(
    ax: plt.Axes,
    shape: Pair,
    title: str,
    *,
    pad: Pair = (0, 0),
    marks: dict[Pair, str] | None = None,
    chosen: Pair | None = None,
    color: str = COLORS["input"],
    values: np.ndarray | None = None,
) -> None:
    """A grid of cells; padding cells grey, marked cells coloured and labelled, the chosen one outlined.

    Drawn for speed (a redraw within the slider's pace): one image, two line collections for the cell
    borders, and the labels and row/column numbers as :func:`convcourse.plots.cell_labels` (no Text or
    tick label per cell)."""
    rows, cols = shape[0] + 2 * pad[0], shape[1] + 2 * pad[1]
    rgb = np.ones((rows, cols, 3))
    rgb[: pad[0]], rgb[rows - pad[0] :] = 0.85, 0.85
    rgb[:, : pad[1]], rgb[:, cols - pad[1] :] = 0.85, 0.85
    tint = np.array(matplotlib_color(color))
    for (r, c), _ in (marks or {}).items():
        rr, cc = r + pad[0], c + pad[1]
        if 0 <= rr < rows and 0 <= cc < cols:
            rgb[rr, cc] = 0.45 + 0.55 * tint if (r, c) != chosen else tint
    top, left, bottom, right = -pad[0] - 0.5, -pad[1] - 0.5, shape[0] + pad[0] - 0.5, shape[1] + pad[1] - 0.5
    ax.imshow(rgb, extent=(left, right, bottom, top), interpolation="nearest")
    ax.vlines(np.arange(left, right + 1), top, bottom, color="#999", lw=0.5, clip_on=False)
    ax.hlines(np.arange(top, bottom + 1), left, right, color="#999", lw=0.5, clip_on=False)
    labels = [((r, c), label) for (r, c), label in (marks or {}).items()]
    if values is not None:
        labels += [((r, c), f"{v:.3g}") for (r, c), v in np.ndenumerate(values) if (r, c) not in (marks or {}) and v]
    if labels:
        cell_labels(
            ax,
            [c for (_, c), _ in labels],
            [r for (r, _), _ in labels],
            [text for _, text in labels],
            fontsize=7,
            color=["black" if (rc in (marks or {})) else "#333" for rc, _ in labels],
        )
    # Row and column numbers just outside the grid (padding rows/columns get negative or >= size numbers).
    numbers_r, numbers_c = range(-pad[0], shape[0] + pad[0]), range(-pad[1], shape[1] + pad[1])
    index = cell_labels(
        ax,
        [left - 0.45] * len(numbers_r) + list(numbers_c),
        list(numbers_r) + [bottom + 0.45] * len(numbers_c),
        [str(n) for n in numbers_r] + [str(n) for n in numbers_c],
        fontsize=6,
        color="#555",
    )
    index.set_clip_on(False)
    if chosen is not None:
        ax.add_patch(
            plt.Rectangle((chosen[1] - 0.5, chosen[0] - 0.5), 1, 1, fill=False, lw=2.5, edgecolor=COLORS["highlight"])
        )
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)


def _grid_kept(ax: plt.Axes, shape: Pair, title: str, **options) -> None:
    """:func:`_grid`, unless ``ax`` shows that very grid already (same arguments): then it is kept as it is,
    neither drawn nor recorded again (:func:`convcourse.widgets.redraw_needed`)."""
    values = options.get("values")
    key = (
        "grid",
        shape,
        title,
        *(
            (name, tuple(value.items()) if isinstance(value, dict) else value)
            for name, value in options.items()
            if name != "values"
        ),
        None if values is None else (values.shape, values.tobytes()),
    )
    if redraw_needed(ax, key):
        _grid(ax, shape, title, **options)


def matplotlib_color(name: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(name)


def draw(
    geometry: ConvGeometry,
    mode: str,
    row: int,
    col: int,
    conv2d_backward: Callable | None = None,
    figure: Figure | None = None,
    results: LearnerResults | None = None,
) -> Figure:
    """Input, kernel and output grids with the links of the chosen pixel (and the learner's grad_input).
    ``figure``: one this function drew before, redrawn on the same axes when it has as many panels (see
    :func:`convcourse.widgets.in_place`). ``results``: the learner's results kept across redraws (for
    ``conv2d_backward``; without it the learner's function runs on this call)."""
    row, col = geometry.clamp(mode, row, col)
    kh, kw = geometry.kernel_size
    panels = 4 if conv2d_backward is not None else 3
    oh, ow = geometry.out_shape
    ph, pw = geometry.padding
    ratios = [geometry.width + 2 * pw, max(kw, 2), max(ow, 2)] + ([geometry.width] if panels == 4 else [])
    axes = kept_axes(figure, ("backward", panels), ratios)
    if axes is not None:
        fig = figure
    else:
        # A Figure outside pyplot: the widget's redraws never pile up in pyplot's list of open figures. Fixed
        # margins (no constrained layout: a layout pass per redraw) and 80 dpi: ~1000 px wide with four panels,
        # the width of a notebook's output area (more pixels would only be scaled down by the browser).
        fig = Figure(figsize=(3.2 * panels, 3.6), dpi=80)
        axes = list(fig.subplots(1, panels, gridspec_kw={"width_ratios": ratios}))
        fig.subplots_adjust(left=0.025, right=0.99, bottom=0.1, top=0.8, wspace=0.18)
        fig._convcourse_layout = ("backward", panels)
    tap = lambda ab: f"w{ab[0]}{ab[1]}"  # noqa: E731
    if mode == INPUT_TO_OUTPUTS:
        links = geometry.outputs_of(row, col)
        _grid_kept(
            axes[0],
            (geometry.height, geometry.width),
            f"input (pick {row}, {col})",
            pad=geometry.padding,
            marks={(row, col): "x"},
            chosen=(row, col),
        )
        _grid_kept(
            axes[1], (kh, kw), "kernel taps used", marks={ab: tap(ab) for _, ab in links}, color=COLORS["kernel"]
        )
        _grid_kept(
            axes[2],
            (oh, ow),
            f"outputs touched: {len(links)}",
            marks={ij: tap(ab) for ij, ab in links},
            color=COLORS["output"],
        )
        terms = [f"g[{i},{j}]·w[{a},{b}]" for (i, j), (a, b) in links]
        title = f"grad_input[{row}, {col}] = " + (" + ".join(terms) if terms else "0 (no window reads this pixel)")
    else:
        links = geometry.inputs_of(row, col)
        _grid_kept(
            axes[0],
            (geometry.height, geometry.width),
            "inputs read (grey = padding)",
            pad=geometry.padding,
            marks={rc: tap(ab) for rc, ab in links},
            color=COLORS["input"],
        )
        _grid_kept(axes[1], (kh, kw), "every tap", marks={ab: tap(ab) for _, ab in links}, color=COLORS["kernel"])
        _grid_kept(
            axes[2],
            (oh, ow),
            f"output (pick {row}, {col})",
            marks={(row, col): "g"},
            chosen=(row, col),
            color=COLORS["output"],
        )
        inside = [(rc, ab) for rc, ab in links if 0 <= rc[0] < geometry.height and 0 <= rc[1] < geometry.width]
        title = (
            f"out[{row}, {col}] reads {len(inside)} input pixels ({len(links) - len(inside)} in the padding): "
            f"grad_weight[a, b] += g[{row},{col}]·x[input at tap (a, b)]"
        )
    # Your grad_input depends on the geometry, and on the pick only in output mode: a move that changes neither
    # keeps the panel as it is (not even looked up again).
    pick = (row, col) if mode == OUTPUT_TO_INPUTS else None
    if conv2d_backward is not None and redraw_needed(
        axes[3], ("yours", conv2d_backward, dataclasses.astuple(geometry), mode, pick)
    ):
        ax = axes[3]
        with learner_panel(ax, "conv2d_backward", color=COLORS["highlight"]):
            # ✓ only when the grader's own check of conv2d_backward passes on this call (all three gradients)
            ok, mine, expected = (results or LearnerResults(conv2d_backward))(geometry, mode, row, col)
            _grid(
                ax,
                (geometry.height, geometry.width),
                f"your grad_input {'✓' if ok else '✗ differs'}",
                values=mine.numpy(),
                marks={} if ok else {divmod(int((mine - expected).abs().argmax()), geometry.width): "✗"},
                color=COLORS["highlight"],
            )
            ax.set_xlabel(
                "grad_output = " + ("1 at the picked output" if mode == OUTPUT_TO_INPUTS else "all ones"), fontsize=8
            )
    fig.suptitle(title if len(title) < 140 else title[:137] + "…", fontsize=9)
    return fig


def touch_counts_figure(
    height: int = 9,
    width: int = 9,
    settings: tuple[dict, ...] = (
        dict(kernel_size=3),
        dict(kernel_size=3, stride=2),
        dict(kernel_size=4, stride=2),
        dict(kernel_size=3, dilation=2),
    ),
) -> plt.Figure:
    """Heat maps of :meth:`ConvGeometry.touch_counts` for a few settings, side by side."""
    fig, axes = plt.subplots(1, len(settings), figsize=(3.0 * len(settings), 3.3), layout="constrained")
    for ax, options in zip(np.atleast_1d(axes), settings):
        counts = ConvGeometry(height, width, **options).touch_counts().numpy()
        ax.imshow(counts, cmap="Purples", vmin=0, vmax=max(int(counts.max()), 1))
        for (r, c), v in np.ndenumerate(counts):
            ax.text(
                c, r, str(v), ha="center", va="center", fontsize=7, color="white" if v > 0.6 * counts.max() else "black"
            )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(", ".join(f"{k.replace('kernel_size', 'k')}={v}" for k, v in options.items()), fontsize=9)
    fig.supxlabel(
        "Number in each input pixel: how many products (output pixel × tap) it enters, "
        "so how many terms its gradient sums.",
        fontsize=9,
        style="italic",
    )
    return fig


def backward_widget(height: int = 7, width: int = 7, conv2d_backward: Callable | None = None) -> FigureView:
    """Pick an input pixel to see the outputs it touches, or an output pixel to see what it reads."""
    size = max(height, width)
    results = LearnerResults(conv2d_backward) if conv2d_backward is not None else None
    controls = {
        "mode": w.ToggleButtons(
            options=[INPUT_TO_OUTPUTS, OUTPUT_TO_INPUTS], value=INPUT_TO_OUTPUTS, description="pick"
        ),
        "row": w.IntSlider(value=2, min=0, max=size - 1, description="row"),
        "col": w.IntSlider(value=3, min=0, max=size - 1, description="col"),
        "kernel_size": w.IntSlider(value=3, min=1, max=4, description="kernel"),
        "stride": w.IntSlider(value=2, min=1, max=3, description="stride"),
        "padding": w.IntSlider(value=1, min=0, max=2, description="padding"),
        "dilation": w.IntSlider(value=1, min=1, max=3, description="dilation"),
    }

    def redraw(mode, row, col, kernel_size, stride, padding, dilation, figure):
        try:
            geometry = ConvGeometry(height, width, kernel_size, stride, padding, dilation)
        except ValueError as error:
            fig = Figure(figsize=(6, 1.2))
            ax = fig.subplots()
            ax.set_axis_off()
            ax.text(0.5, 0.5, str(error), ha="center", va="center", color=COLORS["highlight"])
            return fig
        return draw(geometry, mode, row, col, conv2d_backward, figure, results)

    return FigureView(
        in_place(redraw),
        controls,
        title="Who touches whom",
        description="Row/col pick a pixel of the input or of the output (clipped to its grid). "
        "Labels wAB name the kernel tap that links the two pixels.",
    )
