"""Lesson 14: ``conv_transpose2d`` with loops (scatter) and ``ConvTranspose2d(nn.Module)``.

``conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1)``
has F.conv_transpose2d's whole contract, graded in parts like lesson 08's ``conv2d``: each part a visible
suite (``<part>``) and a hidden one (``<part>_hidden``). torch's convolutions (conv_transpose2d itself, and
conv2d's backward, which computes the same map) and unfold/fold are banned.

``ConvTranspose2d`` is graded like lesson 10's ``Conv2d``: the exercise's inputs are constructor arguments;
parameters and state dicts must interchange with ``nn.ConvTranspose2d``, ``forward(input, output_size=None)``
must match, the initialisation must be torch's, and invalid arguments must raise torch's exception types.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import torch
from torch import nn

from ...geometry import pair
from .. import _guard
from ..conv import randn
from ..core import (
    CONVOLUTION_OPS,
    UNFOLD_OPS,
    Exercise,
    Mistakes,
    _freeze,
    _thaw,
    custom,
    describe_inputs,
    first_difference,
    plain_tensor,
    register,
    tolerance,
    watched_call,
)
from ..quiz import Question, error_name, register_question
from .l10_conv2d_module import _load, _uniform_problem, parameters_problem

LESSON = "14_transposed"
PARTS = ("geometry", "output_padding", "groups", "unbatched", "errors")

# ------------------------------------------------------------------ conv_transpose2d


@dataclasses.dataclass
class TransposedArgs:
    """Arguments of F.conv_transpose2d, in its order."""

    x: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None = None
    stride: Any = 1
    padding: Any = 0
    output_padding: Any = 0
    groups: int = 1
    dilation: Any = 1

    def run(self, **changes: Any) -> torch.Tensor:
        a = dataclasses.replace(self, **changes)
        return _guard.conv_transpose2d(
            a.x, a.weight, a.bias, a.stride, a.padding, a.output_padding, a.groups, a.dilation
        )


def _args(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1) -> TransposedArgs:
    return TransposedArgs(input, weight, bias, stride, padding, output_padding, groups, dilation)


def transposed_case(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], *, bias: bool = False, seed: int = 0, **arguments: Any
) -> dict[str, Any]:
    """Inputs of one F.conv_transpose2d call with deterministic float64 tensors; the bias has
    ``w_shape[1] * groups`` entries; arguments at their defaults are left out (learners' defaults are tested)."""
    inputs: dict[str, Any] = dict(input=randn(*x_shape, seed=seed), weight=randn(*w_shape, seed=seed + 1))
    if bias:
        inputs["bias"] = randn(w_shape[1] * arguments.get("groups", 1), seed=seed + 2)
    defaults = dict(stride=1, padding=0, output_padding=0, groups=1, dilation=1)
    inputs.update({k: v for k, v in arguments.items() if v != defaults[k]})
    return inputs


def _geometry(hidden: bool) -> list[dict[str, Any]]:
    if not hidden:
        return [
            transposed_case((1, 2, 4, 5), (2, 3, 3, 3), bias=True, seed=1),
            transposed_case((1, 2, 4, 4), (2, 2, 3, 2), stride=2, padding=1, seed=2),
            transposed_case((1, 1, 3, 4), (1, 2, 2, 3), stride=(1, 2), padding=(0, 1), dilation=(2, 1), seed=3),
        ]
    return [
        transposed_case((2, 3, 4, 3), (3, 2, 2, 3), stride=(2, 3), bias=True, seed=10),
        transposed_case((1, 2, 3, 3), (2, 2, 2, 2), stride=3, seed=11),  # stride > kernel: gaps
        transposed_case((1, 2, 5, 4), (2, 3, 3, 3), padding=(2, 1), bias=True, seed=12),
        transposed_case((1, 2, 4, 4), (2, 2, 3, 2), dilation=(2, 3), padding=(1, 2), seed=13),
        transposed_case((2, 2, 3, 4), (2, 2, 3, 3), stride=2, padding=2, dilation=2, bias=True, seed=14),
        transposed_case((1, 3, 2, 2), (3, 1, 1, 1), stride=2, seed=15),  # 1x1 kernel: zeros between pixels
        transposed_case((1, 2, 3, 3), (2, 2, 3, 3), padding=[1, 0], stride=[2, 1], seed=16),  # lists work too
        transposed_case((1, 2, 1, 1), (2, 2, 4, 3), padding=1, seed=17),  # one input pixel
        transposed_case((1, 3, 3, 4), (3, 3, 2, 2), stride=(1, 2), seed=18),  # square channels
    ]


def _output_padding(hidden: bool) -> list[dict[str, Any]]:
    if not hidden:
        return [
            transposed_case((1, 2, 3, 4), (2, 2, 3, 3), stride=2, output_padding=1, seed=4),
            transposed_case((1, 2, 4, 3), (2, 2, 3, 3), stride=2, padding=1, output_padding=1, bias=True, seed=5),
        ]
    return [
        transposed_case((1, 2, 3, 3), (2, 3, 2, 3), stride=(3, 2), output_padding=(2, 1), seed=20),
        transposed_case((1, 2, 4, 4), (2, 2, 3, 3), stride=(2, 1), padding=(1, 1), output_padding=(1, 0), seed=21),
        transposed_case((1, 1, 3, 3), (1, 2, 2, 2), dilation=2, output_padding=1, seed=22),  # < dilation, stride 1
        transposed_case((2, 2, 3, 4), (2, 2, 3, 3), stride=3, padding=2, output_padding=(2, 1), bias=True, seed=23),
        transposed_case((1, 2, 3, 3), (2, 2, 3, 3), stride=2, padding=1, output_padding=(0, 1), seed=24),
        transposed_case((1, 2, 2, 3), (2, 2, 2, 2), stride=(1, 3), dilation=(3, 1), output_padding=(2, 2), seed=25),
    ]


def _groups(hidden: bool) -> list[dict[str, Any]]:
    if not hidden:
        return [transposed_case((1, 4, 3, 4), (4, 3, 3, 3), groups=2, bias=True, seed=6)]
    return [
        transposed_case((2, 4, 3, 3), (4, 2, 3, 2), groups=2, stride=2, output_padding=1, seed=40),
        transposed_case((1, 3, 4, 3), (3, 1, 3, 3), groups=3, padding=1, bias=True, seed=41),  # depthwise
        transposed_case((1, 3, 3, 3), (3, 2, 2, 2), groups=3, stride=2, seed=42),  # multiplier 2
        transposed_case((1, 6, 3, 3), (6, 1, 3, 3), groups=3, dilation=2, padding=(2, 1), seed=43),
        transposed_case((1, 4, 3, 3), (4, 2, 2, 2), groups=2, seed=44),  # square groups
    ]


def _unbatched(hidden: bool) -> list[dict[str, Any]]:
    if not hidden:
        return [transposed_case((2, 3, 4), (2, 3, 3, 3), bias=True, padding=1, seed=7)]
    return [
        transposed_case((3, 3, 2), (3, 2, 2, 2), bias=True, stride=2, output_padding=1, seed=50),
        transposed_case((4, 3, 3), (4, 1, 3, 3), groups=2, dilation=2, seed=51),
        transposed_case((1, 1, 1), (1, 1, 2, 2), seed=52),  # one input pixel: the kernel itself
    ]


def _errors(hidden: bool) -> list[dict[str, Any]]:
    """Invalid arguments: F.conv_transpose2d raises RuntimeError for each (TypeError for non-integers)."""
    if not hidden:
        return [
            transposed_case((1, 2, 4, 4), (2, 2, 3, 3), output_padding=1, seed=8),  # >= stride and >= dilation
            transposed_case((1, 3, 4, 4), (2, 2, 3, 3), seed=9),  # weight expects 2 input channels
        ]
    cases = [
        transposed_case((1, 2, 4, 4), (2, 2, 3, 3), stride=2, output_padding=2, seed=60),
        transposed_case((1, 2, 4, 4), (2, 2, 3, 3), stride=(1, 2), output_padding=(1, 0), seed=61),  # per axis
        transposed_case((1, 2, 4, 4), (2, 2, 3, 3), output_padding=-1, seed=62),
        transposed_case((1, 2, 4, 4), (2, 2, 3, 3), padding=-1, seed=63),
        transposed_case((1, 2, 2, 2), (2, 2, 3, 3), padding=2, seed=64),  # cropped to nothing
        transposed_case((1, 2, 4, 4), (2, 2, 3, 3), stride=0, seed=65),
        transposed_case((1, 2, 4, 4), (2, 2, 3, 3), dilation=(1, 0), seed=66),
        transposed_case((1, 2, 4, 4), (2, 2, 3, 3), groups=0, seed=67),
        transposed_case((1, 4, 4, 4), (4, 2, 3, 3), groups=3, seed=68),  # 3 does not divide 4
        transposed_case((1, 2, 4, 4), (2, 2, 3, 3), stride=(1, 2, 3), seed=69),
        transposed_case((3, 4, 4), (2, 2, 3, 3), seed=70),  # unbatched, channel mismatch
        dict(input=randn(1, 2, 4, 4, seed=71), weight=randn(2, 3, 3, 3, seed=72), bias=randn(2, seed=73)),  # 2 != 3
        dict(input=randn(4, 4, seed=74), weight=randn(1, 1, 3, 3, seed=75)),  # 2-D input
        dict(input=randn(1, 1, 1, 4, 4, seed=76), weight=randn(1, 1, 3, 3, seed=77)),  # 5-D input
        dict(input=randn(1, 2, 4, 4, seed=78).float(), weight=randn(2, 2, 3, 3, seed=79)),  # float32 vs float64
        dict(input=randn(1, 2, 4, 4, seed=80), weight=randn(2, 2, 3, 3, seed=81).float()),
        dict(
            input=randn(1, 2, 4, 4, seed=82), weight=randn(2, 2, 3, 3, seed=83), bias=randn(2, seed=84).to(torch.cfloat)
        ),
        transposed_case((1, 2, 4, 4), (2, 2, 3, 3), stride=2.0, seed=85),  # TypeError: not an int
    ]
    return cases


_PART_CASES: dict[str, Callable[[bool], list[dict[str, Any]]]] = {
    "geometry": _geometry,
    "output_padding": _output_padding,
    "groups": _groups,
    "unbatched": _unbatched,
    "errors": _errors,
}


def _reference(**inputs: Any) -> torch.Tensor:
    return _args(**inputs).run()


def _swap(value: Any) -> tuple[int, int]:
    h, w = pair(value)
    return (w, h)


def _variants(inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Outputs of common wrong implementations, keyed by the explanation shown to the learner."""
    a = _args(**inputs)
    x, w, b = a.x, a.weight, a.bias
    (sh, sw), (ph, pw), (oh, ow), (dh, dw) = (pair(v) for v in (a.stride, a.padding, a.output_padding, a.dilation))
    groups = a.groups
    out = Mistakes()
    add = out.add

    def with_bias(result: torch.Tensor) -> torch.Tensor:
        """The bias added last, as the scatter-crop-add-bias order does (after a mistake in the crop)."""
        return result if b is None else result + b.view(-1, 1, 1)

    if x.dim() == 3:
        add(
            "for an unbatched (C, H, W) input torch returns an unbatched (out_channels, H_out, W_out) output: "
            "add the batch dimension at the start (input[None]) and remove it again at the end (out[0]).",
            lambda: a.run().unsqueeze(0),
        )
    add(
        "your kernel is flipped: you gathered out[i] = Σ_a x_up[i + a]·w[a] over the zero-stuffed input, which "
        "is the transposed convolution with a flipped kernel. Scatter instead: input pixel (i, j) adds "
        "x[i, j]·w[a, b] to out[i*sH - pH + a*dH, j*sW - pW + b*dW] (or flip the kernel when you gather).",
        lambda: a.run(weight=w.flip(-1, -2)),
    )
    c_in, per_out = w.shape[0] // groups, w.shape[1]
    if c_in == per_out:
        add(
            "the weight is read as (out_channels, in_channels / groups, kH, kW), conv2d's layout. A transposed "
            "convolution's weight is (in_channels, out_channels / groups, kH, kW): weight[c, o] connects input "
            "channel c to output channel o of c's group.",
            lambda: a.run(weight=w.reshape(groups, c_in, per_out, *w.shape[2:]).transpose(1, 2).reshape(w.shape)),
        )
    add(
        "the kernel's rows and columns are swapped (you used w[..., b, a] where w[..., a, b] belongs).",
        lambda: a.run(weight=w.transpose(-1, -2)),
    )
    add(
        "height and width are swapped in your output: loop i over rows (height, dim -2), j over columns (dim -1).",
        lambda: a.run().transpose(-1, -2),
    )
    if b is not None:
        add("the bias is missing: add bias[o] to every position of output channel o.", lambda: a.run(bias=None))
        add("the bias is added twice.", lambda: a.run(bias=2 * b))
        add(
            "the bias is added once per input pixel (inside the scatter loop) instead of once per output value.",
            lambda: a.run(bias=None) + b.view(-1, 1, 1) * _hits(a),
        )
    if (ph, pw) != (0, 0):
        add(
            "padding is added instead of cropped: in a transposed convolution `padding` removes padding rows "
            "from the top and bottom (columns from left and right) of the full scattered output.",
            lambda: with_bias(_guard.pad(a.run(padding=0, bias=None), (pw, pw, ph, ph))),
        )
        add(
            "padding is applied to the input, as in conv2d. In a transposed convolution `padding` crops the "
            "output: out = full[..., pH : pH + H_out, pW : pW + W_out].",
            lambda: a.run(x=_guard.pad(x, (pw, pw, ph, ph)), padding=0),
        )
        add(
            "padding is cropped from one side only (the top/left); crop padding rows and columns from both sides.",
            lambda: a.run(padding=0)[..., 2 * ph :, 2 * pw :][..., : _out(a)[0], : _out(a)[1]],
        )
        add(
            "padding is ignored: the full scattered output must be cropped by padding on every side.",
            lambda: a.run(padding=0),
        )
        if (ph, pw) != (pw, ph):
            add(
                "padding is applied to the wrong axis: padding[0] crops rows (top and bottom), padding[1] columns.",
                lambda: a.run(padding=_swap(a.padding)),
            )
    if (oh, ow) != (0, 0):
        full = lambda: a.run(padding=0, output_padding=0, bias=None)  # noqa: E731

        def wrong_side() -> torch.Tensor:
            h_out, w_out = _out(a)
            return with_bias(_guard.pad(full(), (ow, 0, oh, 0))[..., ph : ph + h_out, pw : pw + w_out])

        add(
            "output_padding is added on the wrong side: the extra rows and columns belong at the bottom and the "
            "right of the output (the crop keeps full[..., pH : pH + H_out]); yours are at the top and the left.",
            wrong_side,
        )
        if (ph, pw) != (0, 0):
            add(
                "output_padding appends zeros, but torch's extra rows (columns) are the next rows of the full "
                "scattered output, which the crop by padding would otherwise remove: crop "
                "full[..., pH : pH + H_out, pW : pW + W_out] from a full output that is output_padding larger.",
                lambda: with_bias(_guard.pad(a.run(output_padding=0, bias=None), (0, ow, 0, oh))),
            )
        add(
            "output_padding is ignored: it adds output_padding rows (columns) at the bottom (right) of the output.",
            lambda: a.run(output_padding=0),
        )
        if (oh, ow) != (ow, oh):
            add(
                "output_padding is applied to the wrong axis: output_padding[0] adds rows, [1] columns.",
                lambda: a.run(output_padding=_swap(a.output_padding)),
            )
    if (sh, sw) != (1, 1):
        add(
            "stride is ignored: input pixel (i, j) lands at output row i*stride[0], column j*stride[1].",
            lambda: a.run(stride=1),
        )
        if sh != sw:
            add(
                "stride is applied to the wrong axis: stride[0] spaces the rows, stride[1] the columns.",
                lambda: a.run(stride=(sw, sh)),
            )
    if (dh, dw) != (1, 1):
        add("dilation is ignored: kernel tap (a, b) lands dilation*(a, b) away.", lambda: a.run(dilation=1))
        if dh != dw:
            add(
                "dilation is applied to the wrong axis: dilation[0] spaces the kernel's rows, dilation[1] its columns.",
                lambda: a.run(dilation=(dw, dh)),
            )
    if groups > 1:
        add(
            f"groups are ignored: with groups = {groups}, input channel c writes only to the "
            f"{per_out} output channels of its group g = c // (in_channels // groups), and there are "
            f"out_channels = weight.shape[1] * groups = {per_out * groups} of them.",
            lambda: a.run(groups=1),
        )
    return out


def _out(a: TransposedArgs) -> tuple[int, int]:
    return tuple(a.run().shape[-2:])


def _hits(a: TransposedArgs) -> torch.Tensor:
    """How many (input pixel, tap) pairs land on each output position, summed over the group's input channels."""
    ones = TransposedArgs(
        torch.ones_like(a.x[..., :1, :, :]).expand_as(a.x[..., :1, :, :]).contiguous(),
        torch.ones(1, 1, *a.weight.shape[-2:], dtype=a.x.dtype),
        None,
        a.stride,
        a.padding,
        a.output_padding,
        1,
        a.dilation,
    ).run()
    return ones * (a.x.shape[-3] // a.groups)


def _reduction(inputs: dict[str, Any]) -> int:
    """How many products one output value sums at most: (in_channels / groups) * kH * kW."""
    weight, groups = inputs["weight"], inputs.get("groups", 1)
    return max(int(weight.shape[0]) // max(int(groups), 1) * int(weight[0, 0].numel()), 1)


SUITES: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "visible": lambda: [c for p in PARTS for c in _PART_CASES[p](False)],
    "hidden": lambda: [c for p in PARTS for c in _PART_CASES[p](True)],
}
for _part in PARTS:
    SUITES[_part] = lambda _part=_part: _PART_CASES[_part](False)
    SUITES[f"{_part}_hidden"] = lambda _part=_part: _PART_CASES[_part](True)

register(
    Exercise(
        name="conv_transpose2d",
        lesson=LESSON,
        reference=_reference,
        banned=CONVOLUTION_OPS | UNFOLD_OPS,
        variants=_variants,
        suites=SUITES,
        reduction=_reduction,
        hint="scatter: start from zeros of the full size ((H-1)*sH + dH*(kH-1) + 1 + output_padding rows), let "
        "every input pixel (i, j) of channel c add x[c, i, j]*weight[c, o] to rows i*sH + a*dH, columns "
        "j*sW + b*dW of output channel g*(out_channels/groups) + o, crop padding from each side, add bias[o].",
    )
)


# ------------------------------------------------------------------ ConvTranspose2d (the module)

#: The layer is built by the learner: running torch's conv-layer code (subclassing or wrapping
#: nn.ConvTranspose2d, calling its methods) is trapped while the learner's code runs.
TORCH_CONV_LAYER = (
    "torch's nn.ConvTranspose2d code",
    ("torch/nn/modules/conv.py",),
    (),
    "{name} runs torch's own conv-layer code ({hit}): it subclasses, wraps or calls nn.ConvTranspose2d. This "
    "lesson builds the layer yourself: subclass nn.Module, create weight and bias as nn.Parameters, and call "
    "F.conv_transpose2d (or your conv_transpose2d) in forward.",
)


def _module_reference(**inputs: Any) -> nn.Module:
    return nn.ConvTranspose2d(**inputs)


def _what(inputs: dict[str, Any]) -> str:
    return f"ConvTranspose2d({describe_inputs(inputs)})"


def _fan_in(inputs: dict[str, Any]) -> int:
    """torch's fan_in of a transposed weight (in, out/groups, kH, kW): its dimension 1 times the kernel."""
    kh, kw = pair(inputs["kernel_size"])
    return inputs["out_channels"] // inputs.get("groups", 1) * kh * kw


def _sample_input(inputs: dict[str, Any], dtype: torch.dtype, *, batched: bool = True) -> torch.Tensor:
    x = randn(2, inputs["in_channels"], 4, 5, seed=7).to(dtype)
    return x if batched else x[0]


def _parameters_problem(got: Any, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    return parameters_problem(got, expected, _what(inputs), "ConvTranspose2d", lambda: _WEIGHT_LAYOUT)


_WEIGHT_LAYOUT = (
    " A transposed convolution's weight is (in_channels, out_channels // groups, kH, kW): the "
    "transpose of conv2d's (out_channels, in_channels // groups, kH, kW)."
)


@dataclasses.dataclass
class _Forward:
    """One forward call of the learner's layer, recorded before any torch answer exists."""

    label: str
    state: Any  # frozen state dict of the torch layer to compare with
    dtype: torch.dtype
    batched: bool
    output_size: Any
    result: Any  # private copy of the learner's output, or the exception type it raised
    error_text: str = ""


def _frozen_state(module: nn.Module) -> Any:
    return _freeze({k: v.detach() for k, v in module.state_dict().items()})


def _learner_forward(
    exercise: Exercise, got: nn.Module, x: torch.Tensor, output_size: Any, what: str, label: str
) -> tuple[Any, str]:
    call = (lambda: got(x.clone())) if output_size is None else (lambda: got(x.clone(), output_size=output_size))
    outcome = watched_call(exercise, call)
    if isinstance(outcome.error, NotImplementedError):
        return f"{what}: forward is not implemented yet (it raised NotImplementedError).", ""
    if outcome.error is not None:
        return outcome.error_type, outcome.error_text
    if not _guard.is_tensor(outcome.raw):
        return f"{what}: forward returned {type(outcome.raw).__name__}, not a tensor.", ""
    return plain_tensor(outcome.raw, f"{what}: forward").clone(), ""


def _new_values(got: nn.Module) -> None:
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in got.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.dtype))


def _output_sizes(inputs: dict[str, Any]) -> list[tuple[bool, list[int]]]:
    """(batched, output_size) of the forward calls the output_size exercise makes on the sample input: the
    smallest and the largest valid size, the 4-element and the unbatched 3-element forms, and two sizes torch
    refuses (one row too many, one entry only)."""
    (kh, kw), (sh, sw) = pair(inputs["kernel_size"]), pair(inputs.get("stride", 1))
    (ph, pw), (dh, dw) = pair(inputs.get("padding", 0)), pair(inputs.get("dilation", 1))
    low = [3 * sh - 2 * ph + dh * (kh - 1) + 1, 4 * sw - 2 * pw + dw * (kw - 1) + 1]  # the sample input is 4 x 5
    high = [low[0] + sh - 1, low[1] + sw - 1]
    out = inputs["out_channels"]
    return [
        (True, low),
        (True, high),
        (True, [2, out, high[0], low[1]]),
        (False, [out, low[0], high[1]]),
        (True, [high[0] + 1, low[1]]),
        (True, [low[0]]),
    ]


def _collect(exercise: Exercise, got: Any, inputs: dict[str, Any], *, with_output_size: bool) -> list:
    """Run the learner's layer (watched) and record what _compare_module checks; stops at the first problem."""
    what = _what(inputs)
    try:
        torch_layer = nn.ConvTranspose2d(**inputs)
    except Exception:  # noqa: BLE001
        return []  # torch refuses these arguments: the verdict compares exception types
    outcome = watched_call(exercise, lambda: _parameters_problem(got, torch_layer, inputs))
    if outcome.error is not None:
        return [f"{what}: reading its parameters raised {outcome.error_type.__name__}: {outcome.error_text}"]
    if outcome.raw:
        return [outcome.raw]
    dtype = torch_layer.weight.dtype
    calls = _output_sizes(inputs) if with_output_size else [(True, None), (False, None)]
    steps: list = []

    def forward(label: str, state: Any, batched: bool, size: Any) -> bool:
        x = _sample_input(inputs, dtype, batched=batched)
        label = label if size is None else f"{label}, output_size={size}"
        result, text = _learner_forward(exercise, got, x, size, what, label)
        steps.append(result if isinstance(result, str) else _Forward(label, state, dtype, batched, size, result, text))
        return not isinstance(result, str)

    problem = _load(exercise, got, torch_layer, what, "from nn.ConvTranspose2d into yours")
    if problem:
        return [problem]
    if not forward("weights copied from nn.ConvTranspose2d", _frozen_state(torch_layer), *calls[0]):
        return steps
    outcome = watched_call(exercise, lambda: _new_values(got))
    if outcome.error is not None:
        return [f"{what}: setting new parameter values raised {outcome.error_type.__name__}: {outcome.error_text}"]
    fresh = nn.ConvTranspose2d(**inputs)
    problem = _load(exercise, fresh, got, what, "from yours into nn.ConvTranspose2d")
    if problem:
        return steps + [problem]
    state = _frozen_state(fresh)
    for batched, size in calls:
        if not forward("your weights copied into nn.ConvTranspose2d", state, batched, size):
            break
    return steps


def _forward_problem(step: _Forward, inputs: dict[str, Any]) -> str | None:
    what = _what(inputs)
    layer = nn.ConvTranspose2d(**inputs)
    layer.load_state_dict(_thaw(step.state))
    x = _sample_input(inputs, step.dtype, batched=step.batched)
    shape = f"an input of shape {tuple(x.shape)}"
    try:
        with torch.no_grad():
            expected = layer(x, output_size=step.output_size).detach()
    except Exception as error:  # noqa: BLE001 - torch refuses this output_size: the learner's layer must too
        if isinstance(step.result, type) and issubclass(step.result, type(error)):
            return None
        got = f"raised {step.result.__name__}" if isinstance(step.result, type) else "returned an output"
        return (
            f"{what}: forward on {shape} with {step.label} {got}, but torch raises {type(error).__name__} "
            f"({str(error).splitlines()[0][:200]})."
        )
    if isinstance(step.result, type):
        return f"{what}: forward on {shape} ({step.label}) raised {step.result.__name__}: {step.error_text}"
    mine = step.result
    rtol, atol = tolerance(expected.dtype, _fan_in(inputs))
    if tuple(mine.shape) != tuple(expected.shape):
        hint = ""
        if step.output_size is not None:
            hint = (
                " output_size picks the output_padding: output_size minus the size without output_padding, "
                "((H - 1)*stride - 2*padding + dilation*(kernel - 1) + 1), per axis; the last two entries of "
                "output_size are (H_out, W_out)."
            )
        return f"{what}: forward on {shape} ({step.label}) returned shape {tuple(mine.shape)}, torch's " + (
            f"{tuple(expected.shape)}.{hint}"
        )
    if mine.dtype != expected.dtype:
        return f"{what}: forward returned dtype {mine.dtype}, torch's layer {expected.dtype}."
    if not _guard.allclose(mine.double(), expected.double(), rtol=rtol, atol=atol):
        message = (
            f"{what}: forward ({step.label}) differs from nn.ConvTranspose2d's on {shape}: "
            f"{first_difference(mine, expected, rtol, atol)}."
        )
        with torch.no_grad():
            for text, wrong in _module_mistakes(layer, x, step.output_size).items():
                if tuple(wrong.shape) == tuple(mine.shape) and _guard.allclose(
                    mine.double(), wrong.double(), rtol=rtol, atol=atol
                ):
                    return f"{message}\nLikely mistake: {text}"
        return message
    return None


def _module_mistakes(layer: nn.Module, x: torch.Tensor, output_size: Any) -> dict[str, torch.Tensor]:
    out = Mistakes()
    op = layer._output_padding(x, output_size, layer.stride, layer.padding, layer.kernel_size, 2, layer.dilation)
    args = (layer.stride, layer.padding, op, layer.groups, layer.dilation)
    if layer.bias is not None:
        out.add("the bias is not used in forward.", lambda: _guard.conv_transpose2d(x, layer.weight, None, *args))
    out.add(
        "output_padding is not passed on in forward (or output_size does not set it).",
        lambda: _guard.conv_transpose2d(x, layer.weight, layer.bias, *args[:2], 0, *args[3:]),
    )
    out.add(
        "stride is not passed on in forward.",
        lambda: _guard.conv_transpose2d(x, layer.weight, layer.bias, 1, layer.padding, 0, *args[3:]),
    )
    return out


def _compare_module(steps: list, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    for step in steps:
        problem = step if isinstance(step, str) else _forward_problem(step, inputs)
        if problem:
            return problem
    return None


def _collect_module(exercise: Exercise, got: Any, inputs: dict[str, Any]) -> list:
    return _collect(exercise, got, inputs, with_output_size=False)


def _collect_output_size(exercise: Exercise, got: Any, inputs: dict[str, Any]) -> list:
    return _collect(exercise, got, inputs, with_output_size=True)


def _collect_init(exercise: Exercise, got: Any, inputs: dict[str, Any]) -> str | None:
    outcome = watched_call(exercise, lambda: _init_problem(got, inputs))
    if outcome.error is not None:
        return (
            f"{_what(inputs)}: checking the initialisation raised {outcome.error_type.__name__}: {outcome.error_text}"
        )
    return outcome.raw


def _init_problem(got: Any, inputs: dict[str, Any]) -> str | None:
    """Right after construction and after a seeded reset_parameters(), weight and bias must look like
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with torch's fan_in (see :func:`_fan_in`)."""
    what = _what(inputs)
    if not isinstance(got, nn.Module) or not isinstance(getattr(got, "weight", None), torch.Tensor):
        return f"{what} should be an nn.Module with a weight parameter."
    kh, kw = pair(inputs["kernel_size"])
    bound = 1 / math.sqrt(_fan_in(inputs))
    conv2d_bound = 1 / math.sqrt(inputs["in_channels"] // inputs.get("groups", 1) * kh * kw)

    def problem(when: str) -> str | None:
        for name in ("weight", "bias"):
            values = getattr(got, name, None)
            if values is None:
                continue
            found = _uniform_problem(values, bound, name, what, when)
            if found and conv2d_bound != bound and _uniform_problem(values, conv2d_bound, name, what, when) is None:
                return (
                    f"{what}: {when}, {name} is drawn with conv2d's fan_in (in_channels // groups * kH * kW), but "
                    "torch computes fan_in from the weight's dimension 1, which for a transposed convolution is "
                    f"out_channels // groups: fan_in = out_channels // groups * kH * kW = {_fan_in(inputs)}, "
                    f"bound 1/sqrt(fan_in) = {bound:.4g}."
                )
            if found:
                return found.replace("in_channels // groups", "out_channels // groups (the weight's dimension 1)")
        return None

    found = problem("right after construction")
    if found and "conv2d's fan_in" in found:
        return found + " Fix the bound in reset_parameters (which __init__ calls)."
    if found:
        return found + " Call self.reset_parameters() at the end of __init__."
    if not callable(getattr(got, "reset_parameters", None)):
        return f"{what} has no reset_parameters() method."
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2024)
        try:
            result = got.reset_parameters()
        except NotImplementedError:
            return f"{what}: reset_parameters is not implemented yet."
    if result is not None:
        return f"{what}: reset_parameters() should return None (it changes the parameters in place)."
    return problem("after reset_parameters()")


def _init_verdict(got: Any, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    return got


def _c(in_channels: int, out_channels: int, kernel_size: Any, **kw: Any) -> dict[str, Any]:
    return dict(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size, **kw)


F64 = dict(dtype=torch.float64)


def _module_visible() -> list[dict[str, Any]]:
    return [_c(3, 4, 3, **F64), _c(2, 6, (3, 2), stride=2, padding=1, output_padding=1, bias=False, **F64)]


def _module_hidden() -> list[dict[str, Any]]:
    return [
        _c(4, 6, 3, groups=2, stride=(2, 1), output_padding=(1, 0), **F64),
        _c(3, 3, (2, 3), dilation=(2, 1), padding=(1, 2), **F64),
        _c(4, 4, 2, groups=4, stride=3, output_padding=2, bias=False, **F64),
        _c(2, 3, 3),  # float32 default
        _c(2, 2, 1, stride=2, device="cpu", dtype=torch.float64),
    ]


def _output_size_visible() -> list[dict[str, Any]]:
    return [_c(2, 3, 3, stride=2, **F64)]


def _output_size_hidden() -> list[dict[str, Any]]:
    return [
        _c(2, 2, 3, stride=(3, 2), padding=1, **F64),
        _c(2, 4, 2, stride=2, groups=2, dilation=2, output_padding=1, **F64),  # output_size overrides it
        _c(2, 2, 3, **F64),  # stride 1: one valid size
    ]


def _init_visible() -> list[dict[str, Any]]:
    return [_c(16, 64, 3)]


def _init_hidden() -> list[dict[str, Any]]:
    return [_c(8, 256, (1, 3), groups=4), _c(200, 8, 5), _c(16, 64, (3, 2), groups=16, bias=False)]


def _errors_visible() -> list[dict[str, Any]]:
    return [_c(4, 6, 3, groups=3), _c(2, 2, 3, padding_mode="reflect")]


def _errors_hidden() -> list[dict[str, Any]]:
    return [
        _c(4, 6, 3, groups=4),
        _c(4, 6, 3, groups=0),
        _c(4, 6, 3, groups=-2),
        _c(2, 2, 3, padding_mode="circular"),
        _c(2, 2, 3, padding_mode="zero"),
        _c(6, 4, 3, groups=4, stride=2, **F64),
    ]


for _name, _collect_fn, _compare_fn, _suites in [
    ("ConvTranspose2d", _collect_module, _compare_module, {"visible": _module_visible, "hidden": _module_hidden}),
    (
        "ConvTranspose2d_output_size",
        _collect_output_size,
        _compare_module,
        {"visible": _output_size_visible, "hidden": _output_size_hidden},
    ),
    ("ConvTranspose2d_init", _collect_init, _init_verdict, {"visible": _init_visible, "hidden": _init_hidden}),
    (
        "ConvTranspose2d_errors",
        _collect_module,
        _compare_module,
        {"visible": _errors_visible, "hidden": _errors_hidden},
    ),
]:
    register(
        Exercise(
            name=_name,
            lesson=LESSON,
            reference=_module_reference,
            comparison=custom(_compare_fn, collect=_collect_fn),
            suites=_suites,
            libraries=TORCH_CONV_LAYER,
        )
    )


# ------------------------------------------------------------------ check your understanding


def _input_sizes_mapping_to(size: int) -> tuple[int, ...]:
    """Input heights 1..40 that nn.Conv2d(1, 1, 3, stride=2, padding=1) maps to output height ``size``."""
    return tuple(
        h
        for h in range(1, 41)
        if _guard.conv2d(torch.zeros(1, 1, h, 1), torch.zeros(1, 1, 3, 1), None, (2, 1), (1, 0), 1, 1).shape[2] == size
    )


for _question in (
    Question(
        name=f"{LESSON}.q1",
        lesson=LESSON,
        form="a tuple of four ints",
        answer=lambda: tuple(
            _guard.conv_transpose2d(torch.zeros(1, 8, 5, 5), torch.zeros(8, 4, 3, 3), None, 2, 1, 1, 1, 1).shape
        ),
        explain="(5 - 1)·2 - 2·1 + 1·(3 - 1) + 1 + 1 = 10 per axis, and weight.shape[1]·groups = 4 output channels: "
        "(1, 4, 10, 10).",
    ),
    Question(
        name=f"{LESSON}.q2",
        lesson=LESSON,
        form="a tuple of four ints",
        answer=lambda: tuple(nn.ConvTranspose2d(6, 4, 3, groups=2).weight.shape),
        explain="A transposed convolution's weight is (in_channels, out_channels // groups, kH, kW): (6, 2, 3, 3), "
        "the transpose of the matching Conv2d(4, 6, 3, groups=2)'s (6, 2, 3, 3) read the other way round.",
    ),
    Question(
        name=f"{LESSON}.q3",
        lesson=LESSON,
        form="a tuple of ints, smallest first",
        answer=lambda: _input_sizes_mapping_to(5),
        explain="floor((H + 2 - 3) / 2) + 1 = 5 for H = 9 and H = 10: two input sizes give the same output, so "
        "the transposed convolution cannot know which to return; output_padding=0 gives 9, output_padding=1 gives 10.",
    ),
    Question(
        name=f"{LESSON}.q4",
        lesson=LESSON,
        kind="error",
        form="the exception's name, e.g. 'TypeError' (or the class itself)",
        answer=lambda: error_name(
            lambda: _guard.conv_transpose2d(torch.zeros(1, 2, 4, 4), torch.zeros(2, 2, 3, 3), None, 1, 0, 1, 1, 1)
        ),
        explain="With stride 1 and dilation 1 every output size is reached without output_padding; output_padding "
        "must be smaller than the stride or the dilation, so F.conv_transpose2d raises RuntimeError.",
    ),
):
    register_question(_question)
