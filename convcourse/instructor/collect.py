"""Bring submissions into submitted/<learner>/<lesson>/: from an LMS zip download (nbgrader zip_collect)
or from nbgrader's exchange (nbgrader collect).

LMS file-name pattern (the default): every notebook in the zip is named ``<learner id>_<lesson>.ipynb``,
for example ``ada.lovelace_01_sliding_window.ipynb``, anywhere in the zip (folders are fine). A learner
id may contain letters, digits and ``. _ @ -``. Other LMS naming schemes: pass ``--pattern`` with a
Python regular expression that has the named groups ``student_id`` and ``file_id`` (``file_id`` must
match the lesson id); it is matched against the extracted file's full path (start it with ``.*``).
Learners who resubmit simply replace their previous submission. The downloaded zip itself is never
modified (it is copied first).
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

from .course import CourseError, CourseRoot


def default_pattern(lesson: str) -> str:
    """nbgrader named_regexp for ``<learner id>_<lesson>.ipynb`` (matched against the full path)."""
    return r".*/(?P<student_id>[A-Za-z0-9][A-Za-z0-9._@-]*)_(?P<file_id>" + re.escape(lesson) + r")\.ipynb$"


def collect_zip(course: CourseRoot, lesson: str, archive: Path, pattern: str | None = None) -> list[str]:
    """Import an LMS zip of submissions with ``nbgrader zip_collect``; return the learner ids imported."""
    course.check_lesson(lesson)
    archive = Path(archive).resolve()
    if not archive.exists():
        raise CourseError(f"no such file: {archive}")
    if not zipfile.is_zipfile(archive):
        raise CourseError(f"{archive} is not a zip file")
    if not (course.root / "release" / lesson).exists():
        course.nbgrader("generate_assignment", lesson, "--force", quiet=True)
    downloaded = course.state_dir / "downloaded"
    work = downloaded / lesson
    if work.exists():
        shutil.rmtree(work)
    (work / "archive").mkdir(parents=True)
    shutil.copy(archive, work / "archive" / archive.name)
    regexp = pattern or default_pattern(lesson)
    before = _snapshot(course, lesson)
    course.nbgrader(
        "zip_collect",
        lesson,
        "--force",
        "--strict",
        f"--ZipCollectApp.downloaded_directory={downloaded.relative_to(course.root)}",
        f"--FileNameCollectorPlugin.named_regexp={regexp}",
        quiet=True,
    )
    after = _snapshot(course, lesson)
    imported = sorted(s for s, digest in after.items() if before.get(s) != digest)
    names = [n for n in zipfile.ZipFile(archive).namelist() if n.endswith(".ipynb")]
    unmatched = [n for n in names if not re.match(regexp, "/" + n)]
    if unmatched:
        print(
            f"warning: {len(unmatched)} notebook(s) in the zip did not match the file-name pattern and were "
            f"skipped: {', '.join(unmatched[:10])}{' ...' if len(unmatched) > 10 else ''}"
        )
    return imported


def collect_exchange(course: CourseRoot, lesson: str) -> list[str]:
    """``nbgrader collect`` from the exchange (JupyterHub); return the learner ids whose files changed."""
    course.check_lesson(lesson)
    before = _snapshot(course, lesson)
    course.nbgrader("collect", lesson, "--update")
    after = _snapshot(course, lesson)
    return sorted(s for s, digest in after.items() if before.get(s) != digest)


def _snapshot(course: CourseRoot, lesson: str) -> dict[str, str]:
    from .autograde import submission_hash

    submitted = course.root / "submitted"
    if not submitted.exists():
        return {}
    return {p.name: submission_hash(p / lesson) for p in submitted.iterdir() if (p / lesson).is_dir()}
