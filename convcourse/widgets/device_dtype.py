"""Lesson 15 widget and measurements: FLOPs and im2col bytes as a layer grows (yours beside torch's count),
precision per dtype, and time and memory of a convolution on this machine.

Every number here is measured from torch (FlopCounterMode, F.unfold on meta tensors, F.conv2d in each
dtype, the profiler's memory events); the learner's functions are drawn beside those measurements, with the
grader's own check as the verdict.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from typing import Callable, Iterator, Mapping, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from ..checks.exercises.l15_device_dtype import measured_flops, measured_im2col_bytes
from ..plots import COLORS
from . import FigureView, adjust, checked_call, in_place

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
DTYPE_COLORS = {torch.float16: "#C44E52", torch.bfloat16: "#8172B3", torch.float32: "#4C72B0", torch.float64: "#55A868"}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


# ---------------------------------------------------------------------------- the widget's model
@dataclasses.dataclass(frozen=True)
class LayerCost:
    """A Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups) on a batch of square images."""

    batch: int = 1
    in_channels: int = 16
    out_channels: int = 32
    kernel_size: int = 3
    stride: int = 1
    groups: int = 1
    dtype: torch.dtype = torch.float32

    @property
    def padding(self) -> int:
        return self.kernel_size // 2

    def flops_args(self, size: int) -> dict:
        return dict(
            input_shape=(self.batch, self.in_channels, size, size),
            weight_shape=(self.out_channels, self.in_channels // self.groups, self.kernel_size, self.kernel_size),
            stride=self.stride,
            padding=self.padding,
            groups=self.groups,
        )

    def bytes_args(self, size: int) -> dict:
        return dict(
            input_shape=(self.batch, self.in_channels, size, size),
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dtype=self.dtype,
        )

    def input_bytes(self, size: int) -> int:
        return self.batch * self.in_channels * size * size * torch.empty((), dtype=self.dtype).element_size()

    def measured(self, sizes: Sequence[int]) -> dict[str, list[int]]:
        """torch's FLOP count and F.unfold's bytes for each image size (each measurement made once per
        process: a redraw of the widget re-measures only what its arguments change). The arguments are valid by
        construction, so the measurements skip the CPU call that would check them (``probe=False``)."""
        return {
            "flops": [_measured(measured_flops, **self.flops_args(s)) for s in sizes],
            "bytes": [_measured(measured_im2col_bytes, **self.bytes_args(s)) for s in sizes],
            "input": [self.input_bytes(s) for s in sizes],
        }


@functools.lru_cache(maxsize=4096)
def _measured(measure: Callable[..., int], **arguments) -> int:
    """``measure(**arguments, probe=False)`` (shapes, ints and a dtype: hashable), remembered: the same call
    always measures the same count."""
    return measure(**arguments, probe=False)


def learner_values(
    cost: LayerCost, sizes: Sequence[int], conv2d_flops: Callable | None, im2col_bytes: Callable | None
) -> tuple[dict[str, list[float]], list[str]]:
    """The learner's numbers for each size (NaN where missing) and one verdict line per function: the
    grader's own check on the largest size (✓/✗), or why there is nothing to show."""
    values: dict[str, list[float]] = {"flops": [], "bytes": []}
    verdicts = []
    for key, name, fn, make in (
        ("flops", "conv2d_flops", conv2d_flops, cost.flops_args),
        ("bytes", "im2col_bytes", im2col_bytes, cost.bytes_args),
    ):
        if fn is None:
            values[key] = [math.nan] * len(sizes)
            continue
        try:
            for size in sizes[:-1]:
                values[key].append(float(fn(**make(size))))
            ok, last = checked_call(name, fn, **make(sizes[-1]))
            values[key].append(float(last))
            verdicts.append(
                f"your {name}: {'matches' if ok else 'differs from'} torch's measurement {'✓' if ok else '✗'}"
            )
        except NotImplementedError:
            values[key] = [math.nan] * len(sizes)
            verdicts.append(f"your {name}: not implemented yet")
        except Exception as error:  # shown in the figure instead of a traceback  # noqa: BLE001
            values[key] = [math.nan] * len(sizes)
            verdicts.append(f"your {name} raised {type(error).__name__}: {str(error)[:60]} ✗")
    return values, verdicts


#: The choices of lesson 15's cost widget, each control's in the order shown.
COST_CHOICES: dict[str, tuple] = {
    "batch": (1, 8, 32),
    "in_channels": (4, 16, 64),
    "out_channels": (8, 32, 64),
    "kernel_size": (1, 3, 5, 7),
    "stride": (1, 2),
    "groups": (1, 4),
    "dtype": (torch.float16, torch.float32, torch.float64),
}
COST_SIZES = (8, 16, 32, 64)


def cost_limits(choices: Mapping[str, Sequence] = COST_CHOICES, sizes: Sequence[int] = COST_SIZES) -> dict:
    """The y range of each of the widget's panels that holds every choice's measurements: torch's counts for the
    cheapest layer on the smallest image and the dearest on the largest (FLOPs grow with batch, channels and
    kernel size and shrink with stride and groups; im2col bytes and the input's bytes grow with the dtype's
    size too). Fixed axes show a change of a control as the line moving, and leave the axes as they are."""
    cheapest = LayerCost(
        **{name: min(choices[name]) for name in ("batch", "in_channels", "out_channels", "kernel_size")},
        stride=max(choices["stride"]),
        groups=max(choices["groups"]),
        dtype=min(choices["dtype"], key=lambda dtype: dtype.itemsize),
    )
    dearest = LayerCost(
        **{name: max(choices[name]) for name in ("batch", "in_channels", "out_channels", "kernel_size")},
        stride=min(choices["stride"]),
        groups=min(choices["groups"]),
        dtype=max(choices["dtype"], key=lambda dtype: dtype.itemsize),
    )
    low, high = cheapest.measured([min(sizes)]), dearest.measured([max(sizes)])
    return {
        "flops": (low["flops"][0], high["flops"][0]),
        "bytes": (min(low["bytes"][0], low["input"][0]), max(high["bytes"][0], high["input"][0])),
    }


def _log_range(values: Sequence[float], fixed: tuple[float, float] | None) -> tuple[float, float]:
    """``fixed`` widened to every positive value in ``values`` (all of them where ``fixed`` is None), with a
    margin of 5% of the range on each side in log space, as matplotlib's autoscaling leaves."""
    shown = [v for v in values if v > 0 and math.isfinite(v)]
    low, high = min([*shown, *(fixed or ())]), max([*shown, *(fixed or ())])
    margin = (high / low) ** 0.05 if high > low else 2.0
    return low / margin, high * margin


class _CostFigure:
    """The cost widget's figure in three layers per panel, each its own axes over the same place: the frame
    (scales, ticks, grid, labels, title), the lines, and the legend. A redraw changes only the lines' layer
    unless the limits or the legend's entries change, so the browser's scene keeps the frames and legends as
    recorded (:mod:`convcourse.scene` reuses an unchanged axes' drawing): the ticks and labels of two log axes
    were most of a redraw."""

    def __init__(self, sizes: Sequence[int]):
        self.figure = fig = Figure(figsize=(9.0, 3.7))
        fig._convcourse_layout = ("cost", tuple(sizes))
        fig._convcourse_cost = self
        grid = fig.add_gridspec(1, 2)
        self.frames = [fig.add_subplot(spec) for spec in grid]
        self.lines = [fig.add_subplot(spec) for spec in grid]
        self.legends = [fig.add_subplot(spec) for spec in grid]
        self.sizes = [float(size) for size in sizes]
        pad = 2**0.15
        for frame, lines, legend, (title, ylabel) in zip(
            self.frames, self.lines, self.legends, (("work", "FLOPs"), ("im2col memory", "bytes"))
        ):
            for ax in (frame, lines):
                ax.set(xscale="log", yscale="log", xlim=(min(sizes) / pad, max(sizes) * pad))
            frame.set(xlabel="image size H = W", ylabel=ylabel, title=title)
            frame.set_xticks(list(sizes), [str(s) for s in sizes])
            # Decades only: a log axis's minor ticks (eight per decade, each a Tick of its own) cost most of a draw.
            frame.xaxis.set_minor_locator(NullLocator())
            frame.yaxis.set_minor_locator(NullLocator())
            for layer in (lines, legend):
                layer.set_axis_off()  # no frame, ticks or background: the frame below shows through
                layer._convcourse_not_a_panel = True  # the alt text describes the frame's panel once

    def draw(self, panel: int, ylim: tuple[float, float], series: list[tuple[str, list[float], dict]]) -> None:
        """``series`` (legend label, values per size, line style) in ``panel`` (0: work, 1: memory)."""
        frame, lines, legend = self.frames[panel], self.lines[panel], self.legends[panel]
        if frame.get_ylim() != ylim:  # setting the same limits again would mark the frame changed
            for ax in (frame, lines):
                ax.set_ylim(ylim)
            self._grid(frame)
        for line in list(lines.lines):
            line.remove()
        for _label, values, style in series:
            lines.plot(self.sizes, values, **style)
        labels = [label for label, _values, _style in series]
        old = legend.get_legend()
        if old is None or [text.get_text() for text in old.get_texts()] != labels:
            handles = [Line2D([], [], **style) for _label, _values, style in series]
            legend.legend(handles, labels, fontsize=8, loc="upper left")

    @staticmethod
    def _grid(frame: plt.Axes) -> None:
        """Grid lines at the frame's major ticks, in matplotlib's grid style at ``alpha=0.3``, drawn straight:
        ``ax.grid`` bends each line through the log scale in 180 steps, each step a point the browser is sent."""
        for old in list(frame.collections):
            old.remove()
        style = dict(
            colors=plt.rcParams["grid.color"],
            linewidths=plt.rcParams["grid.linewidth"],
            linestyles=plt.rcParams["grid.linestyle"],
            alpha=0.3,
            zorder=1,
        )
        (x0, x1), (y0, y1) = sorted(frame.get_xlim()), sorted(frame.get_ylim())
        xs = [x for x in frame.get_xticks() if x0 <= x <= x1]
        ys = [y for y in frame.get_yticks() if y0 <= y <= y1]
        frame.add_collection(
            LineCollection([[(x, 0), (x, 1)] for x in xs], transform=frame.get_xaxis_transform(), **style),
            autolim=False,
        )
        frame.add_collection(
            LineCollection([[(0, y), (1, y)] for y in ys], transform=frame.get_yaxis_transform(), **style),
            autolim=False,
        )


def draw_cost(
    cost: LayerCost,
    sizes: Sequence[int] = COST_SIZES,
    conv2d_flops: Callable | None = None,
    im2col_bytes: Callable | None = None,
    figure: Figure | None = None,
    limits: Mapping[str, tuple[float, float]] | None = None,
) -> Figure:
    """FLOPs and bytes against image size, log-log: torch's measurement as lines, the learner's as markers.
    ``figure``: the figure of the last redraw, redrawn (:func:`convcourse.widgets.in_place`). ``limits``: the y
    range of each panel ("flops", "bytes"; :func:`cost_limits`), widened where a value falls outside it; by
    default each panel's range is its values'."""
    measured = cost.measured(sizes)
    mine, verdicts = learner_values(cost, sizes, conv2d_flops, im2col_bytes)
    layers = getattr(figure, "_convcourse_cost", None)
    if layers is None or figure._convcourse_layout != ("cost", tuple(sizes)):
        layers = _CostFigure(sizes)
    fig = layers.figure
    yours = dict(color="black", ms=5, marker="o", ls="none")
    work = [("FlopCounterMode", measured["flops"], dict(color=COLORS["input"], lw=2))]
    memory = [
        ("F.unfold result", measured["bytes"], dict(color=COLORS["kernel"], lw=2)),
        ("the input itself", measured["input"], dict(color=COLORS["input"], lw=1.5, ls="--")),
    ]
    if not all(math.isnan(v) for v in mine["flops"]):
        work.append(("your conv2d_flops", mine["flops"], yours))
    if not all(math.isnan(v) for v in mine["bytes"]):
        memory.append(("your im2col_bytes", mine["bytes"], yours))
    for panel, (key, series) in enumerate((("flops", work), ("bytes", memory))):
        values = [v for _label, vs, _style in series for v in vs]
        layers.draw(panel, _log_range(values, (limits or {}).get(key)), series)
    fig.suptitle(
        f"Conv2d({cost.in_channels}, {cost.out_channels}, {cost.kernel_size}, stride={cost.stride}, "
        f"padding={cost.padding}, groups={cost.groups}) on a batch of {cost.batch}, {dtype_name(cost.dtype)}; "
        f"at {sizes[-1]}×{sizes[-1]}: {measured['flops'][-1]:,} FLOPs, {measured['bytes'][-1]:,} bytes",
        fontsize=9,
    )
    line = "   ".join(verdicts)
    if line:
        fig.supxlabel(line, fontsize=9, color="black" if "✗" not in line else COLORS["highlight"])
    elif fig._supxlabel is not None:
        fig._supxlabel.set_text("")
    adjust(fig, left=0.08, right=0.98, top=0.85, bottom=0.22 if line else 0.15, wspace=0.25)
    return fig


def cost_widget(conv2d_flops: Callable | None = None, im2col_bytes: Callable | None = None) -> FigureView:
    """Sliders for a layer's arguments; the plots show torch's FLOPs and im2col bytes as the image grows, and
    your functions' numbers beside them. The axes stay fixed (:func:`cost_limits`): a control moves the lines."""

    def choice(description: str, name: str, value) -> w.Dropdown:
        options = COST_CHOICES[name]
        if name == "dtype":
            options = [(dtype_name(d), d) for d in options]
        return w.Dropdown(options=options, value=value, description=description, layout=w.Layout(width="190px"))

    controls = {
        "batch": choice("batch", "batch", 1),
        "in_channels": choice("in", "in_channels", 16),
        "out_channels": choice("out", "out_channels", 32),
        "kernel_size": choice("kernel", "kernel_size", 3),
        "stride": choice("stride", "stride", 1),
        "groups": choice("groups", "groups", 1),
        "dtype": choice("dtype", "dtype", torch.float32),
    }
    limits = cost_limits()

    def draw(figure: Figure | None = None, **values) -> Figure:
        return draw_cost(LayerCost(**values), COST_SIZES, conv2d_flops, im2col_bytes, figure=figure, limits=limits)

    return FigureView(
        in_place(draw),
        controls,
        title="What a convolution costs",
        description="Lines: torch's own measurement (FlopCounterMode; the bytes of F.unfold's result). "
        "Dots: your functions. Both axes are logarithmic and fixed: a control moves the lines.",
    )


# ---------------------------------------------------------------------------- precision
def conv_errors(
    kernel_sizes: Sequence[int],
    dtypes: Sequence[torch.dtype] = DTYPES,
    channels: int = 16,
    size: int = 24,
    seed: int = 0,
) -> dict[torch.dtype, list[float]]:
    """Relative error of F.conv2d computed in each dtype against float64, for k×k kernels: the largest
    |error| divided by the largest |output|, on standard normal input and weights."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, channels, size, size, generator=generator, dtype=torch.float64)
    errors: dict[torch.dtype, list[float]] = {d: [] for d in dtypes}
    for k in kernel_sizes:
        weight = torch.randn(channels, channels, k, k, generator=generator, dtype=torch.float64)
        exact = F.conv2d(x, weight)
        for dtype in dtypes:
            result = F.conv2d(x.to(dtype), weight.to(dtype)).double()
            errors[dtype].append(float((result - exact).abs().max() / exact.abs().max()))
    return errors


def precision_plot(kernel_sizes: Sequence[int], errors: Mapping[torch.dtype, Sequence[float]], *, channels: int = 16):
    """Relative error against kernel size, one line per dtype, with each dtype's unit roundoff dashed."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
    for dtype, values in errors.items():
        color = DTYPE_COLORS[dtype]
        ax.plot(kernel_sizes, values, "o-", color=color, label=dtype_name(dtype))
        ax.axhline(torch.finfo(dtype).eps / 2, color=color, ls=":", lw=1)
    ax.set(
        yscale="log",
        xlabel=f"kernel size k (each output sums {channels}·k² products)",
        ylabel="max |error| / max |output|",
        title="Error against float64 (dotted: each dtype's unit roundoff, eps/2)",
    )
    ax.set_xticks(list(kernel_sizes))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def sum_in(values: torch.Tensor, dtype: torch.dtype) -> float:
    """Add ``values`` one at a time in ``dtype`` (every partial sum rounded to it), as a naive loop would."""
    total = torch.zeros((), dtype=dtype)
    for v in values.to(dtype):
        total = total + v
    return float(total)


# ---------------------------------------------------------------------------- time and memory
@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one CPU thread inside the block: timings that other programs on the machine disturb less (a
    thread pool waiting for a busy core can cost more than a small convolution itself)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def seconds(fn: Callable, *args, repeat: int = 3, **kwargs) -> float:
    """Best wall-clock time of ``fn(*args, **kwargs)`` over ``repeat`` runs, after one warm-up. GPU work runs
    asynchronously, so with CUDA the clock stops only once the GPU has finished."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn(*args, **kwargs)
    best = math.inf
    for _ in range(max(repeat, 1)):
        sync()
        start = time.perf_counter()
        fn(*args, **kwargs)
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def peak_bytes(fn: Callable, *args, **kwargs) -> int:
    """Peak CPU memory torch allocated during ``fn(*args, **kwargs)``, beyond what was allocated before: the
    running sum of the profiler's allocation (+) and free (-) events, in the order they happened."""
    config = torch.autograd.ProfilerConfig(
        torch.autograd.ProfilerState.CPU, False, True, False, False, False, torch._C._profiler._ExperimentalConfig()
    )
    torch.autograd._enable_profiler_legacy(config)
    try:
        fn(*args, **kwargs)
    finally:
        records = torch.autograd._disable_profiler_legacy()
    live = peak = 0
    for thread in records:
        for event in thread:
            if event.kind() == "memory_alloc":
                live += event.cpu_memory_usage()
                peak = max(peak, live)
    return peak


def race(
    functions: Mapping[str, Callable | None],
    sizes: Sequence[int],
    *,
    batch: int = 4,
    channels: int = 16,
    repeat: int = 3,
) -> dict[str, dict[str, list[float]]]:
    """Time (s, on one thread) and peak memory (bytes) of each ``fn(x, weight, padding=1)`` on float32 batches
    of images, ``channels`` → ``channels``, 3×3, for each square size; NaN for a function that is None or raises
    NotImplementedError."""
    results = {name: {"seconds": [], "bytes": []} for name in functions}
    generator = torch.Generator().manual_seed(0)
    with one_thread():
        for size in sizes:
            x = torch.randn(batch, channels, size, size, generator=generator)
            weight = torch.randn(channels, channels, 3, 3, generator=generator)
            for name, fn in functions.items():
                try:
                    if fn is None:
                        raise NotImplementedError
                    results[name]["seconds"].append(seconds(fn, x, weight, padding=1, repeat=repeat))
                    results[name]["bytes"].append(float(peak_bytes(fn, x, weight, padding=1)))
                except NotImplementedError:
                    results[name]["seconds"].append(math.nan)
                    results[name]["bytes"].append(math.nan)
    return results


def race_plot(sizes: Sequence[int], results: Mapping[str, Mapping[str, Sequence[float]]], *, caption: str = ""):
    """Time and peak memory against image size, log scales, one line per implementation."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6), layout="constrained")
    for (name, result), style in zip(results.items(), ("o-", "s-", "^-")):
        ms = np.array(result["seconds"], dtype=float) * 1e3
        mib = np.array(result["bytes"], dtype=float) / 2**20
        if np.isfinite(ms).any():
            left.plot(sizes, ms, style, label=name)
            right.plot(sizes, mib, style, label=name)
    left.set(xscale="log", yscale="log", xlabel="image size H = W", ylabel="ms per call", title="time")
    right.set(xscale="log", yscale="log", xlabel="image size H = W", ylabel="MiB", title="peak memory allocated")
    for ax in (left, right):
        ax.set_xticks(list(sizes), [str(s) for s in sizes])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if caption:
        fig.supxlabel(caption, fontsize=9, style="italic")
    return fig
