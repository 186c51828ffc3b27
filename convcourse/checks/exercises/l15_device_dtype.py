"""Lesson 15: ``conv2d_flops(...)``, ``im2col_bytes(...)`` and ``smallest_dtype(...)``.

Every answer is measured from torch when a case is checked, never computed from a formula:

* ``conv2d_flops``: ``torch.utils.flop_counter.FlopCounterMode`` around F.conv2d on meta tensors (no
  memory, no arithmetic), after the same call on small CPU tensors has checked the arguments (meta
  kernels skip some of F.conv2d's checks, e.g. a zero stride);
* ``im2col_bytes``: ``numel() * element_size()`` of F.unfold's result on a meta tensor of the given dtype,
  after the CPU call has checked the arguments;
* ``smallest_dtype``: F.conv2d run in each dtype and compared with the float64 result.

The learner may not read the first two off torch: the FLOP counter's code and torch's convolution and
unfold are banned in those calls (``smallest_dtype`` is itself a measurement and may call F.conv2d).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch.utils import flop_counter

from .. import _guard
from ..conv import randn
from ..core import CONVOLUTION_OPS, UNFOLD_OPS, VALUES, Exercise, GradingError, Mistakes, custom, register
from ..quiz import Question, error_name, register_question

LESSON = "15_device_dtype"
#: The dtypes smallest_dtype chooses from, narrowest first (float16 before bfloat16: same size, more precision).
CANDIDATES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

FLOP_COUNTER = (
    "torch's FLOP counter",
    ("torch/utils/flop_counter.py",),
    (),
    "{name} runs torch's FLOP counter ({hit}). This exercise asks you to count the operations yourself "
    "from the shapes; the test measures torch's count with FlopCounterMode and compares.",
)


# ---------------------------------------------------------------------------- torch's FLOP counter, sealed
def _flop_counter_state(names: tuple[str, ...], operators: tuple) -> tuple:
    """What FlopCounterMode's count of a convolution depends on: the module's names (those present when the checks
    were imported; torch may add more), the code of its functions and of FlopCounterMode's methods, and the
    registry's formulas for the convolution operators (other modules may register formulas for other operators)."""
    namespace = vars(flop_counter)
    values = tuple(namespace.get(name, _MISSING) for name in names)
    code = tuple(
        (getattr(v, "__code__", None), getattr(v, "__defaults__", None)) for v in values if hasattr(v, "__code__")
    )
    methods = tuple(v.__code__ for v in vars(flop_counter.FlopCounterMode).values() if hasattr(v, "__code__"))
    formulas = tuple(flop_counter.flop_registry.get(op, _MISSING) for op in operators)
    return values, code, methods, formulas


_MISSING = object()
_NAMES = tuple(vars(flop_counter))
_CONV_OPERATORS = tuple(op for op in flop_counter.flop_registry if "conv" in str(op))
_FLOP_COUNTER_STATE = _flop_counter_state(_NAMES, _CONV_OPERATORS)
_FLOP_COUNTER_MODE = flop_counter.FlopCounterMode


def _same_state(before: tuple, after: tuple) -> bool:
    def flat(state: tuple) -> list:
        return [item for part in state for entry in part for item in (entry if type(entry) is tuple else (entry,))]

    a, b = flat(before), flat(after)
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _untouched_flop_counter(name: str) -> None:
    if not _same_state(_FLOP_COUNTER_STATE, _flop_counter_state(_NAMES, _CONV_OPERATORS)):
        raise GradingError(
            f"{name}: cannot grade, because code in this notebook changed torch.utils.flop_counter, which the "
            "test uses to measure torch's count. Remove that code and restart the kernel."
        )


# ---------------------------------------------------------------------------- measurements
def _checked_shape(shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple of ints, refusing what torch.empty refuses (with its exception type)."""
    return tuple(torch.empty(0).new_empty(shape, device="meta").shape)


def _cpu_probe(shape: tuple[int, ...]) -> torch.Tensor:
    """A zero CPU input of ``shape`` with at most one sample: enough for torch to check the arguments."""
    small = (min(shape[0], 1), *shape[1:]) if len(shape) >= 4 else shape
    return _guard.ORIGINALS["torch.zeros"](small)


def measured_flops(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1, *, probe=True) -> int:
    """FLOPs of F.conv2d for these shapes, as torch's FlopCounterMode counts them (raises what F.conv2d raises).
    ``probe=False`` skips the CPU call that checks the arguments (the count is the meta run's either way): for
    arguments valid by construction, such as lesson 15's widget's, where that call was most of a redraw."""
    _untouched_flop_counter("conv2d_flops")
    x_shape, w_shape = _checked_shape(input_shape), _checked_shape(weight_shape)
    arguments = (None, stride, padding, dilation, groups)
    counter = _FLOP_COUNTER_MODE(display=False)
    with warnings.catch_warnings():  # torch's note on 'same' with even kernels is not the learner's business here
        warnings.simplefilter("ignore")
        if probe:
            _guard.conv2d(_cpu_probe(x_shape), _guard.ORIGINALS["torch.zeros"](w_shape), *arguments)
        with counter:
            _guard.conv2d(torch.empty(x_shape, device="meta"), torch.empty(w_shape, device="meta"), *arguments)
    return int(counter.get_total_flops())


def _unfold_result(input_shape, kernel_size, stride, padding, dilation, dtype, device) -> torch.Tensor:
    return _guard.ORIGINALS["torch.nn.functional.unfold"](
        torch.empty(input_shape, dtype=dtype, device=device), kernel_size, dilation, padding, stride
    )


def measured_im2col_bytes(
    input_shape, kernel_size, stride=1, padding=0, dilation=1, dtype=torch.float32, *, probe=True
) -> int:
    """Bytes of F.unfold's result (numel * element_size), measured on a meta tensor of ``dtype``, after the same
    call on a CPU tensor has checked the arguments (``probe=False`` skips that, as for :func:`measured_flops`)."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, not {type(dtype).__name__}")
    shape = _checked_shape(input_shape)
    if probe:
        _guard.ORIGINALS["torch.nn.functional.unfold"](_cpu_probe(shape), kernel_size, dilation, padding, stride)
    result = _unfold_result(shape, kernel_size, stride, padding, dilation, dtype, "meta")
    return int(result.numel() * result.element_size())


def _result_in(input: torch.Tensor, weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return _guard.conv2d(input.to(dtype), weight.to(dtype)).to(torch.float64)


def precision_excess(input: torch.Tensor, weight: torch.Tensor, dtype: torch.dtype, rtol: float, atol: float) -> float:
    """max |y_dtype - y_64| / (atol + rtol |y_64|): at most 1 where the result computed in ``dtype`` meets the
    tolerance (inf where it overflowed)."""
    exact = _result_in(input, weight, torch.float64)
    error = (_result_in(input, weight, dtype) - exact).abs()
    if not bool(error.isfinite().all()):
        return float("inf")
    limit = atol + rtol * exact.abs()
    return float((error / limit).max()) if bool((limit > 0).all()) else (0.0 if float(error.max()) == 0 else 1e300)


def measured_smallest_dtype(input, weight, rtol, atol=0.0) -> torch.dtype:
    """The first of CANDIDATES in which F.conv2d(input, weight) meets the tolerance against float64."""
    exact = _result_in(input, weight, torch.float64)  # raises what F.conv2d raises
    for dtype in CANDIDATES:
        if bool(_guard.isclose(_result_in(input, weight, dtype), exact, rtol=rtol, atol=atol).all()):
            return dtype
    raise AssertionError("float64 always matches itself")  # pragma: no cover


# ---------------------------------------------------------------------------- conv2d_flops
def _flop_variants(inputs: dict[str, Any]) -> dict[str, int]:
    """What known mistakes return, each measured from torch on the call that makes the same mistake."""
    args = dict(inputs)
    x, w = tuple(args.pop("input_shape")), tuple(args.pop("weight_shape"))
    groups = args.get("groups", 1)
    out = Mistakes()
    flops = measured_flops(x, w, **args)
    out.add(
        "you counted multiply-adds (MACs). FlopCounterMode counts 2 FLOPs per multiply-add: one multiply, one add.",
        lambda: flops // 2,
    )
    if len(x) == 4 and x[0] > 1:
        out.add(
            "the batch is missing: every one of the N images costs the same again, so multiply by N.",
            lambda: measured_flops((1, *x[1:]), w, **args),
        )
    if groups != 1:
        out.add(
            "the groups are ignored: with groups=g each filter reads only in_channels / g channels "
            "(weight.shape[1]), not all of them.",
            lambda: measured_flops(x, (w[0], w[1] * groups, *w[2:]), **{**args, "groups": 1}),
        )
        out.add(
            "the count is divided by groups once too often: weight.shape[1] is already in_channels / groups.",
            lambda: flops // groups,
        )
    out.add(
        "you counted one multiply-add per input pixel, but there is one per output pixel: use the output's "
        "H_out × W_out (after stride, padding and dilation).",
        lambda: flops // _out_pixels(x, w, args) * x[-1] * x[-2],
    )
    return out


def _out_pixels(x, w, args) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = _guard.conv2d(
            torch.empty(x, device="meta"), torch.empty(w, device="meta"), None, *(args.get(k, d) for k, d in _DEFAULTS)
        )
    return int(probe.shape[-1] * probe.shape[-2])


_DEFAULTS = (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))


def _flop_case(x, w, **kw) -> dict[str, Any]:
    return dict(input_shape=x, weight_shape=w, **kw)


def _flop_visible() -> list[dict[str, Any]]:
    return [
        _flop_case((1, 3, 32, 32), (16, 3, 3, 3)),
        _flop_case((8, 16, 28, 28), (32, 16, 3, 3), stride=2, padding=1),
    ]


def _flop_hidden() -> list[dict[str, Any]]:
    return [
        _flop_case((32, 64, 56, 56), (64, 64, 3, 3), padding=1),  # a ResNet layer
        _flop_case((4, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3),  # ResNet's stem
        _flop_case((3, 20, 17), (8, 3, 5, 3), padding=(2, 1)),  # unbatched (C, H, W)
        _flop_case((2, 32, 16, 16), (32, 1, 3, 3), padding="same", groups=32),  # depthwise
        _flop_case((2, 12, 15, 11), (18, 4, 3, 2), stride=(2, 3), dilation=(2, 1), groups=3),
        _flop_case((5, 8, 9, 9), (4, 8, 1, 1)),  # pointwise
        _flop_case((2, 4, 10, 12), (6, 2, 3, 4), padding="same", dilation=2, groups=2),  # even kernel width
        _flop_case((3, 2, 7, 7), (5, 2, 3, 3), padding="valid", stride=3),
        _flop_case((0, 3, 8, 8), (4, 3, 3, 3)),  # an empty batch costs nothing
        # torch refuses these (RuntimeError)
        _flop_case((1, 6, 8, 8), (4, 4, 3, 3), groups=2),  # weight.shape[1] * groups != channels
        _flop_case((1, 3, 4, 4), (2, 3, 5, 5)),  # kernel larger than the input
        _flop_case((2, 3, 8, 8), (4, 3, 3, 3), padding="same", stride=2),
        _flop_case((8, 8), (4, 1, 3, 3)),  # 2-D input
        _flop_case((1, 3, 8, 8), (4, 3, 3, 3), stride=0),
    ]


register(
    Exercise(
        name="conv2d_flops",
        lesson=LESSON,
        reference=measured_flops,
        comparison=VALUES,
        banned=CONVOLUTION_OPS | UNFOLD_OPS,
        libraries=FLOP_COUNTER,
        variants=_flop_variants,
        suites={"visible": _flop_visible, "hidden": _flop_hidden},
        hint="2 × N × out_channels × H_out × W_out × (in_channels / groups) × kH × kW; an unbatched (C, H, W) "
        "input is one image.",
    )
)


# ---------------------------------------------------------------------------- im2col_bytes
def _bytes_variants(inputs: dict[str, Any]) -> dict[str, int]:
    args = dict(inputs)
    x, k = tuple(args.pop("input_shape")), args.pop("kernel_size")
    dtype = args.pop("dtype", torch.float32)
    out = Mistakes()
    size = measured_im2col_bytes(x, k, dtype=dtype, **args)
    itemsize = torch.empty((), dtype=dtype).element_size()
    out.add(
        "you returned the number of elements, not bytes: multiply by the bytes per element, dtype.itemsize.",
        lambda: size // itemsize,
    )
    if dtype != torch.float32:
        out.add(
            f"the bytes are for float32 (4 per element), but this call asks for {str(dtype).replace('torch.', '')} "
            f"({itemsize} per element): use dtype.itemsize.",
            lambda: measured_im2col_bytes(x, k, dtype=torch.float32, **args),
        )
    if len(x) == 4 and x[0] > 1:
        out.add(
            "the batch is missing: F.unfold makes one matrix per image, N of them.",
            lambda: measured_im2col_bytes((1, *x[1:]), k, dtype=dtype, **args),
        )
    if args.get("padding", 0) != 0:
        out.add(
            "the padding is ignored: padded rows and columns give extra window positions.",
            lambda: measured_im2col_bytes(x, k, dtype=dtype, **{**args, "padding": 0}),
        )
    if args.get("stride", 1) != 1:
        out.add(
            "the stride is ignored: with stride s only every s-th window position is a column.",
            lambda: measured_im2col_bytes(x, k, dtype=dtype, **{**args, "stride": 1}),
        )
    return out


def _bytes_case(x, k, **kw) -> dict[str, Any]:
    return dict(input_shape=x, kernel_size=k, **kw)


def _bytes_visible() -> list[dict[str, Any]]:
    return [
        _bytes_case((1, 3, 32, 32), 3),
        _bytes_case((8, 64, 56, 56), 3, padding=1, dtype=torch.float16),
    ]


def _bytes_hidden() -> list[dict[str, Any]]:
    return [
        _bytes_case((32, 64, 56, 56), 3, padding=1),  # a ResNet layer in float32
        _bytes_case((4, 3, 224, 224), 7, stride=2, padding=3, dtype=torch.bfloat16),
        _bytes_case((3, 20, 17), (5, 3), padding=(2, 1), dtype=torch.float64),  # unbatched: (C*kH*kW, L)
        _bytes_case((2, 5, 19, 13), (3, 2), stride=(2, 3), dilation=(2, 1), padding=(1, 0)),
        _bytes_case((2, 4, 9, 9), 1, dtype=torch.complex64),  # 1x1: the input again, 8 bytes a number
        _bytes_case((2, 3, 8, 8), 3, dtype=torch.int64),
        _bytes_case((1, 2, 6, 6), 2, stride=2, dtype=torch.bool),
        _bytes_case((0, 3, 8, 8), 3),  # an empty batch
        # torch refuses these (RuntimeError)
        _bytes_case((1, 3, 4, 4), 5),  # the kernel does not fit
        _bytes_case((1, 3, 8, 8), 3, stride=0),
        _bytes_case((1, 3, 8, 8), 3, padding=-1),
        _bytes_case((2, 3, 8, 8), (3, 3, 3)),  # a 3-D kernel size
    ]


register(
    Exercise(
        name="im2col_bytes",
        lesson=LESSON,
        reference=measured_im2col_bytes,
        comparison=VALUES,
        banned=CONVOLUTION_OPS | UNFOLD_OPS,
        variants=_bytes_variants,
        suites={"visible": _bytes_visible, "hidden": _bytes_hidden},
        hint="F.unfold returns (N, C × kH × kW, L) with L = H_out × W_out window positions ((C × kH × kW, L) "
        "for an unbatched input); bytes = number of elements × dtype.itemsize.",
    )
)


# ---------------------------------------------------------------------------- smallest_dtype
def _dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def _collect_dtype(exercise: Exercise, result: Any, inputs: dict[str, Any]) -> Any:
    return result if type(result) is torch.dtype else f"a {type(result).__name__} ({result!r:.60})"


def _dtype_table(inputs: dict[str, Any]) -> str:
    rtol, atol = inputs["rtol"], inputs.get("atol", 0.0)
    rows = []
    for dtype in CANDIDATES:
        excess = precision_excess(inputs["input"], inputs["weight"], dtype, rtol, atol)
        verdict = "meets it" if excess <= 1 else ("overflows" if excess == float("inf") else "misses it")
        rows.append(f"{_dtype_name(dtype)}: {verdict} (worst error {excess:.3g} × the allowed)")
        if excess <= 1:
            break
    return "Measured: " + "; ".join(rows) + "."


def _compare_dtype(mine: Any, expected: torch.dtype, inputs: dict[str, Any]) -> str | None:
    shown = f"smallest_dtype(rtol={inputs['rtol']}, atol={inputs.get('atol', 0.0)}, input of shape " + (
        f"{tuple(inputs['input'].shape)})"
    )
    if type(mine) is not torch.dtype:
        return f"{shown} returned {mine}; return a torch.dtype, e.g. torch.float16."
    if mine is expected:
        return None
    message = f"{shown} returned {_dtype_name(mine)}, but the measurement picks {_dtype_name(expected)}. "
    message += _dtype_table(inputs)
    x, w, rtol, atol = inputs["input"], inputs["weight"], inputs["rtol"], inputs.get("atol", 0.0)
    mistakes = Mistakes()
    mistakes.add(
        "you rounded input and weight to the dtype but computed in float64, so the result could not overflow "
        "or lose digits in the sums: run F.conv2d itself in the dtype.",
        lambda: next(
            d
            for d in CANDIDATES
            if bool(
                _guard.isclose(
                    _guard.conv2d(x.to(d).double(), w.to(d).double()),
                    _result_in(x, w, torch.float64),
                    rtol=rtol,
                    atol=atol,
                ).all()
            )
        ),
    )
    mistakes.add(
        "atol is ignored: the test is |y − y64| ≤ atol + rtol·|y64|, so near-zero outputs may be off by atol.",
        lambda: measured_smallest_dtype(x, w, rtol, 0.0),
    )
    mistakes.add(
        "bfloat16 comes before float16: both have 2 bytes, and float16 is tried first (more mantissa bits).",
        lambda: (
            torch.bfloat16
            if expected is torch.float16 and precision_excess(x, w, torch.bfloat16, rtol, atol) <= 1
            else None
        ),
    )
    for explanation, wrong in mistakes.items():
        if wrong is mine:
            return f"{message}\nLikely mistake: {explanation}"
    if mine is torch.float64 or CANDIDATES.index(mine) > CANDIDATES.index(expected):
        return f"{message}\nHint: a narrower dtype already meets the tolerance; try the candidates narrowest first."
    return f"{message}\nHint: compare F.conv2d computed in the dtype with the float64 result, all of it (inf fails)."


def _dtype_case(x, w, rtol, atol=0.0, scale=1.0, seed=0) -> dict[str, Any]:
    return dict(input=scale * randn(*x, seed=seed), weight=scale * randn(*w, seed=seed + 1), rtol=rtol, atol=atol)


def _dtype_visible() -> list[dict[str, Any]]:
    return [
        _dtype_case((1, 4, 12, 12), (4, 4, 3, 3), rtol=1e-2, atol=1e-2, seed=1),  # float16
        _dtype_case((1, 4, 12, 12), (4, 4, 3, 3), rtol=1e-5, atol=1e-5, seed=3),  # float32
    ]


def _dtype_hidden() -> list[dict[str, Any]]:
    return [
        _dtype_case((2, 3, 10, 10), (4, 3, 3, 3), rtol=1e-10, atol=1e-10, seed=10),  # only float64
        _dtype_case((1, 8, 10, 10), (4, 8, 3, 3), rtol=0.1, atol=500.0, scale=60.0, seed=12),  # float16 overflows
        _dtype_case((1, 4, 10, 10), (4, 4, 3, 3), rtol=5e-2, atol=1e-9, scale=1e-4, seed=14),  # float16 underflows
        _dtype_case((4, 9, 9), (2, 4, 3, 3), rtol=2e-2, atol=2e-2, seed=16),  # unbatched
        _dtype_case((1, 16, 8, 8), (8, 16, 5, 5), rtol=1e-4, atol=1e-4, seed=18),  # float32
        _dtype_case((1, 2, 8, 8), (3, 2, 3, 3), rtol=1e-1, atol=0.2, seed=20),  # float16 easily
        _dtype_case((1, 3, 8, 8), (2, 4, 3, 3), rtol=1e-2, seed=22),  # channels do not match: RuntimeError
    ]


register(
    Exercise(
        name="smallest_dtype",
        lesson=LESSON,
        reference=measured_smallest_dtype,
        comparison=custom(_compare_dtype, collect=_collect_dtype),
        suites={"visible": _dtype_visible, "hidden": _dtype_hidden},
        hint="for each dtype, narrowest first: F.conv2d(input.to(dtype), weight.to(dtype)), back to float64, and "
        "compare with the float64 result using |y − y64| ≤ atol + rtol·|y64|.",
    )
)


# ---------------------------------------------------------------------------- check your understanding
def _stem_flops() -> int:
    return measured_flops((1, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3)


def _channels_last_strides() -> tuple[int, ...]:
    return tuple(torch.empty(2, 3, 4, 5).to(memory_format=torch.channels_last).stride())


def _mixed_dtypes() -> Callable[[], Any]:
    return lambda: _guard.conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3, dtype=torch.float64))


for _question in (
    Question(
        name=f"{LESSON}.q1",
        lesson=LESSON,
        form="an int",
        answer=_stem_flops,
        explain="FlopCounterMode counts 2 FLOPs per multiply-add: 2 × 64 output channels × 112 × 112 positions "
        "× 3 × 7 × 7 taps = 236,027,904 (the bias adds are not counted).",
    ),
    Question(
        name=f"{LESSON}.q2",
        lesson=LESSON,
        kind="number",
        form="a number",
        answer=lambda: float(torch.finfo(torch.float16).max),
        explain="torch.finfo(torch.float16).max is 65504: float16 has only 5 exponent bits. A sum of products "
        "beyond it becomes inf, which is why float16 overflows where bfloat16 (float32's 8 exponent bits) does not.",
    ),
    Question(
        name=f"{LESSON}.q3",
        lesson=LESSON,
        form="an int (bytes)",
        answer=lambda: measured_im2col_bytes((8, 64, 32, 32), 3, padding=1, dtype=torch.bfloat16),
        explain="F.unfold gives (8, 64 × 3 × 3, 32 × 32) = 8 × 576 × 1024 numbers of 2 bytes (bfloat16): "
        "9,437,184 bytes.",
    ),
    Question(
        name=f"{LESSON}.q4",
        lesson=LESSON,
        form="a tuple of four ints",
        answer=_channels_last_strides,
        explain="channels_last stores the channels of one pixel next to each other (N, H, W, C in memory): "
        "C has stride 1, W stride C = 3, H stride W·C = 15, N stride H·W·C = 60. The shape stays (2, 3, 4, 5).",
    ),
    Question(
        name=f"{LESSON}.q5",
        lesson=LESSON,
        kind="error",
        form="the exception's name, e.g. 'TypeError' (or the class itself)",
        answer=lambda: error_name(_mixed_dtypes()),
        explain="F.conv2d does not convert dtypes for you: a float32 input with a float64 weight raises "
        "RuntimeError. Move both with .to(dtype) (a module: layer.to(dtype) converts its parameters).",
    ),
):
    register_question(_question)
