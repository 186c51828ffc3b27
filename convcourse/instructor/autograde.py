"""Parallel autograding that keeps nbgrader's gradebook as the single record.

Upstream ``nbgrader autograde`` grades one submission after another in one process. Here:

1. each submission is graded by nbgrader's own ``Autograde`` converter in a *private* course copy
   (``.convcourse/work/<lesson>/<learner>/``: the lesson's source, a copy of that learner's submission and
   a private sqlite gradebook seeded with the assignment copied from the course gradebook);
2. ``--workers`` long-lived worker processes (:mod:`.worker`) take submissions from a queue, so nbgrader
   and its imports load once per worker; each learner has a wall-clock ``--timeout`` after which the
   worker and its kernel are killed and the learner is reported (with ``--scheduler``, the same worker
   processes run on the workers of a Dask cluster instead: :mod:`.cluster`);
3. this process alone writes to the course gradebook (sqlite or PostgreSQL alike): it copies each
   learner's automatic scores and comments from the private gradebook exactly as nbgrader's
   ``SaveAutoGrades`` would have written them (manual scores are kept), then replaces
   ``autograded/<learner>/<lesson>/`` atomically (rename);
4. only then the manifest ``.convcourse/state.json`` records the submission's hash. A rerun regrades
   only submissions that changed, failed, timed out or whose kernel died, or all with ``--force``; the
   hash covers the submitted files, the lesson's source, its gradebook entry, the learner's extension
   and the course config. Killing grading at any point loses at most the learners in flight, and
   a rerun grades them again to the same result. Submitted files are only ever read.

Learner code is untrusted: kernels run sandboxed where bubblewrap works
(:mod:`convcourse.grading.sandbox`; the report and the worker logs say whether they did), and what
comes back from a learner's folders into ``autograded/`` is copied by
:func:`convcourse.grading.sandbox.safe_copy`: regular files only (links are never followed), safe names,
bounded in number and size.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import selectors
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from ..grading.config import LEARNER_TIMEOUT
from .course import CourseError, CourseRoot
from .status import Status

#: Statuses that a rerun keeps; anything else (error, timeout, kernel-died) is graded again.
DONE = {Status.OK}
#: A worker is replaced after this many learners (bounds any slow leak in a long class run).
JOBS_PER_WORKER = 100
DEFAULT_TIMEOUT = LEARNER_TIMEOUT


def _status(value: object) -> Status:
    """A worker's answer's status; anything unknown (a worker that answered nonsense) is an error."""
    try:
        return Status(value)
    except ValueError:
        return Status.ERROR


@dataclass
class Outcome:
    student: str
    status: Status
    reason: str = ""
    seconds: float = 0.0
    score: float | None = None
    max_score: float | None = None
    sandboxed: bool | None = None
    #: The Dask worker that graded it (``--scheduler``), else "".
    worker: str = ""


@dataclass
class GradeReport:
    lesson: str
    graded: list[Outcome] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: How the kernels ran: "sandboxed (...)" or "UNSANDBOXED: why" (:func:`sandbox.describe`).
    sandbox: str = ""
    #: ``--scheduler``: the Dask scheduler, and the workers not used with why.
    cluster: str = ""
    unused_workers: dict[str, str] = field(default_factory=dict)

    @property
    def problems(self) -> list[Outcome]:
        return [o for o in self.graded if o.status != Status.OK]

    @property
    def failed(self) -> list[Outcome]:
        """Learners with no new grade (error or timeout); kernel deaths are graded and reported."""
        return [o for o in self.graded if not o.status.graded]


# ---------------------------------------------------------------------------------------------- hashing


def submission_hash(folder: Path) -> str:
    """sha256 over the relative paths and bytes of every file under ``folder`` (sorted)."""
    digest = hashlib.sha256()
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts):
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _assignment_fingerprint(gb, lesson: str) -> str:
    assignment = gb.find_assignment(lesson)
    parts = [str(assignment.duedate)]
    for nb in sorted(assignment.notebooks, key=lambda n: n.name):
        parts.append(nb.name)
        parts += sorted(f"g:{c.name}:{c.max_score}:{c.cell_type}" for c in nb.grade_cells)
        parts += sorted(f"t:{c.name}:{c.max_score}" for c in nb.task_cells)
        parts += sorted(f"s:{c.name}" for c in nb.solution_cells)
        parts += sorted(f"c:{c.name}:{c.checksum}:{c.locked}" for c in nb.source_cells)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# ------------------------------------------------------------------------------------- state manifest


class State:
    """``.convcourse/state.json``: per lesson and learner, the hash graded and the outcome."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            self.data = {}

    def get(self, lesson: str, student: str) -> dict:
        return self.data.get(lesson, {}).get(student, {})

    def put(self, lesson: str, student: str, entry: dict) -> None:
        self.data.setdefault(lesson, {})[student] = entry
        self._save()

    def put_meta(self, lesson: str, key: str, value: str) -> None:
        """Per-lesson facts about the last run (kept under "_meta", never a learner's entry)."""
        self.data.setdefault("_meta", {}).setdefault(lesson, {})[key] = value
        self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)  # atomic: a kill leaves the old or the new manifest, never half


# ------------------------------------------------------------------------------------------- workers


class Worker:
    """One :mod:`.worker` process; ``run`` sends a job and waits for its answer up to ``timeout``."""

    def __init__(self, log: Path) -> None:
        self.log_path = log
        self.proc: subprocess.Popen | None = None
        self.jobs = 0

    def _start(self) -> None:
        from ..grading import ensure_tools_on_path

        ensure_tools_on_path()
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "convcourse.instructor.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=dict(os.environ),
        )
        self.jobs = 0

    def run(self, job: dict, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None or self.jobs >= JOBS_PER_WORKER:
            self.stop()
            self._start()
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.jobs += 1
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._died()
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.kill()
                return {
                    "status": Status.TIMEOUT,
                    "reason": f"grading took longer than {timeout:g} s; the kernel was "
                    "killed (raise --timeout if the lesson needs it)",
                }
        line = self.proc.stdout.readline()
        if not line:
            return self._died()
        return json.loads(line)

    def _died(self) -> dict:
        code = self.proc.wait() if self.proc else None
        self.proc = None
        return {
            "status": Status.ERROR,
            "reason": f"the grading worker process died (exit code {code}); see {self.log_path}",
        }

    def kill(self) -> None:
        """Kill the worker and every process it started (its Jupyter kernel runs in its own session)."""
        if self.proc is None:
            return
        try:
            import psutil

            children = psutil.Process(self.proc.pid).children(recursive=True)
        except Exception:  # noqa: BLE001 - psutil missing or the process already gone
            children = []
        for child in children:
            try:
                child.kill()
            except Exception:  # noqa: BLE001
                pass
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.kill()
        self.proc = None


# ---------------------------------------------------------------------------------- gradebook copies


def build_template(course: CourseRoot, lesson: str, path: Path) -> None:
    """A private sqlite gradebook holding only ``lesson``'s assignment, copied from the course gradebook."""
    from nbgrader.api import Gradebook

    if path.exists():
        path.unlink()
    with course.gradebook() as gb, Gradebook(f"sqlite:///{path}", course.course_id) as t:
        assignment = gb.find_assignment(lesson)
        t.update_or_create_assignment(lesson, duedate=assignment.duedate)
        for nb in assignment.notebooks:
            t.update_or_create_notebook(nb.name, lesson, kernelspec=nb.kernelspec)
            for c in nb.grade_cells:
                t.update_or_create_grade_cell(c.name, nb.name, lesson, max_score=c.max_score, cell_type=c.cell_type)
            for c in nb.solution_cells:
                t.update_or_create_solution_cell(c.name, nb.name, lesson)
            for c in nb.task_cells:
                t.update_or_create_task_cell(c.name, nb.name, lesson, max_score=c.max_score, cell_type=c.cell_type)
            for c in nb.source_cells:
                t.update_or_create_source_cell(
                    c.name,
                    nb.name,
                    lesson,
                    cell_type=c.cell_type,
                    locked=c.locked,
                    source=c.source,
                    checksum=c.checksum,
                )


def merge(gb, private: Path, course_id: str, lesson: str, student: str, timestamped: bool) -> tuple[float, float]:
    """Write one learner's automatic results from the private gradebook into the course gradebook ``gb``,
    as nbgrader's autograde would (manual scores and comments stay). Returns (score, max_score)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{private}", course_id) as src:
        sub = src.find_submission(lesson, student)
        timestamp = sub.timestamp
        notebooks = [
            (
                nb.name,
                nb.late_submission_penalty,
                [(g.name, g.auto_score, g.needs_manual_grade) for g in nb.grades],
                [(c.name, c.auto_comment) for c in nb.comments],
            )
            for nb in sub.notebooks
        ]
    gb.update_or_create_student(student)
    kwargs = {"timestamp": timestamp} if timestamped and timestamp is not None else {}
    gb.update_or_create_submission(lesson, student, **kwargs)
    for name, penalty, grades, comments in notebooks:
        notebook = gb.find_submission_notebook(name, lesson, student)
        notebook.late_submission_penalty = penalty
        for cell, auto_score, needs_manual in grades:
            grade = gb.find_grade(cell, name, lesson, student)
            grade.auto_score = auto_score
            grade.needs_manual_grade = bool(needs_manual or grade.manual_score is not None)
        for cell, auto_comment in comments:
            gb.find_comment(cell, name, lesson, student).auto_comment = auto_comment
    gb.db.commit()
    submission = gb.find_submission(lesson, student)
    return submission.score, submission.max_score


def install(source: Path, target: Path) -> None:
    """Replace ``target`` (a folder) by a copy of ``source`` so that a kill leaves the old or the new one."""
    from ..grading.sandbox import safe_copy

    incoming = target.parent / f".{target.name}.incoming"
    old = target.parent / f".{target.name}.old"
    target.parent.mkdir(parents=True, exist_ok=True)
    if incoming.exists():
        shutil.rmtree(incoming)
    safe_copy(source, incoming)
    if target.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(incoming, target)
    if old.exists():
        shutil.rmtree(old)


def _recover(autograded: Path, lesson: str) -> None:
    """Undo what a kill during :func:`install` left behind."""
    if not autograded.exists():
        return
    for student_dir in autograded.iterdir():
        incoming, old, target = (
            student_dir / f".{lesson}.incoming",
            student_dir / f".{lesson}.old",
            student_dir / lesson,
        )
        if old.exists() and not target.exists():
            os.replace(old, target)
        for leftover in (incoming, old):
            if leftover.exists():
                shutil.rmtree(leftover)


# ------------------------------------------------------------------------------------------ grading


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def submissions(course: CourseRoot, lesson: str) -> list[str]:
    submitted = course.root / "submitted"
    if not submitted.exists():
        return []
    return sorted(p.name for p in submitted.iterdir() if (p / lesson).is_dir())


@dataclass
class GradingPlan:
    """What a grading run will do: who is graded (``todo``), who is up to date, and what each learner's
    grade will be recorded with (the rerun key, nbgrader extension, whether a timestamp was submitted)."""

    lesson: str
    todo: list[str]
    up_to_date: list[str]
    keys: dict[str, str]
    extensions: dict[str, object]
    timestamps: dict[str, bool]
    state: State = field(repr=False)


def plan_grading(
    course: CourseRoot, lesson: str, students: list[str] | None = None, force: bool = False
) -> GradingPlan:
    """Who needs grading: every learner with a submission (or only ``students``) whose submission, lesson,
    gradebook entry, extension or course config changed since their last good grade (all with ``force``)."""
    course.check_lesson(lesson)
    if not course.has_assignment(lesson):
        print(f"{lesson} is not in the gradebook yet: running nbgrader generate_assignment {lesson}")
        course.nbgrader("generate_assignment", lesson, "--force", quiet=True)
    available = submissions(course, lesson)
    if students:
        missing = sorted(set(students) - set(available))
        if missing:
            raise CourseError(
                f"no submission of {lesson} for: {', '.join(missing)} "
                f"(expected {course.root / 'submitted' / missing[0] / lesson})"
            )
        available = [s for s in available if s in set(students)]
    config_hash = hashlib.sha256((course.root / "nbgrader_config.py").read_bytes()).hexdigest()
    with course.gradebook() as gb:
        base = "|".join(
            [_assignment_fingerprint(gb, lesson), submission_hash(course.root / "source" / lesson), config_hash]
        )
        extensions = {}
        for student in available:
            try:
                extensions[student] = gb.find_submission(lesson, student).extension
            except Exception:  # noqa: BLE001 - MissingEntry: not graded yet
                extensions[student] = None
    state = State(course.state_dir / "state.json")
    plan = GradingPlan(lesson, [], [], {}, extensions, {}, state)
    for student in available:
        folder = course.root / "submitted" / student / lesson
        plan.timestamps[student] = (folder / "timestamp.txt").exists()
        plan.keys[student] = hashlib.sha256(
            f"{base}|{submission_hash(folder)}|{extensions[student]}".encode()
        ).hexdigest()
        entry = state.get(lesson, student)
        if force or entry.get("key") != plan.keys[student] or entry.get("status") not in DONE:
            plan.todo.append(student)
        else:
            plan.up_to_date.append(student)
    return plan


def start_work(course: CourseRoot, lesson: str) -> tuple[Path, Path]:
    """A fresh ``.convcourse/work/<lesson>/`` (what a killed run left is removed, a half-done
    :func:`install` undone) and the lesson's template gradebook in it. Returns (work folder, template)."""
    work = course.state_dir / "work" / lesson
    if work.exists():
        shutil.rmtree(work)  # what a killed run left behind
    work.mkdir(parents=True)
    _recover(course.root / "autograded", lesson)
    template = work / "template.db"
    build_template(course, lesson, template)
    return work, template


def prepare_job(
    course: CourseRoot, plan: GradingPlan, work: Path, template: Path, student: str
) -> tuple[Path, list[str]]:
    """One learner's private course copy ``work/<student>/``: the lesson's source, a safe copy of the
    submission, the template gradebook (with the learner's extension). Returns (folder, files left out)."""
    from nbgrader.api import Gradebook

    from ..grading.sandbox import safe_copy

    lesson = plan.lesson
    job = work / student
    shutil.copytree(
        course.root / "source" / lesson,
        job / "source" / lesson,
        ignore=shutil.ignore_patterns(".ipynb_checkpoints"),
    )
    skipped = safe_copy(course.root / "submitted" / student / lesson, job / "submitted" / student / lesson)
    shutil.copy(template, job / "gradebook.db")
    if plan.extensions[student] is not None:
        with Gradebook(f"sqlite:///{job / 'gradebook.db'}", course.course_id) as private:
            private.update_or_create_student(student)
            private.add_submission(lesson, student, extension=plan.extensions[student])
    return job, skipped


def run_grading(
    course: CourseRoot, plan: GradingPlan, workers: list[Worker], timeout: float, *, own_workers: bool
) -> Iterator[tuple[str, Path, dict]]:
    """Grade ``plan.todo`` with ``workers`` (one thread each feeding its worker process from a queue), each
    learner in a private course copy; yields ``(student, private copy, worker's answer)`` as each finishes.
    ``own_workers``: stop each worker when the queue is empty (else the caller keeps them running)."""
    lesson = plan.lesson
    work, template = start_work(course, lesson)
    jobs: queue.Queue = queue.Queue()
    for student in plan.todo:
        jobs.put(student)
    results: queue.Queue = queue.Queue()

    def serve(worker: Worker) -> None:
        try:
            while True:
                try:
                    student = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    job, skipped = prepare_job(course, plan, work, template, student)
                    answer = worker.run(
                        {"course": str(course.root), "work": str(job), "lesson": lesson, "student": student}, timeout
                    )
                    if skipped:
                        answer["skipped"] = skipped
                except Exception as error:  # noqa: BLE001 - reported, never silently skipped
                    job, answer = work / student, {"status": Status.ERROR, "reason": f"{type(error).__name__}: {error}"}
                results.put((student, job, answer))
        finally:
            if own_workers:
                worker.stop()

    threads = [threading.Thread(target=serve, args=(worker,), daemon=True) for worker in workers]
    for thread in threads:
        thread.start()
    finished = False
    try:
        for _ in plan.todo:
            yield results.get()
        finished = True
    finally:
        for thread in threads:  # after a normal run, wait until every worker (and its fork server) has ended
            thread.join(timeout=None if finished else 1)
    shutil.rmtree(work, ignore_errors=True)


def record_grading(gb, course: CourseRoot, plan: GradingPlan, student: str, job: Path, answer: dict) -> Outcome:
    """One learner's result into the course: scores merged into the gradebook, ``autograded/`` replaced,
    then the manifest (a rerun's key) written; the private copy is removed. Never raises for a learner."""
    outcome = Outcome(
        student,
        _status(answer.get("status")),
        answer.get("reason", ""),
        answer.get("seconds", 0.0),
        sandboxed=answer.get("sandboxed"),
        worker=answer.get("worker", ""),
    )
    if answer.get("skipped"):
        outcome.reason = "; ".join(
            filter(None, [outcome.reason, "files not graded: " + ", ".join(answer["skipped"])[:400]])
        )
    lesson = plan.lesson
    if outcome.status.graded:
        try:
            outcome.score, outcome.max_score = merge(
                gb, job / "gradebook.db", course.course_id, lesson, student, plan.timestamps[student]
            )
            install(job / "autograded" / student / lesson, course.root / "autograded" / student / lesson)
        except Exception as error:  # noqa: BLE001
            gb.db.rollback()
            outcome.status, outcome.reason = Status.ERROR, f"could not record the grades: {error}"
    plan.state.put(
        lesson,
        student,
        {
            "key": plan.keys[student],
            "status": outcome.status,
            "reason": outcome.reason,
            "score": outcome.score,
            "max_score": outcome.max_score,
            "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    shutil.rmtree(job, ignore_errors=True)
    return outcome


def autograde(
    course: CourseRoot,
    lesson: str,
    students: list[str] | None = None,
    workers: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    force: bool = False,
    progress: bool = True,
    pool: list[Worker] | None = None,
    scheduler: str | None = None,
) -> GradeReport:
    """Autograde ``lesson`` for every learner with a submission (or only ``students``), in parallel:
    :func:`plan_grading`, then :func:`run_grading`, each result recorded by :func:`record_grading` as it comes.

    ``pool``: running :class:`Worker` objects to grade with instead of starting ``workers`` new ones; they
    are left running for the caller's next call (which saves each worker's start and fork server when
    one process grades many lessons, as the test suite does) and the caller stops them.

    ``scheduler``: a Dask scheduler's address (``tcp://HOST:8786``); the learners are graded on its workers
    (:mod:`.cluster`) instead of local worker processes, and recorded here as ever.
    """
    import warnings

    from sqlalchemy.exc import SAWarning
    from tqdm import tqdm

    from ..grading import ensure_tools_on_path, sandbox

    ensure_tools_on_path()
    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own add_submission triggers these
    started = time.monotonic()
    plan = plan_grading(course, lesson, students, force)
    report = GradeReport(lesson, up_to_date=list(plan.up_to_date), sandbox=sandbox.describe())
    if not plan.todo:
        report.seconds = time.monotonic() - started
        return report
    cluster = None
    if scheduler:
        from .cluster import DaskGrading

        cluster = DaskGrading(scheduler, say=lambda line: tqdm.write(line, file=sys.stderr))
        try:
            report.sandbox = "; ".join(cluster.connect())
        except BaseException:
            cluster.close()
            raise
        report.cluster = f"Dask scheduler {scheduler}"
        label = f"Dask, {len(cluster.usable)} workers"
        results = cluster.run(course, plan, timeout)
    else:
        count = max(1, min(len(pool) if pool else workers or default_workers(), len(plan.todo)))
        logs = course.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        chosen = pool[:count] if pool else [Worker(logs / f"worker-{index}.log") for index in range(count)]
        label = f"{count} workers"
        results = run_grading(course, plan, chosen, timeout, own_workers=not pool)
    bar = tqdm(
        total=len(plan.todo),
        desc=f"autograde {lesson} ({label})",
        unit="nb",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    recorded: set[str] = set()
    try:
        with course.gradebook() as gb:
            for student, job, answer in results:
                if student in recorded:  # never twice, whatever a cluster sends back
                    continue
                recorded.add(student)
                outcome = record_grading(gb, course, plan, student, job, answer)
                report.graded.append(outcome)
                if outcome.status != Status.OK:
                    bar.write(f"{student}: {outcome.status}: {outcome.reason}")
                bar.update(1)
    finally:
        results.close()  # an interrupted run stops feeding the workers and leaves their threads
        bar.close()
        if cluster is not None:
            report.unused_workers = dict(cluster.unusable)
            cluster.close()
    unsandboxed = [o.student for o in report.graded if o.sandboxed is False]
    if unsandboxed and not report.sandbox.startswith("UNSANDBOXED"):
        report.sandbox = f"UNSANDBOXED for {len(unsandboxed)} learner(s) (see the worker logs); " + report.sandbox
    plan.state.put_meta(lesson, "sandbox", f"{time.strftime('%Y-%m-%d %H:%M')}: {report.sandbox}")
    report.seconds = time.monotonic() - started
    return report


def sandbox_note(course: CourseRoot, lesson: str) -> str:
    """One line for ``convcourse summary``: whether the last grading run of ``lesson`` was sandboxed."""
    note = State(course.state_dir / "state.json").data.get("_meta", {}).get(lesson, {}).get("sandbox")
    return f"grading kernels (last run {note})" if note else "grading kernels: no grading run recorded"


def format_report(report: GradeReport) -> str:
    graded = len(report.graded)
    lines = [
        f"{report.lesson}: graded {graded} submission(s) in {report.seconds:.1f} s"
        + (f" ({60 * graded / report.seconds:.1f} notebooks/minute)" if graded and report.seconds else "")
        + (f"; {len(report.up_to_date)} unchanged since the last run" if report.up_to_date else "")
    ]
    if report.cluster:
        lines.append(f"graded on the {report.cluster}")
        for address, why in sorted(report.unused_workers.items()):
            lines.append(f"  Dask worker {address} NOT used: its environment differs: {why}")
    if report.sandbox:
        lines.append(f"grading kernels: {report.sandbox}")
    if report.problems:
        lines.append("learners needing attention:")
        for o in sorted(report.problems, key=lambda o: o.student):
            lines.append(f"  {o.student}: {o.status.label}: {o.reason}")
        if report.failed:
            lines.append("fix or leave these, then rerun the same command: only they are graded again.")
    return "\n".join(lines)


def report_json(report: GradeReport) -> str:
    return json.dumps(
        {
            "lesson": report.lesson,
            "seconds": report.seconds,
            "up_to_date": report.up_to_date,
            "sandbox": report.sandbox,
            "cluster": report.cluster,
            "unused_workers": report.unused_workers,
            "graded": [asdict(o) for o in report.graded],
        },
        indent=1,
    )
