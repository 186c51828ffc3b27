"""After grading: feedback for learners, the grades CSV, and a per-exercise summary of the class.

The summary answers "which exercise does the class struggle with?": for every graded test cell of a
lesson, over all graded submissions, the mean score and the *fail rate* (share of submissions that did
not earn that cell's full points), printed as a table and drawn as a bar chart; what the failing
submissions got wrong (:mod:`.misconceptions`, a second panel of the chart); then per learner the score and
the integrity report's count of flags (:mod:`.integrity`; "-" for none).

Reports are written next to the course they describe, under ``<course>/reports/`` (see :func:`reports_dir`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .course import CourseError, CourseRoot

if TYPE_CHECKING:
    from .misconceptions import CellMisconceptions

#: The grades CSV's column added to nbgrader's export, and its values.
STATUS_COLUMN = "status"
GRADED, NOT_GRADED, NO_SUBMISSION = "graded", "submitted, not graded", "no submission"


def reports_dir(course: CourseRoot) -> Path:
    """Where the grades CSV, summary plots and integrity CSVs go unless told otherwise: ``<course>/reports/``."""
    return course.root / "reports"


def feedback(course: CourseRoot, lesson: str, student: str | None = None, exchange: bool = False) -> Path:
    """``nbgrader generate_feedback`` (HTML under feedback/<learner>/<lesson>/); with ``exchange`` also
    ``nbgrader release_feedback`` so learners can fetch it on the hub."""
    course.check_lesson(lesson)
    extra = ["--student", student] if student else []
    course.nbgrader("generate_feedback", lesson, "--force", *extra, quiet=True)
    if exchange:
        course.nbgrader("release_feedback", lesson, *extra, quiet=True)
    return course.root / "feedback"


def export_grades(course: CourseRoot, out: Path, lessons: list[str] | None = None) -> Path:
    """``nbgrader export`` to a CSV: one row per learner and lesson (score, max_score, late penalty...),
    plus a ``status`` column, since nbgrader writes score 0 both for a learner who scored 0 and for one who
    never submitted: ``graded``, ``submitted, not graded`` (a submission in the gradebook or in
    ``submitted/`` without scores: unreadable, timed out, not graded yet) or ``no submission``."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = [f"--assignment={lesson}" for lesson in lessons or []]
    exported = out.with_name(f".{out.name}.export{os.getpid()}")
    try:
        course.nbgrader("export", f"--to={exported}", *extra, quiet=True)
        with open(exported, newline="") as source:
            reader = csv.DictReader(source)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
        statuses = submission_statuses(course)
        with open(exported, "w", newline="") as target:
            writer = csv.DictWriter(target, fieldnames=[*columns, STATUS_COLUMN])
            writer.writeheader()
            for row in rows:
                status = statuses.get((row["assignment"], row["student_id"]), NO_SUBMISSION)
                writer.writerow({**row, STATUS_COLUMN: status})
        os.replace(exported, out)
    finally:
        exported.unlink(missing_ok=True)
    return out


def has_scores(submission) -> bool:
    """Whether a gradebook submission was graded (any automatic or manual score)."""
    return any(g.auto_score is not None or g.manual_score is not None for n in submission.notebooks for g in n.grades)


def submission_statuses(course: CourseRoot) -> dict[tuple[str, str], str]:
    """(lesson, learner) -> :data:`GRADED` or :data:`NOT_GRADED` for every submission; absent: none."""
    statuses: dict[tuple[str, str], str] = {}
    submitted = course.root / "submitted"
    if submitted.is_dir():
        for folder in submitted.glob("*/*"):
            if folder.is_dir():
                statuses[(folder.name, folder.parent.name)] = NOT_GRADED
    with course.gradebook() as gb:
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                statuses[(assignment.name, submission.student.id)] = GRADED if has_scores(submission) else NOT_GRADED
    return statuses


@dataclass
class ExerciseStats:
    lesson: str
    notebook: str
    cell: str
    max_score: float
    count: int
    mean: float
    fail_rate: float  # share of submissions below full points
    zero_rate: float  # share of submissions with no points at all

    @property
    def mean_percent(self) -> float:
        return 100.0 * self.mean / self.max_score if self.max_score else 0.0


def exercise_stats(course: CourseRoot, lesson: str) -> list[ExerciseStats]:
    """Per graded cell of ``lesson`` (notebook order), statistics over every graded submission."""
    course.check_lesson(lesson)
    rows = []
    with course.gradebook() as gb:
        try:
            assignment = gb.find_assignment(lesson)
        except Exception as error:
            raise CourseError(f"{lesson} is not in the gradebook (release and grade it first)") from error
        graded = [s for s in assignment.submissions if has_scores(s)]
        order = cell_order(course, lesson)
        for nb in sorted(assignment.notebooks, key=lambda n: n.name):
            cells = sorted(nb.grade_cells, key=lambda c: order.get((nb.name, c.name), len(order)))
            for cell in cells:
                scores = [
                    g.score
                    for s in graded
                    for n in s.notebooks
                    if n.name == nb.name
                    for g in n.grades
                    if g.name == cell.name
                ]
                count = len(scores)
                mean = sum(scores) / count if count else 0.0
                fail = sum(1 for v in scores if v < cell.max_score) / count if count else 0.0
                zero = sum(1 for v in scores if v <= 0) / count if count else 0.0
                rows.append(ExerciseStats(lesson, nb.name, cell.name, cell.max_score, count, mean, fail, zero))
    return rows


def cell_order(course: CourseRoot, lesson: str) -> dict[tuple[str, str], int]:
    import nbformat

    order: dict[tuple[str, str], int] = {}
    for path in sorted((course.root / "source" / lesson).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id:
                order[(path.stem, grade_id)] = len(order)
    return order


def format_table(rows: list[ExerciseStats]) -> str:
    if not rows:
        return "no graded cells"
    width = max([len("exercise (test cell)")] + [len(r.cell) for r in rows])
    lines = [
        f"{'exercise (test cell)':<{width}}  {'points':>6}  {'n':>4}  {'mean':>6}  {'mean %':>6}  "
        f"{'fail rate':>9}  {'zero':>5}"
    ]
    for r in rows:
        lines.append(
            f"{r.cell:<{width}}  {r.max_score:>6g}  {r.count:>4d}  {r.mean:>6.2f}  {r.mean_percent:>5.1f}%  "
            f"{100 * r.fail_rate:>8.1f}%  {100 * r.zero_rate:>4.0f}%"
        )
    hardest = max(rows, key=lambda r: (r.fail_rate, -r.mean_percent))
    if hardest.count:
        lines.append(
            f"hardest: {hardest.cell} ({100 * hardest.fail_rate:.0f}% of {hardest.count} submissions below full points)"
        )
    return "\n".join(lines)


def plot_summary(rows: list[ExerciseStats], path: Path, misconceptions: list[CellMisconceptions] | None = None) -> Path:
    """A horizontal bar chart: fail rate and mean score (% of points) per test cell; with
    ``misconceptions``, a second panel: the most frequent diagnoses of failing cells (learners each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .misconceptions import top_diagnoses

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    top = top_diagnoses(misconceptions or [])
    heights = [1.2 + 0.45 * max(1, len(rows))] + ([1.2 + 0.45 * len(top)] if top else [])
    fig, axes = plt.subplots(
        len(heights), 1, figsize=(10, sum(heights)), gridspec_kw={"height_ratios": heights}, squeeze=False
    )
    ax = axes[0][0]
    labels = [r.cell for r in rows]
    ys = range(len(rows))
    ax.barh(
        [y + 0.2 for y in ys],
        [100 * r.fail_rate for r in rows],
        height=0.4,
        color="#d62728",
        label="fail rate (% below full points)",
    )
    ax.barh(
        [y - 0.2 for y in ys],
        [r.mean_percent for r in rows],
        height=0.4,
        color="#1f77b4",
        label="mean score (% of points)",
    )
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("%")
    count = max((r.count for r in rows), default=0)
    ax.set_title(f"{rows[0].lesson if rows else ''}: per-exercise results ({count} submissions)")
    ax.legend(loc="lower right", fontsize="small")
    if top:
        ax = axes[1][0]
        ax.barh(range(len(top)), [n for _, _, n in top], height=0.6, color="#ff7f0e")
        ax.set_yticks(range(len(top)), [_short(f"{cell}: {diagnosis}", 70) for cell, diagnosis, _ in top])
        ax.tick_params(axis="y", labelsize="small")
        ax.invert_yaxis()
        ax.set_xlabel("learners")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title("what the failing submissions got wrong")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass
class LearnerStats:
    learner: str
    score: float | None  # None: no graded submission in the gradebook
    max_score: float
    integrity: int | None  # findings + similarity flags of the integrity report (0: none; None: unavailable)


def learner_stats(course: CourseRoot, lesson: str) -> list[LearnerStats]:
    """Per learner with a submission (graded or on disk): the score and the integrity report's count."""
    from .integrity import integrity_report, submissions

    course.check_lesson(lesson)
    scores: dict[str, float] = {}
    max_score = 0.0
    with course.gradebook() as gb:
        try:
            assignment = gb.find_assignment(lesson)
        except Exception as error:
            raise CourseError(f"{lesson} is not in the gradebook (release and grade it first)") from error
        max_score = float(assignment.max_score or 0)
        for s in assignment.submissions:
            if has_scores(s):
                scores[s.student.id] = float(s.score)
    counts: dict[str, int | None] = {}
    if submissions(course, lesson):
        try:
            counts.update(integrity_report(course, lesson).counts())
        except Exception as error:  # noqa: BLE001 - the summary must not fail because of the report
            print(f"(integrity column unavailable: {type(error).__name__}: {error})")
            counts = dict.fromkeys(submissions(course, lesson), None)
    learners = sorted(set(scores) | set(counts))
    return [LearnerStats(name, scores.get(name), max_score, counts.get(name, 0)) for name in learners]


def format_learners(rows: list[LearnerStats], lesson: str = "<lesson>") -> str:
    """One line per learner: score and the integrity column ("-" when the report flags nothing)."""
    if not rows:
        return "no submissions"
    width = max([len("learner")] + [len(r.learner) for r in rows])
    lines = [f"{'learner':<{width}}  {'score':>11}  {'integrity':>9}"]
    for r in rows:
        score = "not graded" if r.score is None else f"{r.score:g}/{r.max_score:g}"
        flags = "?" if r.integrity is None else (r.integrity or "-")
        lines.append(f"{r.learner:<{width}}  {score:>11}  {flags:>9}")
    flagged = sum(1 for r in rows if r.integrity)
    if flagged:
        lines.append(
            f"integrity: {flagged} learner(s) flagged for review (nothing was deducted); "
            f"details: convcourse integrity {lesson}"
        )
    return "\n".join(lines)
