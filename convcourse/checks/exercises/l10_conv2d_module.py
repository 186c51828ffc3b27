"""Lesson 10: ``Conv2d(nn.Module)`` with nn.Conv2d's constructor, ``reset_parameters``, ``extra_repr``.

The learner's "function" is the class; an exercise's inputs are constructor arguments, so
``check("Conv2d", Conv2d, in_channels=3, out_channels=4, kernel_size=3)`` builds both the learner's
layer and ``nn.Conv2d`` with them. Invalid arguments are cases like any other: nn.Conv2d raises,
so the learner's constructor must raise the same exception type. Four exercises share the class:

* ``Conv2d``: parameter names, shapes, dtypes; outputs equal nn.Conv2d's after copying the state
  dict torch -> yours and yours -> torch (padding modes, 'same', unbatched input); ``.to(dtype)``.
* ``Conv2d_init``: reset_parameters (and the constructor) draw weight and bias from
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch's default. Statistical checks under a fixed seed
  with tolerances of many standard errors: deterministic, and far from any wrong distribution.
* ``Conv2d_repr``: extra_repr() and repr() equal torch's.
* ``Conv2d_errors``: invalid arguments raise torch's exception types.
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
from ..quiz import Question, register_question

#: Lesson 10 builds the layer itself: running any code of torch's conv layers (subclassing nn.Conv2d,
#: wrapping one, calling its methods on your module) is trapped while the learner's code runs.
TORCH_CONV_LAYER = (
    "torch's nn.Conv2d code",
    ("torch/nn/modules/conv.py",),
    (),
    "{name} runs torch's own nn.Conv2d code ({hit}): it subclasses, wraps or calls torch's conv "
    "layer. This lesson builds the layer yourself: subclass nn.Module, create weight and bias as "
    "nn.Parameters, and call F.conv2d in forward.",
)

MODES = ("zeros", "reflect", "replicate", "circular")


def _reference(**inputs: Any) -> nn.Module:
    return nn.Conv2d(**inputs)


def _what(inputs: dict[str, Any]) -> str:
    return f"Conv2d({describe_inputs(inputs)})"


def _sample_input(layer: nn.Module, inputs: dict[str, Any], *, batched: bool = True, seed: int = 7) -> torch.Tensor:
    """A deterministic input big enough for the layer (also for reflect padding)."""
    kh, kw = pair(inputs["kernel_size"])
    dh, dw = pair(inputs.get("dilation", 1))
    h, w = max(9, dh * (kh - 1) + 4), max(8, dw * (kw - 1) + 3)
    x = randn(2, inputs["in_channels"], h, w, seed=seed).to(layer.weight.dtype)
    return x if batched else x[0]


_TORCH_CONV = nn.modules.conv._ConvNd


def parameters_problem(
    got: Any, expected: nn.Module, what: str, layer: str, weight_hint: Callable[[], str]
) -> str | None:
    """What is wrong with the parameters of the learner's layer ``got`` (torch's ``nn.<layer>`` is
    ``expected``), or None; ``weight_hint()`` explains the weight's shape (lessons 10 and 14)."""
    if not isinstance(got, nn.Module):
        return f"{what} should build an nn.Module (class {layer}(nn.Module)), but it is {type(got).__name__}."
    if isinstance(got, _TORCH_CONV):
        return (
            f"{what} subclasses torch's conv layer ({type(got).__mro__[1].__name__}). This lesson builds the "
            f"layer yourself: subclass nn.Module, not nn.{layer}."
        )
    mine = dict(got.named_parameters())
    theirs = dict(expected.named_parameters())
    if sorted(mine) != sorted(theirs):
        hint = ""
        if "bias" in theirs and "bias" not in mine:
            hint = " With bias=True, make the bias an nn.Parameter attribute named bias."
        elif "bias" in mine and "bias" not in theirs:
            hint = " With bias=False torch has no bias parameter: use self.register_parameter('bias', None)."
        elif "weight" not in mine:
            hint = (
                " Wrap the tensors in nn.Parameter and assign them to self.weight / self.bias, so that "
                "nn.Module registers them."
            )
        return f"{what} has parameters {sorted(mine)}, but torch's has {sorted(theirs)}.{hint}"
    for name, p in theirs.items():
        q = mine[name]
        if not isinstance(q, nn.Parameter):
            return f"{what}: {name} should be an nn.Parameter."
        if tuple(q.shape) != tuple(p.shape):
            hint = weight_hint() if name == "weight" else ""
            return f"{what}: {name} has shape {tuple(q.shape)}, but torch's is {tuple(p.shape)}.{hint}"
        if q.dtype != p.dtype:
            return (
                f"{what}: {name} has dtype {q.dtype}, but torch's is {p.dtype}. Pass dtype= (and device=) "
                "to the torch.empty/zeros that creates it."
            )
        if q.device != p.device:
            return f"{what}: {name} is on {q.device}, but torch's is on {p.device}."
        if not q.requires_grad:
            return f"{what}: {name} does not require grad; nn.Parameter does by default."
    if not getattr(got, "training", False):
        return f"{what} is not in training mode after construction; did you call super().__init__()?"
    return None


def _parameters_problem(got: Any, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    def weight_hint() -> str:
        if inputs.get("groups", 1) != 1:
            return " With groups, the weight has in_channels // groups input channels."
        return " The weight is (out_channels, in_channels // groups, kH, kW)."

    return parameters_problem(got, expected, _what(inputs), "Conv2d", weight_hint)


def _wrong_outputs(torch_layer: nn.Module, x: torch.Tensor, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Outputs of common mistakes, computed with torch, to name the mistake."""
    out = Mistakes()
    add = out.add
    stride, dilation, groups = torch_layer.stride, torch_layer.dilation, torch_layer.groups
    w, b = torch_layer.weight, torch_layer.bias
    mode = torch_layer.padding_mode
    padding = torch_layer.padding

    if mode != "zeros":
        add(
            f"padding_mode={mode!r} is ignored: the input is zero-padded. Pad with "
            f"F.pad(input, pads, mode={mode!r}) and then convolve with padding=0.",
            lambda: _guard.conv2d(x, w, b, stride, padding, dilation, groups),
        )
        pads = torch_layer._reversed_padding_repeated_twice
        add(
            "the input is padded twice: once with F.pad (padding_mode) and again by F.conv2d's padding. "
            "After F.pad, call F.conv2d with padding=0.",
            lambda: _guard.conv2d(_guard.pad(x, pads, mode=mode), w, b, stride, padding, dilation, groups),
        )
    if b is not None:
        add("the bias is not used in forward.", lambda: _guard.conv2d(x, w, None, stride, padding, dilation, groups))
    if stride != (1, 1):
        add("stride is not passed on in forward.", lambda: _guard.conv2d(x, w, b, 1, padding, dilation, groups))
    if dilation != (1, 1):
        add(
            "dilation is not passed on in forward (dilation ignored).",
            lambda: _guard.conv2d(x, w, b, stride, padding, 1, groups),
        )
    if not isinstance(padding, str) and padding != (0, 0):
        add("padding is not passed on in forward.", lambda: _guard.conv2d(x, w, b, stride, 0, dilation, groups))
    return out


# Conv2d exercises: collect() calls the learner's module (constructor already ran) and records private
# copies of everything compare() needs, as a list of steps; compare() rebuilds torch's layers from frozen
# state and checks the steps in order. No torch output exists while the learner's code runs.


@dataclasses.dataclass
class _Forward:
    direction: str
    batched: bool
    state: Any  # frozen state dict of the torch layer to compare with
    dtype: torch.dtype  # the torch layer's dtype (after .to)
    result: Any  # private copy of the learner's output, or an error message (str)


def _frozen_state(module: nn.Module) -> Any:
    return _freeze({k: v.detach() for k, v in module.state_dict().items()})


def _torch_layer(inputs: dict[str, Any], state: Any, dtype: torch.dtype) -> nn.Module:
    layer = nn.Conv2d(**inputs)
    layer.load_state_dict(_thaw(state))
    return layer.to(dtype)


def _learner_forward(exercise: Exercise, got: nn.Module, x: torch.Tensor, what: str, direction: str) -> Any:
    outcome = watched_call(exercise, lambda: got(x.clone()))
    if isinstance(outcome.error, NotImplementedError):
        return f"{what}: forward is not implemented yet (it raised NotImplementedError)."
    if outcome.error is not None:
        return (
            f"{what}: forward on an input of shape {tuple(x.shape)} ({direction}) raised "
            f"{outcome.error_type.__name__}: {outcome.error_text}"
        )
    mine = outcome.raw
    if not _guard.is_tensor(mine):
        return f"{what}: forward returned {type(mine).__name__}, not a tensor."
    return plain_tensor(mine, f"{what}: forward").clone()


def collect_module(exercise: Exercise, got: Any, inputs: dict[str, Any]) -> list:
    """Run the learner's layer (watched) and record what compare_module checks; stops at a problem."""
    what = _what(inputs)
    steps: list = []
    try:
        torch_layer = nn.Conv2d(**inputs)
    except Exception:  # noqa: BLE001
        return steps  # torch rejects these arguments: compare reports it, no learner code needs to run
    outcome = watched_call(exercise, lambda: _parameters_problem(got, torch_layer, inputs))
    if outcome.error is not None:
        steps.append(f"{what}: reading its parameters raised {outcome.error_type.__name__}: {outcome.error_text}")
        return steps
    if outcome.raw:
        steps.append(outcome.raw)
        return steps
    x = _sample_input(torch_layer, inputs)
    state = _frozen_state(torch_layer)
    problem = _load(exercise, got, torch_layer, what, "from nn.Conv2d into yours")
    if problem:
        return steps + [problem]
    steps.append(
        _Forward(
            "weights copied from nn.Conv2d",
            True,
            state,
            torch_layer.weight.dtype,
            _learner_forward(exercise, got, x, what, "weights copied from nn.Conv2d"),
        )
    )
    # yours -> torch, after giving your layer new values
    generator = torch.Generator().manual_seed(11)

    def new_values():
        with torch.no_grad():
            for p in got.parameters():
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.dtype))

    outcome = watched_call(exercise, new_values)
    if outcome.error is not None:
        return steps + [
            f"{what}: setting new parameter values raised {outcome.error_type.__name__}: {outcome.error_text}"
        ]
    fresh = nn.Conv2d(**inputs)
    problem = _load(exercise, fresh, got, what, "from yours into nn.Conv2d")
    if problem:
        return steps + [problem]
    state = _frozen_state(fresh)
    direction = "your weights copied into nn.Conv2d"
    steps.append(
        _Forward(direction, True, state, fresh.weight.dtype, _learner_forward(exercise, got, x, what, direction))
    )
    steps.append(
        _Forward(direction, False, state, fresh.weight.dtype, _learner_forward(exercise, got, x[0], what, direction))
    )
    # .to(dtype) moves the parameters (nn.Module does it when they are registered Parameters)
    target = torch.float32 if fresh.weight.dtype == torch.float64 else torch.float64
    outcome = watched_call(exercise, lambda: got.to(target))
    if outcome.error is not None:
        return steps + [f"{what}: .to({target}) raised {outcome.error_type.__name__}: {outcome.error_text}"]
    if outcome.raw is not got or got.weight.dtype != target or (got.bias is not None and got.bias.dtype != target):
        return steps + [
            (
                f"{what}: after .to({target}) the parameters are not {target}; keep weight and bias as "
                "registered nn.Parameters (not plain tensor attributes)."
            )
        ]
    steps.append(
        _Forward(
            f"after .to({target})",
            True,
            state,
            target,
            _learner_forward(exercise, got, x.to(target), what, f"after .to({target})"),
        )
    )
    return steps


def _load(exercise: Exercise, target: nn.Module, source: nn.Module, what: str, direction: str) -> str | None:
    outcome = watched_call(exercise, lambda: target.load_state_dict(source.state_dict()))
    if outcome.error is not None:
        return (
            f"{what}: copying the state dict {direction} failed ({outcome.error_type.__name__}: "
            f"{outcome.error_text.strip().splitlines()[0][:200] if outcome.error_text.strip() else ''}). "
            "Name the parameters weight and bias, with torch's shapes."
        )
    return None


def _forward_problem(step: _Forward, inputs: dict[str, Any]) -> str | None:
    what = _what(inputs)
    if isinstance(step.result, str):
        return step.result
    torch_layer = _torch_layer(inputs, step.state, step.dtype)
    x = _sample_input(torch_layer, inputs, batched=step.batched)
    with torch.no_grad():
        expected = torch_layer(x).detach()
    mine = step.result
    shape = "unbatched " if not step.batched else ""
    rtol, atol = tolerance(expected.dtype, _fan_in(inputs))
    if tuple(mine.shape) != tuple(expected.shape):
        message = (
            f"{what}: forward on a {shape}input of shape {tuple(x.shape)} returned shape "
            f"{tuple(mine.shape)}, torch's layer {tuple(expected.shape)}."
        )
    elif mine.dtype != expected.dtype:
        return f"{what}: forward returned dtype {mine.dtype}, torch's layer {expected.dtype}."
    elif not _guard.allclose(mine.double(), expected.double(), rtol=rtol, atol=atol):
        message = (
            f"{what}: forward ({step.direction}) differs from nn.Conv2d's on a {shape}input of shape "
            f"{tuple(x.shape)}: {first_difference(mine, expected, rtol, atol)}."
        )
    else:
        return None
    with torch.no_grad():
        wrong_outputs = _wrong_outputs(torch_layer, x, inputs)
    for text, wrong in wrong_outputs.items():
        if tuple(wrong.shape) == tuple(mine.shape) and _guard.allclose(
            mine.double(), wrong.double(), rtol=rtol, atol=atol
        ):
            return f"{message}\nLikely mistake: {text}"
    return message


def compare_module(steps: list, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    for step in steps:
        problem = step if isinstance(step, str) else _forward_problem(step, inputs)
        if problem:
            return problem
    return None


# ------------------------------------------------------------------ reset_parameters


def _fan_in(inputs: dict[str, Any]) -> int:
    kh, kw = pair(inputs["kernel_size"])
    return inputs["in_channels"] // inputs.get("groups", 1) * kh * kw


def _constant_hint(ratio: float, inputs: dict[str, Any]) -> str:
    """Names the init constant a learner used, from the ratio of their bound to torch's."""
    kh, kw = pair(inputs["kernel_size"])
    groups = inputs.get("groups", 1)
    fan_out = inputs["out_channels"] // groups * kh * kw
    known = [
        (
            math.sqrt(6),
            "kaiming_uniform_ with its default a=0 gives the bound sqrt(6/fan_in); torch passes "
            "a=math.sqrt(5), which makes the bound 1/sqrt(fan_in)",
        ),
        (
            math.sqrt(3),
            "a bound of sqrt(3/fan_in) (kaiming_uniform_ with a=1, or a std of 1/sqrt(fan_in)); "
            "torch's bound is 1/sqrt(fan_in) itself",
        ),
        (
            math.sqrt(_fan_in(inputs) / fan_out),
            "you used fan_out (out_channels // groups * kH * kW) where "
            "torch uses fan_in (in_channels // groups * kH * kW)",
        ),
        (
            1 / math.sqrt(groups),
            "your fan_in forgot to divide in_channels by groups: each output channel "
            "only sees in_channels // groups input channels",
        ),
        (math.sqrt(kh * kw), "your fan_in forgot the kernel: fan_in = (in_channels // groups) * kH * kW"),
        (math.sqrt(_fan_in(inputs)), "your bound is 1, not 1/sqrt(fan_in)"),
    ]
    for value, text in known:
        if value != 1 and abs(ratio / value - 1) < 0.03:
            return f" Likely mistake: {text}."
    return ""


def _uniform_problem(
    values: torch.Tensor, bound: float, name: str, what: str, when: str, inputs: dict[str, Any] | None = None
) -> str | None:
    values = values.detach().double().flatten()
    n = values.numel()
    top = float(values.abs().max())
    mean_abs = float(values.abs().mean()) / bound
    mean = float(values.mean()) / bound
    std = float(values.std()) / bound
    # For U(-b, b): max|v| -> b, mean|v| = b/2, std = b/sqrt(3), mean 0. Every tolerance is 8 standard
    # errors plus 0.01, so a correct init fails with probability < 1e-14 even at construction time
    # (unseeded), and reset_parameters is checked under a fixed seed.
    se = 1 / math.sqrt(n)
    expected = (
        f"torch draws {name} from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) = U(-{bound:.4g}, {bound:.4g}) "
        "with fan_in = (in_channels // groups) * kH * kW (kaiming_uniform_ with a=sqrt(5) for the weight)"
    )
    if values.eq(0).all():
        return f"{what}: {when}, {name} is all zeros; {expected}."
    if top > bound * (1 + 1e-6):
        return (
            f"{what}: {when}, |{name}| reaches {top:.4g} = {top / bound:.3g} × 1/sqrt(fan_in); {expected}, "
            "so no value exceeds the bound." + (_constant_hint(top / bound, inputs) if inputs else "")
        )
    if top < bound * (1 - 20 / n):  # P(max of n uniforms below this) = (1 - 20/n)^n < e^-20
        return (
            f"{what}: {when}, the largest |{name}| is only {top:.4g} = {top / bound:.3g} × 1/sqrt(fan_in); "
            f"{expected}." + (_constant_hint(top / bound, inputs) if inputs else "")
        )
    if (
        abs(mean) > 8 * 0.58 * se + 0.01
        or abs(mean_abs - 0.5) > 8 * 0.29 * se + 0.01
        or abs(std - 1 / math.sqrt(3)) > 8 * 0.26 * se + 0.01
    ):
        return (
            f"{what}: {when}, {name} does not look uniform: mean {mean:.3f}, mean |·| {mean_abs:.3f}, std "
            f"{std:.3f} (in units of 1/sqrt(fan_in); a uniform distribution gives 0, 0.5, 0.577). {expected}."
        )
    return None


def _looks_uniform(values: torch.Tensor, scale: float) -> bool:
    """True when ``values`` look like a symmetric uniform draw of some bound (whatever the bound)."""
    values = values.detach().double().flatten()
    top = float(values.abs().max())
    if top == 0 or values.numel() < 50:
        return False
    return abs(float(values.abs().mean()) / top - 0.5) < 0.05 and abs(float(values.mean()) / top) < 0.05


def collect_init(exercise: Exercise, got: Any, inputs: dict[str, Any]) -> str | None:
    """The whole init check runs the learner's code (reset_parameters), so it runs here, watched; no
    torch answer is involved (the bound is the formula)."""
    outcome = watched_call(exercise, lambda: compare_init(got, None, inputs))
    if outcome.error is not None:
        return (
            f"{_what(inputs)}: checking the initialisation raised {outcome.error_type.__name__}: {outcome.error_text}"
        )
    return outcome.raw


def collect_repr(exercise: Exercise, got: Any, inputs: dict[str, Any]) -> Any:
    what = _what(inputs)
    outcome = watched_call(exercise, lambda: (got.extra_repr(), repr(got)))
    if isinstance(outcome.error, NotImplementedError):
        return f"{what}: extra_repr is not implemented yet."
    if outcome.error is not None:
        return f"{what}: extra_repr()/repr() raised {outcome.error_type.__name__}: {outcome.error_text}"
    mine_extra, mine = outcome.raw
    if type(mine_extra) is not str or type(mine) is not str:
        return f"{what}: extra_repr() should return a str, but it returned {type(mine_extra).__name__}."
    return (str.__str__(mine_extra), str.__str__(mine))


def compare_init(got: Any, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    what = _what(inputs)
    if not isinstance(got, nn.Module) or not isinstance(getattr(got, "weight", None), torch.Tensor):
        return f"{what} should be an nn.Module with a weight parameter."
    bound = 1 / math.sqrt(_fan_in(inputs))
    for name in ("weight", "bias"):
        values = getattr(got, name, None)
        if values is not None:
            problem = _uniform_problem(values, bound, name, what, "right after construction", inputs)
            if problem:
                # A wrong constant is fixed in reset_parameters; values that are not a uniform draw at all
                # (zeros, torch.empty's leftovers) mean it was never called.
                if "Likely mistake" in problem or "reaches" in problem and _looks_uniform(values, bound):
                    return problem + " Fix the bound in reset_parameters (which __init__ calls)."
                return problem + " Call self.reset_parameters() at the end of __init__."
    if not callable(getattr(got, "reset_parameters", None)):
        return f"{what} has no reset_parameters() method."
    before = got.weight.detach().clone()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2024)
        try:
            result = got.reset_parameters()
        except NotImplementedError:
            return f"{what}: reset_parameters is not implemented yet."
        except Exception as error:  # noqa: BLE001
            return f"{what}: reset_parameters() raised {type(error).__name__}: {error}"
    if result is not None:
        return f"{what}: reset_parameters() should return None (it changes the parameters in place)."
    if torch.equal(before, got.weight.detach()):
        return f"{what}: reset_parameters() did not draw new weights."
    if not isinstance(got.weight, nn.Parameter):
        return (
            f"{what}: after reset_parameters() the weight is no longer an nn.Parameter; fill it in place "
            "(under torch.no_grad(), e.g. self.weight.uniform_(-bound, bound) or nn.init functions)."
        )
    for name in ("weight", "bias"):
        values = getattr(got, name, None)
        if values is not None:
            problem = _uniform_problem(values, bound, name, what, "after reset_parameters()", inputs)
            if problem:
                return problem
    return None


# ------------------------------------------------------------------ extra_repr


def compare_repr(got: Any, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    what = _what(inputs)
    if isinstance(got, str):
        return got
    mine_extra, mine = got
    theirs = expected.extra_repr()
    if mine_extra != theirs:
        return (
            f"{what}: extra_repr() returned\n    {mine_extra!r}\nbut torch's is\n    {theirs!r}\n"
            "torch always lists in_channels, out_channels, kernel_size and stride (as tuples), and the "
            "others only when they differ from the default (padding (0, 0), dilation (1, 1), groups 1, "
            "bias=False when there is none, padding_mode when not 'zeros')."
        )
    if mine != repr(expected):
        return f"{what}: repr() is {mine!r}, torch's {repr(expected)!r}."
    return None


# ------------------------------------------------------------------ suites


def _c(in_channels, out_channels, kernel_size, **kw) -> dict[str, Any]:
    return dict(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size, **kw)


F64 = dict(dtype=torch.float64)


def module_visible():
    return [_c(3, 4, 3, **F64), _c(2, 6, (3, 2), stride=2, padding=1, bias=False, **F64)]


def module_hidden():
    return (
        [
            _c(3, 5, (2, 3), stride=(2, 1), padding=(1, 2), dilation=(1, 2), **F64),
            _c(4, 6, 3, groups=2, padding="same", **F64),
            _c(4, 4, (2, 4), padding="same", dilation=(2, 1), groups=4, bias=False, **F64),  # even kernels
            _c(2, 3, 3, padding="valid", **F64),
            _c(1, 2, 1, **F64),
            _c(3, 2, 3),  # float32 default
            _c(2, 3, 3, device="cpu", dtype=torch.float64, stride=3),
        ]
        + [_c(2, 3, (3, 2), padding=(1, 2), padding_mode=mode, **F64) for mode in MODES[1:]]
        + [_c(2, 4, 3, padding="same", padding_mode=mode, groups=2, **F64) for mode in MODES[1:]]
        + [_c(3, 3, (2, 3), padding="same", dilation=2, padding_mode="reflect", bias=False, **F64)]
    )


def padding_visible():
    return [_c(2, 3, 3, padding=1, padding_mode="reflect", **F64), _c(2, 3, (2, 4), padding="same", **F64)]


def init_visible():
    return [_c(64, 64, 3)]


def init_hidden():
    return [_c(8, 512, (1, 3), groups=4), _c(3, 300, 5), _c(16, 32, (7, 2), groups=16), _c(20, 1024, 1, bias=False)]


def repr_visible():
    return [_c(3, 8, 3), _c(3, 8, (3, 5), stride=2, padding=1, bias=False)]


def repr_hidden():
    return [
        _c(4, 8, 3, padding="same", dilation=2, groups=4, padding_mode="circular"),
        _c(2, 2, 1, padding="valid"),
        _c(2, 4, (1, 3), stride=(1, 2), padding=(0, 1), padding_mode="replicate"),
        _c(6, 6, 3, groups=3, dilation=(2, 1), padding=(0, 0)),
        _c(1, 1, 2, padding=(1, 0), bias=True),
    ]


def errors_visible():
    return [_c(4, 6, 3, groups=3), _c(4, 6, 3, padding_mode="mirror")]


def errors_hidden():
    return [
        _c(4, 5, 3, groups=2),
        _c(4, 6, 3, groups=0),
        _c(4, 6, 3, groups=-2),
        _c(2, 2, 3, padding="same", stride=2),
        _c(2, 2, 3, padding="same", stride=(1, 2)),
        _c(2, 2, 3, padding="full"),
        _c(2, 2, 3, padding_mode="zero"),
        _c(2, 2, 3, padding_mode="Reflect"),
        _c(6, 4, 3, groups=4),
        _c(2, 2, 3, padding="valid", padding_mode="zeros", dtype=torch.float64),
    ]


def _init_verdict(got: Any, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    return got


for _name, _collect, _compare, _suites in [
    (
        "Conv2d",
        collect_module,
        compare_module,
        {"visible": module_visible, "padding": padding_visible, "hidden": module_hidden},
    ),
    ("Conv2d_init", collect_init, _init_verdict, {"visible": init_visible, "hidden": init_hidden}),
    ("Conv2d_repr", collect_repr, compare_repr, {"visible": repr_visible, "hidden": repr_hidden}),
    ("Conv2d_errors", collect_module, compare_module, {"visible": errors_visible, "hidden": errors_hidden}),
]:
    register(
        Exercise(
            name=_name,
            lesson="10_conv2d_module",
            reference=_reference,
            comparison=custom(_compare, collect=_collect),
            suites=_suites,
            libraries=TORCH_CONV_LAYER,
        )
    )


# Check your understanding -------------------------------------------------------------------------


def _construction_error(*args: Any, **kwargs: Any) -> str:
    try:
        nn.Conv2d(*args, **kwargs)
    except Exception as error:  # the type is the answer  # noqa: BLE001
        return type(error).__name__
    return "no error"


def _randn_to_default_ratio() -> float:
    """std of standard-normal weights over the default's, sqrt(1 / (bound**2 / 3)), bound from torch's fan_in."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(nn.Conv2d(16, 32, 3).weight)
    bound = 1 / math.sqrt(fan_in)
    return 1 / (bound / math.sqrt(3))


register_question(
    Question(
        name="10_conv2d_module.q1",
        lesson="10_conv2d_module",
        form="an int",
        answer=lambda: sum(p.numel() for p in nn.Conv2d(16, 32, 3).parameters()),
        explain="The weight is (32, 16, 3, 3) = 4,608 numbers and the bias adds one per output channel: 4,608 + 32.",
    )
)
register_question(
    Question(
        name="10_conv2d_module.q2",
        lesson="10_conv2d_module",
        form="a tuple of four ints",
        answer=lambda: tuple(nn.Conv2d(8, 16, (3, 5), groups=4).weight.shape),
        explain="The weight is (out_channels, in_channels // groups, kH, kW): each output channel sees only the 8 / 4 "
        "= 2 input channels of its group.",
    )
)
register_question(
    Question(
        name="10_conv2d_module.q3",
        lesson="10_conv2d_module",
        form='a tuple of strings, e.g. ("name",)',
        answer=lambda: tuple(nn.Conv2d(3, 8, 3, bias=False).state_dict()),
        explain="bias=False registers bias as None, and a None parameter is not saved: only the weight is.",
    )
)
register_question(
    Question(
        name="10_conv2d_module.q4",
        lesson="10_conv2d_module",
        kind="error",
        form='an exception name such as "TypeError"',
        answer=lambda: _construction_error(4, 6, 3, groups=4),
        explain="groups must divide both in_channels and out_channels; 6 is not divisible by 4, and the constructor "
        "raises ValueError('out_channels must be divisible by groups').",
    )
)
register_question(
    Question(
        name="10_conv2d_module.q5",
        lesson="10_conv2d_module",
        kind="number",
        rtol=1e-3,
        form="a number",
        answer=_randn_to_default_ratio,
        explain="fan_in = 16·3·3 = 144; the default U(±1/√144) has standard deviation 1/√(3·144), torch.randn "
        "has 1, so the ratio is √(3·144) = √432 ≈ 20.78.",
    )
)
