"""Lesson 03: ``conv2d_channels(x, weight)``, many input and output channels, batches (loops).

Besides the mistakes every convolution exercise recognises (flipped kernel, off-by-one, ...), this
one names the mistakes specific to channels: an input channel that overwrites instead of adding up,
the weight's first two dimensions read the wrong way round, a batch that leaks between images.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import _guard
from ..conv import ConvArgs, randn
from ..conv import variants as conv_variants
from ..core import CONVOLUTION_OPS, UNFOLD_OPS, Exercise, Inputs, Mistakes, register


def _conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _guard.conv2d(x, weight, None, 1, 0, 1, 1)


def _reference(x, weight):
    return _conv(x, weight)


def _variants(inputs: Inputs) -> dict[str, Any]:
    x, weight = inputs["x"], inputs["weight"]
    out = Mistakes()
    add = out.add

    n, c = x.shape[0], x.shape[1]
    o = weight.shape[0]
    if c > 1:
        add(
            "only the LAST input channel reaches the output: inside your loop over input channels you "
            "assign (=) instead of adding up (+=). Output channel o is the SUM over all input channels.",
            lambda: _conv(x[:, -1:], weight[:, -1:]),
        )
        add(
            "only the FIRST input channel reaches the output: sum over every input channel c, not just c = 0.",
            lambda: _conv(x[:, :1], weight[:, :1]),
        )
        add(
            "the input channels are averaged instead of summed: do not divide by the number of channels.",
            lambda: _conv(x, weight) / c,
        )
    if c == o and c > 1:
        add(
            "the weight's first two dimensions are read the wrong way round: weight has shape "
            "(out_channels, in_channels, kH, kW), so output channel o and input channel c use weight[o, c], "
            "not weight[c, o].",
            lambda: _conv(x, weight.transpose(0, 1)),
        )
    if n > 1:
        add(
            "every image of the batch got the result of the LAST image: index the output with the batch "
            "index n (out[n, ...]), so the images stay separate.",
            lambda: _conv(x[-1:], weight).expand(n, -1, -1, -1),
        )
        add(
            "the images of the batch are summed together: each image n gets its own output out[n]; the "
            "weights are shared, the images never mix.",
            lambda: _conv(x.sum(0, keepdim=True), weight).expand(n, -1, -1, -1),
        )
    for explanation, wrong in conv_variants(ConvArgs(x, weight)).items():
        out.setdefault(explanation, wrong)
    return out


def _case(n, c, h, w, o, kh, kw, seed):
    return dict(x=randn(n, c, h, w, seed=seed), weight=randn(o, c, kh, kw, seed=seed + 100))


def _visible():
    return [_case(1, 3, 5, 5, 2, 3, 3, seed=1), _case(2, 2, 4, 6, 3, 2, 3, seed=2)]


def _hidden():
    shapes = [
        (1, 1, 5, 4, 1, 2, 2),  # single channel in and out
        (2, 3, 6, 5, 4, 3, 2),  # RGB-like input, non-square kernel and input
        (3, 2, 4, 4, 1, 1, 1),  # 1x1 kernel mixes channels only
        (1, 4, 3, 5, 2, 3, 5),  # kernel as large as the input
        (2, 1, 6, 3, 3, 4, 1),  # one input channel, many outputs
        (1, 5, 4, 4, 2, 2, 2),  # more inputs than outputs
        (2, 3, 5, 7, 3, 2, 4),  # as many outputs as inputs (weight[o, c] vs weight[c, o] differ)
        (4, 2, 3, 3, 2, 3, 1),  # batch of 4, tall kernel, output one pixel high
    ]
    cases = [_case(*shape, seed=10 + i) for i, shape in enumerate(shapes)]
    # Invalid: the weight expects 3 input channels, x has 2 (torch raises RuntimeError) ...
    cases.append(dict(x=randn(1, 2, 4, 4, seed=40), weight=randn(2, 3, 2, 2, seed=41)))
    # ... and the other way round: x has 3 channels, the weight expects 1.
    cases.append(dict(x=randn(2, 3, 5, 5, seed=42), weight=randn(2, 1, 3, 3, seed=43)))
    return cases


register(
    Exercise(
        name="conv2d_channels",
        lesson="03_channels",
        reference=_reference,
        banned=CONVOLUTION_OPS | UNFOLD_OPS,
        variants=_variants,
        suites={"visible": _visible, "hidden": _hidden},
        hint="out[n, o, i, j] sums x[n, c, i + a, j + b] * weight[o, c, a, b] over c, a and b: every input "
        "channel contributes to every output channel.",
    )
)


# Check your understanding (graded, 1 point each): answers are computed from torch when checked.
from ..quiz import Question, register_question  # noqa: E402


def _parameter_count() -> int:
    return sum(p.numel() for p in torch.nn.Conv2d(3, 6, 3).parameters())


def _weight_shape() -> tuple[int, ...]:
    return tuple(torch.nn.Conv2d(16, 32, kernel_size=(3, 5)).weight.shape)


def _channels_last_batch_error() -> str:
    try:
        torch.nn.Conv2d(3, 6, 3)(torch.zeros(4, 28, 28, 3))
    except Exception as error:  # the type torch raises is the answer  # noqa: BLE001
        return type(error).__name__
    return "no error"


def _nhwc_to_nchw_permutation() -> tuple[int, ...]:
    """The permutation that turns an (N, H, W, C) = (8, 64, 48, 3) batch into (N, C, H, W), found by trying all."""
    import itertools

    nhwc = torch.zeros(8, 64, 48, 3)
    (perm,) = [p for p in itertools.permutations(range(4)) if tuple(nhwc.permute(*p).shape) == (8, 3, 64, 48)]
    return perm


register_question(
    Question(
        name="03_channels.q1",
        lesson="03_channels",
        answer=_parameter_count,
        form="an int",
        explain="The weight is (6, 3, 3, 3) = 162 numbers, plus one bias per output channel: 162 + 6 = 168.",
    )
)
register_question(
    Question(
        name="03_channels.q2",
        lesson="03_channels",
        answer=_weight_shape,
        form="a tuple of four ints",
        explain="weight is (out_channels, in_channels, kH, kW): 32 filters, each with one 3×5 kernel for each of "
        "the 16 input channels.",
    )
)
register_question(
    Question(
        name="03_channels.q3",
        lesson="03_channels",
        answer=_channels_last_batch_error,
        kind="error",
        form="an exception class or its name",
        explain="torch reads dimension 1 as the channels: (4, 28, 28, 3) looks like 28 channels of 28×3 images, and "
        "the weight expects 3, so it raises RuntimeError ('expected input[4, 28, 28, 3] to have 3 channels, "
        "but got 28 channels instead'). Move the channels first with permute(0, 3, 1, 2).",
    )
)
register_question(
    Question(
        name="03_channels.q4",
        lesson="03_channels",
        answer=_nhwc_to_nchw_permutation,
        form="a tuple of four ints",
        explain="permute lists, for each new dimension, which old one goes there: N is old 0, C is old 3, H is old 1, "
        "W is old 2, so permute(0, 3, 1, 2) turns (8, 64, 48, 3) into (8, 3, 64, 48).",
    )
)
