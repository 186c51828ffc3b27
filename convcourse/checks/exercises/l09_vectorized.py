"""Lesson 09: ``conv2d_fast(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)``.

Two exercises share the learner's function:

* ``conv2d_fast``: F.conv2d semantics over the whole parameter space (values, shapes, dtype and
  torch's exception types), with torch's convolution banned (unfold and as_strided are allowed).
* ``conv2d_fast_vectorized``: the same comparison on larger images, with a :class:`LoopMonitor`
  around the call. It counts the Python lines the learner's code executes and the torch
  operations it dispatches; a loop over output pixels needs at least one of each per pixel, a
  vectorized version a few dozen in all. The count is deterministic (no timing) and the monitor
  stops a looping call early, so the test is fast and never flaky.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from typing import Any

import numpy
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .. import _watch
from ..conv import ConvArgs, conv_exercise, dtype_mismatch_cases, randn, reduction_size, variants
from ..conv import conv_case as case
from ..core import CONVOLUTION_OPS, Exercise, GradingError, register
from ..quiz import Question, register_question

#: Lines + operations a vectorized conv2d_fast may use per call (generous: a loop over the
#: kernel taps or over the groups stays far below it).
STEP_BUDGET = 400
#: Every case of the vectorized suite has at least this many output positions (N * H_out * W_out).
MIN_PIXELS = 3000


def _args(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return ConvArgs(input, weight, bias, stride, padding, dilation, groups)


def visible_cases() -> list[dict[str, Any]]:
    return [
        case((1, 2, 6, 7), (3, 2, 3, 3), bias=True, seed=1),
        case((2, 3, 9, 8), (4, 3, 3, 2), stride=2, padding=1, seed=4),
        case((1, 4, 7, 7), (4, 2, 3, 3), padding="same", groups=2, dilation=2, bias=True, seed=7),
    ]


def hidden_cases() -> list[dict[str, Any]]:
    """A deterministic sweep of F.conv2d's parameter space, including invalid arguments."""
    specs = [
        # shapes and kernels
        ((2, 3, 8, 11), (5, 3, 3, 4), dict(bias=True)),
        ((1, 1, 5, 5), (1, 1, 5, 5), dict()),  # kernel == input
        ((2, 3, 6, 4), (2, 3, 1, 1), dict(bias=True)),  # 1x1 kernel
        ((1, 2, 3, 5), (3, 2, 5, 7), dict(padding=(1, 1))),  # kernel == padded input
        ((3, 5, 7), (4, 3, 2, 2), dict(bias=True, padding=1)),  # unbatched (C, H, W)
        ((2, 7, 9), (2, 2, 3, 3), dict(groups=1, stride=(2, 1), padding="valid")),
        # stride, padding, dilation as ints and tuples
        ((2, 2, 10, 9), (3, 2, 3, 3), dict(stride=(2, 3), bias=True)),
        ((1, 3, 7, 8), (2, 3, 3, 2), dict(padding=(2, 1))),
        ((1, 2, 11, 12), (2, 2, 3, 3), dict(dilation=(2, 3), padding=(1, 2), bias=True)),
        ((2, 2, 9, 9), (3, 2, 2, 3), dict(stride=2, padding=2, dilation=2)),
        ((1, 1, 6, 6), (1, 1, 3, 3), dict(stride=5)),  # stride larger than kernel
        # 'same' (odd and even kernels, with dilation) and 'valid'
        ((1, 3, 7, 6), (2, 3, 3, 3), dict(padding="same", bias=True)),
        ((2, 2, 6, 7), (3, 2, 2, 4), dict(padding="same")),  # even kernels: asymmetric padding
        ((1, 2, 8, 8), (2, 2, 2, 3), dict(padding="same", dilation=(3, 2))),
        ((1, 2, 6, 5), (2, 2, 3, 2), dict(padding="valid", bias=True)),
        ((2, 6, 5), (4, 6, 2, 2), dict(padding="same")),  # unbatched + same
        # groups
        ((2, 4, 6, 6), (6, 2, 3, 3), dict(groups=2, bias=True)),
        ((1, 6, 7, 5), (6, 1, 3, 2), dict(groups=6, padding=1)),  # depthwise: groups == channels
        ((1, 6, 8, 8), (12, 2, 3, 3), dict(groups=3, stride=2, dilation=2, padding=(2, 1), bias=True)),
        ((4, 7, 7), (4, 2, 3, 3), dict(groups=2, padding="same", dilation=2)),
        # invalid arguments: torch raises RuntimeError
        ((1, 4, 5, 5), (6, 4, 3, 3), dict(groups=3)),  # groups does not divide channels
        ((1, 4, 5, 5), (6, 3, 3, 3), dict()),  # weight's in-channels mismatch
        ((1, 2, 6, 6), (2, 2, 3, 3), dict(padding="same", stride=2)),  # 'same' with stride
        ((1, 2, 6, 6), (2, 2, 3, 3), dict(padding="full")),  # unknown padding string
        ((1, 2, 6, 6), (2, 2, 3, 3), dict(padding=-1)),
        ((1, 2, 6, 6), (2, 2, 3, 3), dict(stride=0)),
        ((1, 2, 6, 6), (2, 2, 3, 3), dict(dilation=0)),
        ((1, 2, 2, 2), (2, 2, 3, 3), dict()),  # kernel larger than the input
        ((2, 6, 6), (2, 2, 3, 3), dict(bias=True)),  # unbatched, channel mismatch
    ]
    cases = [case(x, w, seed=100 + 5 * i, **kw) for i, (x, w, kw) in enumerate(specs)]
    # a bias with the wrong length, and 2-D input
    wrong_bias = case((1, 2, 5, 5), (3, 2, 3, 3), seed=400)
    wrong_bias["bias"] = randn(4, seed=401)
    cases.append(wrong_bias)
    cases.append(dict(input=randn(6, 6, seed=402), weight=randn(1, 1, 3, 3, seed=403)))
    return cases + dtype_mismatch_cases(seed=410)  # input, weight and bias of different dtypes


def vectorized_cases() -> list[dict[str, Any]]:
    """Larger images: at least MIN_PIXELS output positions each, so pixel loops stand out."""
    return [
        case((2, 3, 48, 40), (4, 3, 3, 3), bias=True, padding=1, seed=500),
        case((1, 4, 70, 64), (4, 2, 3, 3), stride=(1, 1), padding="same", groups=2, dilation=2, seed=510),
        case((2, 4, 122, 120), (2, 4, 3, 3), stride=2, padding=(1, 0), seed=520),
    ]


def _exclusions() -> tuple[str, ...]:
    """Code whose lines are not counted: torch, numpy, the checks, and the standard library."""
    paths = {
        os.path.dirname(torch.__file__),
        os.path.dirname(numpy.__file__),
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        sysconfig.get_paths()["stdlib"],
    }
    return tuple(os.path.realpath(p) + os.sep for p in paths if p)


def _module_owning(namespace: dict) -> Any:
    """The imported module whose namespace this is, or None (``_collections_abc`` calls itself ``collections.abc``,
    so the name alone does not find it)."""
    name = namespace.get("__name__")
    candidates = [sys.modules.get(name)] if isinstance(name, str) else []
    for module in candidates + list(sys.modules.values()):
        try:
            # object.__getattribute__: no module's own __getattr__ (a lazy module would import on lookup)
            if module is not None and object.__getattribute__(module, "__dict__") is namespace:
                return module
        except Exception:  # noqa: BLE001 - an odd entry in sys.modules (no __dict__): not this namespace's module
            continue
    return None


class LoopMonitor(TorchDispatchMode):
    """Counts Python lines run outside libraries and torch operations dispatched, while active.

    Leaving the ``with`` block raises :class:`GradingError` when the total exceeds ``budget``.
    Once it exceeds ``abort_at`` the call is stopped at once, so a looping solution fails fast.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # As for checks.core._Tripwire: no dynamo wrapper around __torch_dispatch__ (grading never compiles), and
        # defining the class does not import torch._dynamo.
        return False

    def __init__(self, budget: int = STEP_BUDGET, abort_at: int | None = None, name: str = "conv2d_fast"):
        super().__init__()
        self.budget = budget
        self.abort_at = abort_at if abort_at is not None else 5 * budget
        self.name = name
        self.lines = 0
        self.ops = 0
        self._previous_trace = None
        self._excluded = _exclusions()
        self._excluded_paths: dict[str, bool] = {}
        self._library_modules: dict[int, tuple[dict, bool]] = {}

    @property
    def steps(self) -> int:
        return self.lines + self.ops

    def message(self) -> str:
        more = "at least " if self.steps > self.abort_at else ""
        return (
            f"{self.name} is not vectorized: for one call it ran {more}{self.lines} Python lines and "
            f"dispatched {more}{self.ops} torch operations (limit {self.budget} in all; a loop over output "
            f"pixels needs at least one per pixel, and these tests have {MIN_PIXELS}+ output pixels). "
            "Replace the loop over output positions with unfold (or as_strided) and one matmul."
        )

    def _count(self) -> None:
        if self.steps > self.abort_at:
            raise GradingError(self.message())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        self._count()
        return func(*args, **(kwargs or {}))

    def _excluded_path(self, path: str) -> bool:
        known = self._excluded_paths.get(path)
        if known is None:
            known = os.path.realpath(path).startswith(self._excluded)
            self._excluded_paths[path] = known
        return known

    def _counted(self, frame) -> bool:
        """A frame is library code when its module is a library module (torch, numpy, the standard library, the
        checks) and its code comes from that library: a file under the library's folder, a frozen standard-library
        module (``<frozen abc>``: the first ``isinstance`` against an abstract base class runs one) or code the
        library generated (``<string>``: a dataclass's ``__init__``). Learner code compiled under a library's file
        name still counts unless it also runs in that library's module namespace."""
        filename = frame.f_code.co_filename
        if os.path.isabs(filename) and not self._excluded_path(filename):
            return True
        module_globals = frame.f_globals
        known = self._library_modules.get(id(module_globals))
        if known is None or known[0] is not module_globals:
            module_file = module_globals.get("__file__") if _module_owning(module_globals) is not None else None
            verdict = isinstance(module_file, str) and self._excluded_path(module_file)
            known = (module_globals, verdict)  # the dict is kept, so that its id is not reused
            self._library_modules[id(module_globals)] = known
        return not known[1]

    def _trace(self, frame, event, arg):
        if event != "call" or not self._counted(frame):
            return None
        return self._trace_lines

    def _trace_lines(self, frame, event, arg):
        if event == "line":
            self.lines += 1
            self._count()
        return self._trace_lines

    def __enter__(self):
        self._previous_trace = sys.gettrace()
        result = super().__enter__()
        _watch._set_trace(self._trace)
        return result

    def __exit__(self, exc_type, exc, tb):
        _watch._set_trace(self._previous_trace)
        super().__exit__(exc_type, exc, tb)
        if exc_type is None and self.steps > self.budget:
            raise GradingError(self.message())
        return False


def _wrong_outputs(inputs):
    return {k: v for k, v in variants(_args(**inputs)).items() if v is not None}


def _reference(**inputs):
    return _args(**inputs).conv()


HINT = (
    "build the (N, C*kH*kW, L) matrix of windows with F.unfold (or as_strided), multiply by "
    "weight.reshape(out_channels, -1) and reshape to (N, out_channels, H_out, W_out)."
)

conv_exercise(
    "conv2d_fast",
    "09_vectorized",
    _args,
    banned=CONVOLUTION_OPS,
    suites={"visible": visible_cases, "hidden": hidden_cases},
    hint=HINT,
)

register(
    Exercise(
        name="conv2d_fast_vectorized",
        lesson="09_vectorized",
        reference=_reference,
        banned=CONVOLUTION_OPS,
        variants=_wrong_outputs,
        suites={"hidden": vectorized_cases},
        reduction=lambda inputs: reduction_size(_args(**inputs)),
        monitor=LoopMonitor,
        hint=HINT,
    )
)


# Check your understanding (graded, 1 point each): answers are computed from torch when checked, and
# where a tensor method that the guard does not watch is used, checked against the rule it follows.
def _unfold_shape() -> tuple[int, ...]:
    return tuple(torch.nn.functional.unfold(torch.zeros(2, 3, 8, 8), kernel_size=3, padding=1, stride=2).shape)


def _unfold_bytes() -> int:
    rows, cols = torch.nn.functional.unfold(torch.zeros(1, 64, 56, 56), kernel_size=3, padding=1).shape[1:]
    return rows * cols * 4  # float32: 4 bytes per number


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _permuted_strides() -> tuple[int, ...]:
    measured = tuple(torch.empty(2, 3, 4, 5).permute(0, 2, 3, 1).stride())
    rule = tuple(_contiguous_strides((2, 3, 4, 5))[d] for d in (0, 2, 3, 1))
    if measured != rule:
        raise GradingError(
            "09_vectorized.q3: cannot grade, because code in this notebook changed how tensors report their strides."
        )
    return measured


def _window_value() -> float:
    image = torch.arange(20.0).reshape(4, 5)
    measured = float(image.as_strided(size=(2, 3, 3, 3), stride=(5, 1, 5, 1))[1, 2, 0, 1])
    if measured != float(image[1, 3]):
        raise GradingError("09_vectorized.q4: cannot grade, because code in this notebook changed as_strided.")
    return measured


for _question in (
    Question(
        name="09_vectorized.q1",
        lesson="09_vectorized",
        form="a tuple of three ints",
        answer=_unfold_shape,
        explain="F.unfold returns (N, C*kH*kW, L): 3 * 3 * 3 = 27 numbers per window, and with padding 1 "
        "and stride 2 each axis has floor((8 + 2 - 3) / 2) + 1 = 4 positions, L = 4 * 4 = 16.",
    ),
    Question(
        name="09_vectorized.q2",
        lesson="09_vectorized",
        form="an int (bytes)",
        answer=_unfold_bytes,
        explain="The unfolded matrix is (1, 64*3*3, 56*56) = 576 x 3136 float32 numbers of 4 bytes: "
        "7,225,344 bytes, 9 times the input's 802,816.",
    ),
    Question(
        name="09_vectorized.q3",
        lesson="09_vectorized",
        form="a tuple of four ints",
        answer=_permuted_strides,
        explain="A contiguous (2, 3, 4, 5) tensor has strides (60, 20, 5, 1); permute only reorders them, "
        "without copying: dims (0, 2, 3, 1) give (60, 5, 1, 20).",
    ),
    Question(
        name="09_vectorized.q4",
        lesson="09_vectorized",
        form="a number",
        kind="number",
        answer=_window_value,
        explain="windows[1, 2] is the window of output (1, 2), whose top-left pixel is image[1, 2]; element "
        "(0, 1) of it is one column further right: image[1, 3] = 1*5 + 3 = 8.",
    ),
):
    register_question(_question)
