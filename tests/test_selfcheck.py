"""The learners' self-check: a table of visible tests, non-zero exit when any fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from convcourse import selfcheck

from course import REPO, cell_by_id, points

LESSON = "01_sliding_window"


@pytest.mark.slow
def test_cli_passes_the_answer_key_and_fails_the_blank_copy(tmp_path):
    for kind, code in (("solutions", 0), ("notebooks", 1)):
        copy = tmp_path / kind / f"{LESSON}.ipynb"
        copy.parent.mkdir()
        shutil.copy(REPO / kind / LESSON / f"{LESSON}.ipynb", copy)
        result = subprocess.run(
            [sys.executable, "-m", "convcourse.selfcheck", str(copy)], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == code, result.stdout + result.stderr
        assert "corr2d" in result.stdout and ("passed" if code == 0 else "not implemented yet") in result.stdout


@pytest.mark.slow
def test_a_learners_own_wrong_answer_is_reported_with_the_diagnosis(tmp_path):
    nb = nbformat.read(REPO / "notebooks" / LESSON / f"{LESSON}.ipynb", as_version=4)
    cell_by_id(nb, "corr2d").source = (
        "def corr2d(x, k):\n"
        "    kh, kw = k.shape\n"
        "    out = torch.zeros(x.shape[0] - kh + 1, x.shape[1] - kw + 1, dtype=x.dtype)\n"
        "    for i in range(out.shape[0]):\n"
        "        for j in range(out.shape[1]):\n"
        "            out[i, j] = (x[i:i + kh, j:j + kw] * k.flip(0, 1)).sum()\n"
        "    return out\n"
    )
    path = tmp_path / "mine.ipynb"
    nbformat.write(nb, path)
    results = selfcheck.run_selfcheck(path)
    outcome = {r.grade_id: r for r in results}
    assert set(outcome) == set(points(LESSON)) and not any(r.passed for r in results)  # questions unanswered
    assert "flipped" in outcome["test_corr2d"].message
    table = selfcheck.format_table(results)
    assert "FAILED" in table and f"0 of {sum(points(LESSON).values()):g} points" in table
    assert selfcheck.main([str(path)]) == 1


def test_unreadable_or_missing_notebooks_are_reported(tmp_path, capsys):
    assert selfcheck.main([str(tmp_path / "missing.ipynb")]) == 2
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    assert selfcheck.main([str(broken)]) == 2
    assert "not a readable notebook" in capsys.readouterr().err


def test_in_notebook_selfcheck_never_recurses_or_runs_while_grading(monkeypatch, capsys):
    monkeypatch.setenv(selfcheck.ACTIVE_FLAG, "1")
    assert selfcheck.selfcheck() is None
    monkeypatch.delenv(selfcheck.ACTIVE_FLAG)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert selfcheck.selfcheck() is None
    monkeypatch.delenv("NBGRADER_EXECUTION")
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert selfcheck.selfcheck() is None
    assert "could not tell which notebook" in capsys.readouterr().out


def test_a_tool_that_runs_lessons_can_say_why_the_self_check_is_skipped(monkeypatch, capsys):
    monkeypatch.setenv(selfcheck.ACTIVE_FLAG, "static HTML rendering")
    assert selfcheck.selfcheck() is None
    assert "self-check skipped: static HTML rendering" in capsys.readouterr().out


@pytest.mark.slow
def test_in_notebook_selfcheck_finds_the_notebook_jupyter_names(tmp_path, monkeypatch, capsys):
    """JupyterLab starts the kernel with JPY_SESSION_NAME (ipykernel copies it to __session__)."""
    copy = tmp_path / f"{LESSON}.ipynb"
    shutil.copy(REPO / "solutions" / LESSON / f"{LESSON}.ipynb", copy)
    monkeypatch.delenv(selfcheck.ACTIVE_FLAG, raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", str(copy))
    assert selfcheck.selfcheck() is None  # prints the table; a returned value would be echoed under it
    out = capsys.readouterr().out
    total = sum(points(LESSON).values())
    assert f"saved copy of {copy.name}" in out and f"visible tests passed for {total:g} of {total:g} points" in out
    assert "corr2d" in out and "passed" in out and "FAILED" not in out


@pytest.mark.slow
def test_a_test_cell_run_after_the_in_notebook_self_check_still_grades(tmp_path):
    """The self-check starts its kernel from a child process: the learner's kernel gets no new thread, so a
    test cell run again after it grades as before (a kernel client started in the learner's kernel would leave
    its event-loop thread there, and every later check would refuse: "a background thread")."""
    from convcourse.lessonrun import lesson_client

    nb = nbformat.read(REPO / "solutions" / LESSON / f"{LESSON}.ipynb", as_version=4)
    path = tmp_path / f"{LESSON}.ipynb"
    nbformat.write(nb, path)
    test = cell_by_id(nb, "test_corr2d")
    nb.cells.append(nbformat.v4.new_code_cell("import threading\nbefore = {t.ident for t in threading.enumerate()}"))
    nb.cells.append(nbformat.v4.new_code_cell("selfcheck()"))
    nb.cells.append(
        nbformat.v4.new_code_cell("print(sorted(t.name for t in threading.enumerate() if t.ident not in before))")
    )
    nb.cells.append(nbformat.v4.new_code_cell(test.source))
    env = {k: os.environ.pop(k) for k in (selfcheck.ACTIVE_FLAG, "NBGRADER_EXECUTION") if k in os.environ}
    try:
        lesson_client(nb, tmp_path).execute(env=dict(os.environ, JPY_SESSION_NAME=str(path)))
    finally:
        os.environ.update(env)
    table = "".join(o.get("text", "") for o in nb.cells[-3].outputs)
    assert f"passed for {sum(points(LESSON).values()):g} of" in table, table
    assert "".join(o.get("text", "") for o in nb.cells[-2].outputs).strip() == "[]"
    assert not [o for o in nb.cells[-1].outputs if o.get("output_type") == "error"], nb.cells[-1].outputs


def test_format_table_totals():
    results = [selfcheck.TestResult("test_a", 2, True), selfcheck.TestResult("test_b", 3, False, "Boom\nline 2")]
    table = selfcheck.format_table(results)
    assert "2 of 5 points" in table and "Boom" in table and "passed" in table
    assert selfcheck.format_table([]) == "This notebook has no graded tests."


def test_the_self_check_is_configured_exactly_as_the_grader():
    from traitlets.config import Config

    from convcourse.grading.config import apply
    from convcourse.grading.execute import GuardedExecute

    grading = apply(Config())
    mine = selfcheck.grader_config()
    assert mine.Execute.timeout == grading.Execute.timeout == selfcheck.CELL_TIMEOUT
    assert mine.Execute.extra_arguments == grading.Execute.extra_arguments  # caps, snapshot and seal in the kernel
    assert mine.Execute.interrupt_on_timeout and mine.Execute.kernel_name == "python3"
    assert selfcheck.grader_config(timeout=300).Execute.timeout == 300
    assert GuardedExecute(config=mine).timeout == grading.Execute.timeout


@pytest.mark.slow
def test_a_notebook_that_behaves_differently_while_graded_fails_its_self_check_too(tmp_path):
    """Honest by hand, tampering under NBGRADER_EXECUTION: the self-check runs it as the grader does, with
    the grader's executor (its integrity probe names the replaced function), so it fails here as it will
    when graded instead of passing."""
    from adversarial.submissions import SUBMISSIONS

    submission = next(s for s in SUBMISSIONS if s.student == "grader_aware")
    path = tmp_path / f"{LESSON}.ipynb"
    path.write_bytes(submission.build())
    results = selfcheck.run_selfcheck(path)
    corr2d = next(r for r in results if r.grade_id == "test_corr2d")
    assert not corr2d.passed and "torch.allclose" in corr2d.message, corr2d.message
    assert selfcheck.ACTIVE_FLAG not in os.environ and "NBGRADER_EXECUTION" not in os.environ
