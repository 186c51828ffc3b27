"""Check-your-understanding questions: short graded answers, checked against torch where possible.

A lesson registers its questions in its exercise module::

    register_question(Question(
        name="02_kernel_size.q1", lesson="02_kernel_size",
        answer=lambda: tuple(nn.Conv2d(3, 6, 3)(torch.zeros(2, 3, 32, 32)).shape),
        explain="Each spatial axis gives 32 - 3 + 1 = 30 positions; the 6 filters make 6 channels.",
        form="a tuple of four ints",
    ))

The notebook has one plain (not nbgrader-marked) code cell with ``metadata.convcourse.quiz = true``
that assigns the answers, one per line (``q1 = (2, 6, 30, 30)  # a tuple``). The learner copy is
built with every right-hand side replaced by ``...`` (:class:`~convcourse.grading.solution.QuizStubs`,
with :mod:`convcourse.quizcells`), the answer key keeps the answers. Each question has a graded test
cell ``assert check_answer("02_kernel_size.q1", q1)``.

The right answer is computed only after the learner's answer has been read and normalised, so no
value the check compares against exists in the kernel before that. A wrong answer's message says
what the right answer is and why: these questions teach, they are not a quiz to be gamed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from . import _guard
from .core import GradingError, Registry, _contains_unsupported, _normalise

KINDS = ("exact", "set", "number", "error")


@dataclasses.dataclass(frozen=True)
class Question:
    """One check-your-understanding question.

    answer: computes the right answer (from torch where possible) when called.
    kind: "exact" (numbers, tuples, strings compared exactly), "set" (order does not matter; a list
        or set of items), "number" (a float, relative tolerance ``rtol``), or "error" (the name of the
        exception type a call raises; the learner may give the class or its name).
    explain: why the answer is right; shown with the right answer when the learner's is wrong.
    form: what kind of value to give ("a tuple of four ints"), shown when the answer has the wrong form.
    """

    name: str
    lesson: str
    answer: Callable[[], Any]
    explain: str
    kind: str = "exact"
    form: str = ""
    rtol: float = 1e-6

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"question {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}")


QUESTIONS: Registry = Registry("question")


def register_question(question: Question) -> Question:
    return QUESTIONS.register(question)


def get_question(name: str) -> Question:
    return QUESTIONS.lookup(name)


def _normalise_answer(question: Question, value: Any) -> Any:
    if question.kind == "error":
        if isinstance(value, type) and issubclass(value, BaseException):
            return value.__name__
        if isinstance(value, BaseException):
            return type(value).__name__
        return _normalise(value)
    if question.kind == "set":
        if isinstance(value, (set, frozenset)):
            value = sorted(value, key=repr)
        mine = _normalise(value)
        return tuple(sorted(mine, key=repr)) if type(mine) is tuple else mine
    return _normalise(value)


def _equal(question: Question, mine: Any, right: Any) -> bool:
    if question.kind == "number":
        if type(mine) not in (int, float) or type(right) not in (int, float):
            return False
        return math.isclose(mine, right, rel_tol=question.rtol, abs_tol=1e-12)
    return mine == right


def check_answer(name: str, answer: Any) -> bool:
    """True when ``answer`` is the right answer to question ``name``; else AssertionError explaining it."""
    question = get_question(name)
    problems = _guard.tampering(name)
    if problems:
        raise GradingError(f"{name}: cannot grade, because code in this notebook replaced {', '.join(problems)}.")
    if answer is Ellipsis:
        raise GradingError(
            f"{name} is not answered yet: replace the ... with your answer"
            f"{' (' + question.form + ')' if question.form else ''}."
        )
    mine = _normalise_answer(question, answer)
    if _contains_unsupported(mine) or (question.kind == "set" and type(mine) is not tuple):
        form = question.form or "plain numbers, strings or tuples"
        raise GradingError(f"{name}: your answer {mine!r} has the wrong form; give {form}.")
    right = _normalise_answer(question, question.answer())  # computed only now, after reading yours
    if _equal(question, mine, right):
        return True
    shown = right if question.kind != "set" else sorted(right, key=repr)
    raise GradingError(f"{name}: your answer is {mine!r}, but the answer is {shown!r}. {question.explain}")


def error_name(call: Callable[[], Any]) -> str:
    """The name of the exception type ``call()`` raises (an "error" question's answer), or "no error"."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except Exception as error:  # the type torch raises is the answer  # noqa: BLE001
        return type(error).__name__
    return "no error"


_guard.register_protected(f"{__name__}.check_answer", check_answer)
