"""Lesson 13 widget: max or average pooling on a small input, the window of one output pixel over the padded
input, the output size with floor or ceil_mode (and the last-window rule), torch's answer (or its error) and,
when given, the learner's ``max_pool2d``/``avg_pool2d`` graded on the same call."""

from __future__ import annotations

import dataclasses
import textwrap
import warnings
from typing import Any, Callable

import ipywidgets as widgets
import matplotlib.patches as patches
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..geometry import Pair, pool_output_size
from ..plots import COLORS, cell_labels, grid_lines, index_labels
from . import FigureView, grader_verdict, in_place, input_output_text_axes


@dataclasses.dataclass(frozen=True)
class PoolCall:
    """One F.max_pool2d / F.avg_pool2d call on a (1, 1, H, W) input; ``stride=None`` is torch's default."""

    kind: str = "max"
    h: int = 7
    w: int = 7
    kernel: Pair = (2, 2)
    stride: Pair | None = None
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = True

    def inputs(self, seed: int = 0) -> dict[str, Any]:
        """Deterministic float64 keyword arguments (small integers, so the numbers are readable)."""
        generator = torch.Generator().manual_seed(seed)
        x = torch.randint(-9, 10, (1, 1, self.h, self.w), generator=generator).to(torch.float64)
        args: dict[str, Any] = dict(input=x, kernel_size=self.kernel, stride=self.stride, padding=self.padding)
        if self.kind == "max":
            args.update(dilation=self.dilation, ceil_mode=self.ceil_mode)
        else:
            args.update(ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)
        return args

    @property
    def strides(self) -> Pair:
        return self.kernel if self.stride is None else self.stride

    @property
    def dilations(self) -> Pair:
        return self.dilation if self.kind == "max" else (1, 1)

    def torch_result(self) -> torch.Tensor | Exception:
        """torch's output for :meth:`inputs`, or the exception torch raises."""
        function = F.max_pool2d if self.kind == "max" else F.avg_pool2d
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return function(**self.inputs())
        except Exception as error:  # shown to the learner: torch's refusals are part of the lesson  # noqa: BLE001
            return error

    def sizes(self, ceil_rule: bool = True) -> Pair:
        """Output size per axis from the arithmetic (``ceil_rule=False``: ceil without the last-window rule)."""
        sizes = []
        for length, k, s, p, d in zip((self.h, self.w), self.kernel, self.strides, self.padding, self.dilations):
            size = pool_output_size(length, k, s, p, d, self.ceil_mode)
            if self.ceil_mode and not ceil_rule:
                size = -(-(length + 2 * p - d * (k - 1) - 1) // s) + 1
            sizes.append(size)
        return (sizes[0], sizes[1])

    def taps(self, i: int, j: int) -> list[Pair]:
        """(row, column) in the unpadded input of each window tap of output pixel (i, j)."""
        (sh, sw), (ph, pw), (dh, dw) = self.strides, self.padding, self.dilations
        return [
            (i * sh - ph + a * dh, j * sw - pw + b * dw) for a in range(self.kernel[0]) for b in range(self.kernel[1])
        ]

    def call_text(self) -> str:
        name = "F.max_pool2d" if self.kind == "max" else "F.avg_pool2d"
        extra = f"dilation={self.dilation}" if self.kind == "max" else f"count_include_pad={self.count_include_pad}"
        return (
            f"{name}(x: (1, 1, {self.h}, {self.w}), kernel_size={self.kernel}, stride={self.stride}, "
            f"padding={self.padding}, {extra}, ceil_mode={self.ceil_mode})"
        )

    def formula(self) -> str:
        parts = []
        for axis, length, k, s, p, d in zip(
            "HW", (self.h, self.w), self.kernel, self.strides, self.padding, self.dilations
        ):
            rounding = "⌈" if self.ceil_mode else "⌊"
            closing = "⌉" if self.ceil_mode else "⌋"
            parts.append(f"{axis}_out = {rounding}({length} + 2·{p} − {d * (k - 1) + 1}) / {s}{closing} + 1")
        text = "     ".join(parts)
        if self.ceil_mode and self.sizes(False) != self.sizes():
            text += "  → the last window would start on the right padding: dropped"
        return text


def learner_verdict(call: PoolCall, function: Callable | None) -> str:
    """The grader's verdict on the learner's function for this call ('' without one)."""
    name = "max_pool2d" if call.kind == "max" else "avg_pool2d"
    return grader_verdict(name, function, call.inputs(), call.torch_result)


def draw(
    call: PoolCall,
    pixel: int = 0,
    function: Callable | None = None,
    verdict: str | None = None,
    figure: Figure | None = None,
) -> Figure:
    """The padded input with the values and the window of one output pixel, the output, and the verdict.
    ``figure``: one this function drew before, redrawn on the same axes when torch's outcome is of the same
    kind (an output, or an error: see :func:`convcourse.widgets.in_place`)."""
    result = call.torch_result()
    x = call.inputs()["input"][0, 0]
    layout = ("pooling", isinstance(result, Exception))
    fig, (ax_in, ax_out, ax_text) = input_output_text_axes(figure, layout, [1.3, 1], [4, 1.3])
    ph, pw = (max(p, 0) for p in call.padding)
    rows, cols = call.h + 2 * ph, call.w + 2 * pw
    ax_in.add_patch(
        patches.Rectangle((-0.5 - pw, -0.5 - ph), cols, rows, facecolor=COLORS["padding"], edgecolor="none")
    )
    ax_in.add_patch(patches.Rectangle((-0.5, -0.5), call.w, call.h, facecolor="#DCE6F2", edgecolor=COLORS["input"]))
    grid_lines(ax_in, rows, cols, ph, pw, COLORS["input"])
    ys, xs = np.mgrid[0 : call.h, 0 : call.w]
    cell_labels(ax_in, xs.ravel(), ys.ravel(), [f"{int(v)}" for v in x.flatten().tolist()], fontsize=7)
    ax_in.set_xlim(-0.6 - pw, call.w + pw - 0.4)
    ax_in.set_ylim(call.h + ph - 0.4, -0.6 - ph)
    ax_in.set_aspect("equal")
    index_labels(ax_in, range(-pw, call.w + pw), range(-ph, call.h + ph))
    pad_word = "grey padding is -inf" if call.kind == "max" else "grey padding counts as 0"
    if isinstance(result, Exception):
        ax_in.set_title(f"input {call.h}×{call.w} ({pad_word})", fontsize=10)
        ax_out.set_axis_off()
        ax_out.text(0.5, 0.5, f"torch raises\n{type(result).__name__}", ha="center", va="center", fontsize=12,
                    color=COLORS["highlight"], transform=ax_out.transAxes)  # fmt: skip
        status = f"torch: {type(result).__name__}: {str(result).splitlines()[0]}"
    else:
        out_h, out_w = result.shape[-2:]
        pixel = min(max(pixel, 0), out_h * out_w - 1)
        i, j = divmod(pixel, out_w)
        taps = call.taps(i, j)
        inside = [(r, c) for r, c in taps if 0 <= r < call.h and 0 <= c < call.w]
        ax_in.plot([c for _, c in taps], [r for r, _ in taps], "s", ms=13, mfc="none", mec=COLORS["kernel"], mew=1.8)
        if inside:
            ax_in.plot([c for _, c in inside], [r for r, _ in inside], "s", ms=13, color=COLORS["kernel"], alpha=0.45)
        ax_in.set_title(f"input {call.h}×{call.w} ({pad_word}): the window of out[{i}, {j}]", fontsize=10)
        ax_out.imshow(np.ones((out_h, out_w)), cmap="Greens", vmin=0, vmax=4)
        ax_out.add_patch(patches.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=COLORS["highlight"], alpha=0.6))
        grid_lines(ax_out, out_h, out_w, 0, 0, COLORS["output"])
        oy, ox = np.mgrid[0:out_h, 0:out_w]
        values = result[0, 0].flatten().tolist()
        cell_labels(ax_out, ox.ravel(), oy.ravel(), [f"{v:.3g}" for v in values], fontsize=7)
        ax_out.set_xlim(-0.6, max(out_w, cols) - 0.4)
        ax_out.set_ylim(max(out_h, rows) - 0.4, -0.6)
        ax_out.set_aspect("equal")
        index_labels(ax_out, range(out_w), range(out_h), bottom=out_h - 0.5)
        ax_out.set_title(f"output {out_h}×{out_w}", fontsize=10)
        status = f"torch: output shape {tuple(result.shape)}     " + call.formula()
    ax_text.set_axis_off()
    if verdict is None:
        verdict = learner_verdict(call, function)
    lines = [call.call_text(), status] + (textwrap.wrap(verdict, 150, max_lines=4, placeholder=" …") if verdict else [])
    colors = ["black", COLORS["highlight"] if isinstance(result, Exception) else "black"]
    colors += [("black" if "✓" in verdict else COLORS["highlight"])] * (len(lines) - 2)
    for k, (line, color) in enumerate(zip(lines, colors)):
        ax_text.text(0.0, 1.0 - 0.2 * k, line, fontsize=8, va="top", family="monospace" if k == 0 else None,
                     color=color, transform=ax_text.transAxes)  # fmt: skip
    fig.subplots_adjust(left=0.04, right=0.99, top=0.93, bottom=0.02, wspace=0.12, hspace=0.3)
    return fig


def pooling_widget(max_pool2d: Callable | None = None, avg_pool2d: Callable | None = None) -> FigureView:
    """Every pooling argument as a control; with the learner's functions, each call is graded too."""

    def slider(name: str, value: int, low: int, high: int, width: str = "160px") -> widgets.IntSlider:
        return widgets.IntSlider(value=value, min=low, max=high, description=name, continuous_update=False,
                                 style={"description_width": "40px"}, layout=widgets.Layout(width=width))  # fmt: skip

    controls = {
        "kind": widgets.ToggleButtons(options=[("max", "max"), ("avg", "avg")], value="max"),
        "h": slider("H", 7, 1, 9),
        "w": slider("W", 7, 1, 9),
        "kh": slider("kH", 2, 1, 4),
        "kw": slider("kW", 2, 1, 4),
        "stride": widgets.Dropdown(
            options=[("None", None), ("1", (1, 1)), ("2", (2, 2)), ("3", (3, 3)), ("(1, 2)", (1, 2)), ("0", (0, 0))],
            value=None,
            description="stride",
            layout=widgets.Layout(width="160px"),
        ),
        "ph": slider("pH", 0, 0, 3),
        "pw": slider("pW", 0, 0, 3),
        "dilation": slider("dil", 1, 1, 3),
        "ceil_mode": widgets.Checkbox(value=False, description="ceil_mode", indent=False),
        "count_include_pad": widgets.Checkbox(value=True, description="count_include_pad", indent=False),
        "pixel": slider("pixel", 0, 0, 80, width="260px"),
    }
    verdicts: dict[PoolCall, str] = {}

    def render(kind, h, w, kh, kw, stride, ph, pw, dilation, ceil_mode, count_include_pad, pixel, figure):
        call = PoolCall(kind, h, w, (kh, kw), stride, (ph, pw), (dilation, dilation), ceil_mode, count_include_pad)
        controls["dilation"].disabled = kind == "avg"
        controls["count_include_pad"].disabled = kind == "max"
        result = call.torch_result()
        if not isinstance(result, Exception):
            controls["pixel"].max = max(result.shape[-2] * result.shape[-1] - 1, 0)
        function = max_pool2d if kind == "max" else avg_pool2d
        if function is not None and call not in verdicts:
            verdicts[call] = learner_verdict(call, function)
        return draw(call, min(pixel, controls["pixel"].max), verdict=verdicts.get(call, ""), figure=figure)

    return FigureView(
        in_place(render),
        controls,
        title="Pooling: one window per output pixel",
        description="Orange: the window of the red output pixel (hollow squares fall on padding). Try padding "
        "larger than half the kernel, ceil_mode with a stride of 3, or stride None (the kernel size).",
    )
