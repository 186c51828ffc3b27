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


def make_course(tmp: Path, lesson_ids: list[str] | None = None, students: list[str] = ()) -> Course:
    """A course root in ``tmp`` with the given lessons' sources and the course's nbgrader config."""
    root = tmp / "course"
    (root / "source").mkdir(parents=True)
    for lesson in lesson_ids or lessons():
        shutil.copytree(SOURCE / lesson, root / "source" / lesson)
    course = Course(root)
    (root / "nbgrader_config.py").write_text(CONFIG_TEMPLATE.format(
        root=str(root), db_url=course.db_url, exchange=str(tmp / "exchange")))
    if students:
        with course.gradebook() as gb:
            for student in students:
                gb.update_or_create_student(student)
    return course


def run_in(course: Course, args: list[str], retcode: int | None = 0) -> str:
    """Run an nbgrader command in the course root (a real subprocess, as an instructor would)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course.root, env=env,
                            capture_output=True, text=True, timeout=1800)
    output = result.stdout + result.stderr
    if retcode is not None and result.returncode != retcode:
        raise AssertionError(f"nbgrader {' '.join(args)} exited {result.returncode}, expected {retcode}:\n{output[-6000:]}")
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
    return [c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
