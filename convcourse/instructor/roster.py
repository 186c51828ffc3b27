"""Add learners to the gradebook from a CSV roster.

The CSV needs a header row. Recognised columns (case-insensitive; extra columns are ignored):
``id`` (or ``student_id``, ``username``; required), ``first_name``, ``last_name``, ``email``,
``lms_user_id``. Importing the same roster twice changes nothing; a changed name or email is updated.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from .course import CourseError, CourseRoot

ID_COLUMNS = ("id", "student_id", "username")
FIELDS = ("first_name", "last_name", "email", "lms_user_id")
#: Learner ids become folder names (submitted/<id>/...) and exchange user names.
VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")


@dataclass
class RosterResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def read_roster(path: Path) -> list[dict[str, str | None]]:
    """Rows of the roster as dicts with ``id`` and the known fields (None where empty)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise CourseError(f"{path}: empty roster (a header row is required)")
        columns = {name.strip().lower(): name for name in reader.fieldnames}
        id_column = next((columns[c] for c in ID_COLUMNS if c in columns), None)
        if id_column is None:
            raise CourseError(
                f"{path}: no id column (one of {', '.join(ID_COLUMNS)}); found {', '.join(reader.fieldnames)}"
            )
        rows, seen = [], set()
        for line, raw in enumerate(reader, start=2):
            student = (raw.get(id_column) or "").strip()
            if not student:
                continue
            if not VALID_ID.match(student):
                raise CourseError(
                    f"{path}:{line}: invalid learner id {student!r} (letters, digits and . _ @ - "
                    "only, starting with a letter or digit)"
                )
            if student in seen:
                raise CourseError(f"{path}:{line}: learner id {student!r} appears twice")
            seen.add(student)
            row: dict[str, str | None] = {"id": student}
            for name in FIELDS:
                value = (raw.get(columns[name]) or "").strip() if name in columns else ""
                row[name] = value or None
            rows.append(row)
    return rows


def import_roster(course: CourseRoot, path: Path) -> RosterResult:
    """Create or update every learner of the roster in the course gradebook (one transaction)."""
    from nbgrader.api import MissingEntry, Student

    rows = read_roster(Path(path))
    result = RosterResult()
    with course.gradebook() as gb:
        for row in rows:
            values = {k: row[k] for k in FIELDS}
            try:
                student = gb.find_student(row["id"])
            except MissingEntry:
                gb.db.add(Student(id=row["id"], **values))
                result.added.append(row["id"])
                continue
            if all(getattr(student, k) == v for k, v in values.items()):
                result.unchanged.append(row["id"])
            else:
                for k, v in values.items():
                    setattr(student, k, v)
                result.updated.append(row["id"])
        gb.db.commit()
    return result
