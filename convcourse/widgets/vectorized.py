"""Lesson 09: im2col as a picture, loop-vs-vectorized timings, and the memory im2col costs.

Pure parts (headless-testable): :class:`Im2col` (which input pixel lands in which entry of the
unfolded matrix), :func:`im2col_bytes`, :func:`time_call`, :func:`benchmark`. Views: :func:`draw`,
:func:`im2col_widget`, :func:`timing_plot`, :func:`memory_plot`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Mapping, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..geometry import output_size
from ..plots import COLORS, show_matrix
from . import FigureView, grader_agrees, in_place, reused_axes


@dataclasses.dataclass
class Im2col:
    """im2col of a single-channel H×W input: column l holds the window of output position l."""

    x: torch.Tensor
    kernel_size: int = 3
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    def __post_init__(self) -> None:
        if self.x.ndim != 2:
            raise ValueError(f"x must be 2-D (H, W), got shape {tuple(self.x.shape)}")
        if min(self.kernel_size, self.stride, self.dilation) < 1 or self.padding < 0:
            raise ValueError("kernel_size, stride, dilation must be >= 1 and padding >= 0")
        if min(self.out_shape) < 1:
            raise ValueError(
                f"a {self.kernel_size}x{self.kernel_size} kernel with dilation {self.dilation} does "
                f"not fit in the padded {tuple(self.padded.shape)} input"
            )

    @property
    def padded(self) -> torch.Tensor:
        p = self.padding
        return F.pad(self.x, (p, p, p, p))

    @property
    def out_shape(self) -> tuple[int, int]:
        h, w = self.x.shape
        k, s, p, d = self.kernel_size, self.stride, self.padding, self.dilation
        return output_size(h, k, s, p, d), output_size(w, k, s, p, d)

    @property
    def positions(self) -> int:
        return self.out_shape[0] * self.out_shape[1]

    def source(self) -> torch.Tensor:
        """(k*k, L) long tensor: the flat index into the padded input of every matrix entry."""
        k, s, d = self.kernel_size, self.stride, self.dilation
        out_h, out_w = self.out_shape
        width = self.padded.shape[1]
        taps = (torch.arange(k)[:, None] * d * width + torch.arange(k)[None, :] * d).reshape(-1, 1)
        starts = (torch.arange(out_h)[:, None] * s * width + torch.arange(out_w)[None, :] * s).reshape(1, -1)
        return taps + starts

    def columns(self) -> torch.Tensor:
        """The unfolded (k*k, L) matrix (equals F.unfold for one channel)."""
        return self.padded.reshape(-1)[self.source()]

    def window(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows and columns (in the padded input) of the taps of output position ``position``."""
        if not 0 <= position < self.positions:
            raise ValueError(f"position must be in 0..{self.positions - 1}, got {position}")
        flat = self.source()[:, position]
        width = self.padded.shape[1]
        return flat // width, flat % width

    def conv(self, kernel: torch.Tensor) -> torch.Tensor:
        """The convolution as ONE matrix product: kernel row (1, k*k) @ columns (k*k, L), reshaped."""
        return (kernel.reshape(1, -1).to(self.x.dtype) @ self.columns()).reshape(self.out_shape)


def draw(
    model: Im2col, kernel: torch.Tensor, position: int, learner: Callable | None = None, figure: Figure | None = None
) -> Figure:
    """Padded input with one window, the unfolded matrix with its column, and the output. ``figure``: one this
    function drew before, redrawn on the same axes (see :func:`convcourse.widgets.in_place`)."""
    position = min(position, model.positions - 1)
    rows, cols = model.window(position)
    axes = reused_axes(figure, "im2col")
    if axes is not None:
        fig = figure
    else:
        # A Figure outside pyplot: the widget keeps it and redraws on its axes.
        fig = Figure(figsize=(12, 3.6))
        fig._convcourse_layout = "im2col"
        axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.6, 1]})
    padded = model.padded.numpy()
    ax = axes[0]
    ax.imshow(padded, cmap="Blues")
    if model.padding:
        mask = np.zeros(padded.shape + (4,))
        mask[..., :3] = matplotlib_rgb(COLORS["padding"])
        p = model.padding
        mask[:p, :, 3] = mask[-p:, :, 3] = mask[:, :p, 3] = mask[:, -p:, 3] = 0.9
        ax.imshow(mask)
    ax.scatter(
        cols.numpy(), rows.numpy(), s=60, marker="s", facecolors="none", edgecolors=COLORS["highlight"], linewidths=2
    )
    ax.set_title(f"padded input {tuple(padded.shape)}")
    ax.set_xticks([])
    ax.set_yticks([])
    matrix = model.columns()
    show_matrix(
        axes[1],
        matrix,
        title=f"unfolded: {tuple(matrix.shape)} (k·k rows, one column per output)",
        cmap="Blues",
        annotate=False,
        highlight=(slice(0, matrix.shape[0]), slice(position, position + 1)),
        index="y",
    )
    axes[1].set_xticks([])
    axes[1].set_aspect("auto")
    out = model.conv(kernel)
    i, j = divmod(position, model.out_shape[1])
    title = "output = kernel row @ matrix"
    if learner is not None:
        title = _learner_status(learner, model, kernel, out)
    show_matrix(
        axes[2],
        out,
        title=title,
        cmap="Greens",
        fmt="{:.1f}",
        annotate=out.numel() <= 64,
        highlight=(slice(i, i + 1), slice(j, j + 1)),
        index="",
    )
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    fig.suptitle(
        f"Column {position} of the matrix is the window of output pixel ({i}, {j}); "
        f"the whole output is one matrix product.",
        fontsize=10,
    )
    # Fixed margins (what tight_layout chose for the default settings), not a layout pass per redraw.
    fig.subplots_adjust(left=0.0125, right=0.9875, bottom=0.042, top=0.818, wspace=0.07)
    return fig


def matplotlib_rgb(color: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(color)


def _learner_status(learner: Callable, model: Im2col, kernel: torch.Tensor, expected: torch.Tensor) -> str:
    try:
        inputs = dict(
            input=model.x[None, None],
            weight=kernel[None, None].to(model.x.dtype),
            bias=None,
            stride=model.stride,
            padding=model.padding,
            dilation=model.dilation,
            groups=1,
        )
        learner(*inputs.values())  # not implemented yet, or the learner's error, is shown as such (below)
        ok = grader_agrees("conv2d_fast_vectorized", learner, **inputs)  # the test cells' own check
        return f"your conv2d_fast: {'✓ matches' if ok else '✗ differs'}"
    except NotImplementedError:
        return "your conv2d_fast: not implemented yet"
    except Exception as error:  # show it in the figure, not as a traceback  # noqa: BLE001
        return f"your conv2d_fast raised {type(error).__name__}"


def im2col_widget(x: torch.Tensor | None = None, conv2d_fast: Callable | None = None) -> FigureView:
    """Explore how kernel size, stride, padding and dilation change the unfolded matrix."""
    if x is None:
        x = torch.arange(42, dtype=torch.float64).reshape(6, 7) % 9
    x = x.double()
    controls = {
        "kernel_size": w.IntSlider(value=3, min=1, max=4, description="kernel"),
        "stride": w.IntSlider(value=1, min=1, max=3, description="stride"),
        "padding": w.IntSlider(value=0, min=0, max=2, description="padding"),
        "dilation": w.IntSlider(value=1, min=1, max=2, description="dilation"),
        "position": w.IntSlider(value=0, min=0, max=99, description="output pixel"),
    }

    def view(kernel_size, stride, padding, dilation, position, figure):
        try:
            model = Im2col(x, kernel_size, stride, padding, dilation)
        except ValueError as error:
            fig, ax = plt.subplots(figsize=(6, 1.5))
            ax.set_axis_off()
            ax.text(0.5, 0.5, str(error), ha="center", va="center", wrap=True)
            return fig
        kernel = torch.arange(1.0, kernel_size * kernel_size + 1, dtype=torch.float64).reshape(kernel_size, -1)
        return draw(model, kernel - kernel.mean(), position, conv2d_fast, figure)

    return FigureView(
        in_place(view),
        controls,
        title="im2col: windows become columns",
        description="Move the output pixel: its window (red) is one column of the matrix.",
    )


# ---------------------------------------------------------------- timing and memory


def time_call(fn: Callable, *args, repeat: int = 3, min_seconds: float = 0.0, **kwargs) -> float:
    """Best wall-clock time of ``fn(*args, **kwargs)`` over ``repeat`` runs (after one warm-up)."""
    fn(*args, **kwargs)
    best = float("inf")
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best


def benchmark(
    functions: Mapping[str, Callable | None],
    sizes: Sequence[int],
    *,
    batch: int = 1,
    channels: int = 4,
    out_channels: int = 8,
    kernel_size: int = 3,
    repeat: int = 3,
    skip_above: Mapping[str, int] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each ``fn(x, weight, padding=1)`` on square float64 images of each size.

    A function that raises NotImplementedError (or is None) gets NaN times; ``skip_above`` maps a
    name to the largest size it is run on (slow loops), NaN beyond.
    """
    results: dict[str, list[float]] = {name: [] for name in functions}
    generator = torch.Generator().manual_seed(0)
    for size in sizes:
        x = torch.randn(batch, channels, size, size, generator=generator, dtype=torch.float64)
        weight = torch.randn(out_channels, channels, kernel_size, kernel_size, generator=generator, dtype=torch.float64)
        for name, fn in functions.items():
            limit = (skip_above or {}).get(name)
            if fn is None or (limit is not None and size > limit):
                results[name].append(float("nan"))
                continue
            try:
                results[name].append(time_call(fn, x, weight, padding=1, repeat=repeat))
            except NotImplementedError:
                results[name].append(float("nan"))
    return results


def timing_plot(sizes: Sequence[int], results: Mapping[str, Sequence[float]], *, caption: str = "") -> plt.Figure:
    """Time per call against image size, log scale, one line per implementation."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
    styles = ["o-", "s-", "^-", "d-"]
    for k, (name, times) in enumerate(results.items()):
        ms = np.array(times, dtype=float) * 1e3
        if np.isfinite(ms).any():
            ax.plot(sizes, ms, styles[k % len(styles)], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("image size (H = W, pixels)")
    ax.set_ylabel("time per call (ms, log scale)")
    ax.set_title("Loops vs im2col vs torch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if caption:
        fig.supxlabel(caption, fontsize=9, style="italic")
    return fig


def im2col_bytes(
    input_shape: Sequence[int],
    kernel_size: int | tuple[int, int],
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    dtype: torch.dtype = torch.float32,
) -> tuple[int, int]:
    """(bytes of the input, bytes of its unfolded (N, C*kH*kW, L) matrix)."""
    n, c, h, w_ = input_shape
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    item = torch.empty((), dtype=dtype).element_size()
    positions = output_size(h, kh, stride, padding, dilation) * output_size(w_, kw, stride, padding, dilation)
    return n * c * h * w_ * item, n * c * kh * kw * positions * item


def memory_plot(
    input_shape: Sequence[int],
    kernel_sizes: Sequence[int] = (1, 3, 5, 7),
    *,
    dtype: torch.dtype = torch.float32,
    caption: str = "",
) -> plt.Figure:
    """Bytes of the input vs the unfolded matrix for several kernel sizes ('same'-style padding)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6), layout="constrained")
    labels, inputs, unfolded = [], [], []
    for k in kernel_sizes:
        a, b = im2col_bytes(input_shape, k, padding=k // 2, dtype=dtype)
        labels.append(f"{k}×{k}")
        inputs.append(a / 2**20)
        unfolded.append(b / 2**20)
    positions = np.arange(len(labels))
    ax.bar(positions - 0.2, inputs, 0.4, label="input", color=COLORS["input"])
    ax.bar(positions + 0.2, unfolded, 0.4, label="unfolded matrix", color=COLORS["kernel"])
    for p, value in zip(positions, unfolded):
        ax.text(p + 0.2, value, f"{value:.0f} MiB", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(positions, labels)
    ax.set_xlabel("kernel size (stride 1, 'same' padding)")
    ax.set_ylabel("MiB")
    ax.set_title(f"im2col memory for input {tuple(input_shape)} ({str(dtype).replace('torch.', '')})")
    ax.legend()
    if caption:
        fig.supxlabel(caption, fontsize=9, style="italic")
    return fig
