"""Resource caps of a grading kernel: address space (memory) and CPU time.

Applied by :mod:`convcourse.grading.kernel` in every grading kernel, and by the fork server
(:mod:`convcourse.grading.forkserver`) in each kernel it forks, before the kernel starts.
"""

from __future__ import annotations

import os
import resource

DEFAULT_MEMORY_MB = 4096
DEFAULT_CPU_SECONDS = 1200


def memory_mb() -> int:
    """Address-space cap of a grading kernel in MiB ($CONVCOURSE_KERNEL_MEMORY_MB; 0: none).
    torch needs about 1 GiB."""
    return int(os.environ.get("CONVCOURSE_KERNEL_MEMORY_MB", str(DEFAULT_MEMORY_MB)))


def cpu_seconds() -> int:
    """CPU-seconds cap for a whole notebook ($CONVCOURSE_KERNEL_CPU_SECONDS; 0: none); per-cell
    timeouts act first."""
    return int(os.environ.get("CONVCOURSE_KERNEL_CPU_SECONDS", str(DEFAULT_CPU_SECONDS)))


def threads() -> int:
    """torch/OpenMP threads of a grading kernel ($CONVCOURSE_KERNEL_THREADS, default 1): per-cell limits
    count CPU time, so one thread makes a cell's CPU time its running time on an idle machine, and
    parallel workers (one per core) do not oversubscribe the machine."""
    return int(os.environ.get("CONVCOURSE_KERNEL_THREADS", "1"))


def _cap(limit: int, value: int) -> None:
    soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(limit, (value, hard))


def apply() -> None:
    """Cap this process's address space and CPU time as configured in the environment."""
    if memory_mb() > 0:
        _cap(resource.RLIMIT_AS, memory_mb() * 2**20)
    if cpu_seconds() > 0:
        _cap(resource.RLIMIT_CPU, cpu_seconds())
    nproc = int(os.environ.get("CONVCOURSE_KERNEL_NPROC", "0"))  # set by the sandbox where no cgroup caps it
    if nproc > 0:
        _cap(resource.RLIMIT_NPROC, nproc)
