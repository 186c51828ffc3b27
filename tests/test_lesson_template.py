"""Every lesson follows the lesson template (developers' guide):

title `# NN · Title`; a "What you will learn" list; "Time: about N minutes"; each exercise under
`## Exercise N · \\`name(...)\\` (P points)` followed by its tests; `## Check your understanding (P points)` with
3-5 graded questions (one quiz cell, one `check_answer` test cell per question); `## Summary`;
`## Further reading` with 2-5 links; and, for graded lessons, `## Check your work` with the self-check cell last.
"""

from __future__ import annotations

import ast
import re

import nbformat
import pytest

from convcourse.build import lessons
from convcourse.checks.quiz import get_question
from convcourse.quizcells import is_quiz_cell

from course import REPO

LESSONS = lessons()

EXERCISE = re.compile(r"^## Exercise (\d+) · `(?:class )?([A-Za-z_]\w*)\(.*\)` \((\d+(?: \+ \d+)*) points?\)\s*$")
UNDERSTANDING = re.compile(r"^## Check your understanding \((\d+) points?\)\s*$")
TIME = re.compile(r"Time:(\*\*)? about \d+(–\d+)? minutes")
LINK = re.compile(r"\[[^\]]+\]\((https?://[^)\s]+)\)")
CHECK_ANSWER = re.compile(r'^assert check_answer\("(?P<name>[\w.]+)", (?P<var>q\d+)\)$')


def _notebook(lesson: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "autograder" / "source" / lesson / f"{lesson}.ipynb", as_version=4)


def _grading(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _is_test(cell) -> bool:
    meta = _grading(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _sections(nb) -> list[tuple[str, list]]:
    """(heading, cells) for every `## ` heading in a markdown cell; cells before the first go under ''."""
    sections: list[tuple[str, list]] = [("", [])]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    sections.append((line.strip(), []))
        sections[-1][1].append(cell)
    return sections


def _headings(nb) -> list[str]:
    return [heading for heading, _ in _sections(nb) if heading]


def _graded_points(nb) -> int:
    return sum(_grading(c).get("points", 0) for c in nb.cells if _is_test(c))


@pytest.mark.parametrize("lesson", LESSONS)
def test_title_what_you_will_learn_and_time(lesson):
    nb = _notebook(lesson)
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{lesson}: the first cell must be the title cell"
    title = first.source.splitlines()[0]
    assert re.fullmatch(rf"# {lesson[:2]} · \S.*", title), f"{lesson}: title {title!r} is not '# {lesson[:2]} · Title'"
    assert "What you will learn" in first.source, f"{lesson}: no 'What you will learn' in the title cell"
    after = first.source.split("What you will learn", 1)[1]
    assert re.search(r"^- \S", after, re.M), f"{lesson}: 'What you will learn' is not followed by a list"
    assert TIME.search(first.source), f"{lesson}: no time estimate 'Time: about N minutes' in the title cell"
    stated = re.search(r"Points:(?:\*\*)? (\d+)", first.source)
    if stated:
        assert int(stated.group(1)) == _graded_points(nb), (
            f"{lesson}: the title says {stated.group(1)} points, the graded cells give {_graded_points(nb)}"
        )


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_exercise_has_its_heading_and_tests(lesson):
    nb = _notebook(lesson)
    numbers = []
    for heading, cells in _sections(nb):
        solutions = [c for c in cells if c.cell_type == "code" and _grading(c).get("solution")]
        match = EXERCISE.match(heading)
        if not match:
            assert not solutions, (
                f"{lesson}: solution cell(s) under {heading!r}; each exercise needs a heading "
                "'## Exercise N · `name(...)` (P points)'"
            )
            continue
        number, name = int(match.group(1)), match.group(2)
        points = sum(int(p) for p in match.group(3).split(" + "))  # '(6 + 2 points)' lists cells
        numbers.append(number)
        assert solutions, f"{lesson}: {heading!r} has no solution cell"
        defined = {
            node.name
            for c in solutions
            for node in ast.parse(c.source).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))
        }
        assert name in defined, f"{lesson}: {heading!r} names {name}, but its solution cells define {sorted(defined)}"
        tests = [c for c in cells if _is_test(c)]
        assert tests, f"{lesson}: {heading!r} is not followed by its tests"
        got = sum(_grading(c).get("points", 0) for c in tests)
        assert got == points, f"{lesson}: {heading!r} says {points} points, its test cells give {got}"
    assert numbers == list(range(1, len(numbers) + 1)), f"{lesson}: exercises are numbered {numbers}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_check_your_understanding_has_three_to_five_graded_questions(lesson):
    nb = _notebook(lesson)
    sections = [(h, cells) for h, cells in _sections(nb) if h.startswith("## Check your understanding")]
    assert len(sections) == 1, f"{lesson}: needs exactly one '## Check your understanding (P points)' section"
    heading, cells = sections[0]
    match = UNDERSTANDING.match(heading)
    assert match, f"{lesson}: {heading!r} does not state its points as '(P points)'"
    quiz = [c for c in cells if is_quiz_cell(c)]
    assert len(quiz) == 1, f"{lesson}: the section needs one quiz cell (metadata convcourse.quiz = true)"
    assigned = {
        node.targets[0].id
        for node in ast.parse(quiz[0].source).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    tests = [c for c in cells if _is_test(c)]
    assert 3 <= len(tests) <= 5, f"{lesson}: {len(tests)} graded questions; the template asks for 3-5"
    seen = set()
    for cell in tests:
        found = CHECK_ANSWER.match(cell.source.strip())
        assert found, (
            f"{lesson}: question test cell {_grading(cell).get('grade_id')!r} is not "
            "'assert check_answer(\"<lesson>.qN\", qN)'"
        )
        name, var = found["name"], found["var"]
        assert name == f"{lesson}.{var}", f"{lesson}: {name!r} is checked against {var}"
        assert var in assigned, f"{lesson}: the quiz cell does not assign {var}"
        assert _grading(cell).get("points") == 1 and _grading(cell).get("locked"), (
            f"{lesson}: {name} is not 1 point, locked"
        )
        assert get_question(name).lesson == lesson
        seen.add(var)
    assert seen == assigned, f"{lesson}: the quiz cell assigns {sorted(assigned)}, the tests check {sorted(seen)}"
    assert int(match.group(1)) == len(tests), f"{lesson}: {heading!r} but {len(tests)} questions of 1 point"


@pytest.mark.parametrize("lesson", LESSONS)
def test_further_reading_has_two_to_five_links(lesson):
    nb = _notebook(lesson)
    sections = [cells for h, cells in _sections(nb) if h == "## Further reading"]
    assert len(sections) == 1, f"{lesson}: needs one '## Further reading' section"
    text = "\n".join(c.source for c in sections[0] if c.cell_type == "markdown")
    text = text.split("## Further reading", 1)[1].split("\n## ", 1)[0]
    links = LINK.findall(text)
    assert 2 <= len(links) <= 5, f"{lesson}: Further reading has {len(links)} links; the template asks for 2-5"


@pytest.mark.parametrize("lesson", LESSONS)
def test_closing_sections_in_order_and_self_check_last(lesson):
    nb = _notebook(lesson)
    headings = _headings(nb)
    order = ["## Check your understanding", "## Summary", "## Further reading"]
    positions = []
    for wanted in order:
        hits = [i for i, h in enumerate(headings) if h.startswith(wanted)]
        assert len(hits) == 1, f"{lesson}: needs one {wanted!r} heading, found {len(hits)}"
        positions.append(hits[0])
    assert positions == sorted(positions), f"{lesson}: the closing sections must come in the order {order}"
    if any(_is_test(c) for c in nb.cells):
        assert headings[-1] == "## Check your work", f"{lesson}: graded lessons end with '## Check your work'"
        last = nb.cells[-1]
        assert last.cell_type == "code" and "selfcheck()" in last.source, f"{lesson}: the self-check cell is not last"
        assert positions[-1] < len(headings) - 1


def test_readme_lesson_table_states_each_lessons_points():
    """The README's lesson table gives every lesson's exercise and question points as its notebook grades them."""
    rows = {}
    for line in (REPO / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0].isdigit():
            rows[cells[0]] = (int(cells[3]), int(cells[4]))
    for lesson in LESSONS:
        exercise = question = 0
        for cell in _notebook(lesson)["cells"]:
            meta = cell["metadata"].get("nbgrader", {})
            if cell["cell_type"] == "code" and meta.get("grade"):
                if "check_answer(" in "".join(cell["source"]):
                    question += meta["points"]
                else:
                    exercise += meta["points"]
        assert rows.get(lesson[:2]) == (exercise, question), (
            f"README lesson table row {lesson[:2]} should say {exercise} exercise and {question} question points"
        )


def test_each_widget_module_is_named_after_its_lesson_and_says_which_lesson_it_is():
    """convcourse/widgets/<slug>.py belongs to lesson NN_<slug>, and its docstring starts with "Lesson NN"."""
    slugs = {lesson.split("_", 1)[1]: lesson[:2] for lesson in LESSONS}
    for path in sorted((REPO / "convcourse" / "widgets").glob("*.py")):
        if path.name == "__init__.py":
            continue
        assert path.stem in slugs, f"widgets/{path.name} is not named after a lesson ({sorted(slugs)})"
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert doc.startswith(f"Lesson {slugs[path.stem]}"), f"widgets/{path.name}: docstring should start 'Lesson NN'"
