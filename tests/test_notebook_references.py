"""Every check(...), check_suite(...) and check_answer(...) in the lessons' source names an exercise, a suite
and a question that exist, and every exercise's lesson prefix names a real lesson: a typo fails here in
milliseconds instead of in a graded notebook."""

from __future__ import annotations

import ast
import json

import pytest
from IPython.core.inputtransformer2 import TransformerManager

import convcourse.checks.exercises  # noqa: F401  (registers every lesson's exercises and questions)
from convcourse.build import SOURCE, lessons
from convcourse.checks import REGISTRY
from convcourse.checks.quiz import QUESTIONS

LESSONS = lessons()
CALLS = ("check", "check_suite", "check_answer", "suite_cases")
SUITE_POSITION = {"check_suite": 2, "suite_cases": 1}


def _calls(lesson: str) -> list[tuple[str, object, object]]:
    """(function, first argument, suite or None) of every check call in the lesson's source cells; arguments
    that are not literals are None."""
    nb = json.loads((SOURCE / lesson / f"{lesson}.ipynb").read_text())
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        for node in ast.walk(ast.parse(TransformerManager().transform_cell(source))):  # magics as Python
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CALLS):
                continue
            literal = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
            suite = None
            if node.func.id in SUITE_POSITION:  # check_suite(name, fn, suite) / suite_cases(name, suite)
                position = SUITE_POSITION[node.func.id]
                suite = literal[position] if len(literal) > position else "hidden"
                for keyword in node.keywords:
                    if keyword.arg == "suite":
                        suite = keyword.value.value if isinstance(keyword.value, ast.Constant) else None
            found.append((node.func.id, literal[0] if literal else None, suite))
    return found


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_check_in_the_lesson_names_a_registered_exercise_suite_or_question(lesson):
    for function, name, suite in _calls(lesson):
        assert isinstance(name, str), f"{lesson}: {function}(...) needs the exercise name as a string literal"
        if function == "check_answer":
            assert name in QUESTIONS, f"{lesson}: check_answer({name!r}) names no registered question"
            assert name.split(".")[0] == lesson, f"{lesson}: check_answer({name!r}) belongs to another lesson"
            continue
        assert name in REGISTRY, f"{lesson}: {function}({name!r}) names no registered exercise"
        if function in SUITE_POSITION:
            assert suite in REGISTRY[name].suites, (
                f"{lesson}: {function}({name!r}, suite={suite!r}): no such suite; "
                f"it has {sorted(REGISTRY[name].suites)}"
            )


def test_every_lesson_with_graded_checks_is_found():
    assert sum(1 for lesson in LESSONS if _calls(lesson)) >= 12
