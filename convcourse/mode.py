"""Is this notebook being graded? Used only to skip heavy *ungraded* demo cells while grading.

nbgrader sets ``NBGRADER_EXECUTION`` ('autograde' or 'validate') in the environment of the kernels it
starts (nbgrader/converters/autograde.py and nbgrader/validator.py). No graded check may read this:
a learner who sets the variable only skips demos, never changes a grade.
"""

from __future__ import annotations

import os


def grading_mode() -> bool:
    """True while nbgrader autogrades or validates this notebook."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


__all__ = ["grading_mode"]
