"""nbgrader's Execute preprocessor, made safe for learner code.

Differences from upstream:

- per-cell limits count the kernel's user-mode CPU time (the kernel process and its children), not the
  clock:
  ``Execute.timeout`` (or a cell's ``metadata.convcourse.timeout``) is the CPU seconds a cell may use,
  so a correct cell on a busy machine is never stopped, while an infinite loop costs only that
  exercise; a generous wall-clock backstop (:func:`wall_backstop`) stops a cell that sleeps or waits;
- the kernel never runs in the course folder: it gets a fresh work folder holding a bounded, link-free
  copy of the learner's submitted files, inside a bubblewrap sandbox where available
  (:mod:`.sandbox`), and its environment is allow-listed (no secrets);
- a kernel that dies (``os._exit``, a crash, the memory cap) never turns the cells after it into
  full marks: the dying cell and every later graded cell get an error output, so they score 0,
  while earlier results stand;
- after the last cell an integrity probe runs in the kernel; if learner code replaced the
  functions the checks rely on or installed hooks that rewrite or hide cells, every graded cell
  gets an error output saying so;
- in a process that runs a fork server (the parallel grading workers), kernels are forked from it
  (:mod:`.forkkernel`) instead of started from scratch; elsewhere they are ordinary kernels.
"""

from __future__ import annotations

import ast
import asyncio
import secrets
import shutil
import tempfile
from pathlib import Path
from queue import Empty
from time import monotonic

from jupyter_core.utils import ensure_async, run_sync
from nbclient.client import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute
from traitlets import Integer

from . import sandbox
from .errors import CELL_TIMEOUT_ERROR, KERNEL_DIED, KERNEL_UNRESPONSIVE
from .errors import PROBE_MARKER as MARKER
from .forkserver import ON_DEMAND

#: The wall-clock backstop of a cell is this many times its CPU limit, plus :data:`WALL_EXTRA_SECONDS`.
WALL_FACTOR = 5
WALL_EXTRA_SECONDS = 60
#: How often (seconds) the kernel's CPU time is read while a cell runs.
CPU_POLL_SECONDS = 0.25

#: The integrity probe: fresh code each time, not a function of the kernel's (a notebook could replace one). It prints
#: what :func:`convcourse.grading.probe.problems` finds, the on-demand modules the kernel imported, and the ids of
#: the check itself (that function, ``_guard.tampering``, their code and what tampering's closure holds): the
#: grader takes the first probe's, run before any cell, as the original, and any later difference is tampering.
PROBE_SOURCE = """\
import sys as _cc_sys
_cc_p = _cc_sys.modules["convcourse.grading.probe"]
_cc_g = _cc_p._guard
_cc_t = _cc_g.tampering
_cc_cells = [_cc_c.cell_contents for _cc_c in _cc_t.__closure__ or ()]
print({marker!r} + {{nonce!r}} + repr({{{{
    "problems": _cc_p.problems(),
    "imported": [_cc_n for _cc_n in {on_demand!r} if _cc_n in _cc_sys.modules],
    "anchor": [id(_cc_o) for _cc_o in (_cc_p, _cc_p.problems, _cc_p.problems.__code__, _cc_g, _cc_t, _cc_t.__code__,
               *_cc_cells, *(_cc_x for _cc_c in _cc_cells if type(_cc_c) is list for _cc_x in _cc_c))],
}}}}))
del _cc_sys, _cc_p, _cc_g, _cc_t, _cc_cells
""".format(marker=MARKER, on_demand=ON_DEMAND)


def _error(ename: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])


def cell_timeout(cell: NotebookNode, default: int | None) -> int | None:
    """The timeout for ``cell``: its ``metadata.convcourse.timeout`` if set, else ``default``."""
    value = cell.get("metadata", {}).get("convcourse", {}).get("timeout")
    return int(value) if value else default


def wall_backstop(cpu_limit: int | None, extra: int = WALL_EXTRA_SECONDS) -> int | None:
    """Wall-clock seconds after which a cell with a CPU limit of ``cpu_limit`` seconds is stopped anyway."""
    return None if not cpu_limit else WALL_FACTOR * cpu_limit + extra


def _own_cpu(process) -> float:
    """User-mode CPU seconds of ``process`` itself and of the children it reaped (0.0 once it is gone).

    User time is what the cell's own computation costs, whatever else runs on the machine; time the OS
    spends on the kernel's behalf (zeroing pages, reclaiming memory) grows with the machine's load, so
    it is left to the wall-clock backstop and the notebook's RLIMIT_CPU."""
    try:
        t = process.cpu_times()
    except Exception:  # noqa: BLE001 - psutil.NoSuchProcess: gone
        return 0.0
    return t.user + t.children_user


def _descendants_cpu(process) -> float:
    """User-mode CPU seconds of the live descendants of ``process`` (and of the children they reaped).

    Finding them reads every process's parent (/proc/*/stat), so it is only done once a cell has run
    for a poll interval: most cells end before, and a class's grading runs thousands of them."""
    try:
        family = process.children(recursive=True)
    except Exception:  # noqa: BLE001 - gone
        return 0.0
    return sum(_own_cpu(member) for member in family)


class _CellCPU:
    """CPU seconds a cell has used: the kernel's own since the cell started, plus its descendants' since the
    first poll (a process the cell starts is found within one poll interval, :data:`CPU_POLL_SECONDS`)."""

    def __init__(self, process) -> None:
        self.process = process
        self.own_start = _own_cpu(process) if process is not None else 0.0
        self.others_start: float | None = None

    def used(self) -> float:
        if self.process is None:
            return 0.0
        others = _descendants_cpu(self.process)
        if self.others_start is None:
            self.others_start = others
        return _own_cpu(self.process) - self.own_start + others - self.others_start


def _preload_for_the_next(imported) -> None:
    """Have this process's fork server import what the kernel just graded imported on demand
    (:data:`~.forkserver.ON_DEMAND`), so that the next learners' kernels start with it. The list comes from
    the learner's kernel: the server ignores any name outside ON_DEMAND, and a failure only costs speed."""
    from . import forkserver

    server = forkserver.active()
    if server is None or not isinstance(imported, list):
        return
    try:
        server.preload([str(name) for name in imported])
    except forkserver.ForkServerError:
        pass


class Placement:
    """Where one notebook's kernel runs: its sandbox (or none) and the host folder it starts in."""

    def __init__(self, source: Path | None) -> None:
        from . import forkserver

        self.owned: sandbox.Sandbox | None = None
        self.scratch: Path | None = None
        self.ipc_dir: Path | None = None
        self.skipped: list[str] = []
        server = forkserver.active()
        self.sandbox = server.sandbox if server is not None else None
        if self.sandbox is None and sandbox.enabled():
            self.sandbox = self.owned = sandbox.Sandbox("kernel")
        if self.sandbox is not None:
            sandbox.clear(self.sandbox.input_dir)
            if source is not None:
                self.skipped = sandbox.safe_copy(source, self.sandbox.input_dir, skip_notebooks=True)
            self.host_cwd = self.sandbox.root
        else:
            self.scratch = Path(tempfile.mkdtemp(prefix="convcourse-kernel-"))
            if source is not None:
                self.skipped = sandbox.safe_copy(source, self.scratch, skip_notebooks=True)
            self.host_cwd = self.scratch

    def configure(self, km) -> None:
        """The kernel talks to the grader over unix sockets (ZeroMQ's ``ipc`` transport): in the sandbox's ipc
        folder (no network inside), else in a private folder of its own, outside its working folder. No TCP
        port: kernels that parallel workers start at once cannot pick the same free port, which leaves the
        loser unable to start."""
        km.placement = self
        if self.sandbox is not None:
            folder = self.sandbox.ipc_dir
        else:
            if self.ipc_dir is None:
                self.ipc_dir = Path(tempfile.mkdtemp(prefix="convcourse-ipc-"))
            folder = self.ipc_dir
        km.transport = "ipc"
        km.connection_file = str(folder / f"k{secrets.token_hex(4)}.json")
        km.ip = km.connection_file[:-5] + "-ipc"

    def close(self) -> None:
        if self.owned is not None:
            self.owned.close()
        for folder in (self.scratch, self.ipc_dir):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)


class GuardedExecute(Execute):
    """Execute with CPU-time cell limits, sandboxed kernels, dead-kernel handling and an integrity probe."""

    _placement: Placement | None = None
    wall_extra_seconds = Integer(
        WALL_EXTRA_SECONDS,
        help="Seconds added to 5x a cell's CPU limit for its wall-clock backstop (a cell that sleeps or waits).",
    ).tag(config=True)

    def create_kernel_manager(self):
        from .forkkernel import ForkKernelManager

        self.kernel_manager_class = ForkKernelManager
        km = super().create_kernel_manager()
        if self._placement is not None:
            self._placement.configure(km)
        return km

    async def async_start_new_kernel(self, **kwargs):
        if self._placement is not None:
            kwargs["cwd"] = str(self._placement.host_cwd)
        return await super().async_start_new_kernel(**kwargs)

    start_new_kernel = run_sync(async_start_new_kernel)

    def _kernel_process(self):
        import psutil

        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        pid = getattr(process, "host_pid", None) or getattr(process, "pid", None)
        try:
            return psutil.Process(pid) if pid else None
        except Exception:  # noqa: BLE001 - gone
            return None

    async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive):
        """nbclient's loop, with the cell's CPU limit checked every :data:`CPU_POLL_SECONDS`."""
        cpu_limit = cell_timeout(cell, self._cpu_default) if cell is not None else self._cpu_default
        process = self._kernel_process()
        cpu = _CellCPU(process)
        deadline = None if timeout is None else monotonic() + timeout
        timed_out_reply = None
        while True:
            try:
                if timed_out_reply:
                    msg = timed_out_reply
                    msg["parent_header"] = {"msg_id": msg_id}
                else:
                    msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=CPU_POLL_SECONDS))
                if msg["parent_header"].get("msg_id") == msg_id:
                    try:
                        await asyncio.wait_for(task_poll_output_msg, self.iopub_timeout)
                    except (asyncio.TimeoutError, Empty):
                        if self.raise_on_iopub_timeout:
                            task_poll_kernel_alive.cancel()
                            raise CellTimeoutError.error_from_timeout_and_cell(
                                "Timeout waiting for IOPub output", self.iopub_timeout, cell
                            ) from None
                        self.log.warning("Timeout waiting for IOPub output")
                    task_poll_kernel_alive.cancel()
                    return msg
            except Empty:
                used = cpu.used()
                why = None
                if cpu_limit and used > cpu_limit:
                    why = (
                        f"this cell used more than its {cpu_limit} s of CPU time (the kernel was "
                        "interrupted; an endless loop?)"
                    )
                elif deadline is not None and monotonic() > deadline:
                    why = (
                        f"this cell ran for more than {timeout} s without finishing (it used {used:.0f} s "
                        "of CPU; waiting or sleeping?)"
                    )
                if why:
                    task_poll_kernel_alive.cancel()
                    await self._async_check_alive()
                    self.error_on_timeout = {
                        "ename": CELL_TIMEOUT_ERROR,
                        "evalue": why,
                        "traceback": [f"CellTimeoutError: {why}"],
                    }
                    timed_out_reply = await self._async_handle_timeout(cpu_limit or timeout or 0, cell)

    def preprocess(self, nb: NotebookNode, resources=None, km=None):
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._cpu_default = self.timeout
        self.timeout_func = lambda cell: wall_backstop(cell_timeout(cell, self._cpu_default), self.wall_extra_seconds)
        source = (self.resources.get("metadata") or {}).get("path")
        self._placement = Placement(Path(source) if source else None) if km is None else None
        try:
            return self._preprocess(resources)
        finally:
            if self._placement is not None:
                self._placement.close()
                self._placement = None

    def _preprocess(self, resources):
        stopped_at: int | None = None
        reason = ""
        self._nonce = secrets.token_hex(8)
        self._integrity: list[str] = []
        self._anchor: list[int] | None = None
        try:
            with self.setup_kernel():
                info_msg = self.wait_for_reply(self.kc.kernel_info())
                self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
                self._probe()  # before any cell: the check's own ids, as the kernel started
                for index, cell in enumerate(self.nb.cells):
                    test_cell = cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)
                    try:
                        if test_cell:  # what the test will see: checks, their names, no hooks
                            self._probe()
                        self.preprocess_cell(cell, resources, index)
                        if test_cell and not self._timed_out(cell):
                            self._probe()
                    except (DeadKernelError, CellTimeoutError, RuntimeError, TimeoutError) as error:
                        stopped_at, reason = index, f"{type(error).__name__}: {error}"
                        cell.outputs.append(
                            _error(
                                KERNEL_DIED,
                                "The Python kernel died or stopped answering while running this "
                                "cell (os._exit, a crash, or the memory/CPU cap). Cells after it were not run.",
                            )
                        )
                        break
                    if self._timed_out(cell) and not self._responsive(seconds=15):
                        stopped_at, reason = index, "kernel unresponsive after a timeout"
                        cell.outputs.append(
                            _error(
                                KERNEL_UNRESPONSIVE,
                                "This cell ran past its time limit and the kernel could not "
                                "be interrupted (does your code catch KeyboardInterrupt?). Cells after it were "
                                "not run.",
                            )
                        )
                        break
                if stopped_at is None:
                    self._probe()
                self._flag_integrity()
        except (DeadKernelError, RuntimeError, TimeoutError) as error:  # raised while shutting the kernel down
            if stopped_at is None:
                stopped_at, reason = len(self.nb.cells), f"{type(error).__name__}: {error}"
        if stopped_at is not None:
            self.log.warning("Kernel stopped at cell %s (%s); later graded cells score 0", stopped_at, reason)
            for cell in self.nb.cells[stopped_at + 1 :]:
                if cell.cell_type == "code" and utils.is_grade(cell):
                    cell.outputs = [
                        _error(
                            "NotRun",
                            f"Not run: the kernel died in an earlier cell "
                            f"(cell {stopped_at + 1}), so this test could not run.",
                        )
                    ]
        self.set_widgets_metadata()
        return self.nb, self.resources

    @staticmethod
    def _timed_out(cell: NotebookNode) -> bool:
        return any(
            o.get("output_type") == "error" and o.get("ename") == CELL_TIMEOUT_ERROR for o in cell.get("outputs", [])
        )

    async def _async_responsive(self, seconds: float) -> bool:
        msg_id = await ensure_async(self.kc.kernel_info())
        deadline = monotonic() + seconds
        while monotonic() < deadline:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=1))
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False

    _responsive = run_sync(_async_responsive)

    def _probe(self) -> None:
        """Run the integrity probe in the kernel; remember what it reports."""
        probe_cell = NotebookNode(
            cell_type="code",
            source=PROBE_SOURCE.format(nonce=self._nonce),
            metadata={},
            outputs=[],
            execution_count=None,
        )
        self.nb.cells.append(probe_cell)
        try:
            self.execute_cell(probe_cell, len(self.nb.cells) - 1, store_history=False)
        finally:
            self.nb.cells.pop()
        text = "".join(o.get("text", "") for o in probe_cell.outputs if o.get("output_type") == "stream")
        marker = MARKER + self._nonce
        problems: list[str]
        if text.count(MARKER) != 1 or marker not in text:
            problems = ["the integrity check could not run (its output was suppressed or altered)"]
        else:
            try:
                payload = ast.literal_eval(text.split(marker, 1)[1].splitlines()[0])
                problems = [str(p) for p in payload["problems"]]
                anchor = [int(i) for i in payload["anchor"]]
            except (ValueError, KeyError, IndexError, TypeError, SyntaxError, MemoryError, RecursionError):
                problems = ["the integrity check's report was altered"]
            else:
                if self._anchor is None:
                    self._anchor = anchor
                elif anchor != self._anchor:
                    problems.append(
                        "replaced the integrity check itself (convcourse.grading.probe or _guard.tampering)"
                    )
                _preload_for_the_next(payload.get("imported"))
        for problem in problems:
            if problem not in self._integrity:
                self._integrity.append(problem)

    def _flag_integrity(self) -> None:
        """Give every graded cell an error output when any probe found tampering."""
        if not self._integrity:
            return
        problems = self._integrity
        self.log.warning("Integrity problems: %s", problems)
        message = (
            "Grading integrity check failed: code in this notebook changed what the tests "
            "rely on (" + "; ".join(problems)[:600] + "). Every test scores 0; remove that code "
            "and resubmit."
        )
        for cell in self.nb.cells:
            if cell.cell_type == "code" and utils.is_grade(cell):
                cell.outputs.append(_error("IntegrityError", message))
