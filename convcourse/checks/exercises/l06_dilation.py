"""Lesson 06: ``conv2d_dilated(x, weight, dilation)`` (loops) and ``receptive_field(kernel_sizes,
strides=None, dilations=None)``.

The receptive field is *measured* with torch: a stack of 1-pixel-high convolutions with all-ones
weights, and the gradient of the first output pixel with respect to the input; the width of the
gradient's non-zero footprint is the answer.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import _guard
from ..conv import ConvArgs, conv_exercise, randn
from ..core import CONVOLUTION_OPS, UNFOLD_OPS, VALUES, Exercise, register
from ..quiz import Question, register_question

# ---- conv2d_dilated -------------------------------------------------------------------------------


def _args(x, weight, dilation):
    return ConvArgs(x, weight, dilation=dilation)


def _case(x_shape, w_shape, dilation, seed):
    return dict(x=randn(*x_shape, seed=seed), weight=randn(*w_shape, seed=seed + 1), dilation=dilation)


def _visible():
    return [_case((1, 1, 7, 7), (1, 1, 3, 3), 2, seed=1), _case((2, 2, 8, 9), (3, 2, 2, 3), (3, 2), seed=3)]


def _hidden():
    specs = [
        ((1, 1, 6, 5), (1, 1, 3, 2), 1),  # dilation 1 is the plain convolution
        ((2, 3, 9, 10), (2, 3, 3, 3), 3),
        ((1, 2, 7, 11), (2, 2, 2, 3), (1, 4)),  # tuple, height undilated
        ((1, 1, 10, 6), (1, 1, 3, 2), (4, 1)),  # tuple, width undilated
        ((1, 2, 9, 9), (1, 2, 5, 5), 2),  # dilated kernel as large as the input (9 = 2*4+1)
        ((2, 1, 5, 6), (2, 1, 1, 1), 3),  # a 1x1 kernel: dilation changes nothing
        ((1, 3, 8, 7), (2, 3, 2, 2), (5, 3)),
        ((1, 1, 4, 9), (1, 1, 1, 4), (7, 2)),  # dilation larger than the input along an unused axis
        # invalid: torch raises RuntimeError
        ((1, 1, 6, 6), (1, 1, 3, 3), 3),  # dilated kernel (7x7) larger than the input
        ((1, 1, 6, 6), (1, 1, 3, 3), 0),  # dilation must be positive
    ]
    return [_case(x, w, d, seed=20 + 3 * i) for i, (x, w, d) in enumerate(specs)]


conv_exercise(
    "conv2d_dilated",
    "06_dilation",
    _args,
    banned=CONVOLUTION_OPS | UNFOLD_OPS,
    suites={"visible": _visible, "hidden": _hidden},
    hint="out[n, o, i, j] sums x[n, c, i + dH*a, j + dW*b] * weight[o, c, a, b]; the output has "
    "H - dH*(kH-1) rows and W - dW*(kW-1) columns.",
)

# ---- receptive_field ------------------------------------------------------------------------------


def _lists(kernel_sizes, strides, dilations) -> tuple[list[int], list[int], list[int]]:
    n = len(kernel_sizes)
    strides = [1] * n if strides is None else list(strides)
    dilations = [1] * n if dilations is None else list(dilations)
    if len(strides) != n or len(dilations) != n:
        raise ValueError(
            f"kernel_sizes, strides and dilations must have the same length, got {n}, "
            f"{len(strides)} and {len(dilations)}"
        )
    return list(kernel_sizes), strides, dilations


def _footprint(kernel_sizes, strides, dilations, length: int) -> int | None:
    """Width of the input region that output pixel 0 depends on, or None if ``length`` is too short."""
    x = torch.ones(1, 1, 1, length, dtype=torch.float64, requires_grad=True)
    out = x
    for k, s, d in zip(kernel_sizes, strides, dilations):
        if out.shape[-1] < d * (k - 1) + 1:
            return None
        out = _guard.conv2d(out, torch.ones(1, 1, 1, k, dtype=torch.float64), None, (1, s), 0, (1, d), 1)
    (grad,) = torch.autograd.grad(out[0, 0, 0, 0], x)
    touched = grad[0, 0, 0].nonzero().flatten()
    return int(touched[-1] - touched[0]) + 1


def _rf_reference(kernel_sizes, strides=None, dilations=None):
    kernel_sizes, strides, dilations = _lists(kernel_sizes, strides, dilations)
    length = 1
    while length <= 1 << 16:
        width = _footprint(kernel_sizes, strides, dilations, length)
        if width is not None:
            return width
        length *= 2
    raise ValueError("receptive field too large to measure")


def _rf_variants(inputs: dict[str, Any]) -> dict[str, int]:
    ks, ss, ds = _lists(inputs["kernel_sizes"], inputs.get("strides"), inputs.get("dilations"))

    def rf(ks, ss, ds, stride_first=False):
        field, jump = 1, 1
        for k, s, d in zip(ks, ss, ds):
            if stride_first:
                jump *= s
            field += d * (k - 1) * jump
            if not stride_first:
                jump *= s
        return field

    ones = [1] * len(ks)
    out = {
        "strides are ignored: after a layer with stride s, one step of the next layer moves s input "
        "pixels, so later layers grow the field s times faster.": rf(ks, ones, ds),
        "dilations are ignored: a kernel of size k with dilation d spans d*(k-1)+1 pixels.": rf(ks, ss, ones),
        "a layer's own stride does not widen its own field; it only spaces the NEXT layer's taps (multiply "
        "the jump by the stride after adding the layer's d*(k-1)*jump).": rf(ks, ss, ds, stride_first=True),
        "the kernel sizes are simply added up; stacked kernels overlap: each layer adds d*(k-1)*jump, not k.": sum(ks),
    }
    correct = rf(ks, ss, ds)
    return {k: v for k, v in out.items() if v != correct}


def _rf_visible():
    return [
        dict(kernel_sizes=[3, 3]),
        dict(kernel_sizes=[3, 3, 3], dilations=[1, 2, 4]),
        dict(kernel_sizes=[3, 3], strides=[2, 1]),
    ]


def _rf_hidden():
    return [
        dict(kernel_sizes=[]),  # no layer: one pixel
        dict(kernel_sizes=[1, 1, 1]),  # 1x1 layers see one pixel
        dict(kernel_sizes=[7]),
        dict(kernel_sizes=[2, 2, 2, 2]),
        dict(kernel_sizes=[3, 3, 3, 3], dilations=[1, 2, 4, 8]),  # a WaveNet-style schedule
        dict(kernel_sizes=[7, 3, 3], strides=[2, 2, 1]),  # a ResNet-like stem
        dict(kernel_sizes=[3, 3, 3], strides=[2, 2, 2], dilations=[1, 1, 2]),
        dict(kernel_sizes=[5, 2, 3], strides=[1, 3, 1], dilations=[2, 1, 3]),
        dict(kernel_sizes=[3, 1, 3], strides=[4, 1, 1]),
        dict(kernel_sizes=(3, 3), strides=(1, 1), dilations=(2, 2)),  # tuples work too
        dict(kernel_sizes=[3, 3], strides=[1]),  # lengths differ: ValueError
    ]


register(
    Exercise(
        name="receptive_field",
        lesson="06_dilation",
        reference=_rf_reference,
        comparison=VALUES,
        variants=_rf_variants,
        suites={"visible": _rf_visible, "hidden": _rf_hidden},
        hint="keep two numbers while walking through the layers: the field r (start 1) and the jump j, how many "
        "input pixels one step of the current layer's input spans (start 1). Each layer adds d*(k-1)*j to r, "
        "then multiplies j by its stride.",
    )
)


# Check your understanding (graded, 1 point each): answers are computed from torch when checked.
def _pixels_read(dilation: int, i: int, j: int) -> list[tuple[int, int]]:
    """The input pixels (row, col) that output (i, j) of a 3x3 convolution with this dilation depends on:
    where the gradient of that one output is non-zero (all-ones kernel, so nothing cancels)."""
    x = torch.zeros(1, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    ones = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    _guard.conv2d(x, ones, None, 1, 0, dilation, 1)[0, 0, i, j].backward()
    return [(int(r), int(c)) for r, c in x.grad[0, 0].nonzero().tolist()]


def _measured_field(layers: list[dict[str, int]]) -> int:
    """Width of the input footprint of one output pixel of a stack (all-ones kernels, autograd)."""
    x = torch.zeros(1, 1, 64, 1, dtype=torch.float64, requires_grad=True)
    out = x
    for layer in layers:
        kernel = torch.ones(1, 1, layer["k"], 1, dtype=torch.float64)
        out = _guard.conv2d(out, kernel, None, (layer.get("s", 1), 1), 0, (layer.get("d", 1), 1), 1)
    out[0, 0, 0, 0].backward()
    rows = x.grad[0, 0, :, 0].nonzero()[:, 0]
    return int(rows.max() - rows.min()) + 1


def _dilated_shape() -> tuple[int, ...]:
    return tuple(torch.nn.Conv2d(1, 1, 3, dilation=4)(torch.zeros(1, 1, 20, 20)).shape)


def _dilated_parameters() -> int:
    return sum(p.numel() for p in torch.nn.Conv2d(16, 32, 3, dilation=4).parameters())


for _question in (
    Question(
        name="06_dilation.q1",
        lesson="06_dilation",
        form="a tuple of four ints",
        answer=_dilated_shape,
        explain="A 3x3 kernel with dilation 4 spans 4*(3-1)+1 = 9 pixels, so each axis has 20 - 9 + 1 = 12 positions.",
    ),
    Question(
        name="06_dilation.q2",
        lesson="06_dilation",
        kind="set",
        form="a list (or set) of (row, col) tuples",
        answer=lambda: _pixels_read(2, 1, 2),
        explain="With dilation 2 the taps are 2 apart: output (1, 2) reads rows 1, 3, 5 and columns 2, 4, 6, "
        "all nine combinations (row i + 2a, column j + 2b for a, b in 0, 1, 2).",
    ),
    Question(
        name="06_dilation.q3",
        lesson="06_dilation",
        form="an int",
        answer=lambda: _measured_field([dict(k=3, s=2), dict(k=3, d=2)]),
        explain="Start with r = 1, j = 1. The first layer adds 1*(3-1)*1 = 2 (r = 3), then j = 2. The second "
        "adds d*(k-1)*j = 2*2*2 = 8: r = 11.",
    ),
    Question(
        name="06_dilation.q4",
        lesson="06_dilation",
        form="an int",
        answer=_dilated_parameters,
        explain="Dilation spreads the taps but adds no weights: 32 * 16 * 3 * 3 = 4608 weights + 32 biases "
        "= 4640, the same as with dilation 1.",
    ),
):
    register_question(_question)
