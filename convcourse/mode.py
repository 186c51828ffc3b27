"""Is this notebook being graded? Used only to skip heavy *ungraded* demo cells while grading.

nbgrader sets ``NBGRADER_EXECUTION`` ('autograde' or 'validate') in the environment of the kernels it
starts (nbgrader/converters/autograde.py and nbgrader/validator.py); the course's self-check, which runs
a saved notebook as the grader does, sets ``CONVCOURSE_SELFCHECK_ACTIVE=1``. No graded check may read
this: a learner who sets either variable only skips demos, never changes a grade.
"""

from __future__ import annotations

import os

SELFCHECK_FLAG = "CONVCOURSE_SELFCHECK_ACTIVE"  # the same name as convcourse.selfcheck.ACTIVE_FLAG


def grading_mode() -> bool:
    """True while nbgrader autogrades or validates this notebook, or the self-check runs it."""
    return bool(os.environ.get("NBGRADER_EXECUTION")) or os.environ.get(SELFCHECK_FLAG) == "1"


__all__ = ["grading_mode"]
