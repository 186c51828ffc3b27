"""Lesson 13: ``max_pool2d`` and ``avg_pool2d`` with loops, with F.max_pool2d's and F.avg_pool2d's whole contract.

Each function is graded in parts (``<part>`` visible, ``<part>_hidden`` hidden; ``visible``/``hidden`` are the
unions), so a mistake in one part (say ceil_mode's last-window rule) costs only that part. torch's pooling,
convolution and unfold are banned (this is a loop lesson); F.pad is allowed. Both exercises compare with a
custom comparison: max_pool2d may return a (values, indices) pair, and a wrong output shape is explained from
the pooling arithmetic (floor where ceil_mode asks for ceil, the last-window rule, the default stride).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from ...geometry import pair, pool_output_size
from .. import _guard
from ..conv import randn
from ..core import (
    CONVOLUTION_OPS,
    POOL_OPS,
    UNFOLD_OPS,
    Exercise,
    Inputs,
    Mistakes,
    Outcome,
    compare_tensors,
    custom,
    describe_inputs,
    describe_value,
    private_tensor,
    register,
)
from ..quiz import Question, error_name, register_question

LESSON = "13_pooling"
BANNED = POOL_OPS | CONVOLUTION_OPS | UNFOLD_OPS
MAX_PARTS = ("geometry", "ceil_mode", "indices", "errors")
AVG_PARTS = ("geometry", "ceil_mode", "divisor", "errors")
_DEFAULTS = dict(stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False)
_AVG_DEFAULTS = dict(stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None)


# ------------------------------------------------------------------------------------------ cases


def pool_case(
    shape: tuple[int, ...], kernel_size: Any, *, seed: int, shift: float = 0.0, ties: bool = False, **options: Any
) -> Inputs:
    """One call's inputs: a float64 ``input`` (``shift`` added: negative values show zero padding in max pooling;
    ``ties``: small integers, so windows hold equal maxima), ``kernel_size`` and the options given."""
    if ties:
        generator = torch.Generator().manual_seed(seed)
        x = torch.randint(-3, 3, shape, generator=generator).to(torch.float64)
    else:
        x = randn(*shape, seed=seed)
    return dict(input=x + shift, kernel_size=kernel_size, **options)


def _max_geometry(hidden: bool) -> list[Inputs]:
    if not hidden:
        return [
            pool_case((1, 2, 6, 7), 2, seed=1),  # stride omitted: the kernel size
            pool_case((1, 1, 7, 7), 3, seed=2, stride=2, padding=1, shift=-2.0),  # padding is -inf, not 0
            pool_case((2, 5, 6), (2, 3), seed=3, stride=(1, 2), dilation=(2, 1)),  # unbatched, pairs
        ]
    return [
        pool_case((2, 3, 8, 9), (3, 2), seed=10),
        pool_case((1, 2, 9, 8), 3, seed=11, stride=1, padding=1, shift=-2.5),
        pool_case((1, 1, 10, 9), (3, 2), seed=12, stride=(2, 3), padding=(1, 0), dilation=(2, 3), shift=-2.0),
        pool_case((1, 2, 7, 7), 2, seed=13, stride=3, padding=1, dilation=2, shift=-2.5),
        pool_case((3, 6, 5), 2, seed=14, padding=1, shift=-2.5),  # unbatched
        pool_case((1, 1, 5, 6), [2, 2], seed=15, stride=[1], padding=[1, 0], dilation=[1, 2]),  # lists, (s,)
        pool_case((1, 2, 6, 6), 3, seed=16, stride=(), padding=0),  # an empty stride is omitted too
        pool_case((1, 1, 4, 4), 4, seed=17),  # one window: the global maximum
        pool_case((2, 1, 5, 7), 1, seed=18, stride=2),  # 1x1 windows: subsampling
        pool_case((0, 2, 5, 5), 2, seed=19),  # an empty batch
    ]


def _max_ceil_mode(hidden: bool) -> list[Inputs]:
    if not hidden:
        return [
            pool_case((1, 1, 5, 7), 2, seed=4, ceil_mode=True),
            pool_case((1, 1, 6, 6), 2, seed=5, stride=4, padding=1, ceil_mode=True, shift=-2.0),  # last-window rule
        ]
    return [
        pool_case((1, 2, 4, 4), 2, seed=20, stride=3, padding=1, ceil_mode=True, shift=-2.5),  # last window dropped
        pool_case((1, 1, 7, 8), (3, 2), seed=21, stride=(2, 3), padding=(1, 1), ceil_mode=True, shift=-2.0),
        pool_case((2, 1, 9, 9), 3, seed=22, stride=2, dilation=2, padding=1, ceil_mode=True, shift=-2.0),
        pool_case((3, 5, 6), 2, seed=23, ceil_mode=True),  # unbatched
        pool_case((1, 1, 8, 8), 2, seed=24, ceil_mode=True),  # divides evenly: no extra window
        pool_case((1, 1, 5, 6), (2, 3), seed=25, stride=(3, 3), padding=(1, 1), ceil_mode=True, shift=-2.0),
    ]


def _max_indices(hidden: bool) -> list[Inputs]:
    if not hidden:
        return [
            pool_case((1, 2, 6, 6), 2, seed=6, return_indices=True),
            pool_case((1, 1, 6, 7), 3, seed=7, stride=2, padding=1, return_indices=True),
        ]
    return [
        pool_case((2, 3, 7, 6), (2, 3), seed=30, stride=(2, 1), padding=(1, 1), return_indices=True),
        pool_case((1, 2, 9, 9), 3, seed=31, dilation=2, padding=1, stride=2, return_indices=True),
        pool_case((2, 5, 7), 2, seed=32, padding=1, ceil_mode=True, return_indices=True),  # unbatched
        pool_case((1, 2, 6, 6), 3, seed=33, stride=1, padding=1, ties=True, return_indices=True),  # first max wins
        pool_case((1, 1, 5, 5), 2, seed=34, stride=3, padding=1, ceil_mode=True, return_indices=True),
        pool_case((1, 2, 5, 6), 2, seed=35, return_indices=False),  # False: the values only
    ]


def _max_errors(hidden: bool) -> list[Inputs]:
    """Calls F.max_pool2d refuses with RuntimeError or TypeError. (torch's NotImplementedError for a bool input is
    left out: the checks read a learner's NotImplementedError as "not written yet".)"""
    x = randn(1, 2, 6, 6, seed=8)
    if not hidden:
        return [
            dict(input=x, kernel_size=3, padding=2),  # padding more than half the kernel
            dict(input=x, kernel_size=2, stride=0),
        ]
    return [
        dict(input=x, kernel_size=2, padding=-1),
        dict(input=x, kernel_size=2, padding=2),
        dict(input=x, kernel_size=0),
        dict(input=x, kernel_size=2, dilation=0),
        dict(input=x, kernel_size=7),  # the window does not fit
        dict(input=x, kernel_size=3, dilation=3),  # the dilated window (7) does not fit either
        dict(input=x, kernel_size=(1, 2, 3)),
        dict(input=x, kernel_size=2, stride=(1, 1, 1)),
        dict(input=x, kernel_size=2.0),  # TypeError: not an int
        dict(input=x, kernel_size=2, ceil_mode=1),  # TypeError: not a bool
        dict(input=randn(6, 6, seed=40), kernel_size=2),  # 2-D input
        dict(input=randn(1, 1, 1, 6, 6, seed=41), kernel_size=2),  # 5-D input
    ]


def _avg_geometry(hidden: bool) -> list[Inputs]:
    if not hidden:
        return [
            pool_case((1, 2, 6, 7), 2, seed=51),  # stride omitted: the kernel size
            pool_case((1, 1, 7, 7), 3, seed=52, stride=2, padding=1),
            pool_case((2, 5, 6), (2, 3), seed=53, stride=(1, 2)),  # unbatched, pairs
        ]
    return [
        pool_case((2, 3, 8, 9), (3, 2), seed=60),
        pool_case((1, 2, 9, 8), 3, seed=61, stride=1, padding=1),
        pool_case((1, 1, 10, 9), (3, 2), seed=62, stride=(2, 3), padding=(1, 0)),
        pool_case((3, 6, 5), 2, seed=63, padding=1),  # unbatched
        pool_case((1, 1, 5, 6), [2, 2], seed=64, stride=[1], padding=[1, 0]),  # lists, (s,)
        pool_case((1, 1, 4, 4), 4, seed=65),  # one window: the global average
        pool_case((1, 2, 6, 6), 3, seed=66, stride=()),
        pool_case((0, 2, 5, 5), 2, seed=67),  # an empty batch
    ]


def _avg_ceil_mode(hidden: bool) -> list[Inputs]:
    if not hidden:
        return [
            pool_case((1, 1, 5, 7), 2, seed=54, ceil_mode=True),
            pool_case((1, 1, 6, 6), 2, seed=55, stride=4, padding=1, ceil_mode=True),  # the last-window rule
        ]
    return [
        pool_case((1, 2, 4, 4), 2, seed=70, stride=3, padding=1, ceil_mode=True),  # last window dropped
        pool_case((1, 1, 7, 8), (3, 2), seed=71, stride=(2, 3), padding=(1, 1), ceil_mode=True),
        pool_case((3, 5, 6), 2, seed=72, ceil_mode=True),  # unbatched
        pool_case((1, 1, 5, 6), (2, 3), seed=73, stride=(3, 3), padding=(1, 1), ceil_mode=True),
        pool_case((1, 1, 5, 5), 3, seed=74, stride=2, ceil_mode=True, count_include_pad=False),
    ]


def _avg_divisor(hidden: bool) -> list[Inputs]:
    if not hidden:
        return [
            pool_case((1, 1, 6, 6), 3, seed=56, stride=1, padding=1, count_include_pad=False),
            pool_case((1, 2, 6, 6), 2, seed=57, divisor_override=3),
        ]
    return [
        pool_case((2, 2, 7, 6), (3, 2), seed=80, stride=(2, 1), padding=(1, 1), count_include_pad=False),
        pool_case((1, 1, 6, 6), 3, seed=81, stride=2, padding=1, ceil_mode=True, count_include_pad=True),  # past pad
        pool_case((1, 1, 6, 7), 3, seed=82, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        pool_case((1, 2, 6, 6), 3, seed=83, padding=1, divisor_override=2, count_include_pad=False),
        pool_case((3, 5, 5), 2, seed=84, padding=1, divisor_override=-4),  # unbatched; any nonzero int
        pool_case((1, 1, 4, 4), 2, seed=85, padding=1, count_include_pad=True),
    ]


def _avg_errors(hidden: bool) -> list[Inputs]:
    """Calls F.avg_pool2d refuses with RuntimeError or TypeError (NotImplementedError left out, as for max)."""
    x = randn(1, 2, 6, 6, seed=58)
    if not hidden:
        return [
            dict(input=x, kernel_size=3, padding=2),
            dict(input=x, kernel_size=2, divisor_override=0),
        ]
    return [
        dict(input=x, kernel_size=2, padding=-1),
        dict(input=x, kernel_size=2, padding=2),
        dict(input=x, kernel_size=0),
        dict(input=x, kernel_size=2, stride=-1),
        dict(input=x, kernel_size=7),
        dict(input=x, kernel_size=(1, 2, 3)),
        dict(input=x, kernel_size=2, padding=(0, 0, 0)),
        dict(input=x, kernel_size=2, divisor_override=1.5),  # TypeError
        dict(input=x, kernel_size=2, count_include_pad=0),  # TypeError: not a bool
        dict(input=randn(1, 1, 1, 6, 6, seed=90), kernel_size=2),  # 5-D input
    ]


def _suites(parts: dict[str, Callable[[bool], list[Inputs]]]) -> dict[str, Callable[[], list[Inputs]]]:
    suites: dict[str, Callable[[], list[Inputs]]] = {
        "visible": lambda: [case for make in parts.values() for case in make(False)],
        "hidden": lambda: [case for make in parts.values() for case in make(True)],
    }
    for part, make in parts.items():
        suites[part] = lambda make=make: make(False)
        suites[f"{part}_hidden"] = lambda make=make: make(True)
    return suites


# --------------------------------------------------------------------------------- references


def _max_reference(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _guard.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_reference(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    return _guard.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


@dataclasses.dataclass(frozen=True)
class PoolArgs:
    """One pooling call's arguments, normalised to pairs (only for calls torch accepts)."""

    kind: str
    x: torch.Tensor
    kernel: tuple[int, int]
    stride: tuple[int, int] | None
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool
    count_include_pad: bool = True
    divisor_override: int | None = None

    @classmethod
    def of(cls, kind: str, inputs: Inputs) -> "PoolArgs":
        options = {**(_DEFAULTS if kind == "max" else _AVG_DEFAULTS), **inputs}
        stride = options["stride"]
        return cls(
            kind,
            options["input"],
            pair(options["kernel_size"]),
            None if stride is None or (isinstance(stride, (tuple, list)) and not stride) else pair(stride),
            pair(options["padding"]),
            pair(options.get("dilation", 1)),
            bool(options["ceil_mode"]),
            bool(options.get("count_include_pad", True)),
            options.get("divisor_override"),
        )

    @property
    def strides(self) -> tuple[int, int]:
        return self.kernel if self.stride is None else self.stride

    def pool(self, **changes: Any) -> torch.Tensor:
        """torch's values for these arguments with ``changes``."""
        a = dataclasses.replace(self, **changes)
        if a.kind == "max":
            return _guard.max_pool2d(a.x, a.kernel, a.strides, a.padding, a.dilation, a.ceil_mode)
        return _guard.avg_pool2d(
            a.x, a.kernel, a.strides, a.padding, a.ceil_mode, a.count_include_pad, a.divisor_override
        )

    def out_shape(self, *, ceil_rule: bool = True, **changes: Any) -> tuple[int, ...]:
        """The output shape from the pooling arithmetic; ``ceil_rule=False`` skips the last-window rule."""
        a = dataclasses.replace(self, **changes)
        sizes = []
        for axis in (0, 1):
            length = a.x.shape[-2 + axis]
            k, s, p, d = a.kernel[axis], a.strides[axis], a.padding[axis], a.dilation[axis]
            size = pool_output_size(length, k, s, p, d, a.ceil_mode)
            if a.ceil_mode and not ceil_rule:
                size = -(-(length + 2 * p - d * (k - 1) - 1) // s) + 1
            sizes.append(size)
        return (*a.x.shape[:-2], *sizes)


def _swapped(value: tuple[int, int]) -> tuple[int, int]:
    return (value[1], value[0])


def _value_mistakes(args: PoolArgs) -> dict[str, torch.Tensor]:
    """Outputs of common wrong implementations (values), keyed by the explanation shown to the learner."""
    out = Mistakes()
    add = out.add
    if args.stride is None:
        add(
            "the stride defaults to 1, but when stride is omitted (None) torch uses the kernel size, so that the "
            "windows sit side by side without overlapping.",
            lambda: args.pool(stride=(1, 1)),
        )
    add(
        f"you used {'floor' if args.ceil_mode else 'ceil'} where torch uses {'ceil' if args.ceil_mode else 'floor'} "
        f"(ceil_mode={args.ceil_mode}): with ceil_mode=True the division rounds up and a last, partial window is "
        "kept (if it starts inside the input or the left padding).",
        lambda: args.pool(ceil_mode=not args.ceil_mode),
    )
    if any(args.padding):
        if args.kind == "max":
            add(
                "the padding is filled with 0, but max pooling pads with -inf: a padded cell must never win, so a "
                "window of negative values keeps its (negative) maximum.",
                lambda: _zero_padded_max(args),
            )
        add("padding is ignored.", lambda: args.pool(padding=(0, 0)))
    if args.dilation != (1, 1):
        add(
            "dilation is ignored: window tap (a, b) reads x[i*sH + a*dH - pH, j*sW + b*dW - pW].",
            lambda: args.pool(dilation=(1, 1)),
        )
    for name in ("kernel", "stride", "padding", "dilation"):
        value = getattr(args, name)
        if value is not None and value[0] != value[1]:
            add(
                f"{name} is applied to the wrong axis: its first entry is for the height (rows), the second for "
                "the width (columns).",
                lambda name=name, value=value: args.pool(**{name: _swapped(value)}),
            )
    if args.kind == "avg":
        if args.divisor_override is not None:
            add(
                f"divisor_override={args.divisor_override} is ignored: when it is given, every window's sum is "
                "divided by it, whatever the window holds.",
                lambda: args.pool(divisor_override=None),
            )
        elif any(args.padding) or args.ceil_mode:
            add(
                f"count_include_pad={args.count_include_pad} is handled the wrong way round: with True the divisor "
                "counts the padded cells in the window, with False only the input cells.",
                lambda: args.pool(count_include_pad=not args.count_include_pad),
            )
            if args.count_include_pad and args.ceil_mode:
                add(
                    "every window is divided by kH*kW, but a window that hangs past the padding (ceil_mode) counts "
                    "only its cells inside the padded input: divisor = (min(top + kH, H + pH) - top) * "
                    "(min(left + kW, W + pW) - left).",
                    lambda: args.pool(divisor_override=args.kernel[0] * args.kernel[1]),
                )
    if args.x.dim() == 3:
        add(
            "for an unbatched (C, H, W) input torch returns an unbatched (C, H_out, W_out) output: add the batch "
            "dimension at the start (input[None]) and remove it again at the end (out[0]).",
            lambda: args.pool().unsqueeze(0),
        )
    add(
        "height and width are swapped: your output is torch's transposed.",
        lambda: args.pool().transpose(-1, -2),
    )
    return out


def _zero_padded_max(args: PoolArgs) -> torch.Tensor:
    (ph, pw), (kh, kw), (sh, sw), (dh, dw) = args.padding, args.kernel, args.strides, args.dilation
    padded = _guard.pad(args.x, (pw, pw, ph, ph))
    out = _guard.max_pool2d(padded, (kh, kw), (sh, sw), 0, (dh, dw), args.ceil_mode)
    shape = args.out_shape()
    return out[..., : shape[-2], : shape[-1]]


def _shape_mistake(args: PoolArgs, got: tuple[int, ...]) -> str | None:
    """What makes an output of shape ``got`` where torch's has another one, from the pooling arithmetic."""
    if args.ceil_mode and got == args.out_shape(ceil_rule=False):
        return (
            "ceil_mode's last-window rule is missing: after rounding up, torch drops the last window when it "
            "would start at or after size + padding (wholly on the right padding), i.e. when "
            "(out - 1) * stride >= size + padding."
        )
    guesses = [({"ceil_mode": not args.ceil_mode}, "floor/ceil: ceil_mode=True rounds up, False rounds down.")]
    if args.stride is None:
        guesses.append(({"stride": (1, 1)}, "stride omitted means stride = kernel_size, not 1."))
    guesses += [
        ({"padding": (0, 0)}, "padding is ignored."),
        ({"dilation": (1, 1)}, "dilation is ignored: the window spans dilation*(kernel-1)+1 cells."),
    ]
    for changes, why in guesses:
        if got == args.out_shape(**changes):
            return why
    if args.x.dim() == 3 and got == (1, *args.out_shape()):
        return "an unbatched (C, H, W) input gives an unbatched output: drop the batch dimension you added."
    return None


# --------------------------------------------------------------------------------- indices


def _index_mistakes(args: PoolArgs, indices: torch.Tensor) -> dict[str, torch.Tensor]:
    """Wrong index conventions, computed from torch's (right) indices."""
    h, w = args.x.shape[-2:]
    (ph, pw), kw, (sh, sw), (dh, dw) = args.padding, args.kernel[1], args.strides, args.dilation
    rows, cols = indices // w, indices % w
    out: dict[str, torch.Tensor] = {}
    if ph or pw:
        out[
            "your indices count positions in the padded input; torch's index is r * W + c in the unpadded "
            "input's H*W plane (subtract the padding from the row and column first)."
        ] = (rows + ph) * (w + 2 * pw) + (cols + pw)
    i = torch.arange(indices.shape[-2]).view(-1, 1)
    j = torch.arange(indices.shape[-1]).view(1, -1)
    out[
        "your indices are positions inside the window (0 .. kH*kW-1); torch's index is r * W + c, the position of "
        "the maximum in the whole H*W plane of its channel."
    ] = ((rows - (i * sh - ph)) // dh) * kw + (cols - (j * sw - pw)) // dw
    out["your indices are column-major (c * H + r); torch's are row-major, r * W + c."] = cols * h + rows
    if args.x.dim() >= 3 and args.x.shape[-3] > 1:
        channel = torch.arange(args.x.shape[-3]).view(-1, 1, 1)
        out[
            "your indices count through all channels (c * H * W + ...); torch's index restarts at 0 in every "
            "channel's H*W plane."
        ] = indices + channel * h * w
    return out


def _indices_problem(got: Any, expected: torch.Tensor, args: PoolArgs) -> str | None:
    if not _guard.is_tensor(got):
        return f"the indices should be a tensor, but they are {describe_value(got)}."
    if tuple(got.shape) != tuple(expected.shape):
        return f"the indices have shape {tuple(got.shape)}, but torch's have {tuple(expected.shape)}."
    if got.dtype != torch.int64:
        return (
            f"the indices have dtype {str(got.dtype).replace('torch.', '')}, but torch returns int64 "
            "(torch.long): create them with dtype=torch.int64."
        )
    if bool(torch.equal(got, expected)):
        return None
    bad = (got != expected).nonzero()[0].tolist()
    message = (
        f"the indices differ: first at index {tuple(bad)}: yours {int(got[tuple(bad)])}, torch "
        f"{int(expected[tuple(bad)])}; {int((got != expected).sum())} of {got.numel()} differ."
    )
    for explanation, wrong in _index_mistakes(args, expected).items():
        if tuple(wrong.shape) == tuple(got.shape) and bool(torch.equal(got, wrong)):
            return f"{message}\nLikely mistake: {explanation}"
    return message + (
        "\nHint: torch takes the first maximum in row-major order (a later equal value does not replace it)."
    )


# --------------------------------------------------------------------------------- comparison


def _collect(exercise: Exercise, got: Any, inputs: Inputs) -> Any:
    """Private copies of the learner's result, made before torch's answer exists."""
    if isinstance(got, (tuple, list)):
        return ("pair", tuple(private_tensor(part, exercise.name) for part in tuple(got)))
    return ("single", private_tensor(got, exercise.name))


def _outcome(value: Any) -> Outcome:
    return Outcome(value=value, description=describe_value(value))


def _compare(name: str, kind: str, got: Any, expected: Any, inputs: Inputs) -> str | None:
    what = f"{name}({describe_inputs(inputs)})"
    wants_pair = kind == "max" and bool(inputs.get("return_indices", False))
    form, value = got
    if wants_pair:
        if form != "pair" or len(value) != 2:
            return (
                f"{what} should return a pair (values, indices) because return_indices=True, but it returned "
                f"{'one tensor' if form == 'single' else f'{len(value)} values'}."
            )
        values, indices = value
        expected_values, expected_indices = expected
    else:
        if form != "single":
            return (
                f"{what} should return one tensor (return_indices is False), but it returned {len(value)} values; "
                "return the indices only when return_indices=True."
            )
        values, expected_values, indices = value, expected, None
    args = PoolArgs.of(kind, inputs)
    problem = compare_tensors(_VALUE_CHECKS[kind], _outcome(values), expected_values, inputs)
    # A wrong shape that no known wrong output explains (only the convolution's generic off-by-one hint, or
    # nothing): explain it from the pooling arithmetic.
    generic = problem is not None and ("Likely mistake" not in problem or "off-by-one in the output size" in problem)
    if generic and _guard.is_tensor(values) and tuple(values.shape) != tuple(expected_values.shape):
        mistake = _shape_mistake(args, tuple(values.shape))
        if mistake:
            problem = f"{problem.splitlines()[0]}\nLikely mistake: {mistake}"
    if problem:
        return problem
    if indices is not None:
        index_problem = _indices_problem(indices, expected_indices, args)
        if index_problem:
            return f"{what}: the values are right, but {index_problem}"
    return None


def _value_check(name: str, kind: str, hint: str) -> Exercise:
    """The values' comparison (not registered: it only carries the variants, tolerance and hint)."""
    return Exercise(
        name=name,
        lesson=LESSON,
        reference=_max_reference if kind == "max" else _avg_reference,
        variants=lambda inputs: _value_mistakes(PoolArgs.of(kind, inputs)),
        reduction=(lambda inputs: 1)
        if kind == "max"
        else (lambda inputs: PoolArgs.of(kind, inputs).kernel[0] * PoolArgs.of(kind, inputs).kernel[1]),
        hint=hint,
    )


_MAX_HINT = (
    "for every output pixel (i, j), the window's taps are x[i*sH + a*dH - pH, j*sW + b*dW - pW] for a < kH, b < kW; "
    "taps outside the input are padding (-inf) and never win. Output size per axis: floor (or ceil with ceil_mode, "
    "and the last window must start inside the input or left padding) of (size + 2p - d(k-1) - 1) / s, plus 1."
)
_AVG_HINT = (
    "average the taps x[i*sH + a - pH, j*sW + b - pW] that fall inside the input; divide by divisor_override if "
    "given, else by the window's cells inside the padded input (count_include_pad=True) or inside the input (False)."
)
_VALUE_CHECKS = {
    "max": _value_check("max_pool2d", "max", _MAX_HINT),
    "avg": _value_check("avg_pool2d", "avg", _AVG_HINT),
}

register(
    Exercise(
        name="max_pool2d",
        lesson=LESSON,
        reference=_max_reference,
        comparison=custom(
            lambda got, expected, inputs: _compare("max_pool2d", "max", got, expected, inputs), collect=_collect
        ),
        banned=BANNED,
        suites=_suites(
            {"geometry": _max_geometry, "ceil_mode": _max_ceil_mode, "indices": _max_indices, "errors": _max_errors}
        ),
        hint=_MAX_HINT,
    )
)
register(
    Exercise(
        name="avg_pool2d",
        lesson=LESSON,
        reference=_avg_reference,
        comparison=custom(
            lambda got, expected, inputs: _compare("avg_pool2d", "avg", got, expected, inputs), collect=_collect
        ),
        banned=BANNED,
        suites=_suites(
            {"geometry": _avg_geometry, "ceil_mode": _avg_ceil_mode, "divisor": _avg_divisor, "errors": _avg_errors}
        ),
        hint=_AVG_HINT,
    )
)


# ------------------------------------------------------------------------ check your understanding


for _question in (
    Question(
        name="13_pooling.q1",
        lesson=LESSON,
        form="a tuple of four ints",
        answer=lambda: tuple(_guard.max_pool2d(torch.zeros(1, 3, 7, 7), 2).shape),
        explain="stride is omitted, so it is the kernel size 2: floor((7 - 2) / 2) + 1 = 3 windows per axis, "
        "side by side; the last row and column of the input are never read.",
    ),
    Question(
        name="13_pooling.q2",
        lesson=LESSON,
        form="an int",
        answer=lambda: int(_guard.avg_pool2d(torch.zeros(1, 1, 4, 4), 2, 3, 1, True, True, None).shape[-1]),
        explain="ceil((4 + 2 - 2) / 3) + 1 = 3, but the third window would start at 2 * 3 - 1 = 5, on the right "
        "padding ((3 - 1) * 3 = 6 >= 4 + 1), so torch drops it: 2.",
    ),
    Question(
        name="13_pooling.q3",
        lesson=LESSON,
        kind="number",
        form="a number",
        answer=lambda: float(_guard.avg_pool2d(torch.ones(1, 1, 3, 3), 3, 1, 1, False, True, None)[0, 0, 0, 0]),
        explain="The top-left window covers 2 x 2 = 4 input ones and 5 padded zeros; count_include_pad=True "
        "divides by all 9 cells: 4 / 9 = 0.444.",
    ),
    Question(
        name="13_pooling.q4",
        lesson=LESSON,
        kind="error",
        form="the exception's name, e.g. 'TypeError' (or the class itself)",
        answer=lambda: error_name(lambda: _guard.max_pool2d(torch.zeros(1, 1, 6, 6), 3, None, 2)),
        explain="padding must be at most half the kernel size (2 > 3 // 2 = 1): otherwise a window could lie "
        "wholly on padding. F.max_pool2d raises RuntimeError.",
    ),
):
    register_question(_question)
