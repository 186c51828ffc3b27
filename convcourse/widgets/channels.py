"""Lesson 03 widget: how every input channel, through its own kernel slice, feeds one output channel."""

from __future__ import annotations

import dataclasses
from typing import Callable

import ipywidgets as w
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from . import FigureView, checked_call, in_place, learner_panel, picture

CHANNEL_NAMES = ("red", "green", "blue")


def filter_bank(dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Four hand-made 3×3 filters for RGB input, each of shape (3, 3, 3) = (in_channels, kH, kW)."""
    sobel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    centre = torch.zeros(3, 3)
    centre[1, 1] = 1.0
    bank = {
        "vertical edges (all colours)": torch.stack([sobel, sobel, sobel]) / 3,
        "horizontal edges (all colours)": torch.stack([sobel.T, sobel.T, sobel.T]) / 3,
        "red minus green": torch.stack([centre, -centre, torch.zeros(3, 3)]),
        "brightness blur": torch.full((3, 3, 3), 1 / 27),
    }
    return {name: k.to(dtype) for name, k in bank.items()}


def show_filter_bank(bank: dict[str, torch.Tensor], names: tuple[str, ...] = CHANNEL_NAMES) -> plt.Figure:
    """The filters of a layer as a grid: one row per filter (output channel), one column per input
    channel, each cell the kH×kW kernel ``weight[o, c]`` with its numbers written in (one colour scale
    for all: red positive, blue negative)."""
    filters = list(bank.values())
    if not filters or any(f.ndim != 3 or f.shape != filters[0].shape for f in filters):
        raise ValueError("bank must map names to filters of one shape (in_channels, kH, kW)")
    rows, cols = len(filters), filters[0].shape[0]
    kh, kw = filters[0].shape[1:]
    fig, axes = plt.subplots(rows, cols, figsize=(0.5 * kw * cols + 2.6, 0.5 * kh * rows + 0.8), squeeze=False)
    limit = max(float(f.abs().max()) for f in filters) or 1.0
    for o, (name, f) in enumerate(bank.items()):
        for c in range(cols):
            ax = axes[o, c]
            kernel = f[c].double()
            ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
            for a in range(kh):
                for b in range(kw):
                    v = float(kernel[a, b]) + 0.0  # no "-0"
                    ax.text(
                        b,
                        a,
                        f"{v:.2g}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if abs(v) > 0.6 * limit else "black",
                    )
            ax.set_xticks([])
            ax.set_yticks([])
            channel = f"\n{names[c] if c < len(names) else f'channel {c}'}" if o == 0 else ""
            ax.set_title(f"weight[{o}, {c}]{channel}", fontsize=8)
        axes[o, 0].set_ylabel(f"{o}: {name}", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(f"weight of shape {(rows, cols, kh, kw)} = (out_channels, in_channels, kH, kW)", fontsize=10)
    fig.tight_layout()
    return fig


@dataclasses.dataclass
class ChannelMixer:
    """One conv layer on a (C, H, W) image: per-input-channel contributions to each output channel."""

    image: torch.Tensor  # (C, H, W)
    weight: torch.Tensor  # (O, C, kH, kW)
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.weight.ndim != 4:
            raise ValueError("image must be (C, H, W) and weight (O, C, kH, kW)")
        if self.image.shape[0] != self.weight.shape[1]:
            raise ValueError(f"weight expects {self.weight.shape[1]} input channels, image has {self.image.shape[0]}")

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def contributions(self, o: int) -> torch.Tensor:
        """(C, H', W'): input channel c correlated with weight[o, c]."""
        if not 0 <= o < self.out_channels:
            raise ValueError(f"output channel must be in 0..{self.out_channels - 1}, got {o}")
        # A depthwise convolution keeps the channels apart: channel c meets only weight[o, c].
        return F.conv2d(self.image[None], self.weight[o].unsqueeze(1), groups=self.image.shape[0])[0]

    def output(self, o: int) -> torch.Tensor:
        """Output channel o: the sum of the contributions (what Conv2d computes, without bias)."""
        return self.contributions(o).sum(0)


def draw(model: ChannelMixer, o: int, learner: Callable | None = None, figure: Figure | None = None) -> Figure:
    """Every input channel, its contribution to output channel ``o`` and their sum (and the learner's
    result). ``figure``: one drawn before for the same model and learner, updated in place (the input
    photos are drawn once; see :func:`convcourse.widgets.in_place`)."""
    parts = model.contributions(o)
    c = parts.shape[0]
    extra = 1 if learner is not None else 0
    drawn_for = getattr(figure, "_convcourse_channels", (None, None))
    if drawn_for[0] is not model or drawn_for[1] is not learner:
        figure = _layout(model, learner)
    axes = figure._convcourse_axes
    limit = float(parts.abs().max()) or 1.0
    for i in range(c):
        _show(axes[1, i], parts[i], limit)
        axes[1, i].set_title(f"⋆ weight[{o}, {i}]")
    total = parts.sum(0)
    tl = float(total.abs().max()) or 1.0
    _show(axes[1, c], total, tl)
    axes[1, c].set_title(f"= output channel {o}")
    kernels = model.weight[o]
    kl = float(kernels.abs().max()) or 1.0
    _show(axes[0, c], torch.cat([torch.cat([k, torch.full((k.shape[0], 1), float("nan"))], 1) for k in kernels], 1), kl)
    axes[0, c].set_title(f"weight[{o}]: one slice per input", fontsize=9)
    if extra:
        ax = axes[1, c + 1]
        with learner_panel(ax, "conv2d_channels"):
            ok, mine = checked_call("conv2d_channels", learner, x=model.image[None], weight=model.weight)
            _show(ax, torch.as_tensor(mine)[0, o].to(total.dtype), tl)
            ax.set_title("your conv2d_channels " + ("✓" if ok else "✗ differs"))
    return figure


def _layout(model: ChannelMixer, learner: Callable | None) -> Figure:
    """The widget's figure without the pictures that depend on the output channel: the input photos, the
    titles that stay, empty panels for the rest."""
    c = model.image.shape[0]
    extra = 1 if learner is not None else 0
    # dpi 90: eight to ten photo panels; the PNG's pixel count is most of a redraw's cost (≤ 100 ms target).
    # A Figure outside pyplot: the widget keeps it and updates it in place.
    fig = Figure(figsize=(2.4 * (c + 1 + extra), 5.0), dpi=90)
    axes = fig.subplots(2, c + 1 + extra, squeeze=False)
    for i in range(c):
        name = model.names[i] if i < len(model.names) else f"channel {i}"
        axes[0, i].imshow(model.image[i], cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(f"input: {name}")
    if extra:
        axes[0, c + 1].set_axis_off()
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "Each input channel is correlated with its own slice of the kernel; the results are summed.", fontsize=10
    )
    fig.subplots_adjust(
        left=0.01, right=0.99, top=0.85, bottom=0.02, hspace=0.25, wspace=0.08
    )  # fixed: faster than tight_layout
    fig._convcourse_channels = (model, learner)
    fig._convcourse_axes = axes
    return fig


def _show(ax: plt.Axes, values: torch.Tensor, limit: float) -> None:
    """``values`` in ``ax``'s picture, blue (-limit) to red (+limit), clearing a message that
    :func:`learner_panel` left there on an earlier redraw."""
    if ax.texts:
        ax.cla()
        ax.set_xticks([])
        ax.set_yticks([])
    picture(ax, values, vmin=-limit, vmax=limit)


class CallOnce:
    """Wrap a function so that it runs once: later calls return (or raise) the first call's result.

    The widget passes the same image and weight on every redraw, and the learner's loops over a whole
    photo take longer than a redraw may, so their answer (all output channels at once) is kept."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.calls = 0
        self._done = False
        self._result = None
        self._error: BaseException | None = None

    def __call__(self, *args, **kwargs):
        if not self._done:
            self.calls += 1
            try:
                self._result = self.fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001
                self._error = error
            self._done = True
        if self._error is not None:
            raise self._error
        return self._result


def channels_widget(
    image: torch.Tensor,
    weight: torch.Tensor | None = None,
    names: tuple[str, ...] = CHANNEL_NAMES,
    conv2d_channels: Callable | None = None,
) -> FigureView:
    """Pick an output channel and see how the input channels add up to it."""
    filter_names = None
    if weight is None:
        bank = filter_bank(image.dtype)
        weight, filter_names = torch.stack(list(bank.values())), list(bank)
    model = ChannelMixer(image, weight.to(image.dtype), names)
    labels = (
        [(f"{o}: {n}", o) for o, n in enumerate(filter_names)]
        if filter_names
        else [(str(o), o) for o in range(model.out_channels)]
    )
    choice = w.Dropdown(options=labels, value=0, description="output")
    learner = CallOnce(conv2d_channels) if conv2d_channels is not None else None
    return FigureView(
        in_place(lambda o, figure: draw(model, o, learner, figure)),
        {"o": choice},
        title="Channels add up",
        description="weight[o, c] is the kernel that output channel o applies to input channel c.",
    )
