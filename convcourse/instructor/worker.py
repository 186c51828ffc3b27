"""A grading worker: a long-lived process that autogrades one submission per request.

The parent (:mod:`convcourse.instructor.autograde`) prepares a private course copy per submission
(``source/<lesson>``, ``submitted/<learner>/<lesson>``, a private sqlite gradebook seeded with the
assignment) and writes one JSON request per line to the worker's stdin; the worker runs nbgrader's own
``Autograde`` converter on it, in-process (nbgrader and its imports load once per worker, not once per
learner), and answers one JSON line: ``{"status": ..., "reason": ...}``, the status one of
:class:`~convcourse.instructor.status.Status`.
Everything else the worker or nbgrader prints goes to stderr (the worker's log file).

Each worker starts a fork server (:mod:`convcourse.grading.forkserver`) once: every learner's kernel
is a fresh process forked from it, with torch and the checks already imported, instead of a Python
started from scratch. ``CONVCOURSE_FORK_KERNELS=0``, or a server that cannot start, means ordinary
kernels (the log says so once). Kernels run sandboxed where bubblewrap works
(:mod:`convcourse.grading.sandbox`): the log's first lines and every reply say whether they were.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import time
from pathlib import Path

from convcourse.grading.errors import KERNEL_ERRORS
from convcourse.instructor.status import Status


class _Collect(logging.Handler):
    """nbgrader's warnings and errors, formatted when logged: their arguments may be gradebook rows (a late
    submission's warning names it), which cannot be read once nbgrader has closed the gradebook."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))


_CONFIGS: dict[str, object] = {}


def _course_config(course: str):
    if course not in _CONFIGS:
        from traitlets.config.loader import PyFileConfigLoader

        _CONFIGS[course] = PyFileConfigLoader("nbgrader_config.py", path=course).load_config()
    return copy.deepcopy(_CONFIGS[course])


def unreadable(path: Path) -> str | None:
    """Why ``path`` is not a notebook nbgrader can read, or None."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - any reason is reported to the instructor
        return f"{path.name} is not a readable notebook ({type(error).__name__}: {str(error)[:300]})"
    if not isinstance(nb.get("cells"), list):
        return f"{path.name} is not a readable notebook (no cells)"
    return None


def kernel_problem(notebook: Path) -> str | None:
    """The first kernel death recorded in an autograded notebook, as a sentence, or None."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    for index, cell in enumerate(nb.cells, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and output.get("ename") in KERNEL_ERRORS:
                grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                where = f"cell {index}" + (f" ({grade_id})" if grade_id else "")
                return f"{notebook.name}: {KERNEL_ERRORS[output['ename']]} in {where}; later tests scored 0"
    return None


def grade(job: dict) -> dict:
    """Autograde one learner's submission in the private course copy ``job['work']``."""
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory

    work, lesson, student = Path(job["work"]), job["lesson"], job["student"]
    submitted = work / "submitted" / student / lesson
    problems = [p for p in (unreadable(nb) for nb in sorted(submitted.glob("*.ipynb"))) if p]
    if problems:
        return {"status": Status.ERROR, "reason": "; ".join(problems)}

    config = _course_config(job["course"])
    config.CourseDirectory.root = str(work)
    config.CourseDirectory.db_url = f"sqlite:///{work / 'gradebook.db'}"
    config.CourseDirectory.assignment_id = lesson
    config.CourseDirectory.student_id = student
    log = logging.getLogger(f"convcourse.worker.{os.getpid()}")
    log.setLevel(logging.INFO)
    collect = _Collect()
    log.addHandler(collect)
    try:
        coursedir = CourseDirectory(config=config)
        converter = Autograde(coursedir=coursedir, config=config)
        converter.log = log
        converter.start()
    except Exception as error:  # noqa: BLE001 - nbgrader raises NbGraderException after logging why
        messages = [message for level, message in collect.records if level >= logging.ERROR]
        specific = [m for m in messages if not m.startswith(("There was an error processing", "Please see"))]
        reason = specific[-1].strip().splitlines()[-1] if specific else f"{type(error).__name__}: {error}"
        return {"status": Status.ERROR, "reason": reason[:500]}
    finally:
        log.removeHandler(collect)
    notes = [message for _, message in collect.records if "No submitted file" in message]
    autograded = work / "autograded" / student / lesson
    died = [p for p in (kernel_problem(nb) for nb in sorted(autograded.glob("*.ipynb"))) if p]
    if died:
        return {"status": Status.KERNEL_DIED, "reason": "; ".join(died)}
    return {"status": Status.OK, "reason": "; ".join(notes)}


def _sandboxed() -> bool:
    from convcourse.grading import forkserver, sandbox

    server = forkserver.active()
    return server.sandbox is not None if server is not None else sandbox.enabled()


def main() -> int:
    from convcourse.grading import ensure_tools_on_path

    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything nbgrader or a library prints goes to the log, never into the replies
    sys.stdout = sys.stderr
    ensure_tools_on_path()
    os.environ.setdefault("MPLBACKEND", "Agg")
    from convcourse.grading import forkserver, sandbox

    print(f"grading kernels: {sandbox.describe()}", file=sys.stderr, flush=True)
    forkserver.start()  # imports torch etc. in the background while nbgrader loads here
    import nbgrader.converters  # noqa: F401  (load once, before the first request)

    server = forkserver.active()
    if server is not None:
        ready = server.ready or {}
        print(
            f"fork server: ready (pid {ready.get('pid')}, {ready.get('modules')} modules imported in "
            f"{ready.get('cpu_seconds')} s CPU); grading kernels are forked from it",
            file=sys.stderr,
            flush=True,
        )

    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        start = time.monotonic()
        try:
            result = grade(job)
        except Exception as error:  # noqa: BLE001 - one learner's failure must not stop the worker
            result = {"status": Status.ERROR, "reason": f"grading crashed: {type(error).__name__}: {error}"[:500]}
        _sweep(forkserver.active())
        result["sandboxed"] = _sandboxed()
        result["seconds"] = round(time.monotonic() - start, 3)
        replies.write(json.dumps(result) + "\n")
        replies.flush()
    forkserver.stop()
    return 0


def _sweep(server) -> None:
    """Kill any forked kernel still running after its learner was graded (none, normally)."""
    if server is None:
        return
    try:
        killed = server.sweep()
    except Exception as error:  # noqa: BLE001 - the next request finds the server gone and falls back
        print(f"fork server: {error}", file=sys.stderr, flush=True)
        return
    if killed:
        print(f"fork server: killed leftover kernel(s) {killed}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
