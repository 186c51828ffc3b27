"""nbgrader's Execute preprocessor, made safe for learner code.

Differences from upstream:

- per-cell timeouts: ``metadata.convcourse.timeout`` on a cell overrides the default, so a
  training cell may take minutes while an infinite loop elsewhere costs only that exercise;
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

import json
import secrets
from queue import Empty
from time import monotonic

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from jupyter_core.utils import ensure_async, run_sync
from nbclient.client import NotebookClient
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute

from .probe import MARKER

PROBE_SOURCE = ("import convcourse.grading.probe as _convcourse_probe\n_convcourse_probe.report({nonce!r})\n"
                "del _convcourse_probe")


def _error(ename: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])


def cell_timeout(cell: NotebookNode, default: int | None) -> int | None:
    """The timeout for ``cell``: its ``metadata.convcourse.timeout`` if set, else ``default``."""
    value = cell.get("metadata", {}).get("convcourse", {}).get("timeout")
    return int(value) if value else default


class GuardedExecute(Execute):
    """Execute with per-cell timeouts, dead-kernel handling and an integrity probe."""

    def create_kernel_manager(self):
        from . import forkserver

        if forkserver.active() is not None:
            from .forkkernel import ForkKernelManager

            self.kernel_manager_class = ForkKernelManager
        return super().create_kernel_manager()

    def preprocess(self, nb: NotebookNode, resources=None, km=None):
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        default_timeout = self.timeout
        self.timeout_func = lambda cell: cell_timeout(cell, default_timeout)
        stopped_at: int | None = None
        reason = ""
        self._nonce = secrets.token_hex(8)
        self._integrity: list[str] = []
        try:
            with self.setup_kernel():
                info_msg = self.wait_for_reply(self.kc.kernel_info())
                self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
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
                        cell.outputs.append(_error(
                            "KernelDied", "The Python kernel died or stopped answering while running this "
                            "cell (os._exit, a crash, or the memory/CPU cap). Cells after it were not run."))
                        break
                    if self._timed_out(cell) and not self._responsive(seconds=15):
                        stopped_at, reason = index, "kernel unresponsive after a timeout"
                        cell.outputs.append(_error(
                            "KernelUnresponsive", "This cell ran past its time limit and the kernel could not "
                            "be interrupted (does your code catch KeyboardInterrupt?). Cells after it were "
                            "not run."))
                        break
                if stopped_at is None:
                    self._probe()
                self._flag_integrity()
        except (DeadKernelError, RuntimeError, TimeoutError) as error:  # raised while shutting the kernel down
            if stopped_at is None:
                stopped_at, reason = len(self.nb.cells), f"{type(error).__name__}: {error}"
        if stopped_at is not None:
            self.log.warning("Kernel stopped at cell %s (%s); later graded cells score 0", stopped_at, reason)
            for cell in self.nb.cells[stopped_at + 1:]:
                if cell.cell_type == "code" and utils.is_grade(cell):
                    cell.outputs = [_error("NotRun", f"Not run: the kernel died in an earlier cell "
                                           f"(cell {stopped_at + 1}), so this test could not run.")]
        self.set_widgets_metadata()
        return self.nb, self.resources

    @staticmethod
    def _timed_out(cell: NotebookNode) -> bool:
        return any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError"
                   for o in cell.get("outputs", []))

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
        probe_cell = NotebookNode(cell_type="code", source=PROBE_SOURCE.format(nonce=self._nonce), metadata={},
                                  outputs=[], execution_count=None)
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
                payload = json.loads(text.split(marker, 1)[1].splitlines()[0])
                problems = [str(p) for p in payload["problems"]]
            except (ValueError, KeyError, IndexError, TypeError):
                problems = ["the integrity check's report was altered"]
        for problem in problems:
            if problem not in self._integrity:
                self._integrity.append(problem)

    def _flag_integrity(self) -> None:
        """Give every graded cell an error output when any probe found tampering."""
        if not self._integrity:
            return
        problems = self._integrity
        self.log.warning("Integrity problems: %s", problems)
        message = ("Grading integrity check failed: code in this notebook changed what the tests "
                   "rely on (" + "; ".join(problems)[:600] + "). Every test scores 0; remove that code "
                   "and resubmit.")
        for cell in self.nb.cells:
            if cell.cell_type == "code" and utils.is_grade(cell):
                cell.outputs.append(_error("IntegrityError", message))
