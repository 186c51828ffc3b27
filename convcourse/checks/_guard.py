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
import torch._dynamo  # noqa: F401  (it re-wraps torch.manual_seed on import: capture after it)
import torch.nn.functional as F

# (module object, attribute name) pairs whose values must stay the objects captured here.
_WATCHED: list[tuple[Any, str, str]] = []


def _watch(owner: Any, owner_name: str, names: list[str]) -> None:
    for name in names:
        if hasattr(owner, name):
            _WATCHED.append((owner, owner_name, name))


_watch(torch, "torch", [
    "allclose", "isclose", "equal", "eq", "abs", "max", "sum", "all", "any", "isnan", "isfinite",
    "as_tensor", "tensor", "from_numpy", "is_tensor", "zeros", "ones", "empty", "randn", "rand",
    "manual_seed", "Generator", "get_default_dtype", "set_default_dtype", "conv2d", "convolution",
    "Tensor", "float64", "float32", "no_grad", "enable_grad", "is_grad_enabled", "nn", "testing",
])
_watch(torch.Tensor, "torch.Tensor", [
    "__eq__", "__ne__", "__sub__", "__abs__", "__bool__", "__getitem__", "__len__", "__float__",
    "abs", "max", "min", "sum", "all", "any", "item", "tolist", "numpy", "to", "clone", "detach",
    "double", "float", "shape", "size", "dim", "ndim", "dtype", "equal", "allclose", "isclose",
    "flip", "argmax", "nonzero", "reshape", "view", "contiguous", "backward", "grad",
])
_watch(torch.testing, "torch.testing", ["assert_close"])
_watch(F, "torch.nn.functional", ["conv2d", "pad", "unfold", "fold"])
_watch(torch.nn, "torch.nn", ["Conv2d", "Module", "Parameter", "init"])
_watch(torch.nn.Conv2d, "torch.nn.Conv2d", ["forward", "_conv_forward", "__init__", "reset_parameters"])
_watch(torch.nn.Module, "torch.nn.Module", ["__call__", "_call_impl", "state_dict", "load_state_dict",
                                            "parameters", "named_parameters", "to"])
_watch(torch.autograd, "torch.autograd", ["gradcheck", "grad", "Function"])
_watch(np, "numpy", [
    "allclose", "isclose", "array_equal", "asarray", "array", "abs", "max", "all", "any", "isnan",
    "testing", "ndarray", "float64", "float32",
])
_watch(np.testing, "numpy.testing", ["assert_allclose", "assert_array_equal"])

ORIGINALS: dict[str, Any] = {f"{oname}.{name}": inspect.getattr_static(owner, name)
                             for owner, oname, name in _WATCHED}
# IPython swaps these few builtins in and out around every cell; they are not grading tools.
_VOLATILE_BUILTINS = {"_", "__", "___", "__IPYTHON__", "input", "raw_input", "getpass", "get_ipython", "display", "exit", "quit",
                      "copyright", "credits", "license", "help", "__spec__", "__loader__"}
BUILTINS: dict[str, Any] = {k: v for k, v in vars(builtins).items() if k not in _VOLATILE_BUILTINS}
MODULES: dict[str, types.ModuleType] = {n: sys.modules[n] for n in ("torch", "numpy", "torch.nn.functional",
                                                                     "builtins", "math")}

# Private references the checks use. Bound here so that a learner replacing torch.allclose (or
# anything else) cannot change what the comparison does, only trigger a tampering report.
allclose = torch.allclose
isclose = torch.isclose
as_tensor = torch.as_tensor
from_numpy = torch.from_numpy
is_tensor = torch.is_tensor
conv2d = F.conv2d
pad = F.pad
ndarray = np.ndarray
np_asarray = np.asarray

_SELF_CHECK_REGISTRY: dict[str, Any] = {}


def register_protected(qualname: str, obj: Any) -> None:
    """Record a checks-module function so that replacing it is reported as tampering."""
    _SELF_CHECK_REGISTRY[qualname] = obj


def _lookup(qualname: str) -> Any:
    module_name, _, attr = qualname.rpartition(".")
    module = sys.modules.get(module_name)
    return getattr(module, attr, None) if module is not None else None


def tampering() -> list[str]:
    """Names of watched functions, builtins or checks that no longer are the original objects."""
    problems: list[str] = []
    for owner, oname, name in _WATCHED:
        if inspect.getattr_static(owner, name, _MISSING) is not ORIGINALS[f"{oname}.{name}"]:
            problems.append(f"{oname}.{name}")
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
