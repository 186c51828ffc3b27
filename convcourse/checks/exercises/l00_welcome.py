"""Lesson 00: check-your-understanding questions on how the course works and on tensor shapes.

No exercise to implement; the answers are computed from torch (or, for the grading question, from the
course's own rules) only when an answer is checked.
"""

from __future__ import annotations

import torch

from ..quiz import Question, register_question


def _batch_shape_from_hwc() -> tuple[int, ...]:
    # eight 32×32 RGB photos as image files store them (H, W, C), stacked, then put in Conv2d's order
    photos = torch.zeros(8, 32, 32, 3)
    return tuple(photos.permute(0, 3, 1, 2).shape)


def _element_1_2() -> int:
    return int(torch.arange(12).reshape(3, 4)[1, 2])


def _window_shape() -> tuple[int, ...]:
    return tuple(torch.arange(30).reshape(5, 6)[1:4, 2:5].shape)


def _visible_tests_guarantee_full_marks() -> bool:
    # Hidden tests run only when the work is graded (see "How grading works"), so no.
    return False


register_question(
    Question(
        name="00_welcome.q1",
        lesson="00_welcome",
        answer=_batch_shape_from_hwc,
        form="a tuple of four ints",
        explain="Conv2d reads a batch as (N, C, H, W): 8 images, 3 colour channels, 32 rows, 32 columns. "
        "Channels come before the rows and columns.",
    )
)
register_question(
    Question(
        name="00_welcome.q2",
        lesson="00_welcome",
        answer=_element_1_2,
        form="an int",
        explain="arange(12).reshape(3, 4) fills row by row: row 0 holds 0-3, row 1 holds 4-7, so x[1, 2] = 4 + 2 = 6.",
    )
)
register_question(
    Question(
        name="00_welcome.q3",
        lesson="00_welcome",
        answer=_window_shape,
        form="a tuple of two ints",
        explain="A slice a:b keeps b - a entries (b is excluded): rows 1, 2, 3 and columns 2, 3, 4, so (3, 3). "
        "This is how a loop cuts a 3×3 window out of an image.",
    )
)
register_question(
    Question(
        name="00_welcome.q4",
        lesson="00_welcome",
        answer=_visible_tests_guarantee_full_marks,
        form="True or False",
        explain="Hidden tests run only when your work is graded and check more cases (shapes, tuple arguments, "
        "edge cases), so passing the visible tests is a good sign, not a guarantee.",
    )
)
