"""Running a lesson outside grading: the one executor that `make html`, the headless tests, the benchmarks
and the self-check's tests share.

Grading and the learners' self-check run notebooks with the grader's own preprocessor,
:class:`convcourse.grading.execute.GuardedExecute` (sandbox, CPU limits, integrity probe). Everything else
runs them as a learner's JupyterLab does: nbclient with the course's kernel, in a copy of the lesson's
folder, and only the settings that differ (time limit, whether errors stop the run, widget state, timing)
passed in.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

#: The kernel the course installs (``make env``) and nbgrader grades with.
KERNEL_NAME = "python3"
#: No IPython history database: no SQLite file and no history thread per kernel.
KERNEL_ARGS = ["--HistoryManager.hist_file=:memory:"]
#: Seconds per cell outside grading (the slowest lesson cells train for about a minute on 2 cores).
LESSON_CELL_TIMEOUT = 300


def lesson_client(
    nb: nbformat.NotebookNode,
    folder: str | Path,
    *,
    timeout: int = LESSON_CELL_TIMEOUT,
    allow_errors: bool = False,
    **options: Any,
) -> NotebookClient:
    """An nbclient executor for ``nb`` whose cells run in ``folder``; ``options`` go to NotebookClient
    (``store_widget_state``, ``record_timing``, ...)."""
    return NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        allow_errors=allow_errors,
        extra_arguments=list(KERNEL_ARGS),
        resources={"metadata": {"path": str(folder)}},
        **options,
    )


@contextlib.contextmanager
def lesson_copy(notebook: Path, prefix: str = "convcourse-") -> Iterator[Path]:
    """A temporary copy of ``notebook``'s folder (the files beside it come along); yields the copy's path."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp) / notebook.parent.name
        shutil.copytree(notebook.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        yield work / notebook.name
