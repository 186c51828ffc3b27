"""Check-your-understanding questions: answers computed after reading the learner's, stubs in the release."""

import pytest

from convcourse.checks import GradingError, check_answer
from convcourse.checks.quiz import QUESTIONS, Question, get_question
from convcourse.quizcells import stub_answers


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
    for name, question in questions.items():
        monkeypatch.setitem(QUESTIONS, name, question)
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


MY_LESSONS_WRONG = {  # a plausible wrong answer per question of lessons 05-09
    "05_padding.q1": (1, 2, 2, 2),
    "05_padding.q2": (9, 9, 9),
    "05_padding.q3": (1, 0, 0, 1, 2, 3, 3),
    "05_padding.q4": RuntimeError,
    "06_dilation.q1": (1, 1, 18, 18),
    "06_dilation.q2": [(1, 2), (2, 3), (3, 4)],
    "06_dilation.q3": 7,
    "06_dilation.q4": 4640 * 4,
    "07_groups.q1": (24, 12, 3, 3),
    "07_groups.q2": [5],
    "07_groups.q3": 18496,
    "07_groups.q4": RuntimeError,
    "08_full_conv2d.q1": (1, 6, 5, 6),
    "08_full_conv2d.q2": 0.0,
    "08_full_conv2d.q3": ValueError,
    "08_full_conv2d.q4": 294912,
    "09_vectorized.q1": (2, 27, 64),
    "09_vectorized.q2": 802816,
    "09_vectorized.q3": (60, 20, 5, 1),
    "09_vectorized.q4": 7.0,
}


@pytest.mark.parametrize("name", sorted(MY_LESSONS_WRONG))
def test_lessons_05_to_09_questions_accept_the_answer_and_explain_a_wrong_one(name):
    question = get_question(name)
    assert check_answer(name, question.answer())
    with pytest.raises(GradingError, match="but the answer is") as info:
        check_answer(name, MY_LESSONS_WRONG[name])
    assert question.explain in str(info.value)


def test_set_questions_take_any_order():
    assert check_answer("07_groups.q2", {5, 4})
    assert check_answer("06_dilation.q2", sorted(get_question("06_dilation.q2").answer(), reverse=True))
