"""Shared fixtures. Tests that start Jupyter kernels or nbgrader are marked ``slow``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib
import pytest

sys.path.insert(0, str(Path(__file__).parent))
matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

from convcourse.grading import ensure_tools_on_path  # noqa: E402

ensure_tools_on_path()


@pytest.fixture
def course_factory(tmp_path):
    """make_course bound to this test's temporary folder."""
    from course import make_course

    return lambda lessons=None, students=(): make_course(tmp_path, lessons, list(students))
