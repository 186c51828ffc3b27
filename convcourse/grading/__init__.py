"""nbgrader integration: the course's nbgrader settings, guarded execution and leak-free feedback."""

from __future__ import annotations

import functools
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


@functools.cache
def _gradebook_schema_head() -> str:
    """The head revision of nbgrader's gradebook migrations, read from its alembic scripts in this process."""
    import nbgrader
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
    return ScriptDirectory.from_config(config).get_heads()[0]


def stamp_gradebooks_in_process() -> None:
    """Let nbgrader find its schema version without a subprocess.

    nbgrader stamps every new gradebook with the head of its migrations by running ``alembic heads`` from
    PATH (``nbgrader.api.get_alembic_version``): about a CPU-second per new gradebook, and a crash where the
    environment's bin/ is not on PATH. The same lookup, done here with alembic's own API, gives the same
    revision (tests/test_formgrader.py compares them)."""
    import nbgrader.api

    nbgrader.api.get_alembic_version = _gradebook_schema_head
