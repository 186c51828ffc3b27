"""The quiz cell format, as the build reads it: which cells are check-your-understanding answer cells, and
their learner copy. Apart from :mod:`convcourse.checks.quiz` (which grades the answers) so that building a
release (``nbgrader generate_assignment``) does not import torch and the graded checks."""

from __future__ import annotations

import re
from typing import Any

_ANSWER_LINE = re.compile(r"^(?P<lhs>[A-Za-z_]\w*\s*=\s*)(?P<rhs>.*?)(?P<comment>\s+#.*)?$")


def stub_answers(source: str) -> str:
    """The learner's version of a quiz cell: every top-level ``name = value`` line becomes ``name = ...``."""
    lines = []
    for line in source.splitlines():
        match = _ANSWER_LINE.match(line)
        if match and match["rhs"].strip():
            line = f"{match['lhs']}...{match['comment'] or ''}"
        lines.append(line)
    return "\n".join(lines)


def is_quiz_cell(cell: Any) -> bool:
    """True for a code cell with ``metadata.convcourse.quiz`` set: the cell that assigns a lesson's answers."""
    return cell.get("cell_type") == "code" and bool(cell.get("metadata", {}).get("convcourse", {}).get("quiz"))
