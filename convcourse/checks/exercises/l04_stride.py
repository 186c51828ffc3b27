"""Lesson 04: ``conv2d_strided(x, weight, stride)`` for (N, C, H, W) input, loops allowed."""

from __future__ import annotations

from typing import Any

from ..conv import ConvArgs, conv_exercise, randn
from ..core import CONVOLUTION_OPS, UNFOLD_OPS


def _args(x, weight, stride):
    return ConvArgs(x, weight, stride=stride)


def case(x_shape, w_shape, stride, seed) -> dict[str, Any]:
    return dict(x=randn(*x_shape, seed=seed), weight=randn(*w_shape, seed=seed + 1), stride=stride)


def visible_cases() -> list[dict[str, Any]]:
    return [
        case((1, 1, 6, 6), (1, 1, 2, 2), 2, seed=1),
        case((1, 2, 7, 9), (2, 2, 3, 3), (2, 3), seed=3),
    ]


def hidden_cases() -> list[dict[str, Any]]:
    specs = [
        ((2, 2, 9, 7), (3, 2, 3, 2), 2),            # non-square input and kernel, batch of 2
        ((1, 3, 8, 10), (2, 3, 2, 3), (3, 2)),      # tuple stride, rows and columns differ
        ((1, 1, 10, 9), (2, 1, 3, 3), (1, 4)),
        ((1, 2, 9, 9), (1, 2, 2, 2), 3),            # stride larger than the kernel: pixels skipped
        ((1, 1, 8, 11), (1, 1, 3, 3), (2, 3)),      # stride does not divide: leftover rows/columns
        ((1, 2, 7, 6), (2, 2, 1, 1), 2),            # 1x1 kernel: plain subsampling
        ((1, 1, 5, 6), (1, 1, 1, 1), (3, 4)),
        ((2, 1, 4, 5), (3, 1, 4, 5), 2),            # kernel == input: one position
        ((1, 2, 5, 5), (1, 2, 3, 3), 1),            # stride 1: lesson 01's sliding window
        ((1, 1, 6, 7), (1, 1, 2, 2), (5, 1)),
        # invalid arguments: torch raises RuntimeError
        ((1, 1, 5, 5), (1, 1, 2, 2), 0),            # stride 0
        ((1, 1, 5, 5), (1, 1, 2, 2), (1, 0)),
        ((1, 3, 5, 5), (2, 2, 3, 3), 1),            # weight's in-channels differ from the input's
        ((1, 1, 2, 4), (1, 1, 3, 3), 1),            # kernel larger than the input
    ]
    return [case(x, w, s, seed=100 + 3 * i) for i, (x, w, s) in enumerate(specs)]


conv_exercise(
    "conv2d_strided", "04_stride", _args,
    banned=CONVOLUTION_OPS | UNFOLD_OPS,
    suites={"visible": visible_cases, "hidden": hidden_cases},
    hint="out[n, o, i, j] is the sum over c, a, b of x[n, c, i*sH + a, j*sW + b] * weight[o, c, a, b], for "
         "i in range((H - kH) // sH + 1) and j in range((W - kW) // sW + 1).",
)
