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
        ((2, 2, 9, 7), (3, 2, 3, 2), 2),  # non-square input and kernel, batch of 2
        ((1, 3, 8, 10), (2, 3, 2, 3), (3, 2)),  # tuple stride, rows and columns differ
        ((1, 1, 10, 9), (2, 1, 3, 3), (1, 4)),
        ((1, 2, 9, 9), (1, 2, 2, 2), 3),  # stride larger than the kernel: pixels skipped
        ((1, 1, 8, 11), (1, 1, 3, 3), (2, 3)),  # stride does not divide: leftover rows/columns
        ((1, 2, 7, 6), (2, 2, 1, 1), 2),  # 1x1 kernel: plain subsampling
        ((1, 1, 5, 6), (1, 1, 1, 1), (3, 4)),
        ((2, 1, 4, 5), (3, 1, 4, 5), 2),  # kernel == input: one position
        ((1, 2, 5, 5), (1, 2, 3, 3), 1),  # stride 1: lesson 01's sliding window
        ((1, 1, 6, 7), (1, 1, 2, 2), (5, 1)),
        # invalid arguments: torch raises RuntimeError
        ((1, 1, 5, 5), (1, 1, 2, 2), 0),  # stride 0
        ((1, 1, 5, 5), (1, 1, 2, 2), (1, 0)),
        ((1, 3, 5, 5), (2, 2, 3, 3), 1),  # weight's in-channels differ from the input's
        ((1, 1, 2, 4), (1, 1, 3, 3), 1),  # kernel larger than the input
    ]
    return [case(x, w, s, seed=100 + 3 * i) for i, (x, w, s) in enumerate(specs)]


conv_exercise(
    "conv2d_strided",
    "04_stride",
    _args,
    banned=CONVOLUTION_OPS | UNFOLD_OPS,
    suites={"visible": visible_cases, "hidden": hidden_cases},
    hint="out[n, o, i, j] is the sum over c, a, b of x[n, c, i*sH + a, j*sW + b] * weight[o, c, a, b], for "
    "i in range((H - kH) // sH + 1) and j in range((W - kW) // sW + 1).",
)


# Check your understanding (graded, 1 point each): answers are computed from torch when checked.
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ..quiz import Question, register_question  # noqa: E402


def _reads(h: int, w: int, k: int, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """How many windows read each input pixel: the gradient of the summed output for a kernel of ones."""
    x = torch.zeros(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    F.conv2d(x, torch.ones(1, 1, k, k, dtype=torch.float64), stride=stride, padding=padding).sum().backward()
    return x.grad[0, 0]


def _rows_never_read() -> int:
    return int((_reads(8, 8, 3, stride=2).sum(dim=1) == 0).sum())


def _strided_shape() -> tuple[int, ...]:
    return tuple(torch.nn.Conv2d(3, 8, kernel_size=3, stride=(1, 2))(torch.zeros(1, 3, 10, 10)).shape)


def _corner_reads_5x5_padding_2() -> int:
    return int(_reads(10, 10, 5, padding=2)[0, 0])


def _output_shift_for_input_shift_2() -> int:
    """By how many columns the stride-2 output moves when the input moves 2 columns (found by trying)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 12, 14, generator=g, dtype=torch.float64)
    w = torch.randn(1, 1, 3, 3, generator=g, dtype=torch.float64)
    out, moved = F.conv2d(x[..., :-2], w, stride=2), F.conv2d(x[..., 2:], w, stride=2)
    for shift in range(out.shape[-1]):
        if torch.allclose(moved[..., : out.shape[-1] - shift], out[..., shift:]):
            return shift
    raise AssertionError("no shift matches")


register_question(
    Question(
        name="04_stride.q1",
        lesson="04_stride",
        answer=_rows_never_read,
        form="an int",
        explain="Windows start at rows 0, 2, 4 ((8 - 3) // 2 + 1 = 3 positions) and the last covers rows 4-6, so "
        "row 7 is never read: 1 row.",
    )
)
register_question(
    Question(
        name="04_stride.q2",
        lesson="04_stride",
        answer=_strided_shape,
        form="a tuple of four ints",
        explain="stride=(1, 2) steps 1 row and 2 columns: height (10 - 3) // 1 + 1 = 8, width (10 - 3) // 2 + 1 = 4; "
        "8 filters give 8 channels.",
    )
)
register_question(
    Question(
        name="04_stride.q3",
        lesson="04_stride",
        answer=_corner_reads_5x5_padding_2,
        form="an int",
        explain="With padding 2 the windows centred on rows 0-2 and columns 0-2 reach the corner: 3 × 3 = 9 windows, "
        "while an interior pixel is read by all 5 × 5 = 25 windows around it.",
    )
)
register_question(
    Question(
        name="04_stride.q4",
        lesson="04_stride",
        answer=_output_shift_for_input_shift_2,
        form="an int",
        explain="With stride 2, moving the input by 2 columns moves every window by one output position, so the "
        "output moves by 2 / 2 = 1 column. (A shift by 1 column has no such answer: stride breaks "
        "shift-equivariance.)",
    )
)
