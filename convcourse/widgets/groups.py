"""Lesson 07 widget: which input channels feed which output channels, and what groups save."""

from __future__ import annotations

import dataclasses

import ipywidgets as w
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from . import FigureView, in_place, reused_axes

GROUP_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


@dataclasses.dataclass(frozen=True)
class GroupedConv:
    """Channel wiring and costs of a Conv2d(in_channels, out_channels, k, groups=groups)."""

    in_channels: int
    out_channels: int
    groups: int = 1
    kernel_size: int = 3

    def __post_init__(self) -> None:
        if self.groups < 1:
            raise ValueError("groups must be a positive integer")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"in_channels ({self.in_channels}) and out_channels ({self.out_channels}) must both "
                f"be divisible by groups ({self.groups})"
            )

    def group_of_output(self, o: int) -> int:
        return o // (self.out_channels // self.groups)

    def inputs_of(self, o: int) -> range:
        """The input channels that output channel o reads."""
        per = self.in_channels // self.groups
        g = self.group_of_output(o)
        return range(g * per, (g + 1) * per)

    def connections(self) -> list[tuple[int, int, int]]:
        """(input channel, output channel, group) for every wire."""
        return [(c, o, self.group_of_output(o)) for o in range(self.out_channels) for c in self.inputs_of(o)]

    def weights(self) -> int:
        return self.out_channels * (self.in_channels // self.groups) * self.kernel_size**2

    def macs_per_pixel(self) -> int:
        """Multiply-adds per output pixel position (all output channels)."""
        return self.weights()


def separable_weights(in_channels: int, out_channels: int, kernel_size: int = 3) -> int:
    """Depthwise (groups=in_channels) k×k conv followed by a 1×1 pointwise conv, without biases."""
    return in_channels * kernel_size**2 + in_channels * out_channels


def valid_groups(in_channels: int, out_channels: int) -> list[int]:
    return [g for g in range(1, min(in_channels, out_channels) + 1) if in_channels % g == 0 and out_channels % g == 0]


def draw(
    in_channels: int, out_channels: int, groups: int, kernel_size: int = 3, figure: Figure | None = None
) -> Figure:
    """The wires from input to output channels, and the layer's weights beside two alternatives. ``figure``:
    one this function drew before, redrawn on the same axes (see :func:`convcourse.widgets.in_place`)."""
    try:
        model = GroupedConv(in_channels, out_channels, groups, kernel_size)
    except ValueError as refusal:
        error: ValueError | None = refusal
    else:
        error = None
    layout = ("groups", error is None)
    axes = reused_axes(figure, layout)
    if axes is not None:
        fig, (wires, bars) = figure, axes
    else:
        # A Figure outside pyplot: the widget keeps it and redraws on its axes.
        fig = Figure(figsize=(10, 4.2))
        fig._convcourse_layout = layout
        wires, bars = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    if error is not None:
        wires.set_axis_off()
        bars.set_axis_off()
        wires.text(0.5, 0.5, f"torch refuses this layer:\n{error}", ha="center", va="center", wrap=True)
        return fig
    ys_in = [1 - (c + 0.5) / in_channels for c in range(in_channels)]
    ys_out = [1 - (o + 0.5) / out_channels for o in range(out_channels)]
    connections = model.connections()
    # One artist for all the wires (up to 256): a Line2D each made dense layers slow to redraw.
    wires.add_collection(
        LineCollection(
            [[(0, ys_in[c]), (1, ys_out[o])] for c, o, _ in connections],
            colors=[GROUP_COLORS[g % len(GROUP_COLORS)] for _, _, g in connections],
            linewidths=1.2,
            alpha=0.8,
        )
    )
    wires.scatter([0] * in_channels, ys_in, s=60, color="black", zorder=3)
    wires.scatter([1] * out_channels, ys_out, s=60, color="black", zorder=3)
    wires.text(0, 1.04, "input channels", ha="center")
    wires.text(1, 1.04, "output channels", ha="center")
    wires.set_xlim(-0.2, 1.2)
    wires.set_ylim(-0.05, 1.1)
    wires.set_axis_off()
    wires.set_title(f"groups={groups}: {len(connections)} wires, each a {kernel_size}×{kernel_size} kernel")
    dense = GroupedConv(in_channels, out_channels, 1, kernel_size).weights()
    labels = ["groups=1", f"this layer\n(groups={groups})", "depthwise +\n1×1 pointwise"]
    values = [dense, model.weights(), separable_weights(in_channels, out_channels, kernel_size)]
    colors = ["#8C8C8C", GROUP_COLORS[0], GROUP_COLORS[2]]
    bars.bar(range(3), values, color=colors)  # by position: two equal labels (groups=1) must stay two bars
    bars.set_xticks(range(3), labels)
    bars.set_ylim(0, max(values) * 1.1)  # room for the numbers above the bars
    for x, v in enumerate(values):
        bars.text(x, v, f"{v}", ha="center", va="bottom", fontsize=9)
    bars.set_ylabel("weights (= multiply-adds per output pixel)")
    bars.set_title("cost of the layer (no bias)")
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.15, top=0.91, wspace=0.22)  # fixed: tight_layout is slow
    return fig


def groups_widget(in_channels: int = 8, out_channels: int = 8) -> FigureView:
    """Choose channel counts and groups; see the wiring and the parameter counts."""
    c_in = w.IntSlider(value=in_channels, min=1, max=16, description="in_channels", continuous_update=False)
    c_out = w.IntSlider(value=out_channels, min=1, max=16, description="out_channels", continuous_update=False)
    groups = w.Dropdown(options=valid_groups(in_channels, out_channels), value=1, description="groups")

    def refresh_options(_change=None) -> None:
        options = valid_groups(c_in.value, c_out.value)
        groups.options = options
        if groups.value not in options:
            groups.value = 1

    c_in.observe(refresh_options, names="value")
    c_out.observe(refresh_options, names="value")
    return FigureView(
        in_place(lambda c_in, c_out, groups, figure: draw(c_in, c_out, groups or 1, figure=figure)),
        {"c_in": c_in, "c_out": c_out, "groups": groups},
        title="Groups cut the wiring",
        description="Each line is one kH×kW kernel. Colours mark the groups.",
    )
