"""Lesson 01: ``corr2d(x, k)``, 2-D cross-correlation with loops.

The rule: loops only. torch's convolution, unfold and torch.fft are banned at the aten level, and
numpy's and scipy's convolutions and FFTs (numpy.fft, numpy.convolve/correlate, scipy.signal,
scipy.ndimage, scipy.fft) are trapped while corr2d runs.
"""

from ..conv import ConvArgs, conv_exercise, randn
from .._watch import LIBRARY_CONVOLUTIONS
from ..core import CONVOLUTION_OPS, FFT_OPS, UNFOLD_OPS


def _args(x, k):
    return ConvArgs(x[None, None], k[None, None])


def _visible():
    return [
        dict(x=randn(4, 4, seed=1), k=randn(2, 2, seed=2)),
        dict(x=randn(5, 7, seed=3), k=randn(3, 2, seed=4)),
    ]


def _hidden():
    shapes = [((6, 6), (3, 3)), ((5, 9), (2, 4)), ((8, 3), (3, 1)), ((4, 4), (4, 4)),
              ((3, 7), (3, 7)), ((7, 5), (1, 1)), ((1, 6), (1, 3)), ((9, 8), (5, 2))]
    return [dict(x=randn(*xs, seed=10 + i), k=randn(*ks, seed=50 + i)) for i, (xs, ks) in enumerate(shapes)]


conv_exercise(
    "corr2d", "01_sliding_window", _args, lambda out, inputs: out[0, 0],
    banned=CONVOLUTION_OPS | UNFOLD_OPS | FFT_OPS, libraries=LIBRARY_CONVOLUTIONS,
    suites={"visible": _visible, "hidden": _hidden},
    hint="out[i, j] is the sum over a, b of x[i + a, j + b] * k[a, b], for every i, j where the "
         "kernel fits inside x.",
)
