"""What became of one learner's submission in a grading run, shared by the worker and the parent."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """A grading outcome. A str, so it reads and compares as its value and is written as such to JSON."""

    #: graded
    OK = "ok"
    #: graded, but the kernel died or hung in a cell: that cell and the ones after it scored 0
    KERNEL_DIED = "kernel-died"
    #: not graded (the worker or nbgrader failed); graded again by the next run
    ERROR = "error"
    #: not graded: the whole notebook ran past the grading timeout; graded again by the next run
    TIMEOUT = "timeout"

    @property
    def graded(self) -> bool:
        """Whether the run recorded grades (kernel deaths are graded: the cells that ran count)."""
        return self in (Status.OK, Status.KERNEL_DIED)

    @property
    def label(self) -> str:
        """How an instructor's report names it."""
        return _LABELS[self]


_LABELS = {
    Status.OK: "graded",
    Status.KERNEL_DIED: "graded, kernel died",
    Status.ERROR: "NOT graded",
    Status.TIMEOUT: "NOT graded (timeout)",
}
