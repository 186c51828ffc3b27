"""The course root an instructor tool works on: its nbgrader settings, gradebook and commands."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from traitlets.config import Config

from ..grading import ensure_tools_on_path, stamp_gradebooks_in_process

REPO = Path(__file__).resolve().parent.parent.parent
#: The course root used when neither --course nor $CONVCOURSE_COURSE says otherwise.
DEFAULT_ROOT = REPO / "autograder"
#: Private state of the instructor tools inside the course root (git-ignored).
STATE_DIR = ".convcourse"


class CourseError(RuntimeError):
    """A problem the instructor can fix (shown without a traceback)."""


def default_root() -> Path:
    return Path(os.environ.get("CONVCOURSE_COURSE") or DEFAULT_ROOT).resolve()


@dataclass
class CourseRoot:
    """An nbgrader course directory with its ``nbgrader_config.py``."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if not (self.root / "nbgrader_config.py").exists():
            raise CourseError(f"{self.root} is not a course root (no nbgrader_config.py)")

    @cached_property
    def config(self) -> Config:
        """The course's nbgrader configuration, loaded exactly as nbgrader loads it from the course root."""
        from traitlets.config.loader import PyFileConfigLoader

        return PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config()

    @property
    def db_url(self) -> str:
        url = self.config.CourseDirectory.get("db_url")
        return str(url) if url else f"sqlite:///{self.root / 'gradebook.db'}"

    @property
    def course_id(self) -> str:
        return str(self.config.CourseDirectory.get("course_id") or "default_course")

    @property
    def state_dir(self) -> Path:
        path = self.root / STATE_DIR
        path.mkdir(parents=True, exist_ok=True)
        return path

    def gradebook(self):
        from nbgrader.api import Gradebook

        ensure_tools_on_path()  # nbgrader runs `alembic` and `jupyter` from PATH
        stamp_gradebooks_in_process()  # a new gradebook's schema version, without running `alembic heads`

        return Gradebook(self.db_url, self.course_id)

    def lessons(self) -> list[str]:
        source = self.root / "source"
        return sorted(p.name for p in source.iterdir() if p.is_dir()) if source.exists() else []

    def check_lesson(self, lesson: str) -> str:
        if lesson not in self.lessons():
            raise CourseError(
                f"no lesson {lesson!r} under {self.root / 'source'} (have: {', '.join(self.lessons()) or 'none'})"
            )
        return lesson

    def has_assignment(self, lesson: str) -> bool:
        from nbgrader.api import MissingEntry

        with self.gradebook() as gb:
            try:
                gb.find_assignment(lesson)
            except MissingEntry:
                return False
            return True

    def nbgrader(self, *args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
        """Run ``nbgrader ARGS`` in the course root, as an instructor would type it."""
        ensure_tools_on_path()
        result = subprocess.run(
            [sys.executable, "-m", "nbgrader", *args],
            cwd=self.root,
            text=True,
            capture_output=quiet,
            env=dict(os.environ),
        )
        if check and result.returncode != 0:
            tail = ((result.stdout or "") + (result.stderr or ""))[-4000:] if quiet else ""
            raise CourseError(f"nbgrader {' '.join(args)} failed (exit {result.returncode})\n{tail}".rstrip())
        return result
