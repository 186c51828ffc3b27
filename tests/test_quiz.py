"""Check-your-understanding questions: answers computed after reading the learner's, stubs in the release."""

import pytest

from convcourse.checks import GradingError, check_answer
from convcourse.checks.quiz import QUESTIONS, Question, get_question, stub_answers


def test_every_registered_question_computes_its_answer():
    get_question("02_kernel_size.q1")  # imports every lesson's exercise module
    assert QUESTIONS
    for name, question in QUESTIONS.items():
        assert name.startswith(question.lesson + "."), name
        assert question.explain.strip(), name
        assert question.answer() is not None, name


def test_right_answer_passes_and_wrong_one_explains():
    assert check_answer("02_kernel_size.q1", (2, 6, 30, 30))
    assert check_answer("02_kernel_size.q1", [2, 6, 30, 30])  # a list is read as a tuple
    with pytest.raises(GradingError, match=r"answer is \(2, 6, 30, 30\)\. .*32 - 3 \+ 1 = 30"):
        check_answer("02_kernel_size.q1", (2, 6, 32, 32))
    with pytest.raises(GradingError, match="not answered yet"):
        check_answer("02_kernel_size.q1", ...)
    with pytest.raises(GradingError, match="wrong form"):
        check_answer("02_kernel_size.q1", object())


def test_kinds(monkeypatch):
    questions = {
        "t.error": Question("t.error", "t", lambda: "RuntimeError", "why", kind="error"),
        "t.set": Question("t.set", "t", lambda: [(0, 1), (1, 0)], "why", kind="set"),
        "t.number": Question("t.number", "t", lambda: 1 / 3, "why", kind="number"),
    }
    monkeypatch.setattr("convcourse.checks.quiz.QUESTIONS", {**QUESTIONS, **questions})
    assert check_answer("t.error", RuntimeError) and check_answer("t.error", "RuntimeError")
    with pytest.raises(GradingError):
        check_answer("t.error", ValueError)
    assert check_answer("t.set", {(1, 0), (0, 1)}) and check_answer("t.set", [(1, 0), (0, 1)])
    with pytest.raises(GradingError):
        check_answer("t.set", [(1, 0)])
    assert check_answer("t.number", 0.3333333333)
    with pytest.raises(GradingError):
        check_answer("t.number", 0.33)


def test_release_stubs_every_answer_and_keeps_comments():
    source = "# Q1\nq1 = (2, 6, 30, 30)  # a tuple\nq2 = 'RuntimeError'\n\nq3 = [(0, 1)]"
    assert stub_answers(source) == "# Q1\nq1 = ...  # a tuple\nq2 = ...\n\nq3 = ..."
