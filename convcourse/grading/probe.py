"""Integrity report: what :func:`problems` finds, read by the grader's probe in the kernel before the first cell,
around every test cell and after the last (the probe's code is the grader's own: see GuardedExecute).

It lists replaced torch/numpy/builtin functions and checks, and IPython hooks that learner code
installed to rewrite or hide later cells (input/AST transformers, run-cell callbacks, a silenced
traceback display).
"""

from __future__ import annotations

from typing import Any

from convcourse.checks import _guard  # the grader's probe reaches the check through this module

_SNAPSHOT: dict[str, Any] = {}
# Modules whose IPython hooks are part of a normal kernel.
_TRUSTED_PREFIXES = (
    "IPython",
    "ipykernel",
    "matplotlib",
    "matplotlib_inline",
    "convcourse",
    "ipywidgets",
    "comm",
    "traitlets",
    "jupyter",
)


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _foreign(objects) -> list[str]:
    found = []
    for obj in objects:
        module = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", "") or ""
        if not module.startswith(_TRUSTED_PREFIXES):
            found.append(getattr(obj, "__qualname__", repr(obj))[:80])
    return found


# Names the test cells look up in the notebook's namespace: rebinding one (``def check(*a): return
# True``) would replace the test itself, so each must still be the object the setup cell imported.
_TEST_NAMES = {
    "check": "convcourse.checks.check",
    "check_suite": "convcourse.checks.check_suite",
    "suite_cases": "convcourse.checks.suite_cases",
}


def snapshot() -> None:
    _SNAPSHOT["tampering"] = (_guard.tampering, _guard.tampering.__code__)
    shell = _shell()
    if shell is not None:
        _SNAPSHOT["showtraceback"] = type(shell).showtraceback
        _SNAPSHOT["run_cell"] = type(shell).run_cell


def _namespace_problems(shell) -> list[str]:
    found = []
    user_ns = getattr(shell, "user_ns", {})
    for name, qualname in _TEST_NAMES.items():
        if name in user_ns and user_ns[name] is not _guard._SELF_CHECK_REGISTRY.get(qualname):
            found.append(f"the notebook's name {name!r} no longer is convcourse.checks.{name}")
    if "torch" in user_ns and user_ns["torch"] is not _guard.MODULES["torch"]:
        found.append("the notebook's name 'torch' no longer is the torch module")
    return found


def problems() -> list[str]:
    found = []
    if "tampering" in _SNAPSHOT and (
        _guard.tampering is not _SNAPSHOT["tampering"][0] or _guard.tampering.__code__ is not _SNAPSHOT["tampering"][1]
    ):
        found.append("replaced the integrity check convcourse.checks._guard.tampering")
    found += [f"replaced {name}" for name in _guard.tampering()]
    shell = _shell()
    if shell is not None:
        found += _namespace_problems(shell)
        for attr in ("showtraceback", "run_cell", "run_cell_async", "_showtraceback", "showsyntaxerror"):
            if attr in vars(shell) and _foreign([vars(shell)[attr]]):
                found.append(f"IPython shell method {attr} replaced")
        for attr in ("showtraceback", "run_cell"):
            if attr in _SNAPSHOT and getattr(type(shell), attr) is not _SNAPSHOT[attr]:
                found.append(f"IPython {attr} replaced")
        for name in ("input_transformers_cleanup", "input_transformers_post"):
            found += [f"input transformer {t}" for t in _foreign(getattr(shell, name, []))]
        found += [f"AST transformer {t}" for t in _foreign(getattr(shell, "ast_transformers", []))]
        for event, callbacks in getattr(shell.events, "callbacks", {}).items():
            found += [f"{event} callback {t}" for t in _foreign(callbacks)]
    import sys

    if sys.excepthook is not sys.__excepthook__ and _foreign([sys.excepthook]):
        found.append("sys.excepthook replaced")
    return found
