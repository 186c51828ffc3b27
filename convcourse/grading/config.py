"""The course's nbgrader settings, shared by autograder/nbgrader_config.py, the build and the tests."""

from __future__ import annotations

from pathlib import Path

from traitlets.config import Config

COURSE_ID = "conv2d-from-the-ground-up"
#: CPU seconds a cell may use while grading unless its metadata.convcourse.timeout says otherwise; a
#: wall-clock backstop of 5x that plus 60 s stops cells that wait (convcourse.grading.execute).
CELL_TIMEOUT = 30
#: Seconds one learner's whole grading may take before its kernel is killed and the learner reported
#: (``convcourse grade --timeout``).
LEARNER_TIMEOUT = 1200
#: Any stderr (warnings, logging, tqdm bars) in a test cell is dropped before scoring: upstream
#: nbgrader scores a passing test 0 when it wrote to stderr.
STDERR_PATTERN = r"[\s\S]*"


def apply(c: Config, root: str | Path | None = None) -> Config:
    """Apply the course's settings to an nbgrader config ``c`` (and set the course root if given)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        ClearHiddenTests,
        ClearMarkScheme,
        ClearOutput,
        GetGrades,
        IgnorePattern,
        IncludeHeaderFooter,
        LimitOutput,
        LockCells,
        SaveAutoGrades,
    )

    from . import stamp_gradebooks_in_process
    from .execute import GuardedExecute
    from .feedback import HideHiddenTests
    from .solution import QuizStubs, StripSolutionDelimiters

    stamp_gradebooks_in_process()  # the nbgrader command this config is loaded into creates gradebooks faster
    if root is not None:
        c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = COURSE_ID
    c.Autograde.autograde_preprocessors = [
        GuardedExecute,
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        SaveAutoGrades,
        AssignLatePenalties,
        CheckCellMetadata,
    ]
    c.IgnorePattern.enabled = True
    c.IgnorePattern.pattern = STDERR_PATTERN
    c.OverwriteCells.add_missing_cells = True
    c.Execute.timeout = CELL_TIMEOUT
    c.Execute.interrupt_on_timeout = True
    # Once the last cell has run, the kernel has nothing left to save: stop it at once (0.1 s) rather than
    # ask and wait for Python to tear torch down (0.7-1 s a notebook).
    c.Execute.shutdown_kernel = "immediate"
    c.Execute.extra_arguments = [
        "--HistoryManager.hist_file=:memory:",
        "--IPKernelApp.exec_lines=import convcourse.grading.kernel",
    ]
    # The answer key: solutions in place, hidden tests removed, never executed (no outputs committed).
    c.GenerateSolution.preprocessors = [
        IncludeHeaderFooter,
        LockCells,
        ClearOutput,
        ClearMarkScheme,
        ClearHiddenTests,
        StripSolutionDelimiters,
    ]
    c.ClearHiddenTests.enforce_metadata = True
    # The learner copy: check-your-understanding answers become ``...`` before nbgrader's own steps.
    from nbgrader.converters import GenerateAssignment

    c.GenerateAssignment.preprocessors = [QuizStubs, *GenerateAssignment.class_traits()["preprocessors"].default()]
    c.GenerateFeedback.preprocessors = [HideHiddenTests, GetGrades, CSSHTMLHeaderPreprocessor]
    return c
