"""Imported first in every grading kernel (nbgrader passes ``--IPKernelApp.exec_lines``).

It caps the kernel's memory and CPU time, so that a memory bomb is a MemoryError in the cell that
caused it and a runaway process is stopped, and it imports the checks so that the originals of
torch's and Python's functions are recorded before any learner code runs.

A kernel forked by the fork server (:mod:`convcourse.grading.forkserver`) runs this module the
same way: the server has torch and the checks imported already (no learner code ever runs in it),
so the imports below are cached, while the caps, the snapshot and the seal happen here, in the
learner's own kernel, exactly as in a kernel started from scratch.
"""

from __future__ import annotations

import os

from convcourse.grading import limits

# The caps (limits.memory_mb(), limits.cpu_seconds(): $CONVCOURSE_KERNEL_MEMORY_MB, $CONVCOURSE_KERNEL_CPU_SECONDS).
limits.apply()

os.environ.setdefault("MPLBACKEND", "Agg")


def _work_folder() -> None:
    """In the sandbox: copy the learner's submitted files (read-only input) into the work folder."""
    import shutil

    source = os.environ.get("CONVCOURSE_KERNEL_INPUT")
    if source and os.path.isdir(source) and os.getcwd() != source:
        shutil.copytree(source, os.getcwd(), dirs_exist_ok=True, symlinks=True)
        os.makedirs(os.environ.get("MPLCONFIGDIR") or "/tmp/matplotlib", exist_ok=True)


_work_folder()
del _work_folder

import torch  # noqa: E402

import convcourse.checks  # noqa: E402,F401  (records the originals now)
from convcourse.checks import _guard  # noqa: E402
from convcourse.grading import probe  # noqa: E402

torch.set_num_threads(limits.threads())


def _store_errors_plainly() -> None:
    """IPython 9 formats each error a cell raises twice: once for the notebook's output, and once more, the
    same costly way, for ``history_manager.exceptions``, which only the ``%notebook`` magic reads. Grading
    never does, so the kernel stores the standard library's formatting there (the output is unchanged)."""
    import traceback

    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, "_format_exception_for_storage"):
        return

    def plain(exception, filename=None, running_compiled_code=False):
        lines = traceback.format_exception(type(exception), exception, exception.__traceback__)
        return {"ename": type(exception).__name__, "evalue": str(exception), "traceback": lines}

    shell._format_exception_for_storage = plain


_store_errors_plainly()
del _store_errors_plainly

probe.snapshot()
_guard.seal()  # imports every exercise, then records the grading machinery itself
