"""Lesson 02: ``conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1)`` for one axis.

torch's answer is read off the shape F.conv2d gives on the meta device (no data is allocated), with
the axis under test as the height and a width of 1. Where the (dilated) kernel does not fit in the
padded input, torch raises RuntimeError and so must the learner.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import _guard
from ..core import CONVOLUTION_OPS, VALUES, Exercise, register
from ..quiz import Question, register_question


def _reference(size, kernel_size, stride=1, padding=0, dilation=1):
    x = torch.empty(1, 1, size, 1, device="meta")
    w = torch.empty(1, 1, kernel_size, 1, device="meta")
    return int(_guard.conv2d(x, w, None, (stride, 1), (padding, 0), (dilation, 1), 1).shape[2])


def _variants(inputs: dict[str, Any]) -> dict[str, Any]:
    n, k = inputs["size"], inputs["kernel_size"]
    s, p, d = inputs.get("stride", 1), inputs.get("padding", 0), inputs.get("dilation", 1)
    span = d * (k - 1) + 1
    out = {
        "the +1 is missing: the window's first position counts too (positions 0, s, 2s, ... up to the last "
        "start that fits).": (n + 2 * p - span) // s,
        "the kernel's span is d*(k-1)+1, so subtract d*(k-1) + 1, not d*k (an off-by-one in the span).": (
            n + 2 * p - d * k
        )
        // s
        + 1,
        "padding is added on one side only: padding=p adds p pixels at the start AND p at the end, so the "
        "padded size is size + 2*padding.": (n + p - span) // s + 1,
        "dilation is ignored: a kernel of size k with dilation d spans d*(k-1)+1 pixels.": (n + 2 * p - k) // s + 1,
        "stride is ignored: the window moves by stride pixels, so there are floor(.../stride) + 1 positions.": n
        + 2 * p
        - span
        + 1,
        "you rounded up: a window that would stick out past the end is not used, so round DOWN "
        "(floor division //).": math.ceil((n + 2 * p - span) / s) + 1,
        "use floor division (//) so the answer is a whole number of positions.": (n + 2 * p - span) / s + 1,
    }
    correct = (n + 2 * p - span) // s + 1
    # Where two mistakes give the same number for these inputs, name both.
    merged: dict[Any, list[str]] = {}
    for key, value in out.items():
        if value != correct:
            merged.setdefault(value, []).append(key)
    return {" Or: ".join(keys): value for value, keys in merged.items()}


def visible_cases() -> list[dict[str, Any]]:
    return [dict(size=5, kernel_size=3), dict(size=28, kernel_size=5), dict(size=7, kernel_size=3, stride=2, padding=1)]


def hidden_cases() -> list[dict[str, Any]]:
    return [
        dict(size=6, kernel_size=6),  # kernel == input: one position
        dict(size=9, kernel_size=1),  # 1x1 kernel: size unchanged
        dict(size=1, kernel_size=1),
        dict(size=10, kernel_size=4),  # even kernel
        dict(size=5, kernel_size=3, padding=1),  # 'same'-like padding
        dict(size=3, kernel_size=5, padding=1),  # kernel == padded input
        dict(size=224, kernel_size=7, stride=2, padding=3),  # a ResNet stem
        dict(size=10, kernel_size=3, stride=3),  # stride does not divide: floor
        dict(size=11, kernel_size=2, stride=4, padding=2),
        dict(size=8, kernel_size=3, stride=5),  # stride larger than the kernel
        dict(size=12, kernel_size=3, dilation=2),  # dilated span 5
        dict(size=13, kernel_size=4, stride=2, padding=2, dilation=3),
        dict(size=5, kernel_size=3, padding=2, dilation=4),  # dilated span == padded input
        # the kernel does not fit: torch raises RuntimeError
        dict(size=3, kernel_size=5),
        dict(size=4, kernel_size=4, dilation=2),
        dict(size=2, kernel_size=6, padding=1),
    ]


register(
    Exercise(
        name="conv_output_size",
        lesson="02_kernel_size",
        reference=_reference,
        comparison=VALUES,
        banned=CONVOLUTION_OPS,  # the formula, not torch reading off a shape
        variants=_variants,
        suites={"visible": visible_cases, "hidden": hidden_cases},
        hint="the padded axis has size + 2*padding pixels and the (dilated) kernel spans dilation*(kernel_size-1)+1 "
        "of them; count the starts 0, stride, 2*stride, ... that still fit: "
        "floor((size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1.",
    )
)


# Check your understanding (graded, 1 point each): answers are computed from torch when checked.
def _shape_of_blog_example() -> tuple[int, ...]:
    return tuple(torch.nn.Conv2d(3, 6, 3)(torch.zeros(2, 3, 32, 32)).shape)


register_question(
    Question(
        name="02_kernel_size.q1",
        lesson="02_kernel_size",
        answer=_shape_of_blog_example,
        form="a tuple of four ints",
        explain="The batch (2) is kept, the 6 filters give 6 channels, and each axis has 32 - 3 + 1 = 30 positions.",
    )
)


def _tall_kernel_shape() -> tuple[int, ...]:
    return tuple(torch.nn.Conv2d(1, 1, kernel_size=(7, 3))(torch.zeros(1, 1, 28, 28)).shape)


def _smallest_height_for_5x5() -> int:
    """The smallest input height F.conv2d accepts for a 5×5 kernel without padding (found by trying)."""
    for size in range(1, 20):
        try:
            _guard.conv2d(torch.empty(1, 1, size, size, device="meta"), torch.empty(1, 1, 5, 5, device="meta"))
        except RuntimeError:
            continue
        return size
    raise AssertionError("no size up to 19 fits a 5×5 kernel")


def _resnet_stem_size() -> int:
    return int(torch.nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)(torch.zeros(1, 3, 224, 224)).shape[-1])


register_question(
    Question(
        name="02_kernel_size.q2",
        lesson="02_kernel_size",
        answer=_tall_kernel_shape,
        form="a tuple of four ints",
        explain="kernel_size=(7, 3) is 7 rows by 3 columns: the height gives 28 - 7 + 1 = 22 positions, the width "
        "28 - 3 + 1 = 26.",
    )
)
register_question(
    Question(
        name="02_kernel_size.q3",
        lesson="02_kernel_size",
        answer=_smallest_height_for_5x5,
        form="an int",
        explain="Without padding the 5×5 window must fit completely, so the input needs at least 5 rows; then it "
        "fits exactly once (5 - 5 + 1 = 1). With 4 rows torch raises RuntimeError.",
    )
)
register_question(
    Question(
        name="02_kernel_size.q4",
        lesson="02_kernel_size",
        answer=_resnet_stem_size,
        form="an int",
        explain="floor((224 + 2·3 - 1·(7 - 1) - 1) / 2) + 1 = floor(223 / 2) + 1 = 111 + 1 = 112.",
    )
)
