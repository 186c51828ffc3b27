"""Arguments of ``F.conv2d`` made explicit: ints and tuples to pairs, ``'same'``/``'valid'`` to four paddings.

Lesson 09 is about vectorising a convolution, not about argument checking (lesson 08 was), so learners get
:func:`conv2d_arguments`: it validates a call the way ``F.conv2d`` does (the same exception types, for the
same calls) and returns every number the computation needs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .geometry import integer, output_shape, pair, same_pads

__all__ = ["Conv2dArguments", "conv2d_arguments"]


@dataclasses.dataclass(frozen=True)
class Conv2dArguments:
    """The explicit numbers of one ``F.conv2d`` call.

    batched: False for a (C, H, W) input (the output then has no batch dimension either).
    batch, in_channels, height, width: the input's sizes (batch = 1 for an unbatched input).
    out_channels, kernel: the weight's output channels and (kH, kW).
    stride, dilation: (along H, along W). padding: (left, right, top, bottom), as ``F.pad`` takes it.
    groups: the channel groups. out_size: (H_out, W_out).
    """

    batched: bool
    batch: int
    in_channels: int
    height: int
    width: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]
    groups: int
    out_size: tuple[int, int]


def conv2d_arguments(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Conv2dArguments:
    """Validate an ``F.conv2d`` call like torch and return its numbers (:class:`Conv2dArguments`).

    Raises what ``F.conv2d`` raises for the same call: ``RuntimeError`` for a wrong shape, a dtype mismatch,
    groups that do not fit, non-positive stride/dilation/groups, negative padding, an unknown padding string,
    ``'same'`` with a stride, a pair with more than two entries, a kernel larger than the padded input;
    ``TypeError`` for a non-integer stride, padding, dilation or groups."""
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError("conv2d: input and weight must be tensors")
    if input.dim() not in (3, 4):
        raise RuntimeError(
            f"Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: {list(input.shape)}"
        )
    if weight.dim() != 4:
        raise RuntimeError(
            f"conv2d expects a 4-D weight (out_channels, in_channels / groups, kH, kW), got size {list(weight.shape)}"
        )
    stride_hw, dilation_hw = pair(stride, "stride"), pair(dilation, "dilation")
    groups = integer(groups, "groups")
    batched = input.dim() == 4
    batch, in_channels, height, width = input.shape if batched else (1, *input.shape)
    out_channels, per_group, kh, kw = weight.shape
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if min(stride_hw) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if min(dilation_hw) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilation={list(dilation_hw)}")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"Input type ({input.dtype}) and weight type ({weight.dtype}) should be the same")
    if out_channels % groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
            f"but got weight of size {list(weight.shape)}"
        )
    if in_channels != per_group * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(weight.shape)}, expected input"
            f"{list(input.shape)} to have {per_group * groups} channels, but got {in_channels} "
            "channels instead"
        )
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError("conv2d: bias must be a tensor or None")
        if tuple(bias.shape) != (out_channels,):
            raise RuntimeError(
                f"Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional with "
                f"{out_channels} elements, but got bias of size {list(bias.shape)} instead"
            )
        if bias.dtype != input.dtype:
            raise RuntimeError(f"Input type ({input.dtype}) and bias type ({bias.dtype}) should be the same")
    span_h, span_w = dilation_hw[0] * (kh - 1) + 1, dilation_hw[1] * (kw - 1) + 1
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride_hw != (1, 1):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            pads = same_pads((kh, kw), dilation_hw)
        else:
            raise RuntimeError(f"Invalid padding string: {padding!r}")
    else:
        ph, pw = pair(padding, "padding")
        if ph < 0 or pw < 0:
            raise RuntimeError("negative padding is not supported")
        pads = (pw, pw, ph, ph)
    padded_h, padded_w = height + pads[2] + pads[3], width + pads[0] + pads[1]
    if span_h > padded_h or span_w > padded_w:
        raise RuntimeError(
            f"Calculated padded input size per channel: ({padded_h} x {padded_w}). Kernel size: "
            f"({span_h} x {span_w}). Kernel size can't be greater than actual input size"
        )
    out_size = output_shape((height, width), (kh, kw), stride_hw, pads, dilation_hw)
    return Conv2dArguments(
        batched,
        batch,
        in_channels,
        height,
        width,
        out_channels,
        (kh, kw),
        stride_hw,
        dilation_hw,
        pads,
        groups,
        out_size,
    )
