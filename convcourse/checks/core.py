"""Exercise registry, comparison against torch, banned-operation tripwire and messages.

An :class:`Exercise` knows how to compute torch's answer for a set of inputs, which torch
operations the learner may not call, which known-wrong variants to recognise, and its test
suites. :func:`run_case` runs one learner call against it and raises ``AssertionError`` with a
message that says what is wrong, so a graded cell is a list of ``assert check(...)`` lines.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from typing import Any, Callable, Iterable, Mapping

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode

from . import _guard

Inputs = dict[str, Any]

# aten operator names (overload packets) that count as "torch's own convolution".
CONVOLUTION_OPS = frozenset({
    "convolution", "_convolution", "conv2d", "conv1d", "conv3d", "convolution_overrideable",
    "_convolution_mode", "conv_transpose2d", "mkldnn_convolution", "_mkldnn_convolution",
    "cudnn_convolution", "miopen_convolution", "_slow_conv2d_forward", "thnn_conv2d",
    "slow_conv_dilated2d", "_conv_depthwise2d", "conv_depthwise3d", "convolution_backward",
    "_nnpack_spatial_convolution", "conv_tbc",
})
UNFOLD_OPS = frozenset({"im2col", "col2im", "unfold"})
PAD_OPS = frozenset({"constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "replication_pad1d",
                     "replication_pad2d", "_pad_circular", "pad", "_pad_enum"})
# What each group is called in messages.
_BAN_NAMES = [(CONVOLUTION_OPS, "torch's convolution (F.conv2d, nn.Conv2d, torch.conv2d, ...)"),
              (UNFOLD_OPS, "unfold/im2col (F.unfold, Tensor.unfold)"),
              (PAD_OPS, "torch's padding (F.pad)")]


class GradingError(AssertionError):
    """A failed check: the message is written for the learner."""


class _Tripwire(TorchDispatchMode):
    """Records every banned aten operation reached during a learner call, however it was called."""

    def __init__(self, banned: frozenset[str]):
        super().__init__()
        self.banned = banned
        self.hits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in self.banned:
            self.hits.append(name)
            raise GradingError(f"banned operation aten.{name} called")
        return func(*args, **(kwargs or {}))


def describe_value(value: Any) -> str:
    """A short, exact description of one input: tensors by shape and dtype, the rest by repr."""
    if _guard.is_tensor(value):
        dtype = str(value.dtype).replace("torch.", "")
        return f"tensor of shape {tuple(value.shape)} ({dtype})"
    if isinstance(value, _guard.ndarray):
        return f"array of shape {value.shape} ({value.dtype})"
    try:
        text = repr(value)
    except Exception as error:  # a learner object whose __repr__ is broken must not crash grading
        return f"a {type(value).__name__} (its repr raised {type(error).__name__})"
    return text if len(text) <= 200 else text[:197] + "..."


def describe_inputs(inputs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={describe_value(v)}" for k, v in inputs.items())


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One function learners implement.

    reference: computes torch's answer from the inputs (or raises what torch raises).
    kind: "tensor" (compare tensors), "value" (compare numbers/tuples exactly), or "custom"
        (``compare`` returns an error message or None).
    banned: aten operator names the learner's call must not reach.
    variants: given the inputs, a dict {explanation: wrong output} of known mistakes.
    suites: {"visible"/"hidden"/...: function returning a list of input dicts}.
    """

    name: str
    lesson: str
    reference: Callable[..., Any]
    kind: str = "tensor"
    banned: frozenset[str] = frozenset()
    variants: Callable[[Inputs], dict[str, Any]] | None = None
    suites: Mapping[str, Callable[[], list[Inputs]]] = dataclasses.field(default_factory=dict)
    compare: Callable[[Any, Any, Inputs], str | None] | None = None
    # Optional factory of a context manager wrapped around the learner's call (e.g. an operation
    # counter); its __exit__ may raise GradingError with a message for the learner.
    monitor: Callable[[], Any] | None = None
    rtol: float = 1e-6
    atol: float = 1e-8
    hint: str = ""


REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    if exercise.name in REGISTRY:
        raise ValueError(f"exercise {exercise.name!r} registered twice")
    REGISTRY[exercise.name] = exercise
    return exercise


def get_exercise(name: str) -> Exercise:
    from . import exercises  # noqa: F401  (registers every lesson's exercises)

    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def _ban_description(hits: Iterable[str]) -> str:
    hits = set(hits)
    names = [label for ops, label in _BAN_NAMES if hits & ops]
    return " and ".join(names) or ", ".join(sorted(hits))


def assert_untampered(exercise: str) -> None:
    problems = _guard.tampering()
    if problems:
        raise GradingError(
            f"{exercise}: cannot grade, because code in this notebook replaced "
            f"{', '.join(problems)}. Grading compares against the originals, so replacing them "
            "cannot help; remove the code that reassigns them and restart the kernel."
        )


def call_learner(exercise: Exercise, fn: Callable[..., Any], inputs: Inputs) -> Any:
    """Call ``fn(**inputs)`` on copies of the inputs, with the exercise's banned ops tripwired."""
    if not callable(fn):
        raise GradingError(f"{exercise.name} should be a function, but it is {describe_value(fn)}")
    args = {k: _clone(v) for k, v in inputs.items()}
    tripwire = _Tripwire(exercise.banned) if exercise.banned else None
    try:
        monitor = exercise.monitor() if exercise.monitor is not None else contextlib.nullcontext()
        if tripwire is None:
            with monitor:
                result = fn(**args)
        else:
            with tripwire:
                with monitor:
                    result = fn(**args)
                if _get_current_dispatch_mode() is not tripwire:
                    tripwire.hits.append("<dispatch mode removed>")
    except NotImplementedError:
        raise GradingError(f"{exercise.name} is not implemented yet (it raised NotImplementedError).") from None
    except GradingError:
        if tripwire is not None and tripwire.hits:
            raise _banned_error(exercise, tripwire.hits) from None
        raise
    except Exception as error:
        if tripwire is not None and tripwire.hits:
            raise _banned_error(exercise, tripwire.hits) from None
        raise GradingError(
            f"{exercise.name}({describe_inputs(inputs)}) raised {type(error).__name__}: {error}"
        ) from error
    if tripwire is not None and tripwire.hits:
        raise _banned_error(exercise, tripwire.hits)
    for key, value in inputs.items():
        if _guard.is_tensor(value) and not _same_tensor(args[key], value):
            raise GradingError(f"{exercise.name} changed its input {key!r} in place; "
                               "work on a copy instead (e.g. x.clone()).")
    return result


def _banned_error(exercise: Exercise, hits: list[str]) -> GradingError:
    if "<dispatch mode removed>" in hits:
        return GradingError(f"{exercise.name}: the grader's call monitor was removed during the call.")
    if exercise.kind == "value":
        why = "This exercise asks you to work the answer out yourself, not to read it off torch."
    else:
        loops = " with loops" if exercise.banned & CONVOLUTION_OPS and exercise.banned & UNFOLD_OPS else ""
        why = f"This exercise asks you to compute it yourself{loops}; the point is to see every multiply-add happen."
    return GradingError(f"{exercise.name} called {_ban_description(hits)}. {why}")


def _clone(value: Any) -> Any:
    if _guard.is_tensor(value):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, _guard.ndarray):
        return value.copy()
    if isinstance(value, (list, dict, tuple)):
        return copy.deepcopy(value)
    return value


def _same_tensor(a: Any, b: torch.Tensor) -> bool:
    if not _guard.is_tensor(a) or a.shape != b.shape:
        return False
    return bool(torch.equal(a.detach(), b.detach()))


def plain_tensor(value: Any, what: str) -> torch.Tensor:
    """``value`` detached, as a plain ``torch.Tensor``; a Tensor subclass (which could redefine how
    comparisons behave through ``__torch_function__``) is refused with a message."""
    if type(value) not in (_guard.ORIGINALS["torch.Tensor"], _guard.ORIGINALS["torch.nn.Parameter"]):
        raise GradingError(f"{what} returned a {type(value).__name__}, a subclass of torch.Tensor; return a "
                           "plain torch.Tensor (for example one made with torch.zeros).")
    with torch._C.DisableTorchFunctionSubclass():
        return value.detach()


def to_tensor(value: Any, like: torch.Tensor, what: str) -> torch.Tensor:
    """Convert a learner's output (tensor, numpy array, nested list) to a tensor, or explain why not."""
    if _guard.is_tensor(value):
        return plain_tensor(value, what)
    if isinstance(value, _guard.ndarray):
        try:
            return _guard.from_numpy(_guard.np_array(value, copy=True, subok=False))
        except TypeError as error:
            raise GradingError(f"{what} returned a numpy array torch cannot read ({error}); return a "
                               f"tensor like torch's {describe_value(like)}.") from None
    try:
        return _guard.as_tensor(value, dtype=like.dtype)
    except Exception:
        raise GradingError(f"{what} should return a tensor (or numpy array) like torch's "
                           f"{describe_value(like)}, but it returned {type(value).__name__}") from None


def first_difference(got: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> str:
    diff = (got.double() - expected.double()).abs()
    bad = ~_guard.isclose(got.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True)
    n_bad = int(bad.sum())
    index = tuple(int(i) for i in bad.nonzero()[0]) if n_bad else ()
    worst = float(diff[~diff.isnan()].max()) if diff.numel() and not diff.isnan().all() else math.nan
    position = f"at index {index}" if index else ""
    yours = float(got[index]) if index else math.nan
    theirs = float(expected[index]) if index else math.nan
    return (f"first difference {position}: yours {yours:.6g}, torch {theirs:.6g}; "
            f"{n_bad} of {bad.numel()} entries differ, largest error {worst:.3g}")


def compare_tensors(exercise: Exercise, got_raw: Any, expected: torch.Tensor, inputs: Inputs) -> str | None:
    """Return None when ``got`` matches ``expected``, else a diagnostic message."""
    what = f"{exercise.name}({describe_inputs(inputs)})"
    got = to_tensor(got_raw, expected, exercise.name)
    mistake = _diagnose(exercise, got, inputs)
    if tuple(got.shape) != tuple(expected.shape):
        message = (f"{what} returned shape {tuple(got.shape)}, but torch gives {tuple(expected.shape)}.")
        if mistake:
            return f"{message}\nLikely mistake: {mistake}"
        return message + _shape_hint(got.shape, expected.shape)
    if got.dtype != expected.dtype:
        return (f"{what} returned dtype {str(got.dtype).replace('torch.', '')}, but torch keeps the input's "
                f"{str(expected.dtype).replace('torch.', '')}. Create your output with dtype=x.dtype "
                "(torch.zeros defaults to float32, which loses precision).")
    if not _guard.allclose(got.double(), expected.double(), rtol=exercise.rtol, atol=exercise.atol,
                           equal_nan=True):
        message = f"{what} is wrong: {first_difference(got, expected, exercise.rtol, exercise.atol)}."
        if mistake:
            message += f"\nLikely mistake: {mistake}"
        elif exercise.hint:
            message += f"\nHint: {exercise.hint}"
        return message
    return None


def _shape_hint(got: torch.Size, expected: torch.Size) -> str:
    if len(got) == len(expected) and len(got) >= 2:
        if tuple(got[:-2]) == tuple(expected[:-2]) and tuple(got[-2:]) == tuple(expected[-2:])[::-1]:
            return "\nLikely mistake: height and width are swapped in your output."
        deltas = [g - e for g, e in zip(got[-2:], expected[-2:])]
        if all(abs(d) <= 1 for d in deltas) and any(deltas):
            return ("\nLikely mistake: off-by-one in the output size; the number of window positions "
                    "along an axis is floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1.")
    if len(got) != len(expected):
        return f"\nYour output has {len(got)} dimensions, torch's has {len(expected)}."
    return ""


def _diagnose(exercise: Exercise, got: torch.Tensor, inputs: Inputs) -> str | None:
    if exercise.variants is None:
        return None
    try:
        variants = exercise.variants(inputs)
    except Exception:  # a variant that does not apply to these inputs is simply skipped
        return None
    for explanation, wrong in variants.items():
        if wrong is None or tuple(wrong.shape) != tuple(got.shape):
            continue
        if _guard.allclose(got.double(), wrong.double(), rtol=exercise.rtol, atol=exercise.atol):
            return explanation
    return None


def compare_values(exercise: Exercise, got: Any, expected: Any, inputs: Inputs) -> str | None:
    what = f"{exercise.name}({describe_inputs(inputs)})"
    mine = _normalise(got)
    if _contains_unsupported(mine):
        return (f"{what} returned {mine!r}; return plain numbers (int/float), tuples or tensors, like "
                f"torch's answer {expected!r}.")
    if mine == _normalise(expected):
        return None
    message = f"{what} returned {mine!r}, but the answer (from torch) is {expected!r}."
    if exercise.variants is not None:
        for explanation, wrong in exercise.variants(inputs).items():
            if mine == _normalise(wrong):
                return f"{message}\nLikely mistake: {explanation}"
    if exercise.hint:
        message += f"\nHint: {exercise.hint}"
    return message


class _Unsupported:
    """A learner's value of a type the exact comparison does not accept; never equal to anything."""

    def __init__(self, value: Any):
        self.type_name = type(value).__name__

    def __repr__(self) -> str:
        return f"<a {self.type_name}>"


def _normalise(value: Any) -> Any:
    """Plain Python numbers, strings and tuples only, made without calling the learner's methods
    (an object whose ``__eq__`` always returns True must not pass an exact comparison)."""
    if _guard.is_tensor(value):
        if type(value) not in (_guard.ORIGINALS["torch.Tensor"], _guard.ORIGINALS["torch.nn.Parameter"]):
            return _Unsupported(value)
        with torch._C.DisableTorchFunctionSubclass():
            return _normalise(value.detach().tolist())
    if isinstance(value, _guard.ndarray):
        return _normalise(_guard.np_array(value, subok=False).tolist())
    if isinstance(value, (list, tuple)):
        return tuple(_normalise(v) for v in (list.__iter__(value) if isinstance(value, list)
                                              else tuple.__iter__(value)))
    if value is None or type(value) is bool:
        return value
    if isinstance(value, float):
        number = float.__float__(value)
        return int(number) if number.is_integer() else number
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # numpy scalars (np.int64, np.bool_)
        return _normalise(value.item())
    return _Unsupported(value)


def _contains_unsupported(value: Any) -> bool:
    if isinstance(value, _Unsupported):
        return True
    return type(value) is tuple and any(_contains_unsupported(v) for v in value)


def run_case(exercise: Exercise, fn: Callable[..., Any], inputs: Inputs) -> None:
    """Check one learner call; raise GradingError with a diagnostic when it is wrong."""
    assert_untampered(exercise.name)
    try:
        expected = exercise.reference(**{k: _clone(v) for k, v in inputs.items()})
    except Exception as torch_error:
        _expect_error(exercise, fn, inputs, torch_error)
        return
    got = call_learner(exercise, fn, inputs)
    if exercise.kind == "tensor":
        problem = compare_tensors(exercise, got, expected, inputs)
    elif exercise.kind == "value":
        problem = compare_values(exercise, got, expected, inputs)
    elif exercise.kind == "custom" and exercise.compare is not None:
        problem = exercise.compare(got, expected, inputs)
    else:
        raise ValueError(f"exercise {exercise.name!r} has kind {exercise.kind!r} but no comparison")
    assert_untampered(exercise.name)
    if problem:
        raise GradingError(problem)


def _expect_error(exercise: Exercise, fn: Callable[..., Any], inputs: Inputs, torch_error: Exception) -> None:
    what = f"{exercise.name}({describe_inputs(inputs)})"
    expected_type = type(torch_error)
    try:
        args = {k: _clone(v) for k, v in inputs.items()}
        if exercise.banned:
            with _Tripwire(exercise.banned) as tripwire:
                result = fn(**args)
            if tripwire.hits:
                raise _banned_error(exercise, tripwire.hits)
        else:
            result = fn(**args)
    except NotImplementedError:
        raise GradingError(f"{exercise.name} is not implemented yet (it raised NotImplementedError).") from None
    except GradingError:
        raise
    except Exception as error:
        if isinstance(error, expected_type):
            return
        raise GradingError(
            f"{what} raised {type(error).__name__}, but torch raises {expected_type.__name__} for these "
            f"arguments ({_first_line(torch_error)}). Raise {expected_type.__name__} with a message that "
            "says what is wrong."
        ) from None
    raise GradingError(
        f"{what} returned {describe_value(result)}, but these arguments are invalid: torch raises "
        f"{expected_type.__name__} ({_first_line(torch_error)}). Check the arguments and raise "
        f"{expected_type.__name__}."
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
