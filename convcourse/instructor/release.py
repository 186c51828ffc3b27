"""Generate a lesson (nbgrader generate_assignment) and release it: as a zip to upload to an LMS,
and/or into nbgrader's exchange (JupyterHub)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .course import CourseRoot


def release(course: CourseRoot, lesson: str, exchange: bool = False) -> Path:
    """Generate ``lesson`` into release/<lesson>/ and the gradebook; write release/<lesson>.zip for an LMS.

    With ``exchange`` also run ``nbgrader release_assignment`` (learners then ``fetch`` it on the hub).
    Returns the path of the zip.
    """
    course.check_lesson(lesson)
    course.nbgrader("generate_assignment", lesson, "--force")
    folder = course.root / "release" / lesson
    archive = Path(
        shutil.make_archive(str(course.root / "release" / lesson), "zip", root_dir=folder.parent, base_dir=lesson)
    )
    if exchange:
        course.nbgrader("release_assignment", lesson, "--force")
    return archive
