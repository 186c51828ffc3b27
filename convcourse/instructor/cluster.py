"""Grading fanned out on a Dask distributed cluster (``convcourse grade LESSON --scheduler tcp://HOST:8786``).

The instructor's machine (the *client*) does what it does for local grading, except that the learners'
jobs run on Dask workers:

1. every worker is probed first (:func:`.cluster_probe.fingerprint`: Python, the grading packages, the
   ``convcourse`` code, the course data); a worker that differs from the client is reported with its
   address and never sent a learner, and so is a worker that joins later with a different environment;
2. each learner's private course copy (:func:`.autograde.prepare_job`) and the course's
   ``nbgrader_config.py`` travel to the worker **as bytes** (a compressed tar, tens of kB): the workers
   need no shared file system and never see the course folder, the gradebook or other learners;
3. on the worker, :func:`grade_on_worker` unpacks the job into the worker's scratch folder and hands it
   to a long-lived :class:`.autograde.Worker` kept per Dask worker thread, the same grading process
   as local grading, whose fork server stays warm from one learner to the next (timeout and sandbox as
   locally); the private gradebook and the autograded folder come back as bytes;
4. the client's :func:`.autograde.record_grading` writes the gradebook and ``autograded/``: still one writer.

At most as many learners as the usable workers have threads (plus one each) are in flight, so workers
that join during the run get work. When a worker dies, Dask sends its learners to another one; a
learner is recorded once, from the one result its task returns. A learner whose task cannot be finished
(the workers grading it kept dying, or no usable worker is left) is reported as not graded and the
next run grades it again.
"""

from __future__ import annotations

import io
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

from .autograde import GradingPlan, Worker, prepare_job, start_work
from .course import CourseError, CourseRoot
from .status import Status

#: Seconds to wait for the scheduler to answer and for a first worker to connect.
CONNECT_SECONDS = 30
#: Seconds a run waits for a usable worker when none is left, before reporting its learners.
NO_WORKER_SECONDS = 120
#: Seconds between two looks at the scheduler's worker list and the learners in flight.
POLL_SECONDS = 0.2


# ------------------------------------------------------------------------------- on the Dask worker

_IDLE: list[Worker] = []
_LOCK = threading.Lock()


def _pack(folder: Path, names: list[str]) -> bytes:
    """A gzip'd tar of ``names`` (paths relative to ``folder``): regular files and folders only."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        for name in names:
            archive.add(folder / name, arcname=name, filter=lambda m: m if m.isfile() or m.isdir() else None)
    return buffer.getvalue()


def _unpack(data: bytes, folder: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(folder, filter="data")  # no links, devices, absolute paths or '..'


def grade_on_worker(job: bytes, config: bytes, lesson: str, student: str, timeout: float) -> dict:
    """Run on a Dask worker: grade one learner's packed job with this process's grading worker; returns
    the worker's answer plus the worker's address and, when graded, the results packed as ``files``."""
    from distributed import get_worker

    here = get_worker()
    logs = Path(tempfile.gettempdir()) / "convcourse-dask-logs"
    logs.mkdir(exist_ok=True)
    with _LOCK:
        grader = _IDLE.pop() if _IDLE else Worker(logs / f"grader-{uuid.uuid4().hex[:8]}.log")
    scratch = Path(tempfile.mkdtemp(prefix=f"convcourse-{student}-", dir=here.local_directory))
    try:
        (scratch / "course").mkdir()
        (scratch / "course" / "nbgrader_config.py").write_bytes(config)
        _unpack(job, scratch / "job")
        answer = grader.run(
            {"course": str(scratch / "course"), "work": str(scratch / "job"), "lesson": lesson, "student": student},
            timeout,
        )
        answer["worker"] = here.address
        if answer.get("status") in (Status.OK, Status.KERNEL_DIED):  # graded: the results go back
            answer["files"] = _pack(scratch / "job", ["gradebook.db", f"autograded/{student}/{lesson}"])
        if "see " in answer.get("reason", ""):  # it names the grading log, which is on the worker's machine
            answer["reason"] += f" (on Dask worker {here.address})"
        return answer
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with _LOCK:
            _IDLE.append(grader)


# ------------------------------------------------------------------------------- on the client


def _knock(address: str) -> None:
    """Raise OSError or ValueError unless a ``tcp://`` scheduler address takes connections (before a Dask
    client is made: one that cannot connect leaves noise on stderr when Python exits)."""
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme == "tcp":
        socket.create_connection(parse_host_port(location), timeout=CONNECT_SECONDS).close()


def _problem(student: str, job: Path, reason: str) -> tuple[str, Path, dict]:
    return student, job, {"status": Status.ERROR, "reason": reason}


class DaskGrading:
    """A connection to a Dask scheduler for one grading run; :meth:`run` yields results as they come."""

    def __init__(self, scheduler: str, say: Callable[[str], None] = print) -> None:
        try:
            from distributed import Client
        except ImportError as error:
            raise CourseError(f"--scheduler needs Dask's distributed package ({error}); run make env") from error
        self.scheduler, self.say = scheduler, say
        try:
            _knock(scheduler)
            self.client = Client(scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
        except (OSError, ValueError, TypeError) as error:  # no answer in time, or not an address
            raise CourseError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from error
        self.usable: dict[str, dict[str, str]] = {}  # address -> its fingerprint
        self.unusable: dict[str, str] = {}  # address -> why
        from . import cluster_probe

        self.here = cluster_probe.fingerprint()

    def close(self) -> None:
        self.client.close()

    # ---- workers

    def _alive(self) -> dict[str, dict]:
        return self.client.scheduler_info(n_workers=-1)["workers"]

    def check_workers(self, alive: dict[str, dict]) -> None:
        """Probe every worker of ``alive`` not probed yet; report those that cannot grade (address and why)."""
        import cloudpickle

        from . import cluster_probe

        new = sorted(set(alive) - set(self.usable) - set(self.unusable))
        if not new:
            return
        cloudpickle.register_pickle_by_value(cluster_probe)  # answered by workers without convcourse too
        try:
            answers = self.client.run(cluster_probe.fingerprint, workers=new, on_error="return")
        finally:
            cloudpickle.unregister_pickle_by_value(cluster_probe)
        for address in new:
            facts = answers.get(address)
            if facts is None:  # left between the list and the probe
                continue
            if isinstance(facts, BaseException):
                why = [f"the environment probe failed ({type(facts).__name__}: {facts})"]
            else:
                why = cluster_probe.differences(facts, self.here)
            if why:
                self.unusable[address] = "; ".join(why)
                host = f" ({facts['host']}, {facts['executable']})" if isinstance(facts, dict) else ""
                self.say(f"Dask worker {address}{host} NOT used, its environment differs: {self.unusable[address]}")
            else:
                self.usable[address] = facts

    def connect(self) -> list[str]:
        """Wait for a first worker, probe them all; the usable workers' sandbox lines (one per kind)."""
        deadline = time.monotonic() + CONNECT_SECONDS
        while not self._alive() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        self.check_workers(self._alive())
        if not self.usable:
            found = f"{len(self.unusable)} worker(s), none usable (above)" if self.unusable else "no worker"
            raise CourseError(
                f"the Dask scheduler at {self.scheduler} has {found}: start workers in the course environment "
                f"with `dask worker {self.scheduler}` (README, 'Grading on a Dask cluster')"
            )
        return sorted({facts.get("sandbox", "") for facts in self.usable.values()})

    # ---- jobs

    def run(self, course: CourseRoot, plan: GradingPlan, timeout: float) -> Iterator[tuple[str, Path, dict]]:
        """Grade ``plan.todo`` on the usable workers; yields ``(student, private copy, answer)`` like
        :func:`.autograde.run_grading`, the private copy holding the worker's results."""
        from distributed import Future

        lesson = plan.lesson
        work, template = start_work(course, lesson)
        config = (course.root / "nbgrader_config.py").read_bytes()
        todo = list(reversed(plan.todo))
        pending: dict[Future, tuple[str, set[str]]] = {}
        skipped: dict[str, list[str]] = {}
        nobody_since: float | None = None

        def submit(student: str, where: set[str]) -> None:
            """Send ``student`` to one of the workers ``where`` (never empty: no restriction means any worker)."""
            job = work / student
            if not job.exists():
                skipped[student] = prepare_job(course, plan, work, template, student)[1]
            packed = _pack(job, ["source", "submitted", "gradebook.db"])
            future = self.client.submit(
                grade_on_worker,
                packed,
                config,
                lesson,
                student,
                timeout,
                key=f"convcourse-grade-{lesson}-{student}-{uuid.uuid4().hex}",
                workers=sorted(where),
                allow_other_workers=False,
                pure=False,
            )
            pending[future] = (student, where)

        try:
            while todo or pending:
                workers = self._alive()
                self.check_workers(workers)
                alive = set(workers)
                usable = set(self.usable) & alive
                for future, (student, where) in list(pending.items()):
                    if not future.done() and usable and not where & alive:  # its workers are all gone
                        future.cancel()
                        del pending[future]
                        submit(student, usable)
                slots = sum(workers[address]["nthreads"] + 1 for address in usable)
                while todo and len(pending) < slots:
                    student = todo.pop()
                    try:
                        submit(student, usable)
                    except Exception as error:  # noqa: BLE001 - reported, never silently skipped
                        yield _problem(student, work / student, f"{type(error).__name__}: {error}")
                nobody_since = None if usable else (nobody_since or time.monotonic())
                if nobody_since is not None and time.monotonic() - nobody_since > NO_WORKER_SECONDS:
                    reason = f"no usable Dask worker left at {self.scheduler} for {NO_WORKER_SECONDS} s"
                    for student, _ in pending.values():
                        yield _problem(student, work / student, reason)
                    for student in reversed(todo):
                        yield _problem(student, work / student, reason)
                    self.client.cancel(list(pending))
                    pending.clear()
                    todo.clear()
                    break
                done = [future for future in pending if future.done()]
                if not done:
                    time.sleep(POLL_SECONDS)
                for future in done:
                    student, _ = pending.pop(future)
                    yield student, work / student, self._answer(future, work / student, skipped.get(student))
        finally:
            if pending:
                self.client.cancel(list(pending))
        shutil.rmtree(work, ignore_errors=True)

    def _answer(self, future, job: Path, skipped: list[str] | None) -> dict:
        """A finished task's answer, its results unpacked into ``job``; a failed task is a reported error."""
        try:
            answer = future.result()
            files = answer.pop("files", None)
            if files is not None:
                (job / "gradebook.db").unlink()
                _unpack(files, job)
        except Exception as error:  # noqa: BLE001 - e.g. KilledWorker: the workers grading it kept dying
            answer = {"status": Status.ERROR, "reason": f"the Dask task failed ({type(error).__name__}: {error})"}
        if skipped:
            answer["skipped"] = skipped
        return answer
