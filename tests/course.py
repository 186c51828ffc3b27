"""Factories for real nbgrader course directories in temporary folders (used by the tests)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat
from nbgrader.api import Gradebook

from convcourse.build import SOURCE, lessons
from convcourse.grading import ensure_tools_on_path
from convcourse.instructor.autograde import GradeReport, Worker, autograde
from convcourse.instructor.course import CourseRoot

ensure_tools_on_path()

REPO = SOURCE.parent.parent

CONFIG_TEMPLATE = """\
from convcourse.grading.config import apply
c = get_config()
apply(c, root={root!r})
c.CourseDirectory.db_url = {db_url!r}
c.Exchange.root = {exchange!r}
"""


@dataclass
class Course:
    root: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"

    def gradebook(self) -> Gradebook:
        return Gradebook(self.db_url)

    def submit(self, lesson: str, student: str, notebook: Path | nbformat.NotebookNode | str | bytes) -> Path:
        """Place a learner's notebook at submitted/<student>/<lesson>/<lesson>.ipynb."""
        target = self.root / "submitted" / student / lesson / f"{lesson}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(notebook, Path):
            shutil.copy(notebook, target)
        elif isinstance(notebook, (str, bytes)):
            target.write_bytes(notebook.encode() if isinstance(notebook, str) else notebook)
        else:
            nbformat.write(notebook, target)
        return target

    def scores(self, lesson: str, student: str) -> dict[str, float]:
        """grade_id -> points earned, for every graded cell of a submission."""
        with self.gradebook() as gb:
            submission = gb.find_submission_notebook(lesson, lesson, student)
            return {grade.name: grade.score for grade in submission.grades}

    def total(self, lesson: str, student: str) -> float:
        with self.gradebook() as gb:
            return gb.find_submission(lesson, student).score

    def max_score(self, lesson: str) -> float:
        with self.gradebook() as gb:
            return gb.find_assignment(lesson).max_score

    def autograded(self, lesson: str, student: str) -> nbformat.NotebookNode:
        return nbformat.read(self.root / "autograded" / student / lesson / f"{lesson}.ipynb", as_version=4)

    def grade(self, lesson: str, pool: list, students: list[str] | None = None) -> GradeReport:
        """Autograde ``lesson`` with the course's own grader (nbgrader's Autograde converter in the worker
        processes of ``pool``, each learner's kernel forked from the worker's fork server), in this
        process; ``generate_assignment`` must have run. Grades land in this course's gradebook and
        autograded/ exactly as ``convcourse grade`` (and plain ``nbgrader autograde``) put them."""
        report = autograde(CourseRoot(self.root), lesson, students=students, force=True, progress=False, pool=pool)
        assert report.graded, f"nothing to grade for {lesson}"
        return report


class GradingPool(list):
    """Grading workers (convcourse.instructor.worker processes, each with its fork server) that a test
    session shares: started on first use, stopped by :meth:`close`."""

    def __init__(self, logs: Path, size: int = 2) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        super().__init__(Worker(logs / f"worker-{index}.log") for index in range(size))

    def close(self) -> None:
        for worker in self:
            worker.stop()


@dataclass
class GradedLessons:
    """Every lesson's answer key (learner ``key``) and release (learner ``blank``) graded in one course."""

    course: Course
    reports: dict[str, GradeReport]

    def outcomes(self, lesson: str) -> dict[str, str]:
        return {o.student: f"{o.status}: {o.reason}" if o.reason else o.status for o in self.reports[lesson].graded}


#: A code cell that prints how the kernel running it talks to its server or grader: {"transport", "ip"} as JSON.
KERNEL_TRANSPORT = (
    "import json, ipykernel.connect\n"
    "info = json.load(open(ipykernel.connect.get_connection_file()))\n"
    "print(json.dumps({'transport': info['transport'], 'ip': info['ip']}))"
)


def grade_every_lesson(tmp: Path, pool: list) -> GradedLessons:
    """One course with all lessons; one ``nbgrader generate_assignment`` for all of them; the answer key and
    the learner copy of each lesson submitted and graded by the course's grader with ``pool``."""
    course = make_course(tmp, lessons(), ["key", "blank"])
    run_in(course, ["generate_assignment", "*", "--force"])
    reports = {}
    for lesson in lessons():
        course.submit(lesson, "key", REPO / "solutions" / lesson / f"{lesson}.ipynb")
        course.submit(lesson, "blank", REPO / "notebooks" / lesson / f"{lesson}.ipynb")
        reports[lesson] = course.grade(lesson, pool)
    return GradedLessons(course, reports)


def make_course(tmp: Path, lesson_ids: list[str] | None = None, students: list[str] = ()) -> Course:
    """A course root in ``tmp`` with the given lessons' sources and the course's nbgrader config."""
    root = tmp / "course"
    (root / "source").mkdir(parents=True)
    for lesson in lesson_ids or lessons():
        shutil.copytree(SOURCE / lesson, root / "source" / lesson)
    course = Course(root)
    (root / "nbgrader_config.py").write_text(
        CONFIG_TEMPLATE.format(root=str(root), db_url=course.db_url, exchange=str(tmp / "exchange"))
    )
    if students:
        with course.gradebook() as gb:
            for student in students:
                gb.update_or_create_student(student)
    return course


#: nbgrader commands run in the test process, as nbgrader's own tests run every command
#: (``nbgrader.tests.run_nbgrader``): they only turn files into files and gradebook rows, and in a subprocess
#: importing nbgrader would be 1.6 of their 1.8 CPU-seconds. Commands that run kernels or exchange files keep
#: a process of their own, as an instructor runs them.
IN_PROCESS = frozenset({"generate_assignment"})


def run_in(course: Course, args: list[str], retcode: int | None = 0) -> str:
    """Run an nbgrader command in the course root: a real subprocess, as an instructor would, except the
    commands in :data:`IN_PROCESS`."""
    import os
    import subprocess
    import sys

    if args[0] in IN_PROCESS:
        return _run_in_this_process(course, args, retcode)
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    output = result.stdout + result.stderr
    if retcode is not None and result.returncode != retcode:
        raise AssertionError(
            f"nbgrader {' '.join(args)} exited {result.returncode}, expected {retcode}:\n{output[-6000:]}"
        )
    return output


def _run_in_this_process(course: Course, args: list[str], retcode: int | None) -> str:
    """``nbgrader ARGS`` in this process, in the course root, the way ``nbgrader.tests.run_nbgrader`` does it
    (one application instance, its log captured, reset afterwards), with the log in any failure message."""
    import contextlib
    import io
    import logging

    from jupyter_core.application import NoStart
    from nbgrader.apps import NbGraderApp

    log = io.StringIO()
    app = NbGraderApp.instance()
    code = 0
    with contextlib.chdir(course.root):
        try:
            app.initialize(args)
            app.init_logging(logging.StreamHandler, [log], color=False, subapps=True)
            app.start()
        except NoStart:  # what a command that ran a subcommand raises
            pass
        except SystemExit as stop:
            code = stop.code or 0
        finally:
            app.reset()
    output = log.getvalue()
    if retcode is not None and code != retcode:
        raise AssertionError(f"nbgrader {' '.join(args)} exited {code}, expected {retcode}:\n{output[-6000:]}")
    return output


def edit_notebook(path: Path, edit: Callable[[nbformat.NotebookNode], None]) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    edit(nb)
    return nb


def cell_by_id(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def graded_ids(notebook: Path) -> list[str]:
    nb = json.loads(notebook.read_text())
    return [
        c["metadata"]["nbgrader"]["grade_id"]
        for c in nb["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    ]


def points(lesson: str) -> dict[str, float]:
    """Every graded cell of a lesson and its points (the exercises' tests and the questions), from the answer key."""
    nb = nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    return {
        c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
        for c in nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    }


def question_points(lesson: str) -> dict[str, float]:
    """The check-your-understanding cells of a lesson and their points."""
    nb = nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    return {
        c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
        for c in nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade") and "check_answer(" in c.source
    }
