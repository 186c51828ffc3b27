"""Lesson 11: ``conv2d_backward`` (gradients by hand) and ``Conv2dFunction`` (an autograd.Function).

The reference is always torch's autograd: F.conv2d on tensors that require grad, then
``torch.autograd.grad``. Both exercises compare the three gradients part by part, so a message
says which of grad_input, grad_weight, grad_bias is wrong and, when it recognises the mistake, why.

Scope: padding is an int or a (pad_h, pad_w) tuple ('same'/'valid' are not part of this lesson)
and the input is batched (N, C, H, W).
"""

from __future__ import annotations

from typing import Any

import torch

from ...geometry import output_size, pair
from .. import _guard
from ..conv import randn
from ..core import (
    CONVOLUTION_OPS,
    Exercise,
    Inputs,
    custom,
    describe_value,
    first_difference,
    plain_tensor,
    register,
    tolerance,
    watched_call,
)
from ..quiz import Question, register_question

PARTS = ("grad_input", "grad_weight", "grad_bias")


def torch_gradients(
    grad_output: torch.Tensor,
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> tuple[torch.Tensor, ...]:
    """(grad_input, grad_weight, grad_bias) from torch's autograd of F.conv2d."""
    x = input.detach().clone().requires_grad_(True)
    w = weight.detach().clone().requires_grad_(True)
    b = torch.zeros(weight.shape[0], dtype=weight.dtype, requires_grad=True)
    with torch.enable_grad():
        out = _guard.conv2d(x, w, b, stride, padding, dilation, groups)
        if tuple(out.shape) != tuple(grad_output.shape):
            raise ValueError(f"grad_output has shape {tuple(grad_output.shape)}, the output {tuple(out.shape)}")
        grads = torch.autograd.grad(out, (x, w, b), grad_output)
    return tuple(g.detach() for g in grads)


def _wrong_grad_inputs(inputs: Inputs) -> dict[str, torch.Tensor]:
    """grad_input of common mistakes (computed with torch, for recognition only)."""
    g, w = inputs["grad_output"], inputs["weight"]
    x = inputs["input"]
    args = dict(
        stride=inputs.get("stride", 1),
        padding=inputs.get("padding", 0),
        dilation=inputs.get("dilation", 1),
        groups=inputs.get("groups", 1),
    )
    out: dict[str, torch.Tensor] = {}
    try:
        out[
            "it matches the gradient for the flipped kernel: grad_input spreads grad_output[i, j] * "
            "w[a, b] back onto the input pixel that w[a, b] touched, so no flip is needed when you "
            "scatter (the 'full correlation' form flips the kernel once; check you did not flip twice)."
        ] = torch_gradients(g, x, w.flip(-1, -2), **args)[0]
    except Exception:  # noqa: BLE001
        pass
    try:
        out["every sample's grad_input uses the first sample's grad_output: use grad_output[n] for sample n."] = (
            torch_gradients(g[:1].expand_as(g).contiguous(), x, w, **args)[0]
        )
    except Exception:  # noqa: BLE001
        pass
    return out


def _wrong_grad_weights(inputs: Inputs) -> dict[str, torch.Tensor]:
    g, x, w = inputs["grad_output"], inputs["input"], inputs["weight"]
    args = dict(
        stride=inputs.get("stride", 1),
        padding=inputs.get("padding", 0),
        dilation=inputs.get("dilation", 1),
        groups=inputs.get("groups", 1),
    )
    right = torch_gradients(g, x, w, **args)[1]
    out: dict[str, torch.Tensor] = {
        "grad_weight is flipped: grad_weight[o, c, a, b] collects input pixels at offset "
        "(a*dilation, b*dilation) from each window's corner, not at the mirrored offset.": right.flip(-1, -2),
        "grad_weight is divided by the batch size: the loss is a sum, so sum over the batch (no mean).": right
        / max(x.shape[0], 1),
    }
    if x.shape[0] > 1:
        out["grad_weight only counts the first sample: sum the contributions of every sample in the batch."] = (
            torch_gradients(g[:1], x[:1], w, **args)[1]
        )
    if right.shape[-1] == right.shape[-2]:
        out["grad_weight has its kernel rows and columns swapped (a and b exchanged)."] = right.transpose(-1, -2)
    return out


def _wrong_grad_biases(inputs: Inputs) -> dict[str, torch.Tensor]:
    g = inputs["grad_output"]
    return {
        "grad_bias is averaged: it is the SUM of grad_output over batch, height and width.": g.mean((0, 2, 3)),
        "grad_bias only sums the first sample: sum over the batch too.": g[0].sum((1, 2)),
    }


def _shape_message(part: str, got: tuple[int, ...], expected: tuple[int, ...], inputs: Inputs) -> str:
    message = f"{part} has the wrong shape {got}; it must be {expected}, the shape of "
    message += {"grad_input": "input", "grad_weight": "weight", "grad_bias": "the bias (out_channels,)"}[part] + "."
    if part == "grad_input" and len(got) == 4 and tuple(got[:2]) == tuple(expected[:2]):
        w, g = inputs["weight"], inputs["grad_output"]
        (sh, sw), (ph, pw), (dh, dw) = (
            pair(inputs.get(k, d)) for k, d in (("stride", 1), ("padding", 0), ("dilation", 1))
        )
        reach = [(g.shape[2] - 1) * sh + dh * (w.shape[2] - 1) + 1, (g.shape[3] - 1) * sw + dw * (w.shape[3] - 1) + 1]
        if list(got[2:]) == [reach[0] - 2 * ph, reach[1] - 2 * pw] or list(got[2:]) == reach:
            message += (
                " Remember output_padding when stride doesn't divide evenly: the last rows/columns "
                "of the input that no window reached still belong to grad_input (their gradient "
                "is 0). Size grad_input from the input, not from the output."
            )
        elif list(got[2:]) == [expected[2] + 2 * ph, expected[3] + 2 * pw]:
            message += " It still includes the padding: crop the padded border off at the end."
    elif part == "grad_weight" and len(got) == 4 and tuple(got) == (expected[1], expected[0], *expected[2:]):
        message += " In and out channels are swapped."
    elif part == "grad_bias" and len(got) != 1:
        message += " Sum grad_output over batch, height AND width."
    return message


class _Converted:
    """A learner's gradient that was not a tensor (a list, an array), converted to float64 at once."""

    def __init__(self, value: torch.Tensor):
        self.value = value


def private_gradients(got: Any, who: str) -> Any:
    """Private copies of a learner's (grad_input, grad_weight, grad_bias), made before torch's answer
    exists: a tuple of tensors / _Converted / problem strings, or one problem string."""
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return (
            f"{who} should return a tuple (grad_input, grad_weight, grad_bias), but it returned "
            f"{describe_value(got) if not isinstance(got, (tuple, list)) else f'{len(got)} values'}."
        )
    parts: list[Any] = []
    for part, value in zip(PARTS, tuple(got)):
        if value is None:
            parts.append(f"{part} is None; return a tensor.")
        elif _guard.is_tensor(value):
            parts.append(plain_tensor(value, f"{who} ({part})").clone())
        else:
            try:
                parts.append(_Converted(_guard.as_tensor(value, dtype=torch.float64).clone()))
            except Exception:  # noqa: BLE001
                parts.append(f"{part} should be a tensor, but it is {type(value).__name__}.")
    return tuple(parts)


def _reduction(part: str, inputs: Inputs) -> int:
    """How many products one value of each gradient sums."""
    g, w = inputs["grad_output"], inputs["weight"]
    groups = inputs.get("groups", 1)
    if part == "grad_input":
        return (w.shape[0] // max(groups, 1)) * w.shape[2] * w.shape[3]
    if part == "grad_weight":
        return g.shape[0] * g.shape[2] * g.shape[3]
    return g.shape[0] * g.shape[2] * g.shape[3]


def compare_gradients(got: Any, expected: tuple[torch.Tensor, ...], inputs: Inputs, who: str) -> str | None:
    """Per-part comparison of private (grad_input, grad_weight, grad_bias) copies (see private_gradients)
    with torch's; None when all three match."""
    if isinstance(got, str):
        return got
    wrong_makers = {
        "grad_input": _wrong_grad_inputs,
        "grad_weight": _wrong_grad_weights,
        "grad_bias": _wrong_grad_biases,
    }
    problems, fine = [], []
    for part, value, right in zip(PARTS, got, expected):
        if isinstance(value, str):
            problems.append(value)
            continue
        if isinstance(value, _Converted):
            value = value.value.to(right.dtype)
        RTOL, ATOL = tolerance(right.dtype, _reduction(part, inputs))
        if tuple(value.shape) != tuple(right.shape):
            problems.append(_shape_message(part, tuple(value.shape), tuple(right.shape), inputs))
            continue
        if value.dtype != right.dtype:
            problems.append(
                f"{part} has dtype {str(value.dtype).replace('torch.', '')}, but the inputs are "
                f"{str(right.dtype).replace('torch.', '')}: create it with dtype=input.dtype."
            )
            continue
        if not _guard.allclose(value.double(), right.double(), rtol=RTOL, atol=ATOL, equal_nan=True):
            message = f"{part} wrong: {first_difference(value, right, RTOL, ATOL)}."
            try:
                known = wrong_makers[part](inputs)
            except Exception:  # noqa: BLE001
                known = {}
            for explanation, wrong in known.items():
                if tuple(wrong.shape) == tuple(value.shape) and _guard.allclose(
                    value.double(), wrong.double(), rtol=RTOL, atol=ATOL
                ):
                    message += f"\nLikely mistake: {explanation}"
                    break
            problems.append(message)
            continue
        fine.append(part)
    if not problems:
        return None
    settings = ", ".join(f"{k}={inputs[k]!r}" for k in ("stride", "padding", "dilation", "groups") if k in inputs)
    shapes = (
        f"grad_output {tuple(inputs['grad_output'].shape)}, input {tuple(inputs['input'].shape)}, "
        f"weight {tuple(inputs['weight'].shape)}"
    )
    header = f"{who} with {shapes}" + (f", {settings}" if settings else "") + ":"
    tail = f"\n(correct: {', '.join(fine)})" if fine else ""
    return header + "\n- " + "\n- ".join(problems) + tail


# ---------------------------------------------------------------- exercise 1: conv2d_backward


def _backward_reference(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
    return torch_gradients(grad_output, input, weight, stride, padding, dilation, groups)


def backward_case(
    n: int,
    c_in: int,
    h: int,
    w: int,
    c_out: int,
    kh: int,
    kw: int,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    seed: int = 0,
) -> Inputs:
    """A conv2d_backward case with a grad_output of the right shape (float64, fixed seed)."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    out_h, out_w = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    return dict(
        grad_output=randn(n, c_out, out_h, out_w, seed=seed),
        input=randn(n, c_in, h, w, seed=seed + 1),
        weight=randn(c_out, c_in // groups, kh, kw, seed=seed + 2),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )


# (n, c_in, h, w, c_out, kh, kw, options)
_VISIBLE = [
    (1, 1, 5, 5, 1, 3, 3, {}),
    (2, 2, 6, 7, 3, 3, 2, dict(stride=2, padding=1)),
]
_HIDDEN = [
    (2, 3, 7, 6, 4, 3, 3, dict(stride=(2, 1), padding=(1, 0))),
    (1, 2, 8, 8, 2, 3, 3, dict(stride=3)),  # stride does not divide: output_padding
    (2, 2, 9, 7, 3, 2, 3, dict(dilation=(2, 1), padding=(2, 1))),
    (1, 4, 6, 6, 6, 3, 3, dict(groups=2, padding=1)),
    (2, 3, 5, 6, 3, 3, 3, dict(groups=3, stride=2)),  # depthwise
    (1, 2, 5, 4, 3, 1, 1, {}),  # 1x1 kernel
    (1, 1, 4, 3, 2, 6, 5, dict(padding=1)),  # kernel == padded input
    (3, 1, 7, 9, 2, 4, 2, dict(stride=(3, 2), dilation=2, padding=(2, 1))),
    (1, 4, 7, 7, 4, 3, 2, dict(groups=4, dilation=2, stride=(1, 2), padding=(0, 2))),
]


def _suite(rows, base):
    return lambda: [backward_case(*row[:7], seed=base + 10 * i, **row[7]) for i, row in enumerate(rows)]


BACKWARD = register(
    Exercise(
        name="conv2d_backward",
        lesson="11_backward",
        reference=_backward_reference,
        comparison=custom(
            lambda got, expected, inputs: compare_gradients(got, expected, inputs, "conv2d_backward"),
            collect=lambda exercise, got, inputs: private_gradients(got, "conv2d_backward"),
        ),
        banned=CONVOLUTION_OPS,
        forbid_autograd=True,
        suites={"visible": _suite(_VISIBLE, 100), "hidden": _suite(_HIDDEN, 200)},
    )
)


# ---------------------------------------------------------------- exercise 2: Conv2dFunction


def _grad_output_for(shape: tuple[int, ...]) -> torch.Tensor:
    return randn(*shape, seed=7 + sum(shape))


def _function_reference(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x = input.detach().clone().requires_grad_(True)
    w = weight.detach().clone().requires_grad_(True)
    b = None if bias is None else bias.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = _guard.conv2d(x, w, b, stride, padding, dilation, groups)
        grad_output = _grad_output_for(tuple(out.shape))
        leaves = [t for t in (x, w, b) if t is not None]
        grads = list(torch.autograd.grad(out, leaves, grad_output))
    if b is None:
        grads.append(grad_output.sum((0, 2, 3)))
    return out.detach(), tuple(g.detach() for g in grads)


def collect_function(exercise: Exercise, got: Any, inputs: Inputs) -> dict[str, Any]:
    """Run the learner's backward (and torch's gradcheck of it) now, watched, and keep private copies:
    torch's output and gradients are computed only afterwards, in compare."""
    who = "Conv2dFunction.apply"
    facts: dict[str, Any] = {}
    if not _guard.is_tensor(got):
        facts["problem"] = f"{who} should return the output tensor, but it returned {describe_value(got)}."
        return facts
    facts["out"] = plain_tensor(got, who).detach().clone()
    node = got.grad_fn
    forward_cls = getattr(type(node), "_forward_cls", None) if node is not None else None
    if forward_cls is None:
        facts["no_function"] = True
        return facts
    # The tensors the learner's forward received (the grader's copies), in order input, weight, bias.
    leaves = []
    for next_node, _ in node.next_functions[:3]:
        leaves.append(getattr(next_node, "variable", None) if next_node is not None else None)
    present = [t for t in leaves if t is not None]
    grad_output = _grad_output_for(tuple(got.shape))
    outcome = watched_call(
        exercise,
        lambda: torch.autograd.grad(got, present, grad_output, allow_unused=True),
        banned=CONVOLUTION_OPS,
        autograd_allowed=frozenset({node.name()}),
        forbid_autograd=True,
        label=f"{who}: backward",
    )
    if outcome.error is not None:
        facts["backward_error"] = f"{who}: backward raised {outcome.error_type.__name__}: {outcome.error_text}"
        return facts
    found = iter(outcome.raw)
    ordered: list[Any] = [next(found) if t is not None else None for t in leaves]
    while len(ordered) < 3:
        ordered.append(None)
    facts["has_bias"] = inputs.get("bias") is not None
    if not facts["has_bias"]:
        ordered[2] = torch.zeros(0)  # no bias: nothing to compare (replaced by torch's in compare)
    facts["grads"] = private_gradients(tuple(ordered), f"{who} (backward)")
    # torch's own numerical test of the backward (learner forward vs learner backward), in float64.
    args = tuple(inputs.get(k, d) for k, d in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)))
    tensors = tuple(t.detach().clone().requires_grad_(True) for t in present)

    def run(*ts):
        i, w, *rest = ts
        return forward_cls.apply(i, w, rest[0] if rest else None, *args)

    check = watched_call(
        exercise,
        lambda: torch.autograd.gradcheck(run, tensors, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True),
        banned=frozenset(),
        forbid_autograd=False,
        label=f"{who}: backward",
    )
    if check.error is not None:
        first_line = check.error_text.strip().splitlines()[0][:300] if check.error_text.strip() else ""
        facts["gradcheck"] = f"{who}: torch.autograd.gradcheck fails: {first_line or check.error_type.__name__}"
    return facts


def _compare_function(
    got: dict[str, Any], expected: tuple[torch.Tensor, tuple[torch.Tensor, ...]], inputs: Inputs
) -> str | None:
    who = "Conv2dFunction.apply"
    out_expected, grads_expected = expected
    if "problem" in got:
        return got["problem"]
    out = got["out"]
    if tuple(out.shape) != tuple(out_expected.shape):
        return (
            f"{who}: the forward output has shape {tuple(out.shape)}, but F.conv2d gives {tuple(out_expected.shape)}."
        )
    w = inputs["weight"]
    rtol, atol = tolerance(out_expected.dtype, w[0].numel())
    if not _guard.allclose(out.double(), out_expected.double(), rtol=rtol, atol=atol):
        return f"{who}: the forward output is wrong: {first_difference(out, out_expected, rtol, atol)}."
    if got.get("no_function"):
        return (
            f"{who}: the output is not connected to autograd through your Function (no grad_fn); "
            "call Conv2dFunction.apply(...) and return the output of forward as it is."
        )
    if "backward_error" in got:
        return got["backward_error"]
    grads = list(got["grads"]) if not isinstance(got["grads"], str) else got["grads"]
    if not isinstance(grads, str) and not got["has_bias"]:
        grads[2] = grads_expected[2]
    case = dict(
        grad_output=_grad_output_for(tuple(out.shape)),
        input=inputs["input"],
        weight=inputs["weight"],
        **{k: inputs[k] for k in ("stride", "padding", "dilation", "groups") if k in inputs},
    )
    problem = compare_gradients(
        grads if isinstance(grads, str) else tuple(grads), grads_expected, case, f"{who} (backward)"
    )
    if problem:
        return problem
    return got.get("gradcheck")


def function_case(
    n: int,
    c_in: int,
    h: int,
    w: int,
    c_out: int,
    kh: int,
    kw: int,
    *,
    bias: bool = True,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    seed: int = 0,
) -> Inputs:
    """Inputs for Conv2dFunction.apply: float64 tensors that require grad, then the conv settings."""
    return dict(
        input=randn(n, c_in, h, w, seed=seed).requires_grad_(True),
        weight=randn(c_out, c_in // groups, kh, kw, seed=seed + 1).requires_grad_(True),
        bias=randn(c_out, seed=seed + 2).requires_grad_(True) if bias else None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )


_F_VISIBLE = [
    (1, 2, 5, 5, 3, 3, 3, {}),
    (2, 2, 6, 5, 2, 2, 3, dict(stride=2, padding=(1, 0))),
]
_F_HIDDEN = [
    (2, 4, 7, 6, 4, 3, 3, dict(groups=2, dilation=(1, 2), padding=1)),
    (1, 3, 8, 7, 3, 3, 2, dict(groups=3, stride=(3, 2))),
    (1, 2, 5, 5, 2, 1, 1, dict(bias=False)),
    (2, 1, 6, 9, 2, 3, 3, dict(stride=2, padding=(0, 2), dilation=2, bias=False)),
]


def _f_suite(rows, base):
    return lambda: [function_case(*row[:7], seed=base + 10 * i, **row[7]) for i, row in enumerate(rows)]


FUNCTION = register(
    Exercise(
        name="Conv2dFunction",
        lesson="11_backward",
        reference=_function_reference,
        comparison=custom(_compare_function, collect=collect_function),
        suites={"visible": _f_suite(_F_VISIBLE, 300), "hidden": _f_suite(_F_HIDDEN, 400)},
    )
)


# Check your understanding -------------------------------------------------------------------------


def _grad_input_shape() -> tuple[int, ...]:
    x = torch.zeros(2, 3, 9, 9, requires_grad=True)
    _guard.conv2d(x, torch.ones(4, 3, 4, 4), None, 2, 0, 1, 1).sum().backward()
    return tuple(x.grad.shape)


def _unreached_pixels() -> int:
    x = torch.zeros(1, 1, 9, 9, requires_grad=True)
    _guard.conv2d(x, torch.ones(1, 1, 4, 4), None, 2, 0, 1, 1).sum().backward()
    return int((x.grad == 0).sum())


def _bias_gradient() -> float:
    bias = torch.zeros(4, requires_grad=True)
    out = _guard.conv2d(torch.zeros(2, 3, 7, 7), torch.zeros(4, 3, 3, 3), bias, 1, 0, 1, 1)
    out.backward(torch.ones_like(out))
    return float(bias.grad[0])


def _backward_outputs() -> int:
    import inspect

    from ...stack import ReferenceConv2dFunction

    return len(inspect.signature(ReferenceConv2dFunction.forward).parameters) - 1  # every argument but ctx


register_question(
    Question(
        name="11_backward.q1",
        lesson="11_backward",
        answer=_grad_input_shape,
        form="a tuple of four ints",
        explain="grad_input always has the input's shape: each input number gets one partial derivative, whatever the "
        "stride does to the output's size.",
    )
)
register_question(
    Question(
        name="11_backward.q2",
        lesson="11_backward",
        answer=_unreached_pixels,
        form="an int",
        explain="The windows start at rows 0, 2 and 4 and cover rows 0 to 7: row 8 and column 8 are never read, "
        "9 + 9 - 1 = 17 pixels, so their gradient is 0.",
    )
)
register_question(
    Question(
        name="11_backward.q3",
        lesson="11_backward",
        answer=_bias_gradient,
        kind="number",
        form="a number",
        explain="grad_bias[o] sums grad_output over batch and positions: 2 · 5 · 5 = 50 ones.",
    )
)
register_question(
    Question(
        name="11_backward.q4",
        lesson="11_backward",
        answer=_backward_outputs,
        form="an int",
        explain="backward returns one gradient per argument of forward (after ctx): grad_input, grad_weight, "
        "grad_bias, and None for stride, padding, dilation and groups.",
    )
)
