"""nbgrader configuration of the course. The settings live in convcourse.grading.config so that the
build, the tests and the instructor tools use exactly the same ones."""

from pathlib import Path

from convcourse.grading import ensure_tools_on_path
from convcourse.grading.config import apply

# nbgrader runs `alembic` (`nbgrader db upgrade`) and `jupyter` from PATH: put this environment's bin/ first,
# so that a formgrader started without activating the environment works too (see `make formgrader`).
ensure_tools_on_path()

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)
apply(c, root=Path(__file__).resolve().parent)
# Large classes: uncomment and point at PostgreSQL (see README, "Instructor guide").
# c.CourseDirectory.db_url = "postgresql://nbgrader@localhost/conv2d"
