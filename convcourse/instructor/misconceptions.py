"""What the class misunderstands: per test cell, the grader's diagnosis of every failing submission.

Read from the autograded notebooks, never by running learner code: for each graded cell a learner did
not get full points for (per the gradebook), the *error output* of that locked test cell is classified by
:func:`diagnose`: the known mistake the grader named ("Likely mistake: ..."), or a generic outcome (wrong
values with no known mistake, an exception type, not attempted, a cell or kernel that died). Learners with
a submission but no grade are counted from the grading run's outcome (timed out, grading failed).

Trust. Only error outputs of the grader's test cells count: nbgrader restores the locked test cells'
source before grading, stream and display outputs (anything a learner prints) are ignored, and a cell
the learner passed is never read. A learner whose cell fails can still steer the text of that cell's
error (their function may raise the checks' own ``GradingError`` with any message, which the grader
passes on, or put a line into an exception message or a ``repr``), and no in-kernel marker can prevent
it: learner code runs in the same process as the checks and can read any secret they hold. What such a
learner can do is bounded: relabel *their own* failure of that cell (one count, under a diagnosis they
choose). They cannot add a count for a cell they passed, for another learner or twice, and the table is
advisory: it never changes a grade. Labels are stripped of control characters and shortened.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ..grading.errors import CELL_TIMEOUT_ERROR, KERNEL_DIED, KERNEL_UNRESPONSIVE
from .course import CourseError, CourseRoot
from .status import Status

#: How the grader introduces the known mistake it recognised, in every check's message.
MISTAKE_MARKER = "Likely mistake: "
#: Errors the grader itself appends to a test cell, after anything the cell's code wrote; they take precedence.
GRADER_ERRORS = {
    KERNEL_DIED: "kernel died in this cell",
    KERNEL_UNRESPONSIVE: "timed out, kernel stopped answering",
    "NotRun": "not run: the kernel died in an earlier cell",
    "IntegrityError": "grading integrity check failed",
}
NO_KNOWN_MISTAKE = "wrong values, no known mistake matched"
NOT_ATTEMPTED = "not attempted (NotImplementedError)"
#: Learners with a submission but no grade, by the last grading run's outcome.
NOT_GRADED = {
    Status.TIMEOUT: "not graded: grading timed out",
    Status.ERROR: "not graded: grading failed",
    None: "not graded yet",
}
_NOT_GRADED = frozenset(NOT_GRADED.values())
#: A label longer than this is cut (with "...").
MAX_LABEL = 90

# Checks' failure messages (convcourse.checks), first line, in the order they are tried.
_SUITE_HEADER = re.compile(r"^\d+ of \d+ \w+ test cases of \S+ fail\. The first:\n")
_FIRST_LINE = [
    (re.compile(r" is not implemented yet \(it raised NotImplementedError\)"), lambda m: NOT_ATTEMPTED),
    (re.compile(r" is not answered yet"), lambda m: "not answered"),
    (re.compile(r"^\S+: your answer (.*) has the wrong form"), lambda m: "answer in the wrong form"),
    (re.compile(r"^\S+: your answer is (.*), but the answer is "), lambda m: f"answered {m[1]}"),
    (re.compile(r"\) raised (\w+), but torch raises (\w+)"), lambda m: f"raised {m[1]} where torch raises {m[2]}"),
    (re.compile(r"\) raised (\w+)\b"), lambda m: f"raised {m[1]}"),
    (re.compile(r" but these arguments are invalid: torch raises (\w+)"), lambda m: f"no {m[1]} raised"),
    (re.compile(r" called (torch's|\S+ \()"), lambda m: "called a banned operation or library"),
    (re.compile(r" used torch's autograd"), lambda m: "used autograd"),
    (re.compile(r" started a thread"), lambda m: "started a thread"),
    (re.compile(r" changed its input .* in place"), lambda m: "changed an input in place"),
    (re.compile(r"cannot grade, because code in this notebook"), lambda m: "tampered with the grader"),
    (re.compile(r"returned a \w+, a subclass of torch\.Tensor"), lambda m: "returned a Tensor subclass"),
    (re.compile(r" should return "), lambda m: "returned the wrong kind of object"),
    (re.compile(r" returned dtype "), lambda m: "wrong dtype"),
]
_WRONG_SHAPE = re.compile(r" returned shape ")
_WRONG_VALUES = re.compile(r" is wrong|differs from|first difference at index|but the answer \(from torch\) is")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(\.\d+)?(e-?\d+)?(?![\w.])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def mistake_label(explanation: str) -> str:
    """A short name for a known mistake: its explanation up to the first ": ", "; " or sentence end
    outside brackets ("your output is the true (flipped-kernel) convolution. Deep ..." -> "your output is
    the true (flipped-kernel) convolution"); alternatives the grader joined with " Or: " are kept apart."""
    parts = [part for part in explanation.split(" Or: ") if part.strip()]
    return clean(" or ".join(_first_clause(part) for part in parts) or explanation)


def _first_clause(text: str) -> str:
    text = text.strip()
    depth = 0
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and char in ":;." and (index + 1 == len(text) or text[index + 1] == " "):
            if char != "." or index + 2 >= len(text) or text[index + 2].isupper():
                return text[:index]
    return text


def clean(text: str) -> str:
    """One printable line of at most :data:`MAX_LABEL` characters (learner text can reach a label)."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 3].rstrip() + "..."


def diagnose(ename: str, evalue: str) -> str:
    """The diagnosis of one failing test cell from the name and message of its error output."""
    if ename in GRADER_ERRORS:
        return GRADER_ERRORS[ename]
    if ename == CELL_TIMEOUT_ERROR:
        return "timed out (cell time limit)"
    if ename not in ("GradingError", "AssertionError"):
        return clean(f"raised {ename} in the test cell")
    text = _SUITE_HEADER.sub("", evalue or "", count=1)
    first = text.partition("\n")[0]
    # Outcomes whose message never names a mistake first: text after "raised X: " is the learner's own.
    for pattern, label in _FIRST_LINE:
        match = pattern.search(first)
        if match:
            return clean(label(match))
    for line in text.splitlines():
        if MISTAKE_MARKER in line:
            return mistake_label(line.split(MISTAKE_MARKER, 1)[1])
    if _WRONG_SHAPE.search(first):
        return "wrong shape, no known mistake matched"
    if _WRONG_VALUES.search(first) or not first.strip():
        return NO_KNOWN_MISTAKE
    return other_label(first)


def other_label(first_line: str) -> str:
    """A message the grader words its own way: "failed: " and its first clause after the call it
    describes, numbers as N (so learners failing the same way share a label)."""
    text = first_line.strip()
    call = re.match(r"[\w.]+\(", text)
    if call:
        depth = 0
        for index in range(call.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[index], 0)
            if depth == 0:
                text = text[index + 1 :].lstrip(" :")
                break
    return clean("failed: " + _NUMBER.sub("N", _first_clause(text)))


def cell_diagnosis(outputs: list[dict]) -> str:
    """The diagnosis of a test cell that scored below full points, from its outputs (error outputs only:
    what the cell printed or displayed is never read; the grader's own appended errors come first)."""
    errors = [o for o in outputs if o.get("output_type") == "error"]
    for output in reversed(errors):
        if output.get("ename") in GRADER_ERRORS:
            return diagnose(output["ename"], "")
    if not errors:
        return "below full points without an error (manual grade?)"
    last = errors[-1]
    return diagnose(str(last.get("ename", "")), str(last.get("evalue", "")))


@dataclass
class CellMisconceptions:
    """One graded test cell: how many graded submissions, and the learners under each diagnosis."""

    notebook: str
    cell: str
    graded: int = 0
    learners: dict[str, list[str]] = field(default_factory=dict)  # diagnosis -> learners (sorted)

    @property
    def failing(self) -> int:
        """Graded submissions below full points."""
        return sum(len(names) for diagnosis, names in self.learners.items() if diagnosis not in _NOT_GRADED)

    @property
    def not_graded(self) -> int:
        """Learners with a submission but no grade."""
        return sum(len(names) for diagnosis, names in self.learners.items() if diagnosis in _NOT_GRADED)

    def counts(self) -> list[tuple[str, int]]:
        """(diagnosis, learners), most frequent first; learners not graded last."""
        return sorted(
            ((d, len(n)) for d, n in self.learners.items()),
            key=lambda item: (item[0] in _NOT_GRADED, -item[1], item[0]),
        )


def misconceptions(course: CourseRoot, lesson: str) -> list[CellMisconceptions]:
    """Per graded code cell of ``lesson`` (notebook order): every failing learner under its diagnosis."""
    from .autograde import State, submissions
    from .report import cell_order, has_scores

    course.check_lesson(lesson)
    order = cell_order(course, lesson)
    cells: dict[tuple[str, str], CellMisconceptions] = {}
    graded_learners: set[str] = set()
    with course.gradebook() as gb:
        try:
            assignment = gb.find_assignment(lesson)
        except Exception as error:
            raise CourseError(f"{lesson} is not in the gradebook (release and grade it first)") from error
        for nb in assignment.notebooks:
            for cell in nb.grade_cells:
                if cell.cell_type == "code":
                    cells[(nb.name, cell.name)] = CellMisconceptions(nb.name, cell.name)
        failing: dict[str, list[tuple[str, str]]] = {}  # learner -> cells below full points
        for submission in assignment.submissions:
            if not has_scores(submission):
                continue
            learner = submission.student.id
            graded_learners.add(learner)
            for name, grade in ((n.name, g) for n in submission.notebooks for g in n.grades):
                key = (name, grade.name)
                if key not in cells:
                    continue
                cells[key].graded += 1
                if grade.score < grade.max_score:
                    failing.setdefault(learner, []).append(key)
    for learner, keys in failing.items():
        notebooks = _read_autograded(course, lesson, learner, {name for name, _ in keys})
        for key in keys:
            outputs = notebooks.get(key[0], {}).get(key[1])
            diagnosis = "no autograded notebook" if outputs is None else cell_diagnosis(outputs)
            cells[key].learners.setdefault(diagnosis, []).append(learner)
    state = State(course.state_dir / "state.json")
    for learner in sorted(set(submissions(course, lesson)) - graded_learners):
        status = state.get(lesson, learner).get("status")
        diagnosis = NOT_GRADED.get(Status(status) if status in set(Status) else None, NOT_GRADED[None])
        for entry in cells.values():
            entry.learners.setdefault(diagnosis, []).append(learner)
    for entry in cells.values():
        for names in entry.learners.values():
            names.sort()
    return sorted(cells.values(), key=lambda c: order.get((c.notebook, c.cell), len(order)))


def _read_autograded(course: CourseRoot, lesson: str, learner: str, names: set[str]) -> dict[str, dict[str, list]]:
    """notebook name -> grade_id -> outputs, for the graded code cells of a learner's autograded notebooks."""
    import nbformat

    found: dict[str, dict[str, list]] = {}
    for name in names:
        path = course.root / "autograded" / learner / lesson / f"{name}.ipynb"
        if not path.is_file() or path.is_symlink():
            continue
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 - reported as "no autograded notebook"
            continue
        cells = found.setdefault(name, {})
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            grade_id = meta.get("grade_id")
            if cell.get("cell_type") == "code" and meta.get("grade") and grade_id not in cells:
                cells[grade_id] = list(cell.get("outputs", []))
    return found


def format_misconceptions(rows: list[CellMisconceptions], by_learner: bool = False) -> str:
    """Per test cell with failures: each diagnosis and how many learners' failures carry it (with
    ``by_learner``, who they are)."""
    lines = ["what the failing submissions got wrong (the grader's diagnosis of each failing test cell):"]
    shown = [r for r in rows if r.learners]
    if not shown:
        return lines[0] + "\n  no failing submissions"
    for row in shown:
        more = f", {row.not_graded} not graded" if row.not_graded else ""
        lines.append(f"{row.cell}: {row.failing} of {row.graded} graded submissions below full points{more}")
        width = max(len(d) for d in row.learners)
        for diagnosis, count in row.counts():
            line = f"  {diagnosis:<{width}}  {count:>4}"
            if by_learner:
                line += "  " + ", ".join(row.learners[diagnosis])
            lines.append(line.rstrip())
    return "\n".join(lines)


def top_diagnoses(rows: list[CellMisconceptions], limit: int = 12) -> list[tuple[str, str, int]]:
    """(cell, diagnosis, learners) of graded submissions over the lesson, most frequent first (for the plot)."""
    counter: Counter = Counter()
    for row in rows:
        for diagnosis, count in row.counts():
            if diagnosis not in _NOT_GRADED:
                counter[(row.cell, diagnosis)] = count
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [(cell, diagnosis, count) for (cell, diagnosis), count in ranked]
