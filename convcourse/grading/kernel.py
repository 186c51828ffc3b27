"""Imported first in every grading kernel (nbgrader passes ``--IPKernelApp.exec_lines``).

It caps the kernel's memory and CPU time, so that a memory bomb is a MemoryError in the cell that
caused it and a runaway process is stopped, and it imports the checks so that the originals of
torch's and Python's functions are recorded before any learner code runs.
"""

from __future__ import annotations

import os
import resource

#: Address-space cap of a grading kernel in MiB ($CONVCOURSE_KERNEL_MEMORY_MB). torch needs about 1 GiB.
MEMORY_MB = int(os.environ.get("CONVCOURSE_KERNEL_MEMORY_MB", "4096"))
#: CPU-seconds cap for a whole notebook ($CONVCOURSE_KERNEL_CPU_SECONDS); per-cell timeouts act first.
CPU_SECONDS = int(os.environ.get("CONVCOURSE_KERNEL_CPU_SECONDS", "1200"))


def _cap(limit: int, value: int) -> None:
    soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(limit, (value, hard))


if MEMORY_MB > 0:
    _cap(resource.RLIMIT_AS, MEMORY_MB * 2**20)
if CPU_SECONDS > 0:
    _cap(resource.RLIMIT_CPU, CPU_SECONDS)

os.environ.setdefault("MPLBACKEND", "Agg")

import convcourse.checks  # noqa: E402,F401  (records the originals now)
from convcourse.checks import _guard  # noqa: E402
from convcourse.grading import probe  # noqa: E402

probe.snapshot()
_guard.seal()  # imports every exercise, then records the grading machinery itself
