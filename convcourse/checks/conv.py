"""Torch references and known-wrong variants for every convolution-shaped exercise.

Every exercise from ``corr2d`` to ``conv2d_fast`` is F.conv2d with some arguments fixed. An
exercise converts its inputs to :class:`ConvArgs`; :func:`reference` and :func:`variants` work on
that, and :func:`conv_exercise` builds the :class:`~convcourse.checks.core.Exercise`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from ..geometry import pads, pair
from . import _guard
from .core import Exercise, Inputs, Mistakes, register


@dataclasses.dataclass
class ConvArgs:
    """Arguments of F.conv2d, normalised: tuples for stride/dilation, padding tuple or string."""

    x: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None = None
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1

    def conv(self, **changes: Any) -> torch.Tensor:
        args = dataclasses.replace(self, **changes)
        return _guard.conv2d(args.x, args.weight, args.bias, args.stride, args.padding, args.dilation, args.groups)

    def explicit_padding(self) -> tuple[int, int, int, int] | None:
        """(left, right, top, bottom) padding, resolving 'same'/'valid' the way torch does."""
        return pads(self.padding, tuple(self.weight.shape[-2:]), pair(self.dilation))


def _swap(value: Any) -> Any:
    if isinstance(value, str):
        return value
    a, b = pair(value)
    return (b, a)


def variants(args: ConvArgs) -> dict[str, torch.Tensor | None]:
    """Outputs of common wrong implementations, keyed by the explanation shown to the learner."""
    out = Mistakes()
    add = out.add

    x, w, b = args.x, args.weight, args.bias
    add(
        "your output is the true (flipped-kernel) convolution. Deep learning's 'convolution' is "
        "cross-correlation: use k[i, j], not k[kH-1-i, kW-1-j].",
        lambda: args.conv(weight=w.flip(-1, -2)),
    )
    add(
        "the kernel's rows and columns are swapped (you used k[j, i] where k[i, j] belongs).",
        lambda: args.conv(weight=w.transpose(-1, -2)),
    )
    add(
        "height and width are swapped: your output is torch's transposed (out[j, i] where out[i, j] "
        "belongs); loop i over rows (height, dim -2) and j over columns (width, dim -1).",
        lambda: args.conv().transpose(-1, -2),
    )
    for label, crop in [
        ("the last row and column", (slice(None, -1), slice(None, -1))),
        ("the last row", (slice(None, -1), slice(None))),
        ("the last column", (slice(None), slice(None, -1))),
    ]:
        add(
            f"off-by-one in the output size: your output misses {label}. Along each axis there are "
            "floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1 window positions "
            "(range(H - kH + 1), not range(H - kH)).",
            lambda crop=crop: _nonempty(args.conv()[(..., *crop)]),
        )
    if pair(args.stride)[0] != pair(args.stride)[1]:
        add(
            "stride is applied to the wrong axis: stride[0] steps down the rows (height), "
            "stride[1] across the columns (width).",
            lambda: args.conv(stride=_swap(args.stride)),
        )
    if not isinstance(args.padding, str) and pair(args.padding)[0] != pair(args.padding)[1]:
        add(
            "padding is applied to the wrong axis: padding[0] pads top and bottom, padding[1] left and right.",
            lambda: args.conv(padding=_swap(args.padding)),
        )
    if pair(args.dilation)[0] != pair(args.dilation)[1]:
        add(
            "dilation is applied to the wrong axis: dilation[0] spaces the kernel's rows, dilation[1] its columns.",
            lambda: args.conv(dilation=_swap(args.dilation)),
        )
    if b is not None:
        add("the bias is missing: add bias[o] to every position of output channel o.", lambda: args.conv(bias=None))
        add("the bias is added twice.", lambda: args.conv(bias=2 * b))
        add(
            "the bias is added once per input channel (inside the channel loop) instead of once.",
            lambda: args.conv(bias=b * (x.shape[-3] // args.groups)),
        )
    padding = args.explicit_padding()
    if padding is not None and any(padding):
        left, right, top, bottom = padding
        total_w, total_h = left + right, top + bottom
        for label, pads in [
            ("padding is added on one side only (left/top); pad both sides.", (total_w, 0, total_h, 0)),
            ("padding is added on one side only (right/bottom); pad both sides.", (0, total_w, 0, total_h)),
        ]:
            add(label, lambda pads=pads: args.conv(x=_guard.pad(x, pads), padding=0))
        if (left, top) != (right, bottom):
            add(
                "the extra padding of an even kernel is on the wrong side: for 'same' torch puts "
                "total//2 on the left/top and the rest on the right/bottom.",
                lambda: args.conv(x=_guard.pad(x, (right, left, bottom, top)), padding=0),
            )
        if (left, top) == (right, bottom):
            add(
                "each side is padded with the total padding (2*p) instead of p.",
                lambda: args.conv(x=_guard.pad(x, (2 * left, 2 * right, 2 * top, 2 * bottom)), padding=0),
            )
    if args.groups > 1:
        groups = args.groups
        c_in = x.shape[-3] // groups
        c_out = w.shape[0] // groups

        def first_group_only() -> torch.Tensor:
            return _guard.conv2d(x.narrow(-3, 0, c_in), w, b, args.stride, args.padding, args.dilation, 1)

        def modulo_groups() -> torch.Tensor:
            order = [o for g in range(groups) for o in range(w.shape[0]) if o % groups == g]
            wrong = _guard.conv2d(
                x, w[order], None if b is None else b[order], args.stride, args.padding, args.dilation, groups
            )
            back = [order.index(o) for o in range(w.shape[0])]
            return wrong.index_select(-3, torch.tensor(back))

        add(
            "groups mix channels: every output channel sums over all input channels, but with groups "
            f"= {groups} output channel o only reads the {c_in} input channels of its group "
            f"g = o // {c_out}.",
            lambda: _guard.conv2d(x, w.repeat(1, groups, 1, 1), b, args.stride, args.padding, args.dilation, 1),
        )
        add(
            "every output channel reads the first group's input channels: output channel o belongs "
            f"to group o // (out_channels // groups) = o // {c_out} and reads input channels "
            f"g*{c_in} ... (g+1)*{c_in}-1 of that group.",
            first_group_only,
        )
        add(
            "output channels are assigned to groups by o % groups; torch uses o // (out_channels // groups).",
            modulo_groups,
        )
    dh, dw = pair(args.dilation)
    if (dh, dw) != (1, 1):
        add(
            "dilation is applied to the input instead of the kernel: the kernel's taps are spaced "
            "out, the input is read at every pixel.",
            lambda: args.conv(x=x[..., ::dh, ::dw], dilation=1),
        )
        add(
            "dilation is used as the stride: dilation spaces the kernel's taps, stride moves the window.",
            lambda: args.conv(stride=(dh, dw), dilation=1),
        )
        add(
            "dilation is ignored: your kernel taps are next to each other, but with dilation (dH, dW) tap (a, b) "
            "reads x[i*sH + a*dH, j*sW + b*dW], so a k-tap kernel spans dilation*(k-1)+1 pixels.",
            lambda: args.conv(dilation=1),
        )
    sh, sw = pair(args.stride)
    if (sh, sw) != (1, 1):
        add("stride is ignored: the window must move by stride pixels each step.", lambda: args.conv(stride=1))
    return out


def _nonempty(t: torch.Tensor) -> torch.Tensor:
    if t.numel() == 0:
        raise ValueError("empty")
    return t


def conv_exercise(
    name: str,
    lesson: str,
    to_args: Callable[..., ConvArgs],
    from_output: Callable[[torch.Tensor, Inputs], torch.Tensor] = lambda out, inputs: out,
    *,
    banned: frozenset[str] = frozenset(),
    suites: dict[str, Callable[[], list[Inputs]]] | None = None,
    hint: str = "",
    rtol: float | None = None,
    atol: float | None = None,
    libraries: tuple | None = None,
) -> Exercise:
    """Register an exercise whose answer is F.conv2d applied to ``to_args(**inputs)``."""

    def reference(**inputs: Any) -> torch.Tensor:
        return from_output(to_args(**inputs).conv(), inputs)

    def wrong_outputs(inputs: Inputs) -> dict[str, Any]:
        return {k: from_output(v, inputs) for k, v in variants(to_args(**inputs)).items() if v is not None}

    def reduction(inputs: Inputs) -> int:
        return reduction_size(to_args(**inputs))

    return register(
        Exercise(
            name=name,
            lesson=lesson,
            reference=reference,
            banned=banned,
            variants=wrong_outputs,
            suites=suites or {},
            hint=hint,
            rtol=rtol,
            atol=atol,
            reduction=reduction,
            libraries=libraries,
        )
    )


def reduction_size(args: ConvArgs) -> int:
    """How many products one output value of the convolution sums: (C_in / groups) * kH * kW."""
    return int(args.weight[0].numel()) if args.weight.dim() >= 1 and args.weight.shape[0] else 1


def conv_case(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    *,
    bias: bool = False,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Inputs of one F.conv2d-shaped call (``input``, ``weight`` ...) with deterministic float64 tensors;
    arguments left at F.conv2d's defaults are left out, so learners' defaults are tested too."""
    inputs: dict[str, Any] = dict(input=randn(*x_shape, seed=seed), weight=randn(*w_shape, seed=seed + 1))
    if bias:
        inputs["bias"] = randn(w_shape[0], seed=seed + 2)
    for key, value, default in (
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
        ("groups", groups, 1),
    ):
        if value != default:
            inputs[key] = value
    return inputs


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Deterministic test tensor: standard normal values from a private generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype)


def dtype_mismatch_cases(seed: int) -> list[dict[str, Any]]:
    """Invalid calls F.conv2d refuses with RuntimeError because input, weight and bias dtypes differ."""
    x, w, b = randn(1, 2, 5, 5, seed=seed), randn(3, 2, 3, 3, seed=seed + 1), randn(3, seed=seed + 2)
    return [
        dict(input=x.float(), weight=w),  # float32 input, float64 weight
        dict(input=x, weight=w.float()),  # float64 input, float32 weight
        dict(input=(10 * x).long(), weight=(10 * w).long(), bias=b),  # int input and weight, float bias
        dict(input=x, weight=w, bias=b.to(torch.complex128)),  # complex bias
        dict(input=x, weight=w, bias=b.float()),  # float32 bias
    ]
