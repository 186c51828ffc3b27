"""The foundation: build in sync, answer keys earn full marks, releases earn zero, all with real nbgrader.

The learner copies' run by the grader doubles as the check that each one runs top to bottom before any work is
done, with no error but the unimplemented exercises (tests/test_browser.py runs them in JupyterLab too)."""

from __future__ import annotations

import json

import pytest

from convcourse.build import lessons, stale

from course import REPO, cell_by_id, graded_ids, run_in

LESSONS = lessons()


def test_generated_notebooks_are_in_sync_with_source():
    differences = stale()
    assert not differences, "run 'make build' and commit:\n" + "\n".join(differences)


def test_every_lesson_has_a_learner_copy_and_an_answer_key():
    for lesson in LESSONS:
        assert (REPO / "notebooks" / lesson / f"{lesson}.ipynb").exists()
        assert (REPO / "solutions" / lesson / f"{lesson}.ipynb").exists()


def test_answer_key_has_no_hidden_tests_and_release_has_no_solutions():
    for lesson in LESSONS:
        key = (REPO / "solutions" / lesson / f"{lesson}.ipynb").read_text()
        release = (REPO / "notebooks" / lesson / f"{lesson}.ipynb").read_text()
        assert "HIDDEN TESTS" not in key and "HIDDEN TESTS" not in release
        assert "BEGIN SOLUTION" not in release and "BEGIN SOLUTION" not in key
        source = (REPO / "autograder" / "source" / lesson / f"{lesson}.ipynb").read_text()
        if "BEGIN SOLUTION" in source:
            assert "raise NotImplementedError()" in release


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS)
def test_answer_key_scores_full_marks_and_release_scores_zero(graded_lessons, lesson):
    """On the shared result: every lesson's answer key and learner copy, graded by the course's grader
    (nbgrader's Autograde converter; see the next test for its agreement with plain nbgrader)."""
    course = graded_lessons.course
    assert graded_lessons.outcomes(lesson) == {"key": "ok", "blank": "ok"}

    key_scores = course.scores(lesson, "key")
    assert course.total(lesson, "key") == course.max_score(lesson), key_scores
    # The executed answer key shows no error at all (not just in graded cells).
    executed = course.autograded(lesson, "key")
    errors = [
        (i, o.get("ename"), o.get("evalue"))
        for i, c in enumerate(executed.cells)
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, errors

    blank = course.scores(lesson, "blank")
    assert set(blank) == set(graded_ids(REPO / "notebooks" / lesson / f"{lesson}.ipynb"))
    assert all(score == 0 for score in blank.values()), blank
    released = course.autograded(lesson, "blank")
    for grade_id in blank:
        assert any(o.get("output_type") == "error" for o in cell_by_id(released, grade_id).outputs), grade_id
    # The learner copy ran top to bottom, as a learner's kernel runs it before any work is done: the only errors,
    # in cells and in the widgets' own outputs, are the unimplemented exercises and the tests that report them.
    # (While graded, widgets are made but not drawn: tests/test_browser.py draws and moves every lesson's widgets.)
    for index, cell in enumerate(released.cells):
        assert_only_stub_errors(cell.get("outputs", []), f"{lesson} cell {index}")
    widgets = released.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    for model_id, model in widgets.get("state", {}).items():
        assert_only_stub_errors(model.get("state", {}).get("outputs", []), f"{lesson} widget {model_id}")
    if any("_widget(" in "".join(c.source) for c in released.cells if c.cell_type == "code"):
        assert widgets.get("state"), f"{lesson}: widgets were created but no widget state was saved"


#: Errors a learner copy shows before any work is done: the exercises' stubs and the tests that report them.
STUB_ERRORS = ("NotImplementedError", "GradingError", "AssertionError")


def assert_only_stub_errors(outputs: list, where: str) -> None:
    for output in outputs:
        if output.get("output_type") != "error":
            continue
        ename, evalue = output.get("ename"), output.get("evalue", "")
        assert ename in STUB_ERRORS, f"{where}: {ename}: {evalue}"
        if ename != "NotImplementedError":
            assert any(s in evalue for s in ("not implemented yet", "not answered yet", "NotImplementedError")), (
                f"{where}: {ename}: {evalue}"
            )


#: The lesson graded a second time by plain ``nbgrader autograde`` (ordinary kernels, one process): exercises,
#: a check-your-understanding question and the self-check cell. tests/test_instructor.py compares the two
#: graders on lesson 01 with failing, crashing and dying learners.
AGREEMENT_LESSON = "02_kernel_size"


@pytest.mark.slow
def test_plain_nbgrader_gives_the_course_graders_scores_cell_by_cell(graded_lessons, course_factory):
    lesson = AGREEMENT_LESSON
    plain = course_factory([lesson], students=["key", "blank"])
    run_in(plain, ["generate_assignment", lesson, "--force"])
    for student in ("key", "blank"):
        plain.submit(lesson, student, graded_lessons.course.root / "submitted" / student / lesson / f"{lesson}.ipynb")
    run_in(plain, ["autograde", lesson, "--force"])
    ours = graded_lessons.course
    for student in ("key", "blank"):
        assert plain.scores(lesson, student) == ours.scores(lesson, student), student
        errors = [
            [o.get("ename") for o in c.get("outputs", []) if o.get("output_type") == "error"]
            for c in plain.autograded(lesson, student).cells
        ]
        assert errors == [
            [o.get("ename") for o in c.get("outputs", []) if o.get("output_type") == "error"]
            for c in ours.autograded(lesson, student).cells
        ], student
    assert plain.max_score(lesson) == ours.max_score(lesson)


def test_source_notebooks_are_committed_without_outputs():
    for lesson in LESSONS:
        nb = json.loads((REPO / "autograder" / "source" / lesson / f"{lesson}.ipynb").read_text())
        dirty = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count")]
        assert not dirty, f"{lesson}: cells {dirty} keep outputs; clear them before committing"


def test_every_graded_cell_ends_in_an_assert():
    """A bare expression as a test's last statement can give full credit to wrong code."""
    import ast

    for lesson in LESSONS:
        nb = json.loads((REPO / "autograder" / "source" / lesson / f"{lesson}.ipynb").read_text())
        for cell in nb["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                tree = ast.parse("".join(cell["source"]))
                assert tree.body and isinstance(tree.body[-1], ast.Assert), (lesson, meta["grade_id"])
                assert meta.get("points", 0) > 0, (lesson, meta["grade_id"])
