"""Lessons 00-04's check-your-understanding questions: the answer key's answers pass, a near miss fails with
a message that gives the right answer and explains it, and the learner copy stubs every answer."""

from __future__ import annotations

import nbformat
import pytest

from convcourse.checks import GradingError, check_answer
from convcourse.checks.quiz import get_question
from convcourse.quizcells import is_quiz_cell

from course import REPO

LESSONS = ["00_welcome", "01_sliding_window", "02_kernel_size", "03_channels", "04_stride"]


def _quiz_cell(folder: str, lesson: str):
    nb = nbformat.read(REPO / folder / lesson / f"{lesson}.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if is_quiz_cell(c)]
    return cell


def _key_answers(lesson: str) -> dict:
    namespace: dict = {}
    exec(_quiz_cell("solutions", lesson).source, namespace)  # the answer key's own quiz cell  # noqa: S102
    return {k: v for k, v in namespace.items() if k.startswith("q")}


def _near_miss(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, tuple):
        return value[:-1] + (value[-1] + 1,)
    if isinstance(value, list):
        return value[:-1]
    if isinstance(value, type) and issubclass(value, BaseException):
        return ValueError
    raise TypeError(f"no near miss for {value!r}")


CASES = [(lesson, name) for lesson in LESSONS for name in sorted(_key_answers(lesson))]


@pytest.mark.parametrize("lesson, var", CASES, ids=[f"{lesson}.{var}" for lesson, var in CASES])
def test_key_passes_and_near_miss_is_explained(lesson, var):
    answer = _key_answers(lesson)[var]
    name = f"{lesson}.{var}"
    question = get_question(name)
    assert check_answer(name, answer)
    with pytest.raises(GradingError) as failure:
        check_answer(name, _near_miss(answer))
    message = str(failure.value)
    assert "but the answer is" in message and question.explain in message
    with pytest.raises(GradingError, match="not answered yet"):
        check_answer(name, ...)


@pytest.mark.parametrize("lesson", LESSONS)
def test_learner_copy_stubs_every_answer(lesson):
    key = _quiz_cell("solutions", lesson).source.splitlines()
    release = _quiz_cell("notebooks", lesson).source.splitlines()
    assert len(key) == len(release) >= 3
    for line in release:
        name, rest = line.split(" = ", 1)
        assert rest.split("  #")[0] == "...", line


def test_every_lesson_has_four_questions():
    for lesson in LESSONS:
        assert sorted(_key_answers(lesson)) == ["q1", "q2", "q3", "q4"], lesson
