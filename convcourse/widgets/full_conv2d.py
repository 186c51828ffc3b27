"""Lesson 08 widget: every argument of F.conv2d at once on a small input, the taps one output pixel reads,
torch's answer (or its error) and, when given, the learner's ``conv2d`` graded on the same call."""

from __future__ import annotations

import dataclasses
import textwrap
import warnings
from typing import Any, Callable

import ipywidgets as widgets
import matplotlib.colors
import matplotlib.patches as patches
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..geometry import Pair, pads
from ..plots import COLORS, grid_lines, index_labels
from . import FigureView, grader_verdict, in_place, input_output_text_axes

Padding = int | Pair | str


@dataclasses.dataclass(frozen=True)
class ConvCall:
    """One F.conv2d call on an (N=1, C, H, W) input with a (O, C/groups, kH, kW) weight."""

    h: int = 7
    w: int = 8
    kh: int = 3
    kw: int = 3
    stride: Pair = (1, 1)
    padding: Padding = 0
    dilation: Pair = (1, 1)
    groups: int = 1
    bias: bool = True
    in_channels: int = 4
    out_channels: int = 4

    def inputs(self, seed: int = 0) -> dict[str, Any]:
        """Deterministic float64 arguments for this call (as keyword arguments of F.conv2d)."""
        generator = torch.Generator().manual_seed(seed)
        per_group = max(self.in_channels // max(self.groups, 1), 1)
        args: dict[str, Any] = {
            "input": torch.randn(1, self.in_channels, self.h, self.w, generator=generator, dtype=torch.float64),
            "weight": torch.randn(
                self.out_channels, per_group, self.kh, self.kw, generator=generator, dtype=torch.float64
            ),
            "bias": torch.randn(self.out_channels, generator=generator, dtype=torch.float64) if self.bias else None,
        }
        args.update(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)
        return args

    def torch_result(self) -> torch.Tensor | Exception:
        """torch's output for :meth:`inputs`, or the exception torch raises."""
        try:
            with warnings.catch_warnings():  # e.g. torch's note that 'same' with an even kernel copies the input
                warnings.simplefilter("ignore")
                return F.conv2d(**self.inputs())
        except Exception as error:  # shown to the learner: this is the lesson about torch's errors  # noqa: BLE001
            return error

    def pads(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) zero padding, with 'same' split the way torch splits it."""
        return pads(self.padding, (self.kh, self.kw), self.dilation)

    @property
    def padded_shape(self) -> Pair:
        left, right, top, bottom = self.pads()
        return (self.h + top + bottom, self.w + left + right)

    @property
    def span(self) -> Pair:
        """Rows and columns one dilated kernel covers: dilation·(k − 1) + 1."""
        return (self.dilation[0] * (self.kh - 1) + 1, self.dilation[1] * (self.kw - 1) + 1)

    @property
    def out_shape(self) -> Pair:
        """floor((padded − span) / stride) + 1 per axis (meaningful only when torch accepts the call)."""
        (ph, pw), (sh, sw) = self.padded_shape, self.stride
        return ((ph - self.span[0]) // sh + 1, (pw - self.span[1]) // sw + 1)

    def input_channels_of(self, o: int) -> range:
        """The input channels output channel ``o`` reads: those of its group."""
        per_in, per_out = self.in_channels // self.groups, self.out_channels // self.groups
        group = o // per_out
        return range(group * per_in, (group + 1) * per_in)

    def taps(self, i: int, j: int) -> list[Pair]:
        """(row, column) in the *unpadded* input of each kernel tap of output pixel (i, j); rows or columns
        outside 0..H-1 / 0..W-1 fall on padding."""
        left, _, top, _ = self.pads()
        r0, c0 = i * self.stride[0] - top, j * self.stride[1] - left
        return [(r0 + a * self.dilation[0], c0 + b * self.dilation[1]) for a in range(self.kh) for b in range(self.kw)]

    def call_text(self) -> str:
        padding = repr(self.padding)
        bias = "bias" if self.bias else "None"
        return (
            f"F.conv2d(x: (1, {self.in_channels}, {self.h}, {self.w}), weight: ({self.out_channels}, "
            f"{max(self.in_channels // max(self.groups, 1), 1)}, {self.kh}, {self.kw}), {bias}, stride={self.stride}, "
            f"padding={padding}, dilation={self.dilation}, groups={self.groups})"
        )

    def formula(self) -> str:
        left, right, top, bottom = self.pads()
        (ph, pw), (sh, sw), (eh, ew) = self.padded_shape, self.stride, self.span
        return (
            f"H_out = ⌊({self.h} + {top} + {bottom} − {eh}) / {sh}⌋ + 1 = {(ph - eh) // sh + 1}     "
            f"W_out = ⌊({self.w} + {left} + {right} − {ew}) / {sw}⌋ + 1 = {(pw - ew) // sw + 1}"
        )


def learner_verdict(call: ConvCall, conv2d: Callable | None) -> str:
    """The grader's verdict on ``conv2d`` for this call: '' without a function, else a ✓ line or the
    grader's message (which also covers raising the same exception type as torch)."""
    return grader_verdict("conv2d", conv2d, call.inputs(), call.torch_result)


def draw(
    call: ConvCall,
    o: int = 0,
    pixel: int = 0,
    conv2d: Callable | None = None,
    verdict: str | None = None,
    figure: Figure | None = None,
) -> Figure:
    """Padded input with the taps of one output pixel, the output grid, torch's answer and the verdict.
    ``figure``: one this function drew before, redrawn on the same axes when torch's outcome is of the same
    kind (an output, or an error: see :func:`convcourse.widgets.in_place`)."""
    result = call.torch_result()
    layout = ("conv2d", isinstance(result, Exception))
    fig, (ax_in, ax_out, ax_text) = input_output_text_axes(figure, layout, [1.35, 1], [4, 1.25])
    left, right, top, bottom = (max(p, 0) for p in call.pads())
    ph, pw = call.h + top + bottom, call.w + left + right
    background = np.tile(np.array(matplotlib.colors.to_rgb(COLORS["padding"])), (ph, pw, 1))
    background[top : top + call.h, left : left + call.w] = matplotlib.colors.to_rgb("#BFD3EA")
    ax_in.imshow(background, extent=(-0.5 - left, pw - 0.5 - left, ph - 0.5 - top, -0.5 - top))
    grid_lines(ax_in, ph, pw, top, left, COLORS["input"])
    if top or left or bottom or right:
        ax_in.add_patch(patches.Rectangle((-0.5, -0.5), call.w, call.h, fill=False, lw=1.6, edgecolor=COLORS["input"]))
    ax_in.set_xlim(-0.6 - left, pw - 0.4 - left)
    ax_in.set_ylim(ph - 0.4 - top, -0.6 - top)
    ax_in.set_aspect("equal")
    index_labels(ax_in, range(-left, call.w + right), range(-top, call.h + bottom))
    if isinstance(result, Exception):
        out_h = out_w = 0
        ax_in.set_title(f"input {call.h}×{call.w}" + (" (grey: padding)" if ph > call.h or pw > call.w else ""))
        ax_out.set_axis_off()
        ax_out.text(
            0.5,
            0.5,
            f"torch raises\n{type(result).__name__}",
            ha="center",
            va="center",
            fontsize=12,
            color=COLORS["highlight"],
            transform=ax_out.transAxes,
        )
        status = f"torch: {type(result).__name__}: {str(result).splitlines()[0]}"
    else:
        out_h, out_w = result.shape[-2:]
        pixel = min(max(pixel, 0), out_h * out_w - 1)
        i, j = divmod(pixel, out_w)
        o = min(max(o, 0), call.out_channels - 1)
        taps = call.taps(i, j)
        rows, cols = zip(*taps)
        on_input = [(r, c) for r, c in taps if 0 <= r < call.h and 0 <= c < call.w]
        ax_in.plot(cols, rows, "s", ms=7, mfc="none", mec=COLORS["kernel"], mew=1.8)
        if on_input:
            ax_in.plot([c for _, c in on_input], [r for r, _ in on_input], "s", ms=7, color=COLORS["kernel"], alpha=0.8)
        channels = call.input_channels_of(o)
        ax_in.set_title(
            f"input {call.h}×{call.w}, padded {ph}×{pw}: the {len(taps)} taps of out[{o}, {i}, {j}]", fontsize=10
        )
        ax_in.set_xlabel(
            f"out[{o}] reads input channels {channels.start}..{channels.stop - 1} "
            f"(groups={call.groups}); hollow taps fall on padding",
            fontsize=8,
        )
        ax_out.imshow(np.ones((out_h, out_w)), cmap="Greens", vmin=0, vmax=4)
        ax_out.add_patch(patches.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=COLORS["highlight"], alpha=0.85))
        grid_lines(ax_out, out_h, out_w, 0, 0, COLORS["output"])
        ax_out.set_xlim(-0.6, max(out_w, pw) - 0.4)  # the padded input's scale: the output's size compares
        ax_out.set_ylim(max(out_h, ph) - 0.4, -0.6)
        ax_out.set_aspect("equal")
        index_labels(ax_out, range(out_w), range(out_h), bottom=out_h - 0.5)
        value = float(result[0, o, i, j])
        ax_out.set_title(f"output {out_h}×{out_w} (channel {o} of {call.out_channels})", fontsize=10)
        ax_out.set_xlabel(f"out[{o}, {i}, {j}] = {value:.4g}" + (" (bias included)" if call.bias else ""), fontsize=8)
        status = f"torch: output shape {tuple(result.shape)}     " + call.formula()
    ax_text.set_axis_off()
    if verdict is None:
        verdict = learner_verdict(call, conv2d)
    lines = [call.call_text(), status]
    if verdict:
        lines += textwrap.wrap(verdict, 150, max_lines=4, placeholder=" …")
    colors = ["black", COLORS["highlight"] if isinstance(result, Exception) else "black"]
    colors += [("black" if "✓" in verdict else COLORS["highlight"])] * (len(lines) - 2)
    for k, (line, color) in enumerate(zip(lines, colors)):
        ax_text.text(
            0.0,
            1.0 - 0.2 * k,
            line,
            fontsize=8,
            va="top",
            family="monospace" if k == 0 else None,
            color=color,
            transform=ax_text.transAxes,
        )
    fig.subplots_adjust(left=0.04, right=0.99, top=0.93, bottom=0.02, wspace=0.12, hspace=0.3)
    return fig


PADDINGS: list[tuple[str, Padding]] = [
    ("0", 0),
    ("1", 1),
    ("2", 2),
    ("(1, 0)", (1, 0)),
    ("(0, 2)", (0, 2)),
    ("'same'", "same"),
    ("'valid'", "valid"),
    ("-1", -1),
]


def conv2d_widget(conv2d: Callable | None = None, in_channels: int = 4, out_channels: int = 4) -> FigureView:
    """Every F.conv2d argument as a control. With ``conv2d`` (yours), each call is also graded."""

    def slider(name: str, value: int, low: int, high: int, width: str = "170px") -> widgets.IntSlider:
        return widgets.IntSlider(
            value=value,
            min=low,
            max=high,
            description=name,
            continuous_update=False,
            style={"description_width": "40px"},
            layout=widgets.Layout(width=width),
        )

    group_options = [
        g for g in range(1, min(in_channels, out_channels) + 1) if in_channels % g == 0 and out_channels % g == 0
    ]
    controls = {
        "h": slider("H", 7, 1, 10),
        "w": slider("W", 8, 1, 10),
        "kh": slider("kH", 3, 1, 5),
        "kw": slider("kW", 3, 1, 5),
        "sh": slider("sH", 1, 0, 3),
        "sw": slider("sW", 1, 0, 3),
        "padding": widgets.Dropdown(
            options=PADDINGS, value=1, description="padding", layout=widgets.Layout(width="170px")
        ),
        "dh": slider("dH", 1, 1, 3),
        "dw": slider("dW", 1, 1, 3),
        "groups": widgets.Dropdown(
            options=group_options, value=1, description="groups", layout=widgets.Layout(width="150px")
        ),
        "bias": widgets.Checkbox(value=True, description="bias", indent=False, layout=widgets.Layout(width="70px")),
        "o": widgets.Dropdown(
            options=list(range(out_channels)), value=0, description="out ch", layout=widgets.Layout(width="140px")
        ),
        "pixel": slider("pixel", 0, 0, 99, width="260px"),
    }
    verdicts: dict[ConvCall, str] = {}  # the learner's function runs once per call, not once per redraw

    def render(h, w, kh, kw, sh, sw, padding, dh, dw, groups, bias, o, pixel, figure):
        call = ConvCall(h, w, kh, kw, (sh, sw), padding, (dh, dw), groups, bias, in_channels, out_channels)
        result = call.torch_result()
        if not isinstance(result, Exception):
            controls["pixel"].max = max(result.shape[-2] * result.shape[-1] - 1, 0)
        if conv2d is not None and call not in verdicts:
            verdicts[call] = learner_verdict(call, conv2d)
        return draw(call, o, min(pixel, controls["pixel"].max), verdict=verdicts.get(call, ""), figure=figure)

    return FigureView(
        in_place(render),
        controls,
        title="conv2d playground: every argument at once",
        description="Orange squares: the kernel taps that make the red output pixel (hollow ones fall on "
        "padding). Try stride 0, padding -1, 'same' with a stride, or a kernel larger than "
        "the input: torch refuses, and so should your conv2d.",
    )
