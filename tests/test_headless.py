"""Learner copies run top to bottom headless, as a learner's kernel runs them before any work is done:
the only errors allowed are the unimplemented exercises and the tests that report them.

The kernels are forked from an unsandboxed fork server (the ``fork_server`` fixture), already past importing
torch, IPython and the course: what is tested is the lessons, not a kernel's start, which the browser test
(a real JupyterLab's kernels) and the self-check tests cover."""

from __future__ import annotations

import nbformat
import pytest

from convcourse.build import lessons
from convcourse.grading.forkkernel import ForkKernelManager
from convcourse.lessonrun import lesson_client

from course import REPO

EXPECTED_STUB_ERRORS = ("NotImplementedError", "GradingError", "AssertionError")


@pytest.mark.slow
@pytest.mark.parametrize("lesson", lessons())
def test_released_notebook_runs_headless(lesson, tmp_path, fork_server):
    nb = nbformat.read(REPO / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
    lesson_client(nb, tmp_path, timeout=240, allow_errors=True, kernel_manager_class=ForkKernelManager).execute()
    for index, cell in enumerate(nb.cells):
        _only_stub_errors(cell.get("outputs", []), f"cell {index}")
    widgets = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    # A widget shows what its drawing raised in its own output (convcourse.widgets.FigureView), not as a cell
    # error: the same rule holds there.
    for model_id, model in widgets.get("state", {}).items():
        _only_stub_errors(model.get("state", {}).get("outputs", []), f"widget {model_id}")
    has_widget_cell = any("widget" in "".join(c.source) for c in nb.cells if c.cell_type == "code")
    if has_widget_cell:
        assert widgets.get("state"), "widgets were created but no widget state was saved"


def _only_stub_errors(outputs: list, where: str) -> None:
    """The only errors allowed: the unimplemented exercises and the tests that report them."""
    for output in outputs:
        if output.get("output_type") != "error":
            continue
        ename, evalue = output.get("ename"), output.get("evalue", "")
        assert ename in EXPECTED_STUB_ERRORS, f"{where}: {ename}: {evalue}"
        if ename != "NotImplementedError":
            assert any(s in evalue for s in ("not implemented yet", "not answered yet", "NotImplementedError")), (
                f"{where}: {ename}: {evalue}"
            )
