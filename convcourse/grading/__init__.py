"""nbgrader integration: the course's nbgrader settings, guarded execution and leak-free feedback."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def ensure_tools_on_path() -> None:
    """Put this interpreter's bin/ first on PATH: nbgrader runs ``alembic`` and ``jupyter`` from PATH,
    which fails when the course's virtual environment is used without being activated."""
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[0] != bindir:
        os.environ["PATH"] = os.pathsep.join([bindir] + [p for p in parts if p != bindir])
