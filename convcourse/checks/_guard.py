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
import operator
import sys
import types
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

import numpy as np
import torch
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
_watch(F, "torch.nn.functional", ["conv2d", "conv_transpose2d", "pad", "unfold", "fold"])
# Lesson 13: the pooling references (F.max_pool2d is Python that calls these two).
_watch(F, "torch.nn.functional", ["max_pool2d", "_max_pool2d", "max_pool2d_with_indices", "avg_pool2d"])
_watch(torch, "torch", ["max_pool2d"])
_watch(torch._C._nn, "torch._C._nn", ["max_pool2d_with_indices", "avg_pool2d"])
_watch(torch.nn, "torch.nn", ["Conv2d", "ConvTranspose2d", "Module", "Parameter", "init"])
_watch(torch.nn.Conv2d, "torch.nn.Conv2d", ["forward", "_conv_forward", "__init__", "reset_parameters"])
_watch(torch.nn.ConvTranspose2d, "torch.nn.ConvTranspose2d", ["forward", "__init__", "_output_padding"])
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
conv_transpose2d = F.conv_transpose2d
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


_MISSING = object()


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


_ORIGINAL_FINGERPRINTS: dict[str, tuple] = {k: _fingerprint(v) for k, v in ORIGINALS.items()}
#: What _fingerprint records of a function, read in C for many functions at once (the attributes are the
#: function type's own descriptors: a learner's object cannot be among the sealed functions, which are kept).
_FUNCTION_STATE = operator.attrgetter("__code__", "__defaults__", "__kwdefaults__")


def _function_state(functions: tuple) -> tuple:
    return tuple(chain.from_iterable(map(_FUNCTION_STATE, functions)))


def _identical(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))


_ORIGINAL_FUNCTIONS = tuple(v for v in ORIGINALS.values() if type(v) is types.FunctionType)
_ORIGINAL_FUNCTION_STATE = _function_state(_ORIGINAL_FUNCTIONS)


def _sealable(value: Any) -> bool:
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.ModuleType, type))


@dataclass(frozen=True)
class _SealedModule:
    """A module's names bound to functions, classes and modules (compared by identity)."""

    name: str
    module: types.ModuleType
    bindings: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, name: str) -> "_SealedModule":
        module = sys.modules[name]
        return cls(name, module, tuple((k, v) for k, v in vars(module).items() if _sealable(v)))

    #: The bound names and their objects, as two tuples (for :func:`_untouched`).
    layout: tuple[tuple[str, ...], tuple] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", (tuple(k for k, _ in self.bindings), tuple(v for _, v in self.bindings)))

    def problems(self) -> list[str]:
        if sys.modules.get(self.name) is not self.module:
            return [f"sys.modules[{self.name!r}]"]
        live = vars(self.module)
        return [f"{self.name}.{key}" for key, value in self.bindings if live.get(key, _MISSING) is not value]


@dataclass(frozen=True)
class _SealedExercise:
    """An exercise or question: the object, its field values and its suites (compared by identity)."""

    name: str
    exercise: Any
    fields: tuple
    suites: tuple[tuple[str, Any], ...]

    @staticmethod
    def _fields(exercise: Any) -> tuple:
        """Its field values, and those of the course's own dataclass values in them (its Comparison)."""
        values = [getattr(exercise, f) for f in exercise.__dataclass_fields__]
        for value in list(values):
            if type(value).__module__.startswith("convcourse.") and hasattr(type(value), "__dataclass_fields__"):
                values += [getattr(value, f) for f in type(value).__dataclass_fields__]
        return tuple(values)

    @staticmethod
    def _suites(exercise: Any) -> tuple[tuple[str, Any], ...]:
        return tuple(dict(getattr(exercise, "suites", {})).items())

    @classmethod
    def of(cls, name: str, exercise: Any) -> "_SealedExercise":
        return cls(name, exercise, cls._fields(exercise), cls._suites(exercise))

    def problems(self, registry: dict) -> list[str]:
        if registry.get(self.name, _MISSING) is not self.exercise:
            return [f"the exercise {self.name!r}"]
        fields = self._fields(self.exercise)
        if len(fields) != len(self.fields) or any(a is not b for a, b in zip(fields, self.fields)):
            return [f"the exercise {self.name!r}"]
        if not _same(tuple(x for pair in self._suites(self.exercise) for x in pair), _flat(self.suites)):
            return [f"the test suites of {self.name!r}"]
        return []


def _flat(pairs: tuple[tuple[str, Any], ...]) -> tuple:
    return tuple(x for pair in pairs for x in pair)


@dataclass(frozen=True)
class _SealedCode:
    """A function's or course class's code (``__code__`` swaps), each object once, named where it was found."""

    label: str
    value: Any
    fingerprint: tuple

    def problem(self) -> str | None:
        return None if _same(_fingerprint(self.value), self.fingerprint) else self.label


def _code_of(modules: tuple[_SealedModule, ...], exercises: tuple[_SealedExercise, ...]) -> tuple[_SealedCode, ...]:
    found: dict[int, _SealedCode] = {}

    def add(label: str, value: Any) -> None:
        fingerprint = _fingerprint(value)
        if fingerprint and id(value) not in found:
            found[id(value)] = _SealedCode(label, value, fingerprint)

    for module in modules:
        for key, value in module.bindings:
            add(f"{module.name}.{key}", value)
    for exercise in exercises:
        for value in exercise.fields:
            add(f"the exercise {exercise.name!r}", value)
        for _, value in exercise.suites:
            add(f"the test suites of {exercise.name!r}", value)
    return tuple(found.values())


def _tables() -> dict[str, tuple]:
    """The guard's own tables, as (key, value) pairs compared by identity."""
    return {
        "ORIGINALS": tuple(ORIGINALS.items()),
        "BUILTINS": tuple(BUILTINS.items()),
        "MODULES": tuple(MODULES.items()),
        "protected checks": tuple(_SELF_CHECK_REGISTRY.items()),
        "watch list": tuple((f"{oname}.{name}", owner) for owner, oname, name in _WATCHED),
    }


#: Where the grading machinery starts; :func:`sealed_module_names` adds every course module they use.
SEAL_ROOTS = ("convcourse.checks", "convcourse.grading.probe")


def sealed_module_names() -> list[str]:
    """The course modules seal() records: the roots and, transitively, every ``convcourse`` module whose
    names (modules, functions, classes) they hold: the checks, every exercise, and what those import."""
    found: set[str] = set()
    todo = list(SEAL_ROOTS)
    while todo:
        name = todo.pop()
        if name in found or name not in sys.modules:
            continue
        found.add(name)
        for value in vars(sys.modules[name]).values():
            if isinstance(value, types.ModuleType):
                todo.append(value.__name__)
            elif isinstance(value, (types.FunctionType, type)):
                todo.append(getattr(value, "__module__", None) or "")
        todo = [n for n in todo if n.startswith("convcourse.") or n == "convcourse"]
    return sorted(found)


@dataclass(frozen=True)
class _Seal:
    modules: tuple[_SealedModule, ...]
    exercises: tuple[_SealedExercise, ...]
    code: tuple[_SealedCode, ...]
    tables: dict[str, tuple]
    #: The same records, laid out for :func:`_untouched`: the sealed functions and their state, the rest of
    #: ``code`` (the course's classes), the exercises by name.
    functions: tuple = ()
    function_state: tuple = ()
    classes: tuple[_SealedCode, ...] = ()
    by_name: dict = field(default_factory=dict)


def _registry() -> dict:
    """Every registered exercise and check-your-understanding question, by name."""
    registry = dict(sys.modules["convcourse.checks.core"].REGISTRY)
    quiz = sys.modules.get("convcourse.checks.quiz")
    registry.update(quiz.QUESTIONS if quiz is not None else {})
    return registry


#: Filled by seal(): the grading machinery's own namespaces, functions' code and the exercise registry.
_SEALED: _Seal | None = None


def seal() -> None:
    """Record the grading machinery itself (namespaces, code objects, registered exercises and their
    suites) so that :func:`tampering` also reports a learner replacing a private reference such as
    ``_guard.allclose``, swapping a function's ``__code__`` or emptying a hidden suite.

    The grading kernel calls this once, after importing every exercise and before learner code."""
    global _SEALED
    from . import exercises  # noqa: F401  (register every exercise before recording them)

    if _SEALED is not None or _sealed_once():
        raise RuntimeError("the grading machinery is sealed once per process, before any learner code runs")
    modules = tuple(_SealedModule.of(name) for name in sealed_module_names())
    registered = tuple(_SealedExercise.of(name, exercise) for name, exercise in _registry().items())
    code = _code_of(modules, registered)
    functions = tuple(c.value for c in code if type(c.value) is types.FunctionType)
    _SEALED = _Seal(
        modules,
        registered,
        code,
        _tables(),
        functions,
        _function_state(functions),
        tuple(c for c in code if type(c.value) is not types.FunctionType),
        {e.name: e for e in registered},
    )
    _anchor_seal(_SEALED)


def _sealed_problems(exercise: str | None = None) -> list[str]:
    if _SEALED is None:
        return []
    problems = [problem for module in _SEALED.modules for problem in module.problems()]
    registry = _registry()
    record = _SEALED.by_name.get(exercise) if exercise is not None else None
    problems += [
        problem for each in (_SEALED.exercises if record is None else (record,)) for problem in each.problems(registry)
    ]
    problems += [problem for code in _SEALED.code if (problem := code.problem())]
    return problems + _table_problems(_SEALED.tables)


def _table_problems(recorded: dict[str, tuple]) -> list[str]:
    now = _tables()
    problems = []
    for label, before in recorded.items():
        after = now[label]
        if len(before) != len(after) or any(
            type(a[0]) is not str or a[0] != b[0] or a[1] is not b[1] for a, b in zip(after, before)
        ):
            problems.append(f"convcourse.checks._guard.{label}")
    return problems


#: The wrapper ``torch._disable_dynamo(fn)`` returns (making one imports nothing): its code and its globals.
_DYNAMO_DISABLE_WRAPPER = torch._disable_dynamo(lambda: None)
_DYNAMO_DISABLE_CODE, _DYNAMO_DISABLE_GLOBALS = _DYNAMO_DISABLE_WRAPPER.__code__, _DYNAMO_DISABLE_WRAPPER.__globals__


def _torchs_own_rewrap(key: str, live: Any, original: Any) -> bool:
    """Whether ``live`` is the wrapper torch itself puts around ``torch.manual_seed`` when it first imports
    ``torch._dynamo``. torch imports it lazily (an optimizer's first step, say: 1.7 CPU-s most lessons never
    spend), so the import may come after the originals were recorded. Only that exact wrapper is accepted: torch's
    own code and globals, around the recorded original."""
    if key != "torch.manual_seed" or type(live) is not types.FunctionType:
        return False
    if live.__code__ is not _DYNAMO_DISABLE_CODE or live.__globals__ is not _DYNAMO_DISABLE_GLOBALS:
        return False
    if live.__defaults__ is not None or live.__kwdefaults__ is not None:
        return False
    cells = dict(zip(live.__code__.co_freevars, live.__closure__ or ()))
    try:
        return cells["fn"].cell_contents is original
    except (KeyError, ValueError):  # no such cell, or an empty one
        return False


_MODULE_DICT = types.ModuleType.__dict__["__dict__"].__get__  # a module's own dict, whatever its class says
_CLASS_MRO = type.__dict__["__mro__"].__get__
_CLASS_DICT = type.__dict__["__dict__"].__get__


def _static(owner: Any, name: str) -> Any:
    """``inspect.getattr_static(owner, name)`` for a plain module or a class (no learner code runs); anything
    else, or a name not found, is left to getattr_static itself."""
    if type(owner) is types.ModuleType:
        return _MODULE_DICT(owner).get(name, _MISSING)
    if isinstance(owner, type):
        for klass in _CLASS_MRO(owner):
            namespace = _CLASS_DICT(klass)
            if name in namespace:
                return namespace[name]
    return inspect.getattr_static(owner, name, _MISSING)


def _untouched(exercise: str | None = None) -> bool:
    """True only when every object :func:`_problems` compares is still the very object recorded: the same
    comparisons by identity, mostly in C loops (about a third of the time: the checks ask twice per test case).
    Any difference, even one _problems accepts (torch's own wrap of torch.manual_seed), returns False, and
    _problems then decides and names it. With ``exercise``, only that exercise's own record is compared (the
    one being graded, where it is a sealed one; the integrity probe compares every exercise)."""
    sealed = _SEALED
    if sealed is not None:
        for module in sealed.modules:
            if sys.modules.get(module.name) is not module.module:
                return False
            keys, values = module.layout
            if not _identical(tuple(map(_MODULE_DICT(module.module).get, keys, repeat(_MISSING))), values):
                return False
        if not _identical(_function_state(sealed.functions), sealed.function_state):
            return False
        if not all(code.problem() is None for code in sealed.classes):
            return False
        registry = _registry()
        record = sealed.by_name.get(exercise) if exercise is not None else None
        for record in sealed.exercises if record is None else (record,):
            if record.problems(registry):
                return False
        if _table_problems(sealed.tables):
            return False
    live = tuple(map(_static, *zip(*((owner, name) for owner, _, name in _WATCHED))))
    for key, now, original in zip(ORIGINALS, live, ORIGINALS.values()):
        if now is not original and not _torchs_own_rewrap(key, now, original):
            return False
    if not _identical(_function_state(_ORIGINAL_FUNCTIONS), _ORIGINAL_FUNCTION_STATE):
        return False
    names = tuple(BUILTINS)
    if not _identical(tuple(map(vars(builtins).get, names, repeat(_MISSING))), tuple(BUILTINS.values())):
        return False
    if not all(sys.modules.get(name) is module for name, module in MODULES.items()):
        return False
    return all(_lookup(qualname) is obj for qualname, obj in _SELF_CHECK_REGISTRY.items())


def _problems(exercise: str | None = None) -> list[str]:
    """Names of watched functions, builtins or checks that no longer are the original objects."""
    problems: list[str] = _sealed_problems(exercise)
    for owner, oname, name in _WATCHED:
        key = f"{oname}.{name}"
        live = inspect.getattr_static(owner, name, _MISSING)
        if live is not ORIGINALS[key] and not _torchs_own_rewrap(key, live, ORIGINALS[key]):
            problems.append(key)
        elif not _same(_fingerprint(ORIGINALS[key]), _ORIGINAL_FINGERPRINTS[key]):
            problems.append(f"{key}.__code__")
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


def _make_tampering():
    """:func:`tampering`, holding in its closure this module's namespace as it is now and the seal, so that
    rebinding one of the guard's own names (``_SEALED = None``, ``_problems = lambda: []``) cannot switch the
    check off: that is found first, with nothing looked up in the namespace being checked."""
    namespace = globals()
    recorded = tuple((name, value) for name, value in namespace.items() if name not in ("_SEALED", "__builtins__"))
    seals: list = []
    sorted_, set_, any_, dict_, is_not, missing = sorted, set, any, dict, operator.is_not, _MISSING

    def anchor(seal: Any) -> None:
        if seals:
            raise RuntimeError("sealed already")
        seals.append(seal)

    def sealed_once() -> bool:
        return bool(seals)

    def tampering(exercise: str | None = None) -> list[str]:
        """Names of watched functions, builtins or checks that no longer are the original objects (with
        ``exercise``, that exercise's own record is the only one compared: the one being graded)."""
        expected = dict_(recorded, _SEALED=seals[0] if seals else None)
        changed = {
            name: namespace.get(name, missing)
            for name in expected
            if is_not(namespace.get(name, missing), expected[name])
        }
        if not any_(changed):
            return [] if _untouched(exercise) else _problems(exercise)
        # The rest is compared too, by the recorded helpers put back for that while; then the namespace is left
        # as the notebook made it.
        own = [f"convcourse.checks._guard.{name}" for name in changed]
        try:
            namespace.update({name: expected[name] for name in changed})
            own += expected["_problems"](exercise)
        finally:
            for name, value in changed.items():
                if value is missing:
                    namespace.pop(name, None)
                else:
                    namespace[name] = value
        return sorted_(set_(own))

    return tampering, anchor, sealed_once


tampering, _anchor_seal, _sealed_once = _make_tampering()
