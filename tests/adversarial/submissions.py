"""Factories for adversarial learner notebooks of lesson 01 (``corr2d``).

Each :class:`Submission` is built from the released notebook notebooks/01_sliding_window: the
learner's ``corr2d`` cell is replaced and/or cells are added, deleted or edited, or the file is
corrupted. ``expected`` is the score the grader must give corr2d's test cell (out of 5); ``None`` means
the file cannot be graded at all (nbgrader must report it and go on with the others). Every notebook
answers the lesson's check-your-understanding questions as the answer key does; ``quiz`` is what those
cells must score (all of it, or 0 where the submission zeroes every test or kills the kernel first).
"""

from __future__ import annotations

import copy
import dataclasses
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat

REPO = Path(__file__).resolve().parents[2]
LESSON = "01_sliding_window"
RELEASED = REPO / "notebooks" / LESSON / f"{LESSON}.ipynb"
SOLUTION_ID = "corr2d"
TEST_ID = "test_corr2d"
POINTS = 5.0
ANSWER_KEY = REPO / "solutions" / LESSON / f"{LESSON}.ipynb"


def _is_quiz(cell) -> bool:
    return cell.get("cell_type") == "code" and bool(cell.get("metadata", {}).get("convcourse", {}).get("quiz"))


def _quiz_test_ids(nb) -> list[str]:
    return [
        c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade") and "check_answer(" in c.source
    ]


QUIZ_IDS = _quiz_test_ids(nbformat.read(RELEASED, as_version=4))
QUIZ_POINTS = float(len(QUIZ_IDS))  # 1 point per question

HONEST = """
def corr2d(x, k):
    kh, kw = k.shape
    out = torch.zeros(x.shape[0] - kh + 1, x.shape[1] - kw + 1, dtype=x.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (x[i:i + kh, j:j + kw] * k).sum()
    return out
"""

FLIPPED = HONEST.replace("* k).sum()", "* k.flip(0, 1)).sum()")

ZEROS = """
def corr2d(x, k):
    return torch.zeros(x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1, dtype=x.dtype)
"""


def released() -> nbformat.NotebookNode:
    return nbformat.read(RELEASED, as_version=4)


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _index(nb, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if _grade_id(c) == grade_id)


def notebook(
    *parts: str,
    lean: bool = True,
    after_solution: list[str] = (),
    before_solution: list[str] = (),
    edit: Callable[[nbformat.NotebookNode], None] | None = None,
) -> nbformat.NotebookNode:
    """The released notebook with ``solution`` as the learner's corr2d cell.

    lean: drop the ungraded demo cells (photo, widgets, filter gallery) that call corr2d on a 64x64
    image; learners may delete them, and an infinite loop would otherwise time out in each of them.
    after_solution/before_solution: extra learner code cells around the solution cell.
    """
    nb = copy.deepcopy(released())
    if lean:
        nb.cells = [c for c in nb.cells if c.cell_type == "markdown" or "nbgrader" in c.metadata or _is_quiz(c)]
    answers = next(c.source for c in nbformat.read(ANSWER_KEY, as_version=4).cells if _is_quiz(c))
    for cell in nb.cells:
        if _is_quiz(cell):
            cell.source = answers
    index = _index(nb, SOLUTION_ID)
    nb.cells[index].source = "\n".join(textwrap.dedent(p).strip("\n") for p in parts)
    for source in reversed(list(after_solution)):
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell(textwrap.dedent(source).strip("\n")))
    for source in before_solution:
        nb.cells.insert(index, nbformat.v4.new_code_cell(textwrap.dedent(source).strip("\n")))
    if edit is not None:
        edit(nb)
    return nb


def to_bytes(nb: nbformat.NotebookNode) -> bytes:
    return nbformat.writes(nb).encode()


@dataclass(frozen=True)
class Submission:
    student: str
    expected: float | None  # None: not gradable (corrupted file)
    what: str
    build: Callable[[], bytes]
    # Text the autograded test cell's outputs must contain (the message the learner sees).
    message: str = ""
    # What the question cells must score together (0: every test zeroed, or the kernel died before them).
    quiz: float = QUIZ_POINTS


def _delete_test_cell(nb):
    del nb.cells[_index(nb, TEST_ID)]


def _edit_test_cell(nb):
    nb.cells[_index(nb, TEST_ID)].source = "assert True"


def _corrupt() -> bytes:
    text = to_bytes(notebook(HONEST))
    return text[: len(text) // 2] + b'\n  "cells": [ {,,, not json'


SUBMISSIONS: list[Submission] = [
    # Controls.
    Submission("honest", POINTS, "honest loop solution, full notebook", lambda: to_bytes(notebook(HONEST, lean=False))),
    Submission(
        "wrong",
        0.0,
        "honest but wrong: true convolution (flipped kernel), full notebook",
        lambda: to_bytes(notebook(FLIPPED, lean=False)),
        "Likely mistake: your output is the true (flipped-kernel)",
    ),
    # Runaway code.
    Submission(
        "infinite_loop",
        0.0,
        "while True inside corr2d",
        lambda: to_bytes(
            notebook("""
        def corr2d(x, k):
            while True:
                pass
        """)
        ),
        "CellTimeoutError",
    ),
    Submission(
        "loop_ignores_interrupt",
        0.0,
        "infinite loop that swallows KeyboardInterrupt",
        lambda: to_bytes(
            notebook("""
        import time
        def corr2d(x, k):
            while True:
                try:
                    time.sleep(0.05)
                except BaseException:
                    pass
        """)
        ),
    ),
    Submission(
        "memory_bomb",
        0.0,
        "allocates until memory runs out inside corr2d",
        lambda: to_bytes(
            notebook("""
        def corr2d(x, k):
            hog = []
            while True:
                hog.append(bytearray(2**30))
        """)
        ),
        "MemoryError",
    ),
    Submission(
        "sys_exit",
        0.0,
        "sys.exit() inside corr2d",
        lambda: to_bytes(
            notebook("""
        import sys
        def corr2d(x, k):
            sys.exit(0)
        """)
        ),
        "SystemExit",
    ),
    Submission(
        "os_exit",
        0.0,
        "honest corr2d, then os._exit(1) kills the kernel",
        lambda: to_bytes(notebook(HONEST + "\nimport os\nos._exit(1)\n")),
        "kernel died",
    ),
    Submission(
        "helper_raises",
        0.0,
        "a helper called at import raises before corr2d is defined",
        lambda: to_bytes(
            notebook(
                """
        def _make_table():
            raise RuntimeError("helper broke")
        TABLE = _make_table()
        """,
                HONEST,
            )
        ),
        "NameError",
    ),
    # Test cells.
    Submission(
        "deleted_test_cell",
        POINTS,
        "honest code, graded test cell deleted (nbgrader adds it back)",
        lambda: to_bytes(notebook(HONEST, edit=_delete_test_cell)),
    ),
    Submission(
        "edited_test_cell",
        0.0,
        "wrong code, test cell replaced by 'assert True' (nbgrader restores it)",
        lambda: to_bytes(notebook(ZEROS, edit=_edit_test_cell)),
    ),
    Submission("corrupted_json", None, "the .ipynb file is not valid JSON", _corrupt),
    # Tampering with what the tests use.
    Submission(
        "patch_allclose",
        0.0,
        "torch.allclose = lambda *a, **k: True, corr2d returns zeros",
        lambda: to_bytes(
            notebook("torch.allclose = lambda *a, **k: True\ntorch.Tensor.allclose = lambda *a, **k: True\n" + ZEROS)
        ),
        "replaced torch.Tensor.allclose, torch.allclose",
    ),
    Submission(
        "patch_numpy",
        0.0,
        "numpy.allclose/testing replaced, corr2d returns zeros",
        lambda: to_bytes(
            notebook(
                """
        import numpy as np
        np.allclose = lambda *a, **k: True
        np.testing.assert_allclose = lambda *a, **k: None
        """,
                ZEROS,
            )
        ),
        "numpy.allclose",
    ),
    Submission(
        "patch_checks_module",
        0.0,
        "replaces convcourse.checks functions",
        lambda: to_bytes(
            notebook(
                """
        import convcourse.checks as cc, convcourse.checks.core as core
        core.compare_tensors = lambda *a, **k: None
        core.run_case = lambda *a, **k: None
        cc.check_suite = lambda *a, **k: True
        """,
                ZEROS,
            )
        ),
        "convcourse.checks.core.run_case",
    ),
    Submission(
        "patch_private_guard",
        0.0,
        "replaces the checks' private torch references and empties the hidden suite",
        lambda: to_bytes(
            notebook(
                """
        from convcourse.checks import _guard, REGISTRY
        _guard.allclose = lambda *a, **k: True
        _guard.isclose = lambda a, b, **k: a == a
        REGISTRY["corr2d"].suites["hidden"] = lambda: []
        """,
                ZEROS,
            )
        ),
        "convcourse.checks._guard.allclose",
    ),
    Submission(
        "switch_the_check_off",
        0.0,
        "rebinds the guard's own seal, the verdict and the probe's entry points to stubs",
        lambda: to_bytes(
            notebook(
                """
        import convcourse.checks.core as core, convcourse.grading.probe as probe
        from convcourse.checks import _guard
        _guard._SEALED = None
        _guard._sealed_problems = lambda: []
        core._judge = lambda *a, **k: None
        core.assert_untampered = lambda name: None
        probe.problems = lambda: []
        """,
                ZEROS,
            )
        ),
        "replaced the integrity check itself",
    ),
    Submission(
        "patch_code_object",
        0.0,
        "swaps the __code__ of compare_tensors",
        lambda: to_bytes(
            notebook(
                """
        import convcourse.checks.core as core
        core.compare_tensors.__code__ = (lambda exercise, got_raw, expected, inputs: None).__code__
        """,
                ZEROS,
            )
        ),
        "compare_tensors",
    ),
    Submission(
        "rebind_check",
        0.0,
        "defines its own check/check_suite in the notebook",
        lambda: to_bytes(
            notebook(
                """
        def check(*args, **kwargs):
            return True
        check_suite = check
        """,
                ZEROS,
            )
        ),
        "'check'",
    ),
    Submission(
        "patch_builtins",
        0.0,
        "replaces builtins used by the checks",
        lambda: to_bytes(
            notebook(
                """
        import builtins
        _real_isinstance = builtins.isinstance
        builtins.isinstance = lambda obj, cls: _real_isinstance(obj, cls)
        builtins.AssertionError = Exception
        """,
                ZEROS,
            )
        ),
        "builtins.isinstance",
    ),
    Submission(
        "input_transformer",
        0.0,
        "an IPython input transformer rewrites every later cell",
        lambda: to_bytes(
            notebook(
                ZEROS
                + """
def _neuter(lines):
    return ["pass\\n"] if any("check" in line for line in lines) else lines
get_ipython().input_transformers_post.append(_neuter)
"""
            )
        ),
        "input transformer",
    ),
    Submission(
        "tensor_subclass",
        0.0,
        "returns a Tensor subclass whose comparisons always succeed",
        lambda: to_bytes(
            notebook("""
        class Agreeable(torch.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                return True
        def corr2d(x, k):
            shape = (x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1)
            return torch.zeros(shape, dtype=x.dtype).as_subclass(Agreeable)
        """)
        ),
        "subclass of torch.Tensor",
    ),
    # Banned operations.
    Submission(
        "conv2d_in_loops",
        0.0,
        "calls F.conv2d on each window inside the loops",
        lambda: to_bytes(
            notebook("""
        def corr2d(x, k):
            kh, kw = k.shape
            out = torch.zeros(x.shape[0] - kh + 1, x.shape[1] - kw + 1, dtype=x.dtype)
            for i in range(out.shape[0]):
                for j in range(out.shape[1]):
                    out[i, j] = F.conv2d(x[i:i + kh, j:j + kw][None, None], k[None, None])[0, 0, 0, 0]
            return out
        """)
        ),
        "called torch's convolution",
    ),
    Submission(
        "aliased_conv_with_fallback",
        0.0,
        "an alias of torch's conv inside try/except, loops as fallback",
        lambda: to_bytes(
            notebook(
                """
        _fast = getattr(torch.ops.aten, "convolution")
        def corr2d(x, k):
            try:
                return _fast(x[None, None], k[None, None], None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)[0, 0]
            except Exception:
                pass
        """,
                HONEST.replace("def corr2d", "def _slow"),
            )
        ),
        "called torch's convolution",
    ),
    # Noise and deception.
    Submission(
        "prints_all_passed",
        0.0,
        "wrong code that prints 'All tests passed'",
        lambda: to_bytes(notebook(ZEROS.replace("    return", "    print('All tests passed')\n    return"))),
    ),
    Submission(
        "warnings",
        POINTS,
        "honest code that warns and writes to stderr on every call",
        lambda: to_bytes(
            notebook(
                "import sys, warnings\n"
                + HONEST.replace(
                    "    kh, kw = k.shape",
                    "    warnings.warn('slow loops', RuntimeWarning)\n"
                    "    print('working...', file=sys.stderr)\n    kh, kw = k.shape",
                )
            )
        ),
    ),
    Submission(
        "enormous_output",
        POINTS,
        "honest code that prints ~20 MB",
        lambda: to_bytes(notebook(HONEST + "\nfor _ in range(200):\n    print('x' * 100_000)\n")),
    ),
    Submission(
        "grader_aware",
        0.0,
        "honest when run by hand; under NBGRADER_EXECUTION patches allclose and returns zeros",
        lambda: to_bytes(
            notebook(
                """
        import os
        if os.environ.get("NBGRADER_EXECUTION"):
            torch.allclose = lambda *a, **k: True
        """,
                ZEROS,
                "if not os.environ.get('NBGRADER_EXECUTION'):  # by hand: the honest loops\n"
                + textwrap.indent(HONEST.strip(), "    "),
            )
        ),
        "torch.allclose",
    ),
    Submission(
        "hidden_only_fail",
        0.0,
        "passes the visible tests, fails a hidden case (1x1 kernel)",
        lambda: to_bytes(
            notebook(
                HONEST.replace(
                    "    kh, kw = k.shape", "    if k.numel() == 1:\n        return x.clone()\n    kh, kw = k.shape"
                )
            )
        ),
        "hidden test cases of corr2d fail",
    ),
]

# These zero every graded cell (the integrity probe) or kill the kernel before the question cells run.
ZERO_EVERYTHING = {
    "loop_ignores_interrupt",
    "os_exit",
    "patch_allclose",
    "patch_numpy",
    "patch_checks_module",
    "patch_private_guard",
    "switch_the_check_off",
    "patch_code_object",
    "rebind_check",
    "patch_builtins",
    "input_transformer",
    "grader_aware",
}
SUBMISSIONS = [dataclasses.replace(s, quiz=0.0) if s.student in ZERO_EVERYTHING else s for s in SUBMISSIONS]
