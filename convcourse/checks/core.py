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

from . import _guard, _watch
from .errors import GradingError

Inputs = dict[str, Any]

# aten operator names (overload packets) that count as "torch's own convolution".
CONVOLUTION_OPS = frozenset(
    {
        "convolution",
        "_convolution",
        "conv2d",
        "conv1d",
        "conv3d",
        "convolution_overrideable",
        "_convolution_mode",
        "conv_transpose2d",
        "mkldnn_convolution",
        "_mkldnn_convolution",
        "cudnn_convolution",
        "miopen_convolution",
        "_slow_conv2d_forward",
        "thnn_conv2d",
        "slow_conv_dilated2d",
        "_conv_depthwise2d",
        "conv_depthwise3d",
        "convolution_backward",
        "_nnpack_spatial_convolution",
        "conv_tbc",
    }
)
UNFOLD_OPS = frozenset({"im2col", "col2im", "unfold"})
PAD_OPS = frozenset(
    {
        "constant_pad_nd",
        "reflection_pad1d",
        "reflection_pad2d",
        "replication_pad1d",
        "replication_pad2d",
        "_pad_circular",
        "pad",
        "_pad_enum",
    }
)
# Lesson 13: torch's own pooling (a loop exercise may not call it under any name).
POOL_OPS = frozenset(
    {f"{kind}_pool{dims}d" for kind in ("max", "avg", "adaptive_max", "adaptive_avg") for dims in (1, 2, 3)}
    | {f"max_pool{dims}d_with_indices" for dims in (1, 2, 3)}
    | {"_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "fractional_max_pool2d", "fractional_max_pool3d"}
    | {"mkldnn_max_pool2d", "mkldnn_max_pool3d", "mkldnn_adaptive_avg_pool2d", "quantized_max_pool2d"}
)
FFT_OPS = frozenset(
    {"_fft_r2c", "_fft_c2r", "_fft_c2c", "stft", "istft"}
    | {f"fft_{kind}{dims}" for kind in ("fft", "ifft", "rfft", "irfft", "hfft", "ihfft") for dims in ("", "2", "n")}
)
# What each group is called in messages.
_BAN_NAMES = [
    (CONVOLUTION_OPS, "torch's convolution (F.conv2d, nn.Conv2d, torch.conv2d, ...)"),
    (FFT_OPS, "torch.fft (an FFT-based convolution)"),
    (UNFOLD_OPS, "unfold/im2col (F.unfold, Tensor.unfold)"),
    (PAD_OPS, "torch's padding (F.pad)"),
    (POOL_OPS, "torch's pooling (F.max_pool2d, F.avg_pool2d, nn.MaxPool2d, ...)"),
]


_EARLY_STOP = True


class _Tripwire(TorchDispatchMode):
    """Records every banned aten operation reached during a learner call, however it was called."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch otherwise wraps __torch_dispatch__ in dynamo's "disable" wrapper, which every aten op a
        # learner's loop dispatches then goes through; grading never compiles, so there is nothing to skip.
        return False

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


def describe_value(value: Any, *, items: bool = True) -> str:
    """A short, exact description of one input: tensors by shape and dtype, the rest by repr. A tuple or list of
    at most 8 items, a tensor or array among them, is described item by item (``items``: at its top only)."""
    if items and type(value) in (tuple, list) and 0 < len(value) <= 8:
        if any(_guard.is_tensor(item) or isinstance(item, _guard.ndarray) for item in value):
            inner = ", ".join(describe_value(item, items=False) for item in value)
            if type(value) is list:
                return f"[{inner}]"
            return f"({inner},)" if len(value) == 1 else f"({inner})"
    if _guard.is_tensor(value):
        if type(value) not in (_guard.ORIGINALS["torch.Tensor"], _guard.ORIGINALS["torch.nn.Parameter"]):
            return f"a {type(value).__name__} (a torch.Tensor subclass)"
        dtype = str(value.dtype).replace("torch.", "")
        return f"tensor of shape {tuple(value.shape)} ({dtype})"
    if isinstance(value, _guard.ndarray):
        return f"array of shape {value.shape} ({value.dtype})"
    try:
        text = repr(value)
    except Exception as error:  # a learner object whose __repr__ is broken must not crash grading  # noqa: BLE001
        return f"a {type(value).__name__} (its repr raised {type(error).__name__})"
    return text if len(text) <= 200 else text[:197] + "..."


def describe_inputs(inputs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={describe_value(v)}" for k, v in inputs.items())


class Mistakes(dict):
    """What known wrong implementations return for one input, keyed by the explanation shown to the learner.

    ``add(explanation, make)`` calls ``make()`` and keeps its result; a mistake that cannot happen for these
    inputs (``make`` raises) is left out.
    """

    def add(self, explanation: str, make: Callable[[], Any]) -> None:
        try:
            self[explanation] = make()
        except Exception:  # noqa: BLE001 - the mistake does not apply to these inputs
            pass


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One function learners implement.

    reference: computes torch's answer from the inputs (or raises what torch raises).
    comparison: how a result is judged: :data:`TENSORS` (the default), :data:`VALUES`, or :func:`custom`.
    banned: aten operator names the learner's call must not reach.
    variants: given the inputs, a dict {explanation: wrong output} of known mistakes.
    suites: {"visible"/"hidden"/...: function returning a list of input dicts}.
    """

    name: str
    lesson: str
    reference: Callable[..., Any]
    comparison: "Comparison" = dataclasses.field(default_factory=lambda: TENSORS)
    banned: frozenset[str] = frozenset()
    variants: Callable[[Inputs], dict[str, Any]] | None = None
    suites: Mapping[str, Callable[[], list[Inputs]]] = dataclasses.field(default_factory=dict)
    # Optional factory of a context manager wrapped around the learner's call (e.g. an operation
    # counter); its __exit__ may raise GradingError with a message for the learner.
    monitor: Callable[[], Any] | None = None
    # None: torch.testing.assert_close's defaults for the result's dtype, scaled by sqrt(reduction(inputs)).
    rtol: float | None = None
    atol: float | None = None
    reduction: Callable[[Inputs], int] | None = None
    # (label, path prefixes, C function names) of Python libraries the learner's call may not enter.
    libraries: tuple | None = None
    # True: the learner's call may not run torch's autograd (backward exercises).
    forbid_autograd: bool = False
    # Runs right before the learner's call (e.g. seeding random number generators).
    prepare: Callable[[Inputs], None] | None = None
    hint: str = ""


class Registry(dict):
    """Named things (exercises, questions) by name; each name registered once."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, item: Any) -> Any:
        if item.name in self:
            raise ValueError(f"{self.kind} {item.name!r} registered twice")
        self[item.name] = item
        return item

    def lookup(self, name: str) -> Any:
        from . import exercises  # noqa: F401  (registers every lesson's exercises and questions)

        try:
            return self[name]
        except KeyError:
            raise KeyError(f"no {self.kind} named {name!r}; known: {', '.join(sorted(self))}") from None


REGISTRY: Registry = Registry("exercise")


def register(exercise: Exercise) -> Exercise:
    return REGISTRY.register(exercise)


def get_exercise(name: str) -> Exercise:
    return REGISTRY.lookup(name)


def _ban_description(hits: Iterable[str]) -> str:
    hits = set(hits)
    names = [label for ops, label in _BAN_NAMES if hits & ops]
    return " and ".join(names) or ", ".join(sorted(hits))


def assert_untampered(exercise: str) -> None:
    problems = _guard.tampering(exercise)
    if problems:
        raise GradingError(
            f"{exercise}: cannot grade, because code in this notebook replaced "
            f"{', '.join(problems)}. Grading compares against the originals, so replacing them "
            "cannot help; remove the code that reassigns them and restart the kernel."
        )


# ---------------------------------------------------------------------------- tolerances

#: torch.testing.assert_close's default (rtol, atol) per dtype.
_DTYPE_TOLERANCES = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7),
    torch.complex64: (1.3e-6, 1e-5),
    torch.complex128: (1e-7, 1e-7),
}


def tolerance(dtype: torch.dtype, reduction: int = 1) -> tuple[float, float]:
    """(rtol, atol) for comparing a result of ``dtype`` that sums ``reduction`` products.

    torch.testing.assert_close's defaults per dtype, scaled by sqrt(reduction): a correct result summed
    in another order (loops, einsum, unfold + matmul) differs from torch's by rounding errors that grow
    like the square root of the number of terms. Integer and bool results are compared exactly."""
    rtol, atol = _DTYPE_TOLERANCES.get(dtype, (0.0, 0.0))
    scale = math.sqrt(max(int(reduction), 1))
    return rtol * scale, atol * scale


def exercise_tolerance(exercise: "Exercise", dtype: torch.dtype, inputs: Inputs) -> tuple[float, float]:
    """The exercise's fixed tolerance if it has one, else the dtype- and size-aware default."""
    if exercise.rtol is not None and exercise.atol is not None:
        return exercise.rtol, exercise.atol
    try:
        reduction = exercise.reduction(inputs) if exercise.reduction is not None else 1
    except Exception:  # noqa: BLE001
        reduction = 1
    return tolerance(dtype, reduction)


# ---------------------------------------------------------------------------- calling learner code


@dataclasses.dataclass
class Outcome:
    """What a learner call did, recorded before any of the grader's answers exist.

    ``value``: a private copy of the result (a plain tensor, a normalised value, or what the
    exercise's ``collect`` made of it); ``error``: the exception the call raised (with ``error_type``
    and ``error_text`` read at once); ``description``: the result described for messages."""

    value: Any = None
    raw: Any = None
    error: BaseException | None = None
    error_type: type | None = None
    error_text: str = ""
    description: str = ""
    args: Any = None


def watched_call(
    exercise: "Exercise",
    thunk: Callable[[], Any],
    *,
    banned: frozenset[str] | None = None,
    autograd_allowed: frozenset[str] | None = None,
    monitor: bool = True,
    forbid_autograd: bool | None = None,
    label: str | None = None,
) -> Outcome:
    """Run learner code ``thunk()`` under the exercise's watch; GradingError for a banned operation.

    Every banned aten operation is recorded by the profiler (whatever route reached it) and, for an
    early stop, by the dispatcher tripwire; ``exercise.libraries`` traps banned Python libraries;
    ``exercise.forbid_autograd`` refuses autograd nodes other than ``autograd_allowed``. The call's
    own exception is returned in the Outcome (torch may raise too: compared later)."""
    banned = exercise.banned if banned is None else banned
    forbid_autograd = exercise.forbid_autograd if forbid_autograd is None else forbid_autograd
    label = exercise.name if label is None else label
    watch = _watch.CallWatch(exercise.libraries, record_ops=bool(banned) or bool(forbid_autograd))
    # The profiler records every aten op in C++ (cheap, and no route around it from Python); the
    # dispatcher tripwire would stop a banned call at once but costs a Python call per operation.
    tripwire = _Tripwire(banned) if banned and _EARLY_STOP else None
    outcome = Outcome()
    stopped: GradingError | None = None
    with watch:
        try:
            context = exercise.monitor() if (monitor and exercise.monitor is not None) else contextlib.nullcontext()
            if tripwire is None:
                with context:
                    outcome.raw = thunk()
            else:
                with tripwire:
                    with context:
                        outcome.raw = thunk()
                    if _get_current_dispatch_mode() is not tripwire:
                        watch.removed.append("dispatch mode")
        except GradingError as error:
            stopped = error
        except NotImplementedError as error:
            outcome.error = error
        except Exception as error:  # noqa: BLE001
            outcome.error = error
    hits = sorted(set(banned) & watch.ops) + (tripwire.hits if tripwire is not None else [])
    if watch.library_hits:
        raise _library_error(exercise, watch.library_hits, label)
    if hits:
        raise _banned_error(exercise, hits, label)
    if forbid_autograd:
        used = sorted(watch.autograd - (autograd_allowed or frozenset()) - {"AccumulateGrad"})
        if used:
            raise GradingError(
                f"{label} used torch's autograd (it ran {', '.join(used[:3])}). This "
                "exercise asks you to compute the gradients yourself, without autograd: no "
                ".backward(), torch.autograd.grad or torch.func on your own forward."
            )
    if stopped is not None:  # a monitor's own verdict (a trace function that raised is unset by Python)
        raise stopped
    if watch.removed:
        raise GradingError(f"{label}: the grader's call monitor ({watch.removed[0]}) was removed during the call.")
    if watch.threads_started:
        raise GradingError(
            f"{label} started a thread. The grader watches what your code computes "
            "in the notebook's own thread; compute the answer there (no threading)."
        )
    if watch.tasks_ended:
        raise GradingError(
            f"{label} started a thread or a process while it ran. The grader watches what your code computes in "
            "the notebook's own thread; compute the answer there (no threads, subprocesses or os.fork). If a "
            "library your function imports starts one, import it at the top of the notebook instead."
        )
    if stopped is not None:
        raise stopped
    if isinstance(outcome.error, NotImplementedError):
        raise GradingError(f"{exercise.name} is not implemented yet (it raised NotImplementedError).")
    if outcome.error is not None:
        outcome.error_type = type(outcome.error)
        try:
            outcome.error_text = str(outcome.error)
        except Exception:  # noqa: BLE001
            outcome.error_text = "(its message could not be read)"
    return outcome


def call_learner(exercise: "Exercise", fn: Callable[..., Any], inputs: Inputs) -> Outcome:
    """Call ``fn(**inputs)`` on copies of the inputs under the exercise's watch; the Outcome holds a
    private copy of the result (made before any of the grader's answers exist)."""
    if not callable(fn):
        raise GradingError(f"{exercise.name} should be a function, but it is {describe_value(fn)}")
    args = {k: _clone(v) for k, v in inputs.items()}
    outcome = watched_call(exercise, lambda: fn(**args))
    for key, value in inputs.items():
        if _guard.is_tensor(value) and not _same_tensor(args[key], value):
            raise GradingError(
                f"{exercise.name} changed its input {key!r} in place; work on a copy instead (e.g. x.clone())."
            )
    if outcome.error is None:
        outcome.description = describe_value(outcome.raw)
        outcome.value = exercise.comparison.private(exercise, outcome.raw, inputs)
    outcome.args = args  # kept alive until the verdict: nothing the learner saw is freed while answers exist
    return outcome


def private_tensor(value: Any, what: str) -> Any:
    """A copy of a learner's tensor-like result that learner code never saw (a plain tensor), or a
    :class:`_Unreadable` saying why it is not one; made at once, before the grader's answers exist."""
    if _guard.is_tensor(value):
        return plain_tensor(value, what).clone()
    if isinstance(value, _guard.ndarray):
        try:
            return _guard.from_numpy(_guard.np_array(value, copy=True, subok=False))
        except TypeError as error:
            return _Unreadable(f"a numpy array torch cannot read ({error})")
    try:
        return _guard.as_tensor(value, dtype=torch.float64)
    except Exception:  # noqa: BLE001
        return _Unreadable(type(value).__name__)


class _Unreadable:
    """A learner result that is not a tensor, array or nested list of numbers."""

    def __init__(self, why: str):
        self.why = why


def _banned_error(exercise: Exercise, hits: list[str], label: str | None = None) -> GradingError:
    if not exercise.comparison.computed:
        why = "This exercise asks you to work the answer out yourself, not to read it off torch."
    else:
        loops = " with loops" if exercise.banned & CONVOLUTION_OPS and exercise.banned & UNFOLD_OPS else ""
        why = f"This exercise asks you to compute it yourself{loops}; the point is to see every multiply-add happen."
    return GradingError(f"{label or exercise.name} called {_ban_description(hits)}. {why}")


def _library_error(exercise: Exercise, hits: list[str], label: str | None = None) -> GradingError:
    if exercise.libraries and len(exercise.libraries) > 3:
        return GradingError(exercise.libraries[3].format(name=label or exercise.name, hit=hits[0]))
    label_name = label or exercise.name
    label = exercise.libraries[0] if exercise.libraries else "a banned library"
    return GradingError(
        f"{label_name} called {hits[0]} ({label} are not allowed here). This exercise asks "
        "you to compute it yourself with loops; the point is to see every multiply-add happen."
    )


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
        raise GradingError(
            f"{what} returned a {type(value).__name__}, a subclass of torch.Tensor; return a "
            "plain torch.Tensor (for example one made with torch.zeros)."
        )
    with torch._C.DisableTorchFunctionSubclass():
        return value.detach()


def to_tensor(outcome: Outcome, like: torch.Tensor, what: str) -> torch.Tensor:
    """The learner's private result as a tensor comparable with ``like``, or GradingError saying why not."""
    value = outcome.value
    if isinstance(value, _Unreadable):
        raise GradingError(
            f"{what} should return a tensor (or numpy array) like torch's "
            f"{describe_value(like)}, but it returned {value.why}"
        )
    if outcome.description.startswith(("tensor of shape", "array of shape")):
        return value
    return value.to(like.dtype) if value.dtype != like.dtype and not like.dtype.is_complex else value


def first_difference(got: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> str:
    diff = (got.double() - expected.double()).abs()
    bad = ~_guard.isclose(got.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True)
    n_bad = int(bad.sum())
    index = tuple(int(i) for i in bad.nonzero()[0]) if n_bad else ()
    worst = float(diff[~diff.isnan()].max()) if diff.numel() and not diff.isnan().all() else math.nan
    if not n_bad:  # e.g. a 0-d result: no index to show
        return f"yours and torch's differ, largest error {worst:.3g}"
    yours, theirs = got[index], expected[index]
    show = (
        (lambda v: f"{complex(v):.6g}")
        if yours.dtype.is_complex or theirs.dtype.is_complex
        else (lambda v: f"{float(v):.6g}")
    )
    return (
        f"first difference at index {index}: yours {show(yours)}, torch {show(theirs)}; "
        f"{n_bad} of {bad.numel()} entries differ, largest error {worst:.3g}"
    )


def compare_tensors(
    exercise: Exercise, outcome: Outcome, expected: torch.Tensor, inputs: Inputs, shown: Inputs | None = None
) -> str | None:
    """Return None when the learner's result matches ``expected``, else a diagnostic message."""
    what = f"{exercise.name}({describe_inputs(inputs if shown is None else shown)})"
    got = to_tensor(outcome, expected, exercise.name)
    rtol, atol = exercise_tolerance(exercise, expected.dtype, inputs)
    mistake = _diagnose(exercise, got, inputs, rtol, atol)
    if tuple(got.shape) != tuple(expected.shape):
        message = f"{what} returned shape {tuple(got.shape)}, but torch gives {tuple(expected.shape)}."
        if mistake:
            return f"{message}\nLikely mistake: {mistake}"
        return message + _shape_hint(got.shape, expected.shape)
    if got.dtype != expected.dtype:
        return (
            f"{what} returned dtype {str(got.dtype).replace('torch.', '')}, but torch keeps the input's "
            f"{str(expected.dtype).replace('torch.', '')}. Create your output with dtype=x.dtype "
            "(torch.zeros defaults to float32, which loses precision)."
        )
    if not _close(got, expected, rtol, atol):
        message = f"{what} is wrong: {first_difference(got, expected, rtol, atol)}."
        if mistake:
            message += f"\nLikely mistake: {mistake}"
        elif exercise.hint:
            message += f"\nHint: {exercise.hint}"
        return message
    return None


def _close(got: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> bool:
    if got.dtype.is_complex or expected.dtype.is_complex:
        return bool(
            _guard.allclose(
                got.to(torch.complex128), expected.to(torch.complex128), rtol=rtol, atol=atol, equal_nan=True
            )
        )
    return bool(_guard.allclose(got.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True))


def _shape_hint(got: torch.Size, expected: torch.Size) -> str:
    if len(got) == len(expected) and len(got) >= 2:
        if tuple(got[:-2]) == tuple(expected[:-2]) and tuple(got[-2:]) == tuple(expected[-2:])[::-1]:
            return "\nLikely mistake: height and width are swapped in your output."
        deltas = [g - e for g, e in zip(got[-2:], expected[-2:])]
        if all(abs(d) <= 1 for d in deltas) and any(deltas):
            return (
                "\nLikely mistake: off-by-one in the output size; the number of window positions "
                "along an axis is floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1."
            )
    if len(got) != len(expected):
        return f"\nYour output has {len(got)} dimensions, torch's has {len(expected)}."
    return ""


def _diagnose(exercise: Exercise, got: torch.Tensor, inputs: Inputs, rtol: float, atol: float) -> str | None:
    if exercise.variants is None:
        return None
    try:
        variants = exercise.variants(inputs)
    except Exception:  # a variant that does not apply to these inputs is simply skipped  # noqa: BLE001
        return None
    for explanation, wrong in variants.items():
        if wrong is None or tuple(wrong.shape) != tuple(got.shape):
            continue
        if _close(got, wrong, rtol, atol):
            return explanation
    return None


def compare_values(
    exercise: Exercise, mine: Any, expected: Any, inputs: Inputs, shown: Inputs | None = None
) -> str | None:
    """Exact comparison of a normalised learner value (see :func:`_normalise`) with torch's answer."""
    what = f"{exercise.name}({describe_inputs(inputs if shown is None else shown)})"
    if _contains_unsupported(mine):
        return (
            f"{what} returned {mine!r}; return plain numbers (int/float), tuples or tensors, like "
            f"torch's answer {expected!r}."
        )
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
        return tuple(
            _normalise(v) for v in (list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value))
        )
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
    """Check one learner call; raise GradingError with a diagnostic when it is wrong.

    The learner's function runs first, on copies of the inputs; its result is copied into a private
    tensor at once. Only then, inside :func:`_watch.reference_section` (no learner code can run
    there), are torch's answer, torch's exception and the known mistakes computed, from a snapshot of
    the inputs taken before the call (learner code cannot have changed it), and dropped again before
    the verdict is returned."""
    assert_untampered(exercise.name)
    frozen = _freeze(inputs)
    if exercise.prepare is not None:
        exercise.prepare(inputs)
    outcome = call_learner(exercise, fn, inputs)
    if not _matches(inputs, frozen):
        raise GradingError(
            f"{exercise.name}: cannot grade, because code in this notebook changed the test's "
            "own input tensors during the call; work on copies of your arguments."
        )
    with _watch.reference_section(exercise.name):
        problem = _judge(exercise, outcome, frozen, inputs)
    assert_untampered(exercise.name)
    if problem:
        raise GradingError(problem) from (
            outcome.error
            if outcome.error is not None and problem.startswith(f"{exercise.name}(") and " raised " in problem
            else None
        )


def _judge(exercise: Exercise, outcome: Outcome, frozen: Any, shown: Inputs) -> str | None:
    """The verdict on one call, from torch's answer computed now (learner code does not run here)."""
    inputs = _thaw(frozen)
    what = f"{exercise.name}({describe_inputs(shown)})"
    try:
        expected = exercise.reference(**{k: _clone(v) for k, v in inputs.items()})
    except Exception as torch_error:  # noqa: BLE001
        return _error_problem(exercise, outcome, what, torch_error)
    if outcome.error is not None:
        message = f"{what} raised {outcome.error_type.__name__}: {outcome.error_text}"
        return message + _raw_error_hint(exercise, outcome.error_text, inputs)
    return exercise.comparison.judge(exercise, outcome, expected, inputs, shown)


# ---------------------------------------------------------------------------- comparisons


@dataclasses.dataclass(frozen=True)
class Comparison:
    """How an exercise judges a learner's result.

    private(exercise, result, inputs): a copy of the result made the moment the call returns, before any of
    torch's answers exist (it may call the learner's methods, watched with :func:`watched_call`).
    judge(exercise, outcome, expected, inputs, shown): None when ``outcome.value`` is right, else the message.
    computed: the answer is computed (tensors: "compute it yourself" when a ban trips), not worked out.
    """

    private: Callable[["Exercise", Any, Inputs], Any]
    judge: Callable[["Exercise", Outcome, Any, Inputs, Inputs], str | None]
    computed: bool = True


def _private_tensor(exercise: Exercise, result: Any, inputs: Inputs) -> Any:
    return private_tensor(result, exercise.name)


def _private_value(exercise: Exercise, result: Any, inputs: Inputs) -> Any:
    return _normalise(result)


def _judge_values(exercise: Exercise, outcome: Outcome, expected: Any, inputs: Inputs, shown: Inputs) -> str | None:
    return compare_values(exercise, outcome.value, expected, inputs, shown)


#: Tensors, with dtype- and size-aware tolerances and the exercise's known mistakes (the default).
TENSORS = Comparison(_private_tensor, compare_tensors)
#: Numbers, tuples and lists of them, exactly.
VALUES = Comparison(_private_value, _judge_values, computed=False)


def custom(
    compare: Callable[[Any, Any, Inputs], str | None],
    collect: Callable[["Exercise", Any, Inputs], Any] | None = None,
) -> Comparison:
    """A comparison of the exercise's own: ``collect(exercise, result, inputs)`` makes the private copy
    (the result itself when None) and ``compare(private copy, expected, inputs)`` gives the verdict."""

    def private(exercise: Exercise, result: Any, inputs: Inputs) -> Any:
        return result if collect is None else collect(exercise, result, inputs)

    def judge(exercise: Exercise, outcome: Outcome, expected: Any, inputs: Inputs, shown: Inputs) -> str | None:
        return compare(outcome.value, expected, inputs)

    return Comparison(private, judge)


def _error_problem(exercise: Exercise, outcome: Outcome, what: str, torch_error: Exception) -> str | None:
    """torch raised for these inputs: the learner's call must raise the same exception type."""
    expected_type = type(torch_error)
    if outcome.error is not None:
        if issubclass(outcome.error_type, expected_type):
            return None
        return (
            f"{what} raised {outcome.error_type.__name__}, but torch raises {expected_type.__name__} for "
            f"these arguments ({_first_line(torch_error)}). Raise {expected_type.__name__} with a message "
            "that says what is wrong."
        )
    return (
        f"{what} returned {outcome.description}, but these arguments are invalid: torch raises "
        f"{expected_type.__name__} ({_first_line(torch_error)}). Check the arguments and raise "
        f"{expected_type.__name__}."
    )


_RAW_SHAPE_ERROR = (
    "must match the size of tensor",
    "The size of tensor",
    "shapes cannot be multiplied",
    "size mismatch",
    "Expected size",
    "invalid for input of size",
    "cannot be broadcast",
    "doesn't match the broadcast shape",
    "must match the existing size",
)


def _raw_error_hint(exercise: Exercise, text: str, inputs: Inputs) -> str:
    """A hint for torch's raw shape/broadcasting errors, when groups are the likely cause."""
    if not any(marker in text for marker in _RAW_SHAPE_ERROR):
        return ""
    groups = inputs.get("groups", 1)
    if isinstance(groups, int) and groups > 1:
        weight = inputs.get("weight")
        per_group = f" ({weight.shape[1]} here)" if _guard.is_tensor(weight) and weight.dim() == 4 else ""
        return (
            f"\nHint: with groups={groups} the weight has in_channels // groups input channels{per_group}: "
            "output channel o reads only the input channels of its group g = o // (out_channels // groups), "
            "input[:, g*C_g:(g+1)*C_g] with C_g = in_channels // groups."
        )
    return (
        "\nHint: this is torch's own shape error from inside your code: print the shapes of the tensors "
        "you combine on that line and compare them with the formula."
    )


# ---------------------------------------------------------------------------- input snapshots


@dataclasses.dataclass(frozen=True)
class _FrozenTensor:
    data: bytes
    shape: tuple[int, ...]
    dtype: torch.dtype
    requires_grad: bool


def _freeze(value: Any) -> Any:
    """An immutable snapshot of test inputs (tensors as bytes), taken before learner code runs."""
    if _guard.is_tensor(value):
        t = value.detach().cpu().contiguous()
        return _FrozenTensor(
            t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"",
            tuple(t.shape),
            t.dtype,
            bool(value.requires_grad),
        )
    if isinstance(value, dict):
        return ("dict", tuple((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", tuple(_freeze(v) for v in value))
    if isinstance(value, tuple):
        return ("tuple", tuple(_freeze(v) for v in value))
    return ("value", value)


def _thaw(frozen: Any) -> Any:
    if isinstance(frozen, _FrozenTensor):
        if not frozen.data:
            t = torch.empty(frozen.shape, dtype=frozen.dtype)
        else:
            t = torch.frombuffer(bytearray(frozen.data), dtype=torch.uint8).view(frozen.dtype).reshape(frozen.shape)
        return t.requires_grad_(frozen.requires_grad) if frozen.requires_grad else t
    kind, payload = frozen
    if kind == "dict":
        return {k: _thaw(v) for k, v in payload}
    if kind == "list":
        return [_thaw(v) for v in payload]
    if kind == "tuple":
        return tuple(_thaw(v) for v in payload)
    return payload


def _matches(value: Any, frozen: Any) -> bool:
    """True when ``value`` still equals its snapshot (compared without learner code)."""
    try:
        return _freeze(value) == frozen
    except Exception:  # noqa: BLE001
        return False


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
