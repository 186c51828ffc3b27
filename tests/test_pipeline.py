"""The foundation: build in sync, answer keys earn full marks, releases earn zero, all with real nbgrader."""

from __future__ import annotations

import json

import pytest
from course import REPO, cell_by_id, graded_ids, run_in

from convcourse.build import lessons, stale

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
def test_answer_key_scores_full_marks_and_release_scores_zero(course_factory, lesson):
    course = course_factory([lesson], students=["key", "blank"])
    run_in(course, ["generate_assignment", lesson, "--force"])
    course.submit(lesson, "key", REPO / "solutions" / lesson / f"{lesson}.ipynb")
    course.submit(lesson, "blank", REPO / "notebooks" / lesson / f"{lesson}.ipynb")
    run_in(course, ["autograde", lesson, "--force"])

    key_scores = course.scores(lesson, "key")
    assert course.total(lesson, "key") == course.max_score(lesson), key_scores
    # The executed answer key shows no error at all (not just in graded cells).
    executed = course.autograded(lesson, "key")
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(executed.cells)
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors

    blank = course.scores(lesson, "blank")
    assert set(blank) == set(graded_ids(REPO / "notebooks" / lesson / f"{lesson}.ipynb"))
    assert all(score == 0 for score in blank.values()), blank
    released = course.autograded(lesson, "blank")
    for grade_id in blank:
        assert any(o.get("output_type") == "error" for o in cell_by_id(released, grade_id).outputs), grade_id


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
