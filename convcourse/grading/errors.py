"""Names of the error outputs the grader writes into a learner's notebook, defined once.

GuardedExecute writes them; the grading worker reads them back to report a kernel death; the tests and the
feedback look for them by these names.
"""

from __future__ import annotations

#: A cell ran past its time limit (the name nbclient gives its own timeout error).
CELL_TIMEOUT_ERROR = "CellTimeoutError"
#: The kernel died while running a cell (os._exit, a crash, the memory or CPU cap).
KERNEL_DIED = "KernelDied"
#: A cell ran past its limit and the kernel could not be interrupted.
KERNEL_UNRESPONSIVE = "KernelUnresponsive"

#: The kernel-death errors and how an instructor's report words them.
KERNEL_ERRORS = {KERNEL_DIED: "the kernel died", KERNEL_UNRESPONSIVE: "the kernel stopped answering"}

#: Starts the line the integrity probe prints in the kernel (the grader finds its report by it).
PROBE_MARKER = "CONVCOURSE-INTEGRITY"
