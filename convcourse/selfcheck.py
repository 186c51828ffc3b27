"""Self-check for learners: run a notebook's visible tests and print a table of what passed.

``nbgrader validate`` exits 0 even when tests fail; this does not. From a terminal::

    python -m convcourse.selfcheck notebooks/01_sliding_window/01_sliding_window.ipynb
    convcourse selfcheck my_copy.ipynb

From the last cell of a lesson, ``selfcheck()`` does the same for the notebook it runs in. It runs the
**saved** file in a fresh kernel, started from a child process so that the learner's kernel is left
as it was (so save first, Ctrl+S): that is what a grader sees, and it catches
cells that only worked because of something run out of order.

It runs the notebook with the grader's own executor, :class:`convcourse.grading.execute.GuardedExecute`,
configured by the course's nbgrader settings (:func:`convcourse.grading.config.apply`): the same kernel
(``python3``, whatever kernel the file names, as nbgrader restores the lesson's kernelspec), the same
per-cell time limits (``metadata.convcourse.timeout`` or the default), memory and CPU caps, integrity
probe, dead-kernel handling and sandbox where the executor provides one, with ``NBGRADER_EXECUTION`` set
as while grading. What differs from grading: only the visible tests exist in a learner's copy, and
nbgrader does not first restore locked cells (a learner who edits a test cell sees that edit run).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import nbformat

#: Set in the kernel that a self-check starts, so the notebook's own self-check cell does not recurse
#: (other tools that execute lessons, like convcourse.html, set it to a short reason that is printed).
ACTIVE_FLAG = "CONVCOURSE_SELFCHECK_ACTIVE"
#: The grader's default seconds per cell (cells may set their own in metadata.convcourse.timeout).
from .grading.config import CELL_TIMEOUT  # noqa: E402

#: The kernel nbgrader grades with (it restores the lesson's kernelspec before executing).
KERNEL_NAME = "python3"
#: Seconds the in-notebook self-check waits for its child process (the per-cell limits apply inside it).
CHILD_TIMEOUT = 1800


@dataclasses.dataclass
class TestResult:
    grade_id: str
    points: float
    passed: bool
    message: str = ""


def _is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _failure_message(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            evalue = output.get("evalue", "").strip()
            if output.get("ename") == "NotImplementedError":
                return "not implemented yet"
            return f"{output.get('ename')}: {evalue}" if evalue else output.get("ename", "error")
    return ""


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for the kernel the executor starts; restore them afterwards."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def grader_config(timeout: int | None = None):
    """The course's nbgrader configuration, as grading uses it (``timeout`` overrides the default
    seconds per cell; cells with ``metadata.convcourse.timeout`` keep theirs)."""
    from traitlets.config import Config

    from .grading.config import apply

    config = apply(Config())
    config.Execute.kernel_name = KERNEL_NAME
    if timeout is not None:
        config.Execute.timeout = int(timeout)
    return config


def run_selfcheck(path: str | Path, timeout: int | None = None) -> list[TestResult]:
    """Execute the notebook at ``path`` with the grader's executor and report every graded test cell."""
    from .grading.execute import GuardedExecute

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise FileNotFoundError(f"no notebook at {path}") from None
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"{path} is not a readable notebook ({error}); restore it from the course copy") from None
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    executor = GuardedExecute(config=grader_config(timeout))
    with _environment({ACTIVE_FLAG: "1", "NBGRADER_EXECUTION": "autograde"}):
        nb, _ = executor.preprocess(nb, {"metadata": {"path": str(path.resolve().parent)}})
    results = []
    for cell in nb.cells:
        if _is_test_cell(cell):
            meta = cell.metadata.nbgrader
            message = _failure_message(cell)
            results.append(TestResult(meta.get("grade_id", "?"), float(meta.get("points", 0)), not message, message))
    return results


def format_table(results: list[TestResult], width: int = 100) -> str:
    """The results as a text table with a total line."""
    if not results:
        return "This notebook has no graded tests."
    name_w = max(len("exercise"), *(len(r.grade_id) for r in results))
    lines = [f"{'exercise':<{name_w}}  points  result", f"{'-' * name_w}  ------  ------"]
    for r in results:
        lines.append(
            f"{r.grade_id.removeprefix('test_'):<{name_w}}  {r.points:>6g}  {'passed' if r.passed else 'FAILED'}"
        )
        if not r.passed:
            for line in r.message.splitlines()[:4]:
                lines.append(" " * (name_w + 10) + line[: max(20, width - name_w - 10)])
    earned = sum(r.points for r in results if r.passed)
    total = sum(r.points for r in results)
    lines.append(
        f"\nvisible tests passed for {earned:g} of {total:g} points (hidden tests run when your work is graded)"
    )
    return "\n".join(lines)


def _current_notebook() -> Path | None:
    """The notebook this kernel belongs to, when Jupyter says (JupyterLab/Notebook 7 set these)."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        session = shell.user_ns.get("__session__") if shell is not None else None
    except ImportError:
        session = None
    candidates = [session, os.environ.get("JPY_SESSION_NAME")]
    for candidate in candidates:
        if candidate and str(candidate).endswith(".ipynb"):
            path = Path(candidate)
            if not path.is_absolute():
                path = Path.cwd() / path.name if not path.exists() else path
            if path.exists():
                return path
    return None


def selfcheck(path: str | Path | None = None) -> None:
    """Run this notebook's visible tests in a fresh kernel and print the table (save the notebook first).

    Design: it re-runs the *saved* file from the top in a fresh kernel rather than re-running the test
    cells in the live kernel. That is what the grader does, so a pass here means the notebook passes
    top to bottom, not only thanks to cells run out of order or since deleted; the price is "save first".
    The notebook is the one Jupyter started this kernel for (``__session__`` / ``JPY_SESSION_NAME``), or
    ``path``. Prints, returns nothing (so the cell shows only the table), and never raises: while grading
    (``NBGRADER_EXECUTION``), inside another self-check or a tool that runs lessons, or where the file
    cannot be found, it prints one line saying why it did nothing.
    """
    if os.environ.get(ACTIVE_FLAG):
        reason = os.environ[ACTIVE_FLAG]
        print(f"(self-check skipped: {'inside a self-check run' if reason == '1' else reason})")
        return None
    if os.environ.get("NBGRADER_EXECUTION"):
        print("(self-check: skipped while grading)")
        return None
    target = Path(path) if path is not None else _current_notebook()
    if target is None:
        print(
            "Self-check could not tell which notebook this is. Run it from a terminal instead:\n"
            "    python -m convcourse.selfcheck path/to/notebook.ipynb\n"
            "or pass the path: selfcheck('01_sliding_window.ipynb')"
        )
        return None
    print(f"Running the saved copy of {target.name} in a fresh kernel (save first: Ctrl+S) ...", flush=True)
    # In a child process: starting a kernel from this one would leave the kernel client's event-loop thread
    # running here, and the learner's own test cells would then refuse to grade ("a background thread").
    try:
        child = subprocess.run(
            [sys.executable, "-m", "convcourse.selfcheck", str(target)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    except subprocess.TimeoutExpired:
        print(f"Self-check could not run: it took longer than {CHILD_TIMEOUT} s")
        return None
    except OSError as error:  # a learner's cell must never crash on the self-check
        print(f"Self-check could not run: {error}")
        return None
    if child.returncode in (0, 1):
        print(child.stdout.rstrip())
    else:
        reason = (child.stderr.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
        print(f"Self-check could not run: {reason.removeprefix('error: ')}")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="convcourse selfcheck",
        description="Run a notebook's visible tests and print which pass; exit status 1 when any fails.",
    )
    parser.add_argument("notebook", type=Path, help="the .ipynb file to check (your own copy works)")
    parser.add_argument(
        "--timeout",
        type=int,
        default=None,
        help=f"seconds per cell (default: the grader's, {CELL_TIMEOUT} s, or the cell's own limit)",
    )
    args = parser.parse_args(argv)
    try:
        results = run_selfcheck(args.notebook, timeout=args.timeout)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(results))
    return 0 if results and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
