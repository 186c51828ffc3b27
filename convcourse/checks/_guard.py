"""Originals of every function the graders rely on, captured before learner code runs.

The grading kernel imports this module at start-up (see :mod:`convcourse.grading.kernel`), and
every notebook imports :mod:`convcourse.checks` in its first, read-only cell, so the objects
recorded here are torch's, numpy's and Python's own. :func:`tampering` reports any that were
replaced since; checks use the recorded originals, never the live attributes.
"""

from __future__ import annotations

import builtins
import inspect
import math  # noqa: F401  (watched below)
import sys
import types
from typing import Any

import numpy as np
import torch

# Before anything is captured, although it is 2.3 s of every kernel's start: torch imports torch._dynamo lazily
# (first F.pad call, dispatch modes, an optimizer's step), which would run thousands of lines inside a watched
# learner call (the loop detector counts them) and re-wrap torch.manual_seed after it was captured.
import torch._dynamo
import torch.nn.functional as F

# (module object, attribute name) pairs whose values must stay the objects captured here.
_WATCHED: list[tuple[Any, str, str]] = []


def _watch(owner: Any, owner_name: str, names: list[str]) -> None:
    for name in names:
        if hasattr(owner, name):
            _WATCHED.append((owner, owner_name, name))


_watch(
    torch,
    "torch",
    [
        "allclose",
        "isclose",
        "equal",
        "eq",
        "abs",
        "max",
        "sum",
        "all",
        "any",
        "isnan",
        "isfinite",
        "as_tensor",
        "tensor",
        "from_numpy",
        "is_tensor",
        "zeros",
        "ones",
        "empty",
        "randn",
        "rand",
        "manual_seed",
        "Generator",
        "get_default_dtype",
        "set_default_dtype",
        "conv2d",
        "convolution",
        "Tensor",
        "float64",
        "float32",
        "no_grad",
        "enable_grad",
        "is_grad_enabled",
        "nn",
        "testing",
    ],
)
_watch(
    torch.Tensor,
    "torch.Tensor",
    [
        "__eq__",
        "__ne__",
        "__sub__",
        "__abs__",
        "__bool__",
        "__getitem__",
        "__len__",
        "__float__",
        "abs",
        "max",
        "min",
        "sum",
        "all",
        "any",
        "item",
        "tolist",
        "numpy",
        "to",
        "clone",
        "detach",
        "double",
        "float",
        "shape",
        "size",
        "dim",
        "ndim",
        "dtype",
        "equal",
        "allclose",
        "isclose",
        "flip",
        "argmax",
        "nonzero",
        "reshape",
        "view",
        "contiguous",
        "backward",
        "grad",
    ],
)
_watch(torch.testing, "torch.testing", ["assert_close"])
_watch(F, "torch.nn.functional", ["conv2d", "pad", "unfold", "fold"])
# Lesson 13: the pooling references (F.max_pool2d is Python that calls these two).
_watch(F, "torch.nn.functional", ["max_pool2d", "_max_pool2d", "max_pool2d_with_indices", "avg_pool2d"])
_watch(torch, "torch", ["max_pool2d"])
_watch(torch._C._nn, "torch._C._nn", ["max_pool2d_with_indices", "avg_pool2d"])
_watch(torch.nn, "torch.nn", ["Conv2d", "Module", "Parameter", "init"])
_watch(torch.nn.Conv2d, "torch.nn.Conv2d", ["forward", "_conv_forward", "__init__", "reset_parameters"])
_watch(
    torch.nn.Module,
    "torch.nn.Module",
    ["__call__", "_call_impl", "state_dict", "load_state_dict", "parameters", "named_parameters", "to"],
)
_watch(torch.autograd, "torch.autograd", ["gradcheck", "grad", "Function"])
_watch(
    np,
    "numpy",
    [
        "allclose",
        "isclose",
        "array_equal",
        "asarray",
        "array",
        "abs",
        "max",
        "all",
        "any",
        "isnan",
        "testing",
        "ndarray",
        "float64",
        "float32",
    ],
)
_watch(np.testing, "numpy.testing", ["assert_allclose", "assert_array_equal"])

ORIGINALS: dict[str, Any] = {f"{oname}.{name}": inspect.getattr_static(owner, name) for owner, oname, name in _WATCHED}
# IPython swaps these few builtins in and out around every cell; they are not grading tools.
_VOLATILE_BUILTINS = {
    "_",
    "__",
    "___",
    "__IPYTHON__",
    "input",
    "raw_input",
    "getpass",
    "get_ipython",
    "display",
    "exit",
    "quit",
    "copyright",
    "credits",
    "license",
    "help",
    "__spec__",
    "__loader__",
}
BUILTINS: dict[str, Any] = {k: v for k, v in vars(builtins).items() if k not in _VOLATILE_BUILTINS}
MODULES: dict[str, types.ModuleType] = {
    n: sys.modules[n] for n in ("torch", "numpy", "torch.nn.functional", "builtins", "math")
}

# Private references the checks use. Bound here so that a learner replacing torch.allclose (or
# anything else) cannot change what the comparison does, only trigger a tampering report.
allclose = torch.allclose
isclose = torch.isclose
as_tensor = torch.as_tensor
from_numpy = torch.from_numpy
is_tensor = torch.is_tensor
conv2d = F.conv2d
pad = F.pad
max_pool2d = F.max_pool2d
avg_pool2d = F.avg_pool2d
ndarray = np.ndarray
np_asarray = np.asarray
np_array = np.array

_SELF_CHECK_REGISTRY: dict[str, Any] = {}


def register_protected(qualname: str, obj: Any) -> None:
    """Record a checks-module function so that replacing it is reported as tampering."""
    _SELF_CHECK_REGISTRY[qualname] = obj


def _lookup(qualname: str) -> Any:
    module_name, _, attr = qualname.rpartition(".")
    module = sys.modules.get(module_name)
    return getattr(module, attr, None) if module is not None else None


# Filled by seal(): the grading machinery's own namespaces, functions' code and the exercise registry.
_SEALED: tuple | None = None
# The grading machinery's modules whose functions, classes and imported names seal() records.
SEALED_MODULES = (
    "convcourse.checks",
    "convcourse.checks._guard",
    "convcourse.checks.core",
    "convcourse.checks._watch",
    "convcourse.checks.errors",
    "convcourse.checks.conv",
    "convcourse.checks.quiz",
    "convcourse.grading.probe",
    "convcourse.geometry",
)


def _fingerprint(obj: Any) -> tuple:
    """What must stay the same about a function or class besides its identity (``__code__`` swaps),
    as a flat tuple compared with :func:`_same` (identity, never a learner's ``__eq__``)."""
    if isinstance(obj, types.FunctionType):
        return (obj.__code__, obj.__defaults__, obj.__kwdefaults__)
    # Only the course's own classes: torch may legitimately add attributes to its classes later.
    if isinstance(obj, type) and getattr(obj, "__module__", "").startswith("convcourse."):
        flat: list[Any] = []
        for k, v in vars(obj).items():
            if k not in ("__dict__", "__weakref__", "__doc__"):
                flat += [k, v, *(_fingerprint(v) if isinstance(v, types.FunctionType) else ())]
        return tuple(flat)
    return ()


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x is y or (type(x) is str and type(y) is str and x == y) for x, y in zip(a, b))


def _sealable(value: Any) -> bool:
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.ModuleType, type))


def _state() -> tuple:
    modules = []
    for name in SEALED_MODULES:
        module = sys.modules.get(name)
        if module is None:
            continue
        modules.append((name, module, tuple((k, v, _fingerprint(v)) for k, v in vars(module).items() if _sealable(v))))
    registry = sys.modules["convcourse.checks.core"].REGISTRY
    exercises = []
    for name, exercise in registry.items():
        fields = tuple(getattr(exercise, f) for f in exercise.__dataclass_fields__)
        functions = tuple(x for v in fields if isinstance(v, types.FunctionType) for x in _fingerprint(v))
        suites = tuple((k, v, _fingerprint(v)) for k, v in dict(exercise.suites).items())
        exercises.append((name, exercise, fields, functions, suites))
    quiz = sys.modules.get("convcourse.checks.quiz")
    for name, question in quiz.QUESTIONS.items() if quiz is not None else ():
        fields = tuple(getattr(question, f) for f in question.__dataclass_fields__)
        functions = tuple(x for v in fields if isinstance(v, types.FunctionType) for x in _fingerprint(v))
        exercises.append((name, question, fields, functions, ()))
    dicts = (
        tuple(ORIGINALS.items()),
        tuple(BUILTINS.items()),
        tuple(MODULES.items()),
        tuple(_SELF_CHECK_REGISTRY.items()),
        tuple(_WATCHED),
    )
    return tuple(modules), tuple(exercises), dicts


def seal() -> None:
    """Record the grading machinery itself (namespaces, code objects, registered exercises and their
    suites) so that :func:`tampering` also reports a learner replacing a private reference such as
    ``_guard.allclose``, swapping a function's ``__code__`` or emptying a hidden suite.

    The grading kernel calls this once, after importing every exercise and before learner code."""
    global _SEALED
    from . import exercises  # noqa: F401  (register every exercise before recording them)

    _SEALED = _state()


def _sealed_problems() -> list[str]:
    if _SEALED is None:
        return []
    problems: list[str] = []
    modules, exercises, dicts = _SEALED
    for name, module, entries in modules:
        if sys.modules.get(name) is not module:
            problems.append(f"sys.modules[{name!r}]")
            continue
        live = vars(module)
        for key, value, fingerprint in entries:
            now = live.get(key, _MISSING)
            if now is not value or not _same(_fingerprint(now), fingerprint):
                problems.append(f"{name}.{key}")
    registry = dict(sys.modules["convcourse.checks.core"].REGISTRY)
    quiz = sys.modules.get("convcourse.checks.quiz")
    registry.update(quiz.QUESTIONS if quiz is not None else {})
    for name, exercise, fields, functions, suites in exercises:
        live = registry.get(name, _MISSING)
        if live is not exercise:
            problems.append(f"the exercise {name!r}")
            continue
        now_fields = tuple(getattr(exercise, f) for f in exercise.__dataclass_fields__)
        if (
            len(now_fields) != len(fields)
            or any(a is not b for a, b in zip(now_fields, fields))
            or not _same(
                tuple(x for v in now_fields if isinstance(v, types.FunctionType) for x in _fingerprint(v)), functions
            )
        ):
            problems.append(f"the exercise {name!r}")
            continue
        now_suites = tuple((k, v, _fingerprint(v)) for k, v in dict(getattr(exercise, "suites", {})).items())
        if len(now_suites) != len(suites) or any(
            a[0] != b[0] or a[1] is not b[1] or not _same(a[2], b[2]) for a, b in zip(now_suites, suites)
        ):
            problems.append(f"the test suites of {name!r}")
    now_dicts = (
        tuple(ORIGINALS.items()),
        tuple(BUILTINS.items()),
        tuple(MODULES.items()),
        tuple(_SELF_CHECK_REGISTRY.items()),
        tuple(_WATCHED),
    )
    for label, before, after in zip(
        ("ORIGINALS", "BUILTINS", "MODULES", "protected checks", "watch list"), dicts, now_dicts
    ):
        if len(before) != len(after) or any(a[0] != b[0] or a[1] is not b[1] for a, b in zip(before, after)):
            problems.append(f"convcourse.checks._guard.{label}")
    return problems


def tampering() -> list[str]:
    """Names of watched functions, builtins or checks that no longer are the original objects."""
    problems: list[str] = _sealed_problems()
    for owner, oname, name in _WATCHED:
        if inspect.getattr_static(owner, name, _MISSING) is not ORIGINALS[f"{oname}.{name}"]:
            problems.append(f"{oname}.{name}")
        elif not _same(_fingerprint(ORIGINALS[f"{oname}.{name}"]), _ORIGINAL_FINGERPRINTS[f"{oname}.{name}"]):
            problems.append(f"{oname}.{name}.__code__")
    live_builtins = vars(builtins)
    for name, obj in BUILTINS.items():
        if live_builtins.get(name, _MISSING) is not obj:
            problems.append(f"builtins.{name}")
    for name, module in MODULES.items():
        if sys.modules.get(name) is not module:
            problems.append(f"sys.modules[{name!r}]")
    for qualname, obj in _SELF_CHECK_REGISTRY.items():
        if _lookup(qualname) is not obj:
            problems.append(qualname)
    return sorted(set(problems))


_MISSING = object()
_ORIGINAL_FINGERPRINTS: dict[str, tuple] = {k: _fingerprint(v) for k, v in ORIGINALS.items()}
