"""Lesson 10 widget: build a Conv2d layer from controls; see its parameters, repr and output on a photo.

Pure part: :func:`layer_summary` (builds the layer with a fixed seed and describes it, or returns
the error torch would raise). View: :func:`draw` and :func:`layer_widget`.
"""

from __future__ import annotations

from typing import Any, Callable

import ipywidgets as w
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import nn

from ..data import load_image
from ..plots import to_numpy
from . import FigureView, in_place, picture

PADDINGS = {"0": 0, "1": 1, "2": 2, "(1, 2)": (1, 2), "same": "same", "valid": "valid"}


def build_layer(layer_class: Callable[..., nn.Module] | None, seed: int = 0, **kwargs: Any) -> tuple[nn.Module, str]:
    """(layer, who built it): the learner's class when it works, else nn.Conv2d."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if layer_class is not None:
            try:
                return layer_class(**kwargs), "your Conv2d"
            except NotImplementedError:
                pass
        torch.manual_seed(seed)
        return nn.Conv2d(**kwargs), "nn.Conv2d (yours is not implemented yet)" if layer_class else "nn.Conv2d"


def layer_summary(
    in_channels: int = 3,
    out_channels: int = 4,
    kernel_size: int = 3,
    stride: int = 1,
    padding: Any = 0,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
    padding_mode: str = "zeros",
    input_size: tuple[int, int] = (64, 64),
    layer_class: Callable[..., nn.Module] | None = None,
) -> dict[str, Any]:
    """Describe the layer built from these arguments: parameters, count, repr, output shape; or the error."""
    kwargs = dict(
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bias,
        padding_mode=padding_mode,
    )
    try:
        layer, built_by = build_layer(layer_class, **kwargs)
    except Exception as error:  # noqa: BLE001
        return {"error": f"{type(error).__name__}: {error}", "built_by": None}
    parameters = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    summary = {
        "error": None,
        "built_by": built_by,
        "layer": layer,
        "repr": repr(layer),
        "parameters": parameters,
        "count": sum(p.numel() for p in layer.parameters()),
    }
    try:
        with torch.no_grad():
            out = layer(torch.zeros(1, in_channels, *input_size))
        summary["output_shape"] = tuple(out.shape)
    except Exception as error:  # noqa: BLE001
        summary["error"] = f"forward: {type(error).__name__}: {error}"
    return summary


def draw(summary: dict[str, Any], image: torch.Tensor, channels_shown: int = 4, figure: Figure | None = None) -> Figure:
    """The photo, up to ``channels_shown`` output channels, and a text panel with repr and shapes.
    ``figure``: one drawn before for the same photo, updated in place when it has as many channel panels as
    this layer needs (see :func:`convcourse.widgets.in_place`)."""
    out, message = None, None
    if summary["error"] is not None and "layer" not in summary:
        message = "Invalid arguments:\n" + _wrap(summary["error"])
    else:
        layer = summary["layer"]
        lines = [f"built by: {summary['built_by']}", "", _wrap(summary["repr"]), ""]
        lines += [f"{name}: {shape}" for name, shape in summary["parameters"].items()]
        lines += [f"parameters: {summary['count']:,}"]
        try:
            with torch.no_grad():
                out = layer(image[None].to(layer.weight.dtype))[0]
            lines += [f"output: {tuple(out.shape)}"]
        except Exception as error:  # noqa: BLE001
            lines += ["", "forward raised:", _wrap(f"{type(error).__name__}: {error}")]
    panels = 0 if out is None else min(channels_shown, out.shape[0])
    drawn_for = getattr(figure, "_convcourse_layer", (None,))
    if drawn_for[0] is not image or drawn_for[1:] != (channels_shown, panels):
        figure = _layout(image, channels_shown, panels)
    text = figure._convcourse_text
    if message is not None:
        text.set(text=message, fontsize=9, color="#C44E52", family=plt.rcParams["font.family"])
    else:
        text.set(text="\n".join(lines), fontsize=8.5, color="black", family="monospace")
    for k, ax in enumerate(figure.axes[2:]):
        channel = out[k].numpy()
        limit = float(abs(channel).max()) or 1.0
        picture(ax, channel, vmin=-limit, vmax=limit)
    return figure


def _layout(image: torch.Tensor, channels_shown: int, panels: int) -> Figure:
    """The photo, an empty text panel (label "summary") and ``panels`` empty output-channel panels."""
    # A Figure outside pyplot: the widget keeps it and updates it in place.
    fig = Figure(figsize=(12, 3.6))
    grid = fig.add_gridspec(1, channels_shown + 2, width_ratios=[1] * (channels_shown + 1) + [1.8])
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(to_numpy(image).clip(0, 1))
    ax.set_title(f"input {tuple(image.shape)}")
    ax.set_axis_off()
    text = fig.add_subplot(grid[0, -1], label="summary")
    text.set_axis_off()
    fig._convcourse_text = text.text(0, 0.5, "", va="center")
    for k in range(panels):
        ax = fig.add_subplot(grid[0, k + 1])
        ax.set_title(f"out channel {k}")
        ax.set_axis_off()
    # Fixed margins, not a layout pass per redraw (the panels are pictures without axes).
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.03, top=0.9, wspace=0.08)
    fig._convcourse_layer = (image, channels_shown, panels)
    return fig


def _wrap(text: str, width: int = 40) -> str:
    """``text`` in lines that fit the text panel at the widest a view renders (``MAX_WIDTH_PX``): a longer line
    would stick out of the canvas and cost a second, cropped rendering of every redraw."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def layer_widget(layer_class: Callable[..., nn.Module] | None = None, image: torch.Tensor | None = None) -> FigureView:
    """Build a layer from controls (your class when it works) and run it on a photo."""
    if image is None:
        image = load_image("chelsea", size=64).float()
    in_channels = image.shape[0]
    controls = {
        "out_channels": w.IntSlider(value=4, min=1, max=8, description="out_channels"),
        "kernel_size": w.IntSlider(value=3, min=1, max=7, description="kernel_size"),
        "stride": w.IntSlider(value=1, min=1, max=3, description="stride"),
        "padding": w.Dropdown(options=list(PADDINGS), value="1", description="padding"),
        "dilation": w.IntSlider(value=1, min=1, max=3, description="dilation"),
        "groups": w.Dropdown(options=[1, 3], value=1, description="groups"),
        "padding_mode": w.Dropdown(
            options=["zeros", "reflect", "replicate", "circular"], value="zeros", description="padding_mode"
        ),
        "bias": w.Checkbox(value=True, description="bias"),
    }

    def view(out_channels, kernel_size, stride, padding, dilation, groups, padding_mode, bias, figure):
        summary = layer_summary(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            PADDINGS[padding],
            dilation,
            groups,
            bias,
            padding_mode,
            tuple(image.shape[-2:]),
            layer_class,
        )
        return draw(summary, image, figure=figure)

    return FigureView(
        in_place(view),
        controls,
        title="Build a Conv2d layer",
        description="Random (freshly initialised) weights, fixed seed. Invalid combinations show "
        "the error torch raises.",
    )
