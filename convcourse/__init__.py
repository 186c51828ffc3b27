"""Helpers for the course *Conv2d from the ground up*.

One module per concern:

- :mod:`convcourse.data`     -- the photographs and digits shipped in ``data/``
- :mod:`convcourse.plots`    -- the course's figure style and common plots
- :mod:`convcourse.widgets`  -- interactive widgets (a pure model + a thin ipywidgets view)
- :mod:`convcourse.checks`   -- graded comparisons of learner code against torch
- :mod:`convcourse.grading`  -- nbgrader integration (safe execution, leak-free feedback)
- :mod:`convcourse.build`    -- regenerate ``notebooks/`` and ``solutions/`` from ``autograder/source``
"""

__version__ = "0.1.0"

from .mode import grading_mode

__all__ = ["grading_mode"]
