"""Graded checks: compare a learner's function with torch and explain any difference.

Notebook test cells use three calls, each returning True or raising ``AssertionError`` with a
message for the learner::

    assert check("corr2d", corr2d, x=x, k=k)     # one configuration, shown to learners
    assert check_suite("corr2d", corr2d)          # the hidden suite (inside HIDDEN TESTS)
    assert check_suite("corr2d", corr2d, "visible")
    assert check_answer("02_kernel_size.q1", q1)  # a check-your-understanding question

Every comparison uses torch/numpy functions captured before learner code ran
(:mod:`convcourse.checks._guard`), refuses to grade when they were replaced, and runs loop
exercises with a tripwire on torch's own convolution at the dispatcher level, so aliases such as
``my_conv = F.conv2d`` are caught too.
"""

from __future__ import annotations

from typing import Any, Callable

from . import _guard
from .conv import randn
from .core import REGISTRY, Exercise, GradingError, get_exercise, run_case
from .quiz import Question, check_answer, register_question

__all__ = [
    "check",
    "check_suite",
    "suite_cases",
    "check_answer",
    "GradingError",
    "Exercise",
    "REGISTRY",
    "randn",
    "Question",
    "register_question",
]


def check(exercise: str, fn: Callable[..., Any], **inputs: Any) -> bool:
    """Compare ``fn(**inputs)`` with torch's answer for exercise ``exercise``; True or AssertionError."""
    run_case(get_exercise(exercise), fn, inputs)
    return True


def suite_cases(exercise: str, suite: str = "hidden") -> list[dict[str, Any]]:
    """The input dicts of one of an exercise's suites (deterministic: fixed seeds)."""
    spec = get_exercise(exercise)
    if suite not in spec.suites:
        raise KeyError(f"exercise {exercise!r} has no suite {suite!r}; it has {sorted(spec.suites)}")
    return spec.suites[suite]()


def check_suite(exercise: str, fn: Callable[..., Any], suite: str = "hidden") -> bool:
    """Run every case of a suite; on failure report the first failing case and how many fail."""
    spec = get_exercise(exercise)
    cases = suite_cases(exercise, suite)
    failures: list[str] = []
    for inputs in cases:
        try:
            run_case(spec, fn, inputs)
        except GradingError as error:
            failures.append(str(error))
    if failures:
        raise GradingError(
            f"{len(failures)} of {len(cases)} {suite} test cases of {exercise} fail. The first:\n{failures[0]}"
        )
    return True


for _name in ("check", "check_suite", "suite_cases"):
    _guard.register_protected(f"{__name__}.{_name}", globals()[_name])
_guard.register_protected("convcourse.checks.core.run_case", run_case)
_guard.register_protected(
    "convcourse.checks.core.compare_tensors",
    __import__("convcourse.checks.core", fromlist=["compare_tensors"]).compare_tensors,
)
