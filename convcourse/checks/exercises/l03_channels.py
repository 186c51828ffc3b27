"""Lesson 03: ``conv2d_channels(x, weight)``, many input and output channels, batches (loops)."""

from ..conv import ConvArgs, conv_exercise, randn
from ..core import CONVOLUTION_OPS, UNFOLD_OPS


def _args(x, weight):
    return ConvArgs(x, weight)


def _case(n, c, h, w, o, kh, kw, seed):
    return dict(x=randn(n, c, h, w, seed=seed), weight=randn(o, c, kh, kw, seed=seed + 100))


def _visible():
    return [_case(1, 3, 5, 5, 2, 3, 3, seed=1), _case(2, 2, 4, 6, 3, 2, 3, seed=2)]


def _hidden():
    shapes = [
        (1, 1, 5, 4, 1, 2, 2),   # single channel in and out
        (2, 3, 6, 5, 4, 3, 2),   # RGB-like input, non-square kernel and input
        (3, 2, 4, 4, 1, 1, 1),   # 1x1 kernel mixes channels only
        (1, 4, 3, 5, 2, 3, 5),   # kernel as large as the input
        (2, 1, 6, 3, 3, 4, 1),   # one input channel, many outputs
        (1, 5, 4, 4, 2, 2, 2),   # more inputs than outputs
    ]
    cases = [_case(*shape, seed=10 + i) for i, shape in enumerate(shapes)]
    # Invalid: the weight expects 3 input channels, x has 2 (torch raises RuntimeError).
    cases.append(dict(x=randn(1, 2, 4, 4, seed=40), weight=randn(2, 3, 2, 2, seed=41)))
    return cases


conv_exercise(
    "conv2d_channels", "03_channels", _args,
    banned=CONVOLUTION_OPS | UNFOLD_OPS,
    suites={"visible": _visible, "hidden": _hidden},
    hint="out[n, o, i, j] sums x[n, c, i + a, j + b] * weight[o, c, a, b] over c, a and b: every input "
         "channel contributes to every output channel.",
)
