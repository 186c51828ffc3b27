"""Lesson 07: ``conv2d_grouped(x, weight, groups)`` (loops) and ``conv_param_count(...)``."""

from __future__ import annotations

from typing import Any

import torch

from .. import _guard
from ..conv import ConvArgs, conv_exercise, pair, randn
from ..core import CONVOLUTION_OPS, UNFOLD_OPS, VALUES, Exercise, register
from ..quiz import Question, error_name, register_question


def _args(x, weight, groups):
    return ConvArgs(x, weight, groups=groups)


def _case(n, c, h, w, o, kh, kw, groups, seed):
    return dict(x=randn(n, c, h, w, seed=seed), weight=randn(o, c // groups, kh, kw, seed=seed + 100), groups=groups)


def _visible():
    return [_case(1, 4, 5, 5, 2, 3, 3, groups=2, seed=1), _case(1, 3, 4, 5, 3, 2, 2, groups=3, seed=2)]


def _hidden():
    cases = [
        _case(2, 4, 5, 4, 4, 3, 2, groups=1, seed=10),  # groups=1 is an ordinary convolution
        _case(1, 6, 4, 6, 6, 3, 3, groups=3, seed=11),
        _case(2, 4, 4, 4, 4, 3, 3, groups=4, seed=12),  # depthwise: groups == channels
        _case(1, 3, 5, 4, 6, 2, 3, groups=3, seed=13),  # depthwise with channel multiplier 2
        _case(1, 6, 3, 3, 4, 1, 1, groups=2, seed=14),  # grouped 1x1 (pointwise)
        _case(1, 4, 3, 5, 2, 3, 5, groups=2, seed=15),  # kernel as large as the input
    ]
    # Invalid (torch raises RuntimeError): groups does not divide the input channels; weight's second
    # dimension is not in_channels / groups; out_channels not divisible by groups.
    cases.append(dict(x=randn(1, 5, 4, 4, seed=20), weight=randn(4, 2, 2, 2, seed=21), groups=2))
    cases.append(dict(x=randn(1, 4, 4, 4, seed=22), weight=randn(4, 4, 2, 2, seed=23), groups=2))
    cases.append(dict(x=randn(1, 4, 4, 4, seed=24), weight=randn(3, 2, 2, 2, seed=25), groups=2))
    return cases


conv_exercise(
    "conv2d_grouped",
    "07_groups",
    _args,
    banned=CONVOLUTION_OPS | UNFOLD_OPS,
    suites={"visible": _visible, "hidden": _hidden},
    hint="output channel o belongs to group g = o // (out_channels // groups) and reads only input channels "
    "g * (C // groups) ... (g + 1) * (C // groups) - 1, with weight[o, 0 .. C // groups - 1].",
)


def _param_reference(in_channels, out_channels, kernel_size, groups=1, bias=True) -> int:
    layer = torch.nn.Conv2d(in_channels, out_channels, kernel_size, groups=groups, bias=bias, device="meta")
    return sum(p.numel() for p in layer.parameters())


def _param_variants(inputs: dict[str, Any]) -> dict[str, int]:
    c, o, groups = inputs["in_channels"], inputs["out_channels"], inputs.get("groups", 1)
    kh, kw = pair(inputs["kernel_size"])
    bias = o if inputs.get("bias", True) else 0
    return {
        "the groups are ignored: with groups=g each filter sees only in_channels / g channels, so divide by g.": o
        * c
        * kh
        * kw
        + bias,
        "the bias is missing (bias=True adds one number per output channel).": o * (c // groups) * kh * kw,
        "the bias is counted although bias=False.": o * (c // groups) * kh * kw + o,
        "the weights are divided by groups twice (out_channels already counts every group's filters).": o
        * (c // groups)
        * kh
        * kw
        // groups
        + bias,
    }


def _param_cases(kind):
    def cases():
        if kind == "visible":
            return [
                dict(in_channels=4, out_channels=8, kernel_size=3),
                dict(in_channels=4, out_channels=8, kernel_size=3, groups=4, bias=False),
            ]
        return [
            dict(in_channels=3, out_channels=16, kernel_size=3),
            dict(in_channels=64, out_channels=64, kernel_size=3, groups=64),  # depthwise
            dict(in_channels=64, out_channels=128, kernel_size=1),  # pointwise
            dict(in_channels=6, out_channels=9, kernel_size=(3, 5), groups=3, bias=False),
            dict(in_channels=32, out_channels=64, kernel_size=(1, 7), groups=32),  # multiplier 2
            dict(in_channels=1, out_channels=1, kernel_size=1, bias=False),
            dict(in_channels=5, out_channels=10, kernel_size=3, groups=2),  # 5 % 2 != 0
            dict(in_channels=4, out_channels=6, kernel_size=3, groups=4),  # 6 % 4 != 0
            dict(in_channels=4, out_channels=4, kernel_size=3, groups=0),  # groups must be > 0
        ]

    return cases


register(
    Exercise(
        name="conv_param_count",
        lesson="07_groups",
        reference=_param_reference,
        comparison=VALUES,
        banned=CONVOLUTION_OPS,
        variants=_param_variants,
        suites={"visible": _param_cases("visible"), "hidden": _param_cases("hidden")},
        hint="weight has shape (out_channels, in_channels // groups, kH, kW); bias adds out_channels numbers.",
    )
)


# Check your understanding (graded, 1 point each): answers are computed from torch when checked.
def _channels_read(out_channel: int) -> list[int]:
    """Input channels that output channel ``out_channel`` of a Conv2d(8, 8, 3, groups=4) depends on: where
    the gradient of that channel's outputs is non-zero (all-ones weights, so nothing cancels)."""
    x = torch.zeros(1, 8, 5, 5, dtype=torch.float64, requires_grad=True)
    ones = torch.ones(8, 2, 3, 3, dtype=torch.float64)
    _guard.conv2d(x, ones, None, 1, 0, 1, 4)[0, out_channel].sum().backward()
    return [c for c in range(8) if bool(x.grad[0, c].abs().sum() > 0)]


def _separable_parameters() -> int:
    layers = torch.nn.Sequential(torch.nn.Conv2d(32, 32, 3, groups=32), torch.nn.Conv2d(32, 64, 1))
    return sum(p.numel() for p in layers.parameters())


for _question in (
    Question(
        name="07_groups.q1",
        lesson="07_groups",
        form="a tuple of four ints",
        answer=lambda: tuple(torch.nn.Conv2d(12, 24, 3, groups=4).weight.shape),
        explain="Each filter reads only its group's 12 / 4 = 3 input channels: (out_channels, in_channels / "
        "groups, kH, kW) = (24, 3, 3, 3).",
    ),
    Question(
        name="07_groups.q2",
        lesson="07_groups",
        kind="set",
        form="a list (or set) of ints",
        answer=lambda: _channels_read(5),
        explain="8 output channels in 4 groups: 2 per group, so output channel 5 is in group 5 // 2 = 2, "
        "which reads input channels 2*2 = 4 and 5.",
    ),
    Question(
        name="07_groups.q3",
        lesson="07_groups",
        form="an int",
        answer=_separable_parameters,
        explain="Depthwise 3x3: 32 filters of 1 x 3 x 3 = 288 weights + 32 biases; pointwise 1x1: "
        "64 x 32 = 2048 weights + 64 biases. In all 288 + 32 + 2048 + 64 = 2432 (a dense "
        "Conv2d(32, 64, 3) has 18,496).",
    ),
    Question(
        name="07_groups.q4",
        lesson="07_groups",
        kind="error",
        form="the exception's name, e.g. 'TypeError' (or the class itself)",
        answer=lambda: error_name(lambda: torch.nn.Conv2d(6, 9, 3, groups=4)),
        explain="nn.Conv2d checks when it is built that groups divides both channel counts (6 and 9 are not "
        "multiples of 4) and raises ValueError. F.conv2d, which only sees tensors, raises "
        "RuntimeError for a mismatch.",
    ),
):
    register_question(_question)
