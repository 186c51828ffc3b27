"""Lesson 12: run the capstone's convolutions on the learner's own code from lessons 09, 10 and 11.

The learner pastes ``conv2d_fast`` (lesson 09), ``Conv2d`` (lesson 10) and ``conv2d_backward`` with
``Conv2dFunction`` (lesson 11) into marked cells of the capstone. :func:`assemble_stack` checks each
piece on small cases against torch and on speed, uses the learner's piece where it is correct and fast
enough, the course's reference where it is missing or wrong, and says which runs and why:

- the layer's class (constructor, parameters, initialisation, ``extra_repr``) is the learner's
  ``Conv2d`` or :class:`ReferenceConv2d`; its ``forward`` is replaced by one that calls
- a ``torch.autograd.Function`` whose forward is ``conv2d_fast`` (learner's or
  :func:`reference_conv2d_fast`) and whose backward runs the learner's ``Conv2dFunction`` (or
  :class:`ReferenceConv2dFunction`): the learner's Function is applied to detached copies of the
  inputs inside the backward, and ``torch.autograd.grad`` runs its backward for ``grad_output``.

Grading sees only the capstone notebook, so the learner's code must be in it; nothing here imports the
learner's other lessons. The references use ``F.unfold``/``F.fold`` and matrix products, never torch's
convolution.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import stratified_split
from .geometry import output_size, pads, pair

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def torch_pair(value: Any) -> tuple:
    """How nn.Conv2d stores an argument: a sequence as a tuple (unchanged length), a number twice."""
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value, value)


def expand2(value: Any, name: str = "argument") -> tuple[int, int]:
    """:func:`convcourse.geometry.pair`, raising ValueError as nn.Conv2d's constructor does."""
    try:
        return pair(value, name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"{name} must be an int or a sequence of 1 or 2 ints, got {value!r} ({error})") from None


def reference_conv2d_fast(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The course's ``conv2d_fast`` for numeric padding: ``F.unfold`` and one matrix product per group."""
    (sh, sw), (ph, pw), (dh, dw) = expand2(stride, "stride"), expand2(padding, "padding"), expand2(dilation, "dilation")
    n, _, h, w = input.shape
    c_out, _, kh, kw = weight.shape
    out_h, out_w = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    cols = F.unfold(input, (kh, kw), dilation=(dh, dw), padding=(ph, pw), stride=(sh, sw))
    cols = cols.reshape(n, groups, -1, out_h * out_w)  # (N, G, C_in/G*kH*kW, L)
    out = torch.matmul(weight.reshape(groups, c_out // groups, -1), cols)  # (N, G, C_out/G, L)
    out = out.reshape(n, c_out, out_h, out_w)
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


def reference_conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
    """The course's ``conv2d_backward``: the same unfold columns, read the other way (``F.fold`` adds them back)."""
    (sh, sw), (ph, pw), (dh, dw) = expand2(stride, "stride"), expand2(padding, "padding"), expand2(dilation, "dilation")
    n, c_in, h, w = input.shape
    c_out, _, kh, kw = weight.shape
    g = grad_output.reshape(n, groups, c_out // groups, -1)  # (N, G, C_out/G, L)
    cols = F.unfold(input, (kh, kw), dilation=(dh, dw), padding=(ph, pw), stride=(sh, sw))
    cols = cols.reshape(n, groups, -1, g.shape[-1])  # (N, G, C_in/G*kH*kW, L)
    grad_weight = torch.matmul(g, cols.transpose(-1, -2)).sum(0).reshape(weight.shape)
    grad_cols = torch.matmul(weight.reshape(groups, c_out // groups, -1).transpose(-1, -2), g)
    grad_input = F.fold(
        grad_cols.reshape(n, -1, g.shape[-1]), (h, w), (kh, kw), dilation=(dh, dw), padding=(ph, pw), stride=(sh, sw)
    )
    return grad_input, grad_weight, grad_output.sum(dim=(0, 2, 3))


class ReferenceConv2dFunction(torch.autograd.Function):
    """The course's Conv2dFunction: forward ``reference_conv2d_fast``, backward ``reference_conv2d_backward``."""

    @staticmethod
    def forward(ctx, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        ctx.save_for_backward(input, weight)
        ctx.settings = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        return reference_conv2d_fast(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        grad_input, grad_weight, grad_bias = reference_conv2d_backward(grad_output, input, weight, *ctx.settings)
        return grad_input, grad_weight, (grad_bias if ctx.has_bias else None), None, None, None, None


class ReferenceConv2d(nn.Module):
    """The course's Conv2d: nn.Conv2d's constructor, attributes, initialisation and repr (equal to torch's).

    Arguments are stored the way nn.Conv2d stores them (``stride=(2,)`` stays ``(2,)``, as in torch's
    repr) and expanded to (h, w) only when computing. Its own ``forward`` uses the reference functions;
    inside the capstone's network :func:`assemble_stack` routes it through the chosen stack instead.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        padding_mode="zeros",
        device=None,
        dtype=None,
    ):
        super().__init__()
        if not isinstance(groups, int) or groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        kernel = expand2(kernel_size, "kernel_size")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in expand2(stride, "stride")):
                raise ValueError("padding='same' is not supported for strided convolutions")
        else:
            expand2(padding, "padding")
        expand2(stride, "stride"), expand2(dilation, "dilation")
        if padding_mode not in PADDING_MODES:
            raise ValueError(
                f"padding_mode must be one of {list(PADDING_MODES)}, but got padding_mode='{padding_mode}'"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel
        self.stride, self.dilation = torch_pair(stride), torch_pair(dilation)
        self.padding = padding if isinstance(padding, str) else torch_pair(padding)
        self.groups, self.padding_mode = groups, padding_mode
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *kernel, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def forward(self, input):
        return run_conv(self, input, reference_conv2d_fast)

    def extra_repr(self) -> str:
        # The same text as torch.nn.modules.conv._ConvNd.extra_repr.
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


def run_conv(layer: nn.Module, input: torch.Tensor, conv: Callable) -> torch.Tensor:
    """Apply ``conv(input, weight, bias, stride, padding, dilation, groups)`` with ``layer``'s settings.

    'same'/'valid' and padding modes other than 'zeros' are resolved first with F.pad (as nn.Conv2d
    does), so ``conv`` only ever sees numeric padding. (C, H, W) input is run as a batch of one.
    """
    unbatched = input.dim() == 3
    x = input[None] if unbatched else input
    kernel, dilation = expand2(layer.kernel_size, "kernel_size"), expand2(layer.dilation, "dilation")
    padding: Any = layer.padding
    if isinstance(padding, str) or layer.padding_mode != "zeros":
        amounts = pads(padding, kernel, dilation)
        if any(amounts):
            mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
            x = F.pad(x, amounts, mode=mode)
        padding = 0
    out = conv(
        x,
        layer.weight,
        layer.bias,
        expand2(layer.stride, "stride"),
        expand2(padding, "padding"),
        dilation,
        layer.groups,
    )
    return out[0] if unbatched else out


# --------------------------------------------------------------------------------------------------
# Assembling the stack from what the learner pasted


@dataclasses.dataclass
class Part:
    """One piece of the stack: which implementation runs and why."""

    role: str  # what it does in the network
    name: str  # the learner's name for it
    lesson: str
    yours: bool
    why: str
    calls: int = 0


class _StackConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, weight, bias, settings, stack):
        ctx.save_for_backward(input, weight, *(() if bias is None else (bias,)))
        ctx.settings, ctx.stack = settings, stack
        stack.forward_part.calls += 1
        return stack.conv2d_fast(input, weight, bias, *settings)

    @staticmethod
    def backward(ctx, grad_output):
        saved = ctx.saved_tensors
        input, weight, bias = saved[0], saved[1], (saved[2] if len(saved) > 2 else None)
        ctx.stack.backward_part.calls += 1
        grads = function_gradients(ctx.stack.conv2d_function, grad_output, input, weight, bias, ctx.settings)
        return grads[0], grads[1], grads[2], None, None


def function_gradients(function: type, grad_output, input, weight, bias, settings) -> tuple:
    """(grad_input, grad_weight, grad_bias) from ``function``'s own backward (autograd.grad through it)."""
    with torch.enable_grad():
        leaves = [input.detach().requires_grad_(True), weight.detach().requires_grad_(True)]
        if bias is not None:
            leaves.append(bias.detach().requires_grad_(True))
        out = function.apply(leaves[0], leaves[1], leaves[2] if bias is not None else None, *settings)
        grads = torch.autograd.grad(out, leaves, grad_output, allow_unused=True)
    grad_bias = grads[2] if bias is not None else None
    return grads[0], grads[1], grad_bias


@dataclasses.dataclass
class Stack:
    """The implementations the capstone's Conv2d layers run, and a record of which ones and why."""

    module_part: Part
    forward_part: Part
    backward_part: Part
    conv2d_fast: Callable
    conv2d_function: type
    Conv2d: type = dataclasses.field(init=False)

    def conv(self, layer: nn.Module, input: torch.Tensor) -> torch.Tensor:
        return run_conv(layer, input, lambda x, w, b, *settings: _StackConv.apply(x, w, b, settings, self))

    def parts(self) -> list[Part]:
        return [self.module_part, self.forward_part, self.backward_part]

    def report(self) -> str:
        """A small table: each part, whose implementation runs, how often it has run, and why."""
        lines = [f"{'part':38s} {'runs':13s} {'calls':>6s}  why"]
        for part in self.parts():
            label = f"{part.name} (lesson {part.lesson}): {part.role}"
            calls = "-" if part is self.module_part else f"{part.calls:,}"
            lines.append(f"{label:38s} {'yours' if part.yours else 'the course’s':13s} {calls:>6s}  {part.why}")
        return "\n".join(lines)

    def reset_counts(self) -> None:
        for part in self.parts():
            part.calls = 0


def _seeded(*shape, generator, dtype=torch.float64):
    return torch.randn(*shape, generator=generator, dtype=dtype)


_FORWARD_CASES = (  # (input shape, weight shape, bias?, stride, padding, dilation, groups)
    ((2, 4, 8, 7), (6, 2, 3, 3), True, 2, 1, 1, 2),
    ((1, 3, 9, 9), (4, 3, 3, 2), False, 1, (1, 0), (2, 1), 1),
    ((3, 1, 8, 8), (16, 1, 3, 3), True, 1, 1, 1, 1),
)
#: CPU seconds one forward (or backward) of a training-sized layer may take before the piece counts as too
#: slow for the capstone (the course's references take about a millisecond; a loop over pixels far longer).
SLOW_SECONDS = 1.0


def _cpu_seconds(call: Callable[[], Any]) -> float:
    best = math.inf
    for _ in range(2):
        start = time.process_time()
        call()
        best = min(best, time.process_time() - start)
        if best > SLOW_SECONDS:  # no second try for slow code: it would only cost the learner time
            break
    return best


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}{': ' + text[:120] if text else ''}"


def _check_forward(conv2d_fast: Callable) -> str | None:
    generator = torch.Generator().manual_seed(12)
    for x_shape, w_shape, has_bias, s, p, d, g in _FORWARD_CASES:
        x, w = _seeded(*x_shape, generator=generator), _seeded(*w_shape, generator=generator)
        b = _seeded(w_shape[0], generator=generator) if has_bias else None
        expected = reference_conv2d_fast(x, w, b, s, p, d, g)
        try:
            with torch.no_grad():
                got = conv2d_fast(x, w, b, s, p, d, g)
        except Exception as error:  # the learner's code: any failure means "use the course's"  # noqa: BLE001
            return f"it raised {_describe(error)} on stride={s}, padding={p}, dilation={d}, groups={g}"
        if (
            not isinstance(got, torch.Tensor)
            or got.shape != expected.shape
            or not torch.allclose(got.double(), expected, rtol=1e-6, atol=1e-8)
        ):
            return f"its result differs from torch's on stride={s}, padding={p}, dilation={d}, groups={g}"
    x, w = torch.randn(32, 32, 8, 8), torch.randn(32, 32, 3, 3)
    seconds = _cpu_seconds(lambda: conv2d_fast(x, w, None, 1, 1, 1, 1))
    if seconds > SLOW_SECONDS:
        return f"it is too slow for training ({seconds:.2f} CPU s for one batch; is there a Python loop over pixels?)"
    return None


def _check_function(function: type) -> str | None:
    generator = torch.Generator().manual_seed(11)
    for x_shape, w_shape, has_bias, s, p, d, g in _FORWARD_CASES:
        x, w = _seeded(*x_shape, generator=generator), _seeded(*w_shape, generator=generator)
        b = _seeded(w_shape[0], generator=generator) if has_bias else None
        out_shape = reference_conv2d_fast(x, w, b, s, p, d, g).shape
        grad_output = _seeded(*out_shape, generator=generator)
        expected = reference_conv2d_backward(grad_output, x, w, s, p, d, g)
        try:
            got = function_gradients(function, grad_output, x, w, b, (s, p, d, g))
        except Exception as error:  # noqa: BLE001
            return f"its backward raised {_describe(error)} on stride={s}, padding={p}, dilation={d}, groups={g}"
        names = ("grad_input", "grad_weight", "grad_bias")
        for name, mine, right in zip(names, got, expected):
            if name == "grad_bias" and not has_bias:
                continue
            if (
                not isinstance(mine, torch.Tensor)
                or mine.shape != right.shape
                or not torch.allclose(mine.double(), right, rtol=1e-6, atol=1e-8)
            ):
                return f"its {name} differs from torch's on stride={s}, padding={p}, dilation={d}, groups={g}"
    x, w, b = torch.randn(32, 32, 8, 8), torch.randn(32, 32, 3, 3), torch.randn(32)
    grad_output = torch.randn(32, 32, 8, 8)
    seconds = _cpu_seconds(lambda: function_gradients(function, grad_output, x, w, b, ((1, 1), (1, 1), (1, 1), 1)))
    if seconds > SLOW_SECONDS:
        return f"its backward is too slow for training ({seconds:.2f} CPU s for one batch)"
    return None


_MODULE_CASES = (
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, groups=2),
    dict(in_channels=1, out_channels=8, kernel_size=(3, 5), padding="same", bias=False),
    dict(in_channels=3, out_channels=3, kernel_size=3, padding=1, padding_mode="reflect"),
)


def _check_module(cls: Any) -> str | None:
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        return "it is not an nn.Module class"
    if issubclass(cls, nn.modules.conv._ConvNd):
        return "it subclasses torch's nn.Conv2d (the lesson asks for your own nn.Module)"
    for arguments in _MODULE_CASES:
        try:
            layer = cls(**arguments)
            want = nn.Conv2d(**arguments)
            shapes_ok = tuple(layer.weight.shape) == tuple(want.weight.shape) and (layer.bias is None) == (
                want.bias is None
            )
            settings_ok = (
                all(
                    expand2(getattr(layer, a), a) == expand2(getattr(want, a), a)
                    for a in ("kernel_size", "stride", "dilation")
                )
                and layer.groups == want.groups
                and layer.padding_mode == want.padding_mode
                and (
                    layer.padding == want.padding
                    if isinstance(want.padding, str)
                    else expand2(layer.padding, "padding") == expand2(want.padding, "padding")
                )
            )
        except Exception as error:  # noqa: BLE001
            return f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in arguments.items())}) raised {_describe(error)}"
        if not shapes_ok:
            return f"its weight or bias shape differs from nn.Conv2d's for {arguments}"
        if not settings_ok:
            return f"its stored settings differ from nn.Conv2d's for {arguments}"
        bound = 1 / math.sqrt(layer.weight[0].numel())
        if float(layer.weight.detach().abs().max()) > bound * (1 + 1e-6):
            return "its initial weights go beyond ±1/√fan_in"
    return None


def _is_assembled(cls: Any) -> bool:
    return isinstance(cls, type) and getattr(cls, "_course_stack_base", None) is not None


def assemble_stack(namespace: dict[str, Any]) -> Stack:
    """The stack for the capstone from the names defined in ``namespace`` (the notebook's globals).

    Uses the learner's ``conv2d_fast``, ``Conv2d`` and ``Conv2dFunction`` where they are defined and pass
    quick checks against torch (and run fast enough to train with); the course's references otherwise.
    Never raises for anything the learner wrote: a piece that fails is replaced, and the report says why.
    """

    def pick(name: str, check: Callable[[Any], str | None]) -> tuple[Any, bool, str]:
        candidate = namespace.get(name)
        if name == "Conv2d" and _is_assembled(candidate):
            candidate = candidate._course_stack_base
        if candidate is None or getattr(candidate, "_course_reference", False):
            return None, False, "not pasted"
        try:
            problem = check(candidate)
        except Exception as error:  # a check must never crash the notebook  # noqa: BLE001
            problem = f"checking it raised {_describe(error)}"
        return (None, False, problem) if problem else (candidate, True, "passes the checks against torch")

    fast, fast_yours, fast_why = pick("conv2d_fast", _check_forward)
    function, function_yours, function_why = pick("Conv2dFunction", _check_function)
    module, module_yours, module_why = pick("Conv2d", _check_module)
    stack = Stack(
        module_part=Part("layer class", "Conv2d", "10", module_yours, module_why),
        forward_part=Part("forward", "conv2d_fast", "09", fast_yours, fast_why),
        backward_part=Part("backward", "Conv2dFunction", "11", function_yours, function_why),
        conv2d_fast=fast if fast_yours else reference_conv2d_fast,
        conv2d_function=function if function_yours else ReferenceConv2dFunction,
    )
    base = module if module_yours else ReferenceConv2d

    class Conv2d(base):  # type: ignore[misc, valid-type]
        """The capstone's layer: your (or the course's) Conv2d, its forward routed through the stack."""

        _course_stack_base = base

        def forward(self, input):
            return stack.conv(self, input)

    Conv2d.__qualname__ = "Conv2d"
    stack.Conv2d = Conv2d
    return stack


# The references are marked so that assemble_stack never mistakes them for the learner's.
for _reference in (reference_conv2d_fast, reference_conv2d_backward):
    _reference._course_reference = True  # type: ignore[attr-defined]
ReferenceConv2dFunction._course_reference = True  # type: ignore[attr-defined]
ReferenceConv2d._course_reference = True  # type: ignore[attr-defined]


def validation_split(x: torch.Tensor, y: torch.Tensor, fraction: float = 0.2, seed: int = 1):
    """A stratified split of a training set into ((x_fit, y_fit), (x_val, y_val)) for making choices."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    return stratified_split(x, y, fraction, seed)


__all__ = [
    "assemble_stack",
    "Stack",
    "torch_twin",
    "seconds_per_step",
    "Part",
    "ReferenceConv2d",
    "ReferenceConv2dFunction",
    "reference_conv2d_fast",
    "reference_conv2d_backward",
    "run_conv",
    "validation_split",
    "expand2",
    "torch_pair",
]


def torch_twin(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every course Conv2d replaced by an nn.Conv2d with the same arguments and weights."""
    from .training import is_course_conv

    twin = copy.deepcopy(model)
    for name, layer in list(twin.named_modules()):
        if not is_course_conv(layer) or not name:
            continue
        replacement = nn.Conv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            layer.dilation,
            layer.groups,
            layer.bias is not None,
            layer.padding_mode,
            device=layer.weight.device,
            dtype=layer.weight.dtype,
        )
        replacement.load_state_dict(layer.state_dict())
        parent_name, _, child = name.rpartition(".")
        setattr(twin.get_submodule(parent_name) if parent_name else twin, child, replacement)
    return twin


def seconds_per_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 20) -> float:
    """CPU seconds of one training step (forward, backward, Adam step) on the batch ``x, y``, median of ``steps``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    times = []
    for _ in range(steps):
        start = time.process_time()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.process_time() - start)
    return sorted(times)[len(times) // 2]
