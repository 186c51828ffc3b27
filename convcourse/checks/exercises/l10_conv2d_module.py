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

import math
from typing import Any

import torch
from torch import nn

from .. import _guard
from ..conv import randn
from ..core import Exercise, GradingError, describe_inputs, first_difference, register
from ..quiz import Question, register_question

MODES = ("zeros", "reflect", "replicate", "circular")


def _reference(**inputs: Any) -> nn.Module:
    return nn.Conv2d(**inputs)


def _what(inputs: dict[str, Any]) -> str:
    return f"Conv2d({describe_inputs(inputs)})"


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _sample_input(layer: nn.Module, inputs: dict[str, Any], *, batched: bool = True, seed: int = 7) -> torch.Tensor:
    """A deterministic input big enough for the layer (also for reflect padding)."""
    kh, kw = _pair(inputs["kernel_size"])
    dh, dw = _pair(inputs.get("dilation", 1))
    h, w = max(9, dh * (kh - 1) + 4), max(8, dw * (kw - 1) + 3)
    x = randn(2, inputs["in_channels"], h, w, seed=seed).to(layer.weight.dtype)
    return x if batched else x[0]


def _parameters_problem(got: nn.Module, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    what = _what(inputs)
    if not isinstance(got, nn.Module):
        return f"{what} should build an nn.Module (class Conv2d(nn.Module)), but it is {type(got).__name__}."
    mine = {name: p for name, p in got.named_parameters()}
    theirs = {name: p for name, p in expected.named_parameters()}
    if sorted(mine) != sorted(theirs):
        hint = ""
        if "bias" in theirs and "bias" not in mine:
            hint = " With bias=True, make the bias an nn.Parameter attribute named bias."
        elif "bias" in mine and "bias" not in theirs:
            hint = " With bias=False torch has no bias parameter: use self.register_parameter('bias', None)."
        elif "weight" not in mine:
            hint = (" Wrap the tensors in nn.Parameter and assign them to self.weight / self.bias, so that "
                    "nn.Module registers them.")
        return f"{what} has parameters {sorted(mine)}, but torch's has {sorted(theirs)}.{hint}"
    for name, p in theirs.items():
        q = mine[name]
        if not isinstance(q, nn.Parameter):
            return f"{what}: {name} should be an nn.Parameter."
        if tuple(q.shape) != tuple(p.shape):
            hint = ""
            if name == "weight" and inputs.get("groups", 1) != 1:
                hint = " With groups, the weight has in_channels // groups input channels."
            elif name == "weight":
                hint = " The weight is (out_channels, in_channels // groups, kH, kW)."
            return f"{what}: {name} has shape {tuple(q.shape)}, but torch's is {tuple(p.shape)}.{hint}"
        if q.dtype != p.dtype:
            return (f"{what}: {name} has dtype {q.dtype}, but torch's is {p.dtype}. Pass dtype= (and device=) "
                    "to the torch.empty/zeros that creates it.")
        if q.device != p.device:
            return f"{what}: {name} is on {q.device}, but torch's is on {p.device}."
        if not q.requires_grad:
            return f"{what}: {name} does not require grad; nn.Parameter does by default."
    if not getattr(got, "training", False):
        return f"{what} is not in training mode after construction; did you call super().__init__()?"
    return None


def _wrong_outputs(torch_layer: nn.Module, x: torch.Tensor, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Outputs of common mistakes, computed with torch, to name the mistake."""
    out: dict[str, torch.Tensor] = {}
    stride, dilation, groups = torch_layer.stride, torch_layer.dilation, torch_layer.groups
    w, b = torch_layer.weight, torch_layer.bias
    mode = torch_layer.padding_mode
    padding = torch_layer.padding

    def add(text, make):
        try:
            out[text] = make()
        except Exception:
            pass

    if mode != "zeros":
        add(f"padding_mode={mode!r} is ignored: the input is zero-padded. Pad with "
            f"F.pad(input, pads, mode={mode!r}) and then convolve with padding=0.",
            lambda: _guard.conv2d(x, w, b, stride, padding, dilation, groups))
        pads = torch_layer._reversed_padding_repeated_twice
        add("the input is padded twice: once with F.pad (padding_mode) and again by F.conv2d's padding. "
            "After F.pad, call F.conv2d with padding=0.",
            lambda: _guard.conv2d(_guard.pad(x, pads, mode=mode), w, b, stride, padding, dilation, groups))
    if b is not None:
        add("the bias is not used in forward.", lambda: _guard.conv2d(x, w, None, stride, padding, dilation, groups))
    if stride != (1, 1):
        add("stride is not passed on in forward.", lambda: _guard.conv2d(x, w, b, 1, padding, dilation, groups))
    if dilation != (1, 1):
        add("dilation is not passed on in forward.", lambda: _guard.conv2d(x, w, b, stride, padding, 1, groups))
    if not isinstance(padding, str) and padding != (0, 0):
        add("padding is not passed on in forward.", lambda: _guard.conv2d(x, w, b, stride, 0, dilation, groups))
    return out


def _forward_problem(got: nn.Module, torch_layer: nn.Module, inputs: dict[str, Any], direction: str,
                     batched: bool = True) -> str | None:
    what = _what(inputs)
    x = _sample_input(torch_layer, inputs, batched=batched)
    expected = torch_layer(x).detach()
    try:
        mine = got(x.clone())
    except NotImplementedError:
        return f"{what}: forward is not implemented yet (it raised NotImplementedError)."
    except Exception as error:
        return (f"{what}: forward on an input of shape {tuple(x.shape)} ({direction}) raised "
                f"{type(error).__name__}: {error}")
    if not _guard.is_tensor(mine):
        return f"{what}: forward returned {type(mine).__name__}, not a tensor."
    mine = mine.detach()
    shape = "unbatched " if not batched else ""
    if tuple(mine.shape) != tuple(expected.shape):
        message = (f"{what}: forward on a {shape}input of shape {tuple(x.shape)} returned shape "
                   f"{tuple(mine.shape)}, torch's layer {tuple(expected.shape)}.")
    elif mine.dtype != expected.dtype:
        return f"{what}: forward returned dtype {mine.dtype}, torch's layer {expected.dtype}."
    elif not _guard.allclose(mine.double(), expected.double(), rtol=1e-6, atol=1e-8):
        message = (f"{what}: forward ({direction}) differs from nn.Conv2d's on a {shape}input of shape "
                   f"{tuple(x.shape)}: {first_difference(mine, expected, 1e-6, 1e-8)}.")
    else:
        return None
    for text, wrong in _wrong_outputs(torch_layer, x, inputs).items():
        if tuple(wrong.shape) == tuple(mine.shape) and _guard.allclose(mine.double(), wrong.double(),
                                                                       rtol=1e-6, atol=1e-8):
            return f"{message}\nLikely mistake: {text}"
    return message


def _load(target: nn.Module, source: nn.Module, what: str, direction: str) -> str | None:
    try:
        target.load_state_dict(source.state_dict())
    except Exception as error:
        return (f"{what}: copying the state dict {direction} failed ({type(error).__name__}: "
                f"{str(error).strip().splitlines()[0][:200]}). Name the parameters weight and bias, with torch's shapes.")
    return None


def compare_module(got: Any, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    problem = _parameters_problem(got, expected, inputs)
    if problem:
        return problem
    what = _what(inputs)
    # torch -> yours
    problem = _load(got, expected, what, "from nn.Conv2d into yours") or \
        _forward_problem(got, expected, inputs, "weights copied from nn.Conv2d")
    if problem:
        return problem
    # yours -> torch, after giving your layer new values
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in got.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.dtype))
    fresh = nn.Conv2d(**inputs)
    problem = _load(fresh, got, what, "from yours into nn.Conv2d") or \
        _forward_problem(got, fresh, inputs, "your weights copied into nn.Conv2d") or \
        _forward_problem(got, fresh, inputs, "your weights copied into nn.Conv2d", batched=False)
    if problem:
        return problem
    # .to(dtype) moves the parameters (nn.Module does it when they are registered Parameters)
    target = torch.float32 if got.weight.dtype == torch.float64 else torch.float64
    try:
        moved = got.to(target)
    except Exception as error:
        return f"{what}: .to({target}) raised {type(error).__name__}: {error}"
    if moved is not got or got.weight.dtype != target or (got.bias is not None and got.bias.dtype != target):
        return (f"{what}: after .to({target}) the parameters are not {target}; keep weight and bias as "
                "registered nn.Parameters (not plain tensor attributes).")
    problem = _forward_problem(got, fresh.to(target), inputs, f"after .to({target})")
    if problem:
        return problem
    if torch.cuda.is_available():  # pragma: no cover - the course's tests run on CPU
        try:
            got.to("cuda")
            if got.weight.device.type != "cuda":
                return f"{what}: after .to('cuda') the weight is still on {got.weight.device}."
        finally:
            got.to("cpu")
    return None


# ------------------------------------------------------------------ reset_parameters

def _fan_in(inputs: dict[str, Any]) -> int:
    kh, kw = _pair(inputs["kernel_size"])
    return inputs["in_channels"] // inputs.get("groups", 1) * kh * kw


def _uniform_problem(values: torch.Tensor, bound: float, name: str, what: str, when: str) -> str | None:
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
    expected = (f"torch draws {name} from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) = U(-{bound:.4g}, {bound:.4g}) "
                "with fan_in = (in_channels // groups) * kH * kW (kaiming_uniform_ with a=sqrt(5) for the weight)")
    if values.eq(0).all():
        return f"{what}: {when}, {name} is all zeros; {expected}."
    if top > bound * (1 + 1e-6):
        return (f"{what}: {when}, |{name}| reaches {top:.4g} = {top / bound:.3g} × 1/sqrt(fan_in); {expected}, "
                "so no value exceeds the bound.")
    if top < bound * (1 - 20 / n):  # P(max of n uniforms below this) = (1 - 20/n)^n < e^-20
        return (f"{what}: {when}, the largest |{name}| is only {top:.4g} = {top / bound:.3g} × 1/sqrt(fan_in); "
                f"{expected}.")
    if abs(mean) > 8 * 0.58 * se + 0.01 or abs(mean_abs - 0.5) > 8 * 0.29 * se + 0.01 or \
            abs(std - 1 / math.sqrt(3)) > 8 * 0.26 * se + 0.01:
        return (f"{what}: {when}, {name} does not look uniform: mean {mean:.3f}, mean |·| {mean_abs:.3f}, std "
                f"{std:.3f} (in units of 1/sqrt(fan_in); a uniform distribution gives 0, 0.5, 0.577). {expected}.")
    return None


def compare_init(got: Any, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    what = _what(inputs)
    if not isinstance(got, nn.Module) or not isinstance(getattr(got, "weight", None), torch.Tensor):
        return f"{what} should be an nn.Module with a weight parameter."
    bound = 1 / math.sqrt(_fan_in(inputs))
    for name in ("weight", "bias"):
        values = getattr(got, name, None)
        if values is not None:
            problem = _uniform_problem(values, bound, name, what, "right after construction")
            if problem:
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
        except Exception as error:
            return f"{what}: reset_parameters() raised {type(error).__name__}: {error}"
    if result is not None:
        return f"{what}: reset_parameters() should return None (it changes the parameters in place)."
    if torch.equal(before, got.weight.detach()):
        return f"{what}: reset_parameters() did not draw new weights."
    if not isinstance(got.weight, nn.Parameter):
        return (f"{what}: after reset_parameters() the weight is no longer an nn.Parameter; fill it in place "
                "(under torch.no_grad(), e.g. self.weight.uniform_(-bound, bound) or nn.init functions).")
    for name in ("weight", "bias"):
        values = getattr(got, name, None)
        if values is not None:
            problem = _uniform_problem(values, bound, name, what, "after reset_parameters()")
            if problem:
                return problem
    return None


# ------------------------------------------------------------------ extra_repr

def compare_repr(got: Any, expected: nn.Module, inputs: dict[str, Any]) -> str | None:
    what = _what(inputs)
    try:
        mine_extra, mine = got.extra_repr(), repr(got)
    except NotImplementedError:
        return f"{what}: extra_repr is not implemented yet."
    except Exception as error:
        return f"{what}: extra_repr()/repr() raised {type(error).__name__}: {error}"
    theirs = expected.extra_repr()
    if mine_extra != theirs:
        return (f"{what}: extra_repr() returned\n    {mine_extra!r}\nbut torch's is\n    {theirs!r}\n"
                "torch always lists in_channels, out_channels, kernel_size and stride (as tuples), and the "
                "others only when they differ from the default (padding (0, 0), dilation (1, 1), groups 1, "
                "bias=False when there is none, padding_mode when not 'zeros').")
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
    return [
        _c(3, 5, (2, 3), stride=(2, 1), padding=(1, 2), dilation=(1, 2), **F64),
        _c(4, 6, 3, groups=2, padding="same", **F64),
        _c(4, 4, (2, 4), padding="same", dilation=(2, 1), groups=4, bias=False, **F64),   # even kernels
        _c(2, 3, 3, padding="valid", **F64),
        _c(1, 2, 1, **F64),
        _c(3, 2, 3),                                                                       # float32 default
        _c(2, 3, 3, device="cpu", dtype=torch.float64, stride=3),
    ] + [_c(2, 3, (3, 2), padding=(1, 2), padding_mode=mode, **F64) for mode in MODES[1:]] + [
        _c(2, 4, 3, padding="same", padding_mode=mode, groups=2, **F64) for mode in MODES[1:]
    ] + [_c(3, 3, (2, 3), padding="same", dilation=2, padding_mode="reflect", bias=False, **F64)]


def padding_visible():
    return [_c(2, 3, 3, padding=1, padding_mode="reflect", **F64), _c(2, 3, (2, 4), padding="same", **F64)]


def init_visible():
    return [_c(64, 64, 3)]


def init_hidden():
    return [_c(8, 512, (1, 3), groups=4), _c(3, 300, 5), _c(16, 32, (7, 2), groups=16), _c(20, 1024, 1, bias=False)]


def repr_visible():
    return [_c(3, 8, 3), _c(3, 8, (3, 5), stride=2, padding=1, bias=False)]


def repr_hidden():
    return [_c(4, 8, 3, padding="same", dilation=2, groups=4, padding_mode="circular"),
            _c(2, 2, 1, padding="valid"), _c(2, 4, (1, 3), stride=(1, 2), padding=(0, 1), padding_mode="replicate"),
            _c(6, 6, 3, groups=3, dilation=(2, 1), padding=(0, 0)), _c(1, 1, 2, padding=(1, 0), bias=True)]


def errors_visible():
    return [_c(4, 6, 3, groups=3), _c(4, 6, 3, padding_mode="mirror")]


def errors_hidden():
    return [_c(4, 5, 3, groups=2), _c(4, 6, 3, groups=0), _c(4, 6, 3, groups=-2), _c(2, 2, 3, padding="same", stride=2),
            _c(2, 2, 3, padding="same", stride=(1, 2)), _c(2, 2, 3, padding="full"),
            _c(2, 2, 3, padding_mode="zero"), _c(2, 2, 3, padding_mode="Reflect"),
            _c(6, 4, 3, groups=4), _c(2, 2, 3, padding="valid", padding_mode="zeros", dtype=torch.float64)]


for _name, _compare, _suites in [
    ("Conv2d", compare_module, {"visible": module_visible, "padding": padding_visible, "hidden": module_hidden}),
    ("Conv2d_init", compare_init, {"visible": init_visible, "hidden": init_hidden}),
    ("Conv2d_repr", compare_repr, {"visible": repr_visible, "hidden": repr_hidden}),
    ("Conv2d_errors", compare_module, {"visible": errors_visible, "hidden": errors_hidden}),
]:
    register(Exercise(name=_name, lesson="10_conv2d_module", reference=_reference, kind="custom",
                      compare=_compare, suites=_suites))


# Check your understanding -------------------------------------------------------------------------

def _construction_error(*args: Any, **kwargs: Any) -> str:
    try:
        nn.Conv2d(*args, **kwargs)
    except Exception as error:  # the type is the answer
        return type(error).__name__
    return "no error"


def _randn_to_default_ratio() -> float:
    """std of standard-normal weights over the default's, sqrt(1 / (bound**2 / 3)), bound from torch's fan_in."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(nn.Conv2d(16, 32, 3).weight)
    bound = 1 / math.sqrt(fan_in)
    return 1 / (bound / math.sqrt(3))


register_question(Question(
    name="10_conv2d_module.q1", lesson="10_conv2d_module", form="an int",
    answer=lambda: sum(p.numel() for p in nn.Conv2d(16, 32, 3).parameters()),
    explain="The weight is (32, 16, 3, 3) = 4,608 numbers and the bias adds one per output channel: 4,608 + 32.",
))
register_question(Question(
    name="10_conv2d_module.q2", lesson="10_conv2d_module", form="a tuple of four ints",
    answer=lambda: tuple(nn.Conv2d(8, 16, (3, 5), groups=4).weight.shape),
    explain="The weight is (out_channels, in_channels // groups, kH, kW): each output channel sees only the 8 / 4 "
            "= 2 input channels of its group.",
))
register_question(Question(
    name="10_conv2d_module.q3", lesson="10_conv2d_module", form="a tuple of strings, e.g. (\"name\",)",
    answer=lambda: tuple(nn.Conv2d(3, 8, 3, bias=False).state_dict()),
    explain="bias=False registers bias as None, and a None parameter is not saved: only the weight is.",
))
register_question(Question(
    name="10_conv2d_module.q4", lesson="10_conv2d_module", kind="error", form="an exception name such as \"TypeError\"",
    answer=lambda: _construction_error(4, 6, 3, groups=4),
    explain="groups must divide both in_channels and out_channels; 6 is not divisible by 4, and the constructor "
            "raises ValueError('out_channels must be divisible by groups').",
))
register_question(Question(
    name="10_conv2d_module.q5", lesson="10_conv2d_module", kind="number", rtol=1e-3, form="a number",
    answer=_randn_to_default_ratio,
    explain="fan_in = 16·3·3 = 144; the default U(±1/√144) has standard deviation 1/√(3·144), torch.randn has 1, so "
            "the ratio is √(3·144) = √432 ≈ 20.78.",
))
