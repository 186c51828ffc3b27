"""Lesson 08: ``conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)`` with loops.

One function, F.conv2d's whole contract, graded in parts so that a mistake in one part (say 'same' with
an even kernel) costs only that part's points. Each part has a visible suite (``<part>``) and a hidden
one (``<part>_hidden``); ``visible`` and ``hidden`` are the unions. torch's convolution and unfold are
banned (this is the loop lesson; lesson 09 vectorizes it); F.pad is allowed.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ...geometry import same_pads
from .. import _guard
from ..conv import ConvArgs, conv_case, dtype_mismatch_cases, randn, reduction_size, variants
from ..core import CONVOLUTION_OPS, UNFOLD_OPS, Exercise, Mistakes, register
from ..quiz import Question, error_name, register_question

PARTS = ("bias", "geometry", "same_valid", "groups", "unbatched", "errors")


def _args(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> ConvArgs:
    return ConvArgs(input, weight, bias, stride, padding, dilation, groups)


def _bias(hidden: bool) -> list[dict[str, Any]]:
    if not hidden:
        return [conv_case((1, 2, 5, 6), (3, 2, 3, 3), bias=True, seed=1)]
    cases = [
        conv_case((2, 3, 6, 5), (4, 3, 2, 3), bias=True, seed=10),
        conv_case((1, 4, 4, 4), (2, 4, 1, 1), bias=True, seed=11),  # 1x1 kernel: out = W x + b
        conv_case((2, 1, 5, 5), (1, 1, 5, 5), bias=True, seed=12),  # kernel == input: one pixel
    ]
    explicit_none = conv_case((1, 2, 4, 5), (3, 2, 2, 2), seed=13)
    explicit_none["bias"] = None  # bias=None passed explicitly
    return cases + [explicit_none]


def _geometry(hidden: bool) -> list[dict[str, Any]]:
    if not hidden:
        return [
            conv_case((1, 2, 9, 8), (2, 2, 3, 3), stride=2, padding=1, dilation=1, bias=True, seed=2),
            conv_case((1, 1, 8, 10), (1, 1, 2, 3), stride=(1, 2), padding=(2, 1), dilation=(2, 1), seed=3),
        ]
    return [
        conv_case((2, 2, 10, 9), (3, 2, 3, 3), stride=(2, 3), bias=True, seed=20),
        conv_case((1, 3, 7, 8), (2, 3, 3, 2), padding=(2, 1), seed=21),
        conv_case((1, 2, 11, 12), (2, 2, 3, 3), dilation=(2, 3), padding=(1, 2), bias=True, seed=22),
        conv_case((2, 2, 9, 9), (3, 2, 2, 3), stride=2, padding=2, dilation=2, seed=23),
        conv_case((1, 1, 6, 6), (1, 1, 3, 3), stride=5, seed=24),  # stride larger than the kernel
        conv_case((1, 2, 3, 5), (3, 2, 5, 7), padding=1, seed=25),  # kernel == padded input
        conv_case((1, 1, 7, 6), (2, 1, 2, 2), stride=(3, 2), padding=(0, 1), dilation=(1, 3), seed=26),
        conv_case((1, 2, 5, 5), (1, 2, 3, 3), padding=[1, 0], stride=[2, 1], seed=27),  # lists work too
    ]


def _same_valid(hidden: bool) -> list[dict[str, Any]]:
    if not hidden:
        return [
            conv_case((1, 2, 6, 7), (2, 2, 3, 3), padding="same", bias=True, seed=4),
            conv_case((1, 2, 6, 7), (2, 2, 3, 3), padding="valid", seed=5),
        ]
    return [
        conv_case((2, 2, 6, 7), (3, 2, 2, 4), padding="same", seed=30),  # even kernels: uneven padding
        conv_case((1, 2, 8, 8), (2, 2, 2, 3), padding="same", dilation=(3, 2), seed=31),
        conv_case((1, 1, 5, 6), (1, 1, 4, 4), padding="same", dilation=2, bias=True, seed=32),
        conv_case((1, 3, 4, 4), (2, 3, 1, 1), padding="same", seed=33),  # 1x1: no padding at all
        conv_case((1, 2, 6, 5), (2, 2, 3, 2), padding="valid", bias=True, dilation=(1, 2), seed=34),
        conv_case((1, 2, 6, 6), (2, 2, 3, 3), padding="same", stride=(1, 1), seed=35),  # stride 1 as a tuple
    ]


def _groups(hidden: bool) -> list[dict[str, Any]]:
    if not hidden:
        return [conv_case((1, 4, 6, 6), (4, 2, 3, 3), groups=2, bias=True, seed=6)]
    return [
        conv_case((2, 4, 6, 6), (6, 2, 3, 3), groups=2, bias=True, seed=40),
        conv_case((1, 6, 7, 5), (6, 1, 3, 2), groups=6, padding=1, seed=41),  # depthwise
        conv_case((1, 3, 5, 5), (6, 1, 2, 2), groups=3, seed=42),  # depthwise, multiplier 2
        conv_case((1, 6, 8, 8), (12, 2, 3, 3), groups=3, stride=2, dilation=2, padding=(2, 1), bias=True, seed=43),
        conv_case((1, 4, 7, 7), (4, 2, 3, 3), groups=2, padding="same", dilation=2, seed=44),
    ]


def _unbatched(hidden: bool) -> list[dict[str, Any]]:
    if not hidden:
        return [conv_case((2, 5, 6), (3, 2, 3, 3), bias=True, padding=1, seed=7)]
    return [
        conv_case((3, 5, 7), (4, 3, 2, 2), bias=True, stride=2, seed=50),
        conv_case((2, 6, 5), (4, 2, 2, 2), padding="same", seed=51),
        conv_case((4, 7, 7), (4, 2, 3, 3), groups=2, dilation=2, padding=1, seed=52),
        conv_case((1, 4, 4), (1, 1, 4, 4), seed=53),  # one output pixel
    ]


def _errors(hidden: bool) -> list[dict[str, Any]]:
    """Invalid arguments: F.conv2d raises RuntimeError for every one of them."""
    if not hidden:
        return [
            conv_case((1, 4, 5, 5), (6, 3, 3, 3), seed=8),  # channel mismatch
            conv_case((1, 2, 6, 6), (2, 2, 3, 3), padding="same", stride=2, seed=9),
        ]
    cases = [
        conv_case((1, 4, 5, 5), (6, 4, 3, 3), groups=3, seed=60),  # groups does not divide C
        conv_case((1, 4, 5, 5), (3, 2, 3, 3), groups=2, seed=61),  # ... nor out_channels
        conv_case((1, 2, 6, 6), (2, 2, 3, 3), groups=0, seed=62),
        conv_case((1, 2, 6, 6), (2, 2, 3, 3), padding="full", seed=63),  # unknown padding string
        conv_case((1, 2, 6, 6), (2, 2, 3, 3), padding=-1, seed=64),
        conv_case((1, 2, 6, 6), (2, 2, 3, 3), stride=0, seed=65),
        conv_case((1, 2, 6, 6), (2, 2, 3, 3), stride=(1, -2), seed=66),
        conv_case((1, 2, 6, 6), (2, 2, 3, 3), dilation=0, seed=67),
        conv_case((1, 2, 6, 6), (2, 2, 3, 3), padding="same", stride=(1, 2), seed=68),
        conv_case((1, 2, 2, 2), (2, 2, 3, 3), seed=69),  # kernel larger than input
        conv_case((1, 2, 2, 3), (2, 2, 5, 4), padding=1, seed=70),  # ... than the padded input
        conv_case((2, 6, 6), (2, 3, 3, 3), bias=True, seed=71),  # unbatched, channel mismatch
        conv_case((1, 2, 6, 6), (2, 2, 3, 3), stride=(1, 2, 3), seed=72),  # three strides for 2-D
    ]
    wrong_bias = conv_case((1, 2, 5, 5), (3, 2, 3, 3), seed=80)
    wrong_bias["bias"] = randn(4, seed=81)  # 4 biases, 3 output channels
    flat_input = dict(input=randn(6, 6, seed=82), weight=randn(1, 1, 3, 3, seed=83))  # 2-D input
    five_d = dict(input=randn(1, 1, 2, 6, 6, seed=84), weight=randn(1, 1, 3, 3, seed=85))
    return cases + [wrong_bias, flat_input, five_d] + dtype_mismatch_cases(seed=86)


_PART_CASES: dict[str, Callable[[bool], list[dict[str, Any]]]] = {
    "bias": _bias,
    "geometry": _geometry,
    "same_valid": _same_valid,
    "groups": _groups,
    "unbatched": _unbatched,
    "errors": _errors,
}


def _suite(part: str, hidden: bool) -> Callable[[], list[dict[str, Any]]]:
    return lambda: _PART_CASES[part](hidden)


def _union(hidden: bool) -> Callable[[], list[dict[str, Any]]]:
    return lambda: [case for part in PARTS for case in _PART_CASES[part](hidden)]


def _reference(**inputs: Any) -> torch.Tensor:
    return _args(**inputs).conv()


def _variants(inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The mistakes of every convolution exercise, plus the ones only the full contract allows."""
    args = _args(**inputs)
    out = Mistakes()
    add = out.add

    if args.x.dim() == 3:
        add(
            "for an unbatched (C, H, W) input torch returns an unbatched (out_channels, H_out, W_out) output: "
            "add the batch dimension at the start (input[None]) and remove it again at the end (out[0]).",
            lambda: args.conv().unsqueeze(0),
        )
    if args.padding == "same":
        kh, kw = args.weight.shape[-2:]
        dh, dw = (args.dilation, args.dilation) if isinstance(args.dilation, int) else args.dilation
        total_h, total_w = dh * (kh - 1), dw * (kw - 1)
        if total_h % 2 or total_w % 2:
            add(
                "'same' with an even kernel needs an odd total padding dilation*(k-1) per axis; you padded "
                "total//2 on both sides, one too few. torch pads total//2 on the left/top and the rest "
                "(one more) on the right/bottom.",
                lambda: args.conv(padding=(total_h // 2, total_w // 2)),
            )
            add(
                "'same' with an even kernel needs an odd total padding dilation*(k-1) per axis; you padded "
                "(total+1)//2 on both sides, one too many. torch pads total//2 on the left/top and the rest "
                "on the right/bottom.",
                lambda: args.conv(padding=((total_h + 1) // 2, (total_w + 1) // 2)),
            )
        if (dh, dw) != (1, 1):
            add(
                "'same' padding ignores the dilation: a dilated kernel spans dilation*(k-1)+1 pixels, so the "
                "total padding per axis is dilation*(k-1).",
                lambda: args.conv(x=_guard.pad(args.x, same_pads((kh, kw))), padding=0),  # no dilation: the mistake
            )
    for explanation, wrong in variants(args).items():
        if wrong is not None:
            out.setdefault(explanation, wrong)
    return out


SUITES: dict[str, Callable[[], list[dict[str, Any]]]] = {"visible": _union(False), "hidden": _union(True)}
for _part in PARTS:
    SUITES[_part] = _suite(_part, False)
    SUITES[f"{_part}_hidden"] = _suite(_part, True)

register(
    Exercise(
        name="conv2d",
        lesson="08_full_conv2d",
        reference=_reference,
        banned=CONVOLUTION_OPS | UNFOLD_OPS,
        variants=_variants,
        suites=SUITES,
        reduction=lambda inputs: reduction_size(_args(**inputs)),
        hint="pad first (zeros; for 'same' the total per axis is dilation*(k-1), total//2 on the left/top), then "
        "for every output pixel (i, j) and kernel tap (a, b) read x_pad[..., i*sH + a*dH, j*sW + b*dW], use "
        "only the input channels of the output channel's group, and add bias[o] once.",
    )
)


# Check your understanding (graded, 1 point each): answers are computed from torch when checked.
def _unbatched_shape() -> tuple[int, ...]:
    return tuple(_guard.conv2d(torch.zeros(3, 10, 12), torch.zeros(6, 3, 3, 3), None, 2, 1, 1, 1).shape)


def _bias_only_output() -> float:
    out = _guard.conv2d(torch.zeros(1, 2, 5, 5), torch.ones(4, 2, 3, 3), torch.arange(4.0), 1, 0, 1, 1)
    return float(out[0, 3, 0, 0])


def _multiply_adds() -> int:
    """Output values times the weights each one multiplies: (C / groups) * kH * kW per output value."""
    weight = torch.zeros(16, 4, 3, 3)
    out = _guard.conv2d(torch.zeros(1, 8, 32, 32), weight, None, 2, 1, 1, 2)
    return out.numel() * weight[0].numel()


for _question in (
    Question(
        name="08_full_conv2d.q1",
        lesson="08_full_conv2d",
        form="a tuple of three ints",
        answer=_unbatched_shape,
        explain="A (C, H, W) input gives an unbatched (out_channels, H_out, W_out) output: 6 channels, "
        "floor((10 + 2 - 3) / 2) + 1 = 5 rows and floor((12 + 2 - 3) / 2) + 1 = 6 columns.",
    ),
    Question(
        name="08_full_conv2d.q2",
        lesson="08_full_conv2d",
        form="a number",
        answer=_bias_only_output,
        kind="number",
        explain="The input is all zeros, so every product is 0 and only the bias is left: output channel 3 "
        "gets bias[3] = 3.0 at every position.",
    ),
    Question(
        name="08_full_conv2d.q3",
        lesson="08_full_conv2d",
        kind="error",
        form="the exception's name, e.g. 'TypeError' (or the class itself)",
        answer=lambda: error_name(
            lambda: _guard.conv2d(torch.zeros(1, 4, 6, 6), torch.zeros(6, 2, 3, 3), None, 1, 0, 1, 3)
        ),
        explain="With groups=3 the weight (6, 2, 3, 3) expects 3 * 2 = 6 input channels, the input has 4: "
        "F.conv2d raises RuntimeError (and 4 is not divisible by 3 either).",
    ),
    Question(
        name="08_full_conv2d.q4",
        lesson="08_full_conv2d",
        form="an int",
        answer=_multiply_adds,
        explain="The output is (1, 16, 16, 16): 4096 values. Each reads only its group's 8 / 2 = 4 input "
        "channels through a 3x3 kernel, 4 * 3 * 3 = 36 multiply-adds: 4096 * 36 = 147,456.",
    ),
):
    register_question(_question)
