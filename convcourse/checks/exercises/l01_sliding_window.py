"""Lesson 01: ``corr2d(x, k)``, 2-D cross-correlation with loops.

The rule: loops only. torch's convolution, unfold and torch.fft are banned at the aten level, and
numpy's and scipy's convolutions and FFTs (numpy.fft, numpy.convolve/correlate, scipy.signal,
scipy.ndimage, scipy.fft) are trapped while corr2d runs.
"""

import torch
import torch.nn.functional as F

from .._watch import LIBRARY_CONVOLUTIONS
from ..conv import ConvArgs, conv_exercise, randn
from ..core import CONVOLUTION_OPS, FFT_OPS, UNFOLD_OPS
from ..quiz import Question, register_question


def _args(x, k):
    return ConvArgs(x[None, None], k[None, None])


def _visible():
    return [
        dict(x=randn(4, 4, seed=1), k=randn(2, 2, seed=2)),
        dict(x=randn(5, 7, seed=3), k=randn(3, 2, seed=4)),
    ]


def _hidden():
    shapes = [
        ((6, 6), (3, 3)),
        ((5, 9), (2, 4)),
        ((8, 3), (3, 1)),
        ((4, 4), (4, 4)),
        ((3, 7), (3, 7)),
        ((7, 5), (1, 1)),
        ((1, 6), (1, 3)),
        ((9, 8), (5, 2)),
    ]
    return [dict(x=randn(*xs, seed=10 + i), k=randn(*ks, seed=50 + i)) for i, (xs, ks) in enumerate(shapes)]


conv_exercise(
    "corr2d",
    "01_sliding_window",
    _args,
    lambda out, inputs: out[0, 0],
    banned=CONVOLUTION_OPS | UNFOLD_OPS | FFT_OPS,
    libraries=LIBRARY_CONVOLUTIONS,
    suites={"visible": _visible, "hidden": _hidden},
    hint="out[i, j] is the sum over a, b of x[i + a, j + b] * k[a, b], for every i, j where the kernel fits inside x.",
)


# Check your understanding (graded, 1 point each): answers are computed from torch when checked.
def _output_shape_96_5() -> tuple[int, ...]:
    return tuple(F.conv2d(torch.zeros(1, 1, 96, 96), torch.zeros(1, 1, 5, 5)).shape[-2:])


def _one_output_by_hand() -> int:
    x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    k = torch.tensor([[1.0, 0.0], [0.0, -1.0]]).reshape(1, 1, 2, 2)
    return int(F.conv2d(x, k)[0, 0, 0, 0])


def _reads_corner_and_centre() -> tuple[int, int]:
    """How many output pixels read input pixel (0, 0) and (2, 2) of a 5×5 input under a 3×3 kernel:
    the gradient of the sum of all outputs, with a kernel of ones, counts them."""
    x = torch.zeros(1, 1, 5, 5, requires_grad=True)
    F.conv2d(x, torch.ones(1, 1, 3, 3)).sum().backward()
    return int(x.grad[0, 0, 0, 0]), int(x.grad[0, 0, 2, 2])


def _sobel_on_a_step() -> list[int]:
    step = torch.zeros(1, 1, 5, 6)
    step[..., 3:] = 1.0  # dark left half, bright right half
    sobel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]).reshape(1, 1, 3, 3)
    return sorted({int(v) for v in F.conv2d(step, sobel).flatten().tolist()})


register_question(
    Question(
        name="01_sliding_window.q1",
        lesson="01_sliding_window",
        answer=_output_shape_96_5,
        form="a tuple of two ints",
        explain="The 5×5 window fits at 96 - 5 + 1 = 92 positions along each axis.",
    )
)
register_question(
    Question(
        name="01_sliding_window.q2",
        lesson="01_sliding_window",
        answer=_one_output_by_hand,
        form="an int",
        explain="out[0, 0] lays the kernel on the top-left 2×2 window [[1, 2], [4, 5]]: 1·1 + 2·0 + 4·0 + 5·(-1) = -4.",
    )
)
register_question(
    Question(
        name="01_sliding_window.q3",
        lesson="01_sliding_window",
        answer=_reads_corner_and_centre,
        form="a tuple of two ints (corner, centre)",
        explain="Only the window at (0, 0) covers the corner; the centre (2, 2) lies inside all 3 × 3 = 9 windows "
        "of the 3×3 output. Without padding, border pixels are read far less often than central ones.",
    )
)
register_question(
    Question(
        name="01_sliding_window.q4",
        lesson="01_sliding_window",
        answer=_sobel_on_a_step,
        kind="set",
        form="a list of the distinct ints in the output",
        explain="Windows that lie on one side of the step see a constant and give 0; the windows that straddle it "
        "see 0 on the left column and 1 on the right, so 1·0 + 2·0 + 1·0 - (1 + 2 + 1)·1 = -4. A step "
        "edge gives ONE sign; the sign tells the direction of the change (dark to bright: negative).",
    )
)
