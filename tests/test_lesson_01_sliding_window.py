"""Lesson 01: the sliding-window widget model and view, headless."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from convcourse.widgets.sliding_window import SlidingWindow, draw, sliding_window_widget


def model(h=5, w=6, kh=3, kw=2):
    g = torch.Generator().manual_seed(0)
    return SlidingWindow(
        torch.randn(h, w, generator=g, dtype=torch.float64), torch.randn(kh, kw, generator=g, dtype=torch.float64)
    )


def test_model_matches_torch_everywhere():
    m = model()
    assert m.out_shape == (3, 5) and m.steps == 15
    full = m.partial_output(m.steps - 1)
    assert torch.allclose(full, F.conv2d(m.x[None, None], m.k[None, None])[0, 0])


def test_positions_windows_and_partial_output():
    m = model()
    assert m.position(0) == (0, 0) and m.position(6) == (1, 1) and m.position(14) == (2, 4)
    assert m.window(1, 1).shape == m.k.shape
    assert math.isclose(m.value(1, 1), float((m.x[1:4, 1:3] * m.k).sum()))
    partial = m.partial_output(6)
    assert int((~partial.isnan()).sum()) == 7 and partial[1, 2].isnan()
    assert m.equation(0, 0).startswith("out[0, 0] = ") and m.equation(0, 0).count("·") == 6
    with pytest.raises(ValueError, match="step"):
        m.position(15)


def test_model_rejects_bad_shapes():
    with pytest.raises(ValueError, match="does not fit"):
        SlidingWindow(torch.zeros(2, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="2-D"):
        SlidingWindow(torch.zeros(1, 2, 2), torch.zeros(1, 1))


def test_draw_shows_the_learners_function_and_its_failures():
    m = model()
    fig = draw(m, 3)
    assert len(fig.axes) == 4
    plt.close(fig)

    def not_done(x, k):
        raise NotImplementedError

    def broken(x, k):
        raise IndexError("oops")

    def correct(x, k):  # loops, as the exercise asks
        out = torch.zeros(x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1, dtype=x.dtype)
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] = (x[i : i + k.shape[0], j : j + k.shape[1]] * k).sum()
        return out

    def borrowed(x, k):  # right numbers, but torch's convolution: the grader's check fails it, so does the widget
        return F.conv2d(x[None, None], k[None, None])[0, 0]

    def off_by_a_hair(x, k):  # within the grader's float64 tolerance
        return correct(x, k) * (1 + 1e-12)

    def off(x, k):
        return correct(x, k) + 1e-3

    for learner, text in [
        (not_done, "not implemented"),
        (broken, "IndexError"),
        (correct, "✓"),
        (borrowed, "✗"),
        (off_by_a_hair, "✓"),
        (off, "✗"),
    ]:
        fig = draw(m, 3, learner)
        texts = " ".join([t.get_text() for t in fig.axes[4].texts] + [fig.axes[4].get_title()])
        assert text in texts, (learner.__name__, texts)
        plt.close(fig)


def test_widget_builds_and_redraws_headless():
    view = sliding_window_widget()
    assert "out[1, 1]" not in view.last_figure._suptitle.get_text()
    view.controls["step"].value = 5  # redrawn (in place: the same figure, new contents)
    assert "out[1, 1]" in view.last_figure._suptitle.get_text()
    plt.close("all")
