"""Lesson 02: the kernel-fit widget model and view, and the conv_output_size exercise."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from convcourse.checks import GradingError, check, check_suite
from convcourse.widgets.kernel_size import KernelFit, draw, kernel_size_widget


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    span = dilation * (kernel_size - 1) + 1
    if span > size + 2 * padding:
        raise RuntimeError("kernel does not fit")
    return (size + 2 * padding - span) // stride + 1


def failure(fn, suite="hidden") -> str:
    with pytest.raises(GradingError) as info:
        check_suite("conv_output_size", fn, suite)
    return str(info.value)


# ---- widget model -------------------------------------------------------------------------------


@pytest.mark.parametrize("h, w, kh, kw", [(6, 8, 3, 3), (5, 5, 5, 5), (4, 7, 1, 1), (9, 3, 2, 3)])
def test_model_out_shape_matches_torch(h, w, kh, kw):
    model = KernelFit(h, w, kh, kw)
    expected = F.conv2d(torch.zeros(1, 1, h, w), torch.zeros(1, 1, kh, kw)).shape[-2:]
    assert model.out_shape == tuple(expected)
    assert model.first == (0, 0) and model.last == (h - kh, w - kw)
    assert f"= {expected[0]}" in model.formula() and f"= {expected[1]}" in model.formula()


def test_model_kernel_that_does_not_fit():
    model = KernelFit(3, 4, 5, 2)
    assert not model.fits
    assert "RuntimeError" in model.formula()
    with pytest.raises(ValueError, match="does not fit"):
        model.out_shape
    with pytest.raises(ValueError, match="at least 1"):
        KernelFit(0, 3, 1, 1)


def test_draw_returns_figures_for_fitting_and_non_fitting_kernels():
    fig = draw(KernelFit(6, 8, 3, 4))
    assert isinstance(fig, plt.Figure) and "W_out" in fig.get_suptitle()
    assert fig.axes[1].get_title() == "output 4×5"
    plt.close(fig)
    fig = draw(KernelFit(2, 2, 3, 3))
    assert "does not fit" in " ".join(t.get_text() for t in fig.axes[1].texts)
    plt.close(fig)


def test_widget_builds_and_redraws_headless():
    view = kernel_size_widget()
    assert "6 − 5 + 1 = 2" not in view.last_figure.get_suptitle()
    view.controls["kh"].value = 5  # redrawn (in place: the same figure, new contents)
    assert "6 − 5 + 1 = 2" in view.last_figure.get_suptitle()
    plt.close("all")


# ---- exercise -----------------------------------------------------------------------------------


def test_correct_implementation_passes_every_suite():
    assert check_suite("conv_output_size", conv_output_size, "visible")
    assert check_suite("conv_output_size", conv_output_size, "hidden")
    assert check("conv_output_size", conv_output_size, size=32, kernel_size=(5), stride=3, padding=1)


@pytest.mark.parametrize(
    "wrong, text",
    [
        (
            lambda size, kernel_size, stride=1, padding=0, dilation=1: (
                (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride
            ),
            "+1 is missing",
        ),
        (
            lambda size, kernel_size, stride=1, padding=0, dilation=1: (
                (size + padding - dilation * (kernel_size - 1) - 1) // stride + 1
            ),
            "one side only",
        ),
        (
            lambda size, kernel_size, stride=1, padding=0, dilation=1: (size + 2 * padding - kernel_size) // stride + 1,
            "dilation is ignored",
        ),
        (
            lambda size, kernel_size, stride=1, padding=0, dilation=1: (
                size + 2 * padding - dilation * (kernel_size - 1)
            ),
            "stride is ignored",
        ),
        (
            lambda size, kernel_size, stride=1, padding=0, dilation=1: (
                math.ceil((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1
            ),
            "rounded up",
        ),
    ],
)
def test_wrong_formulas_get_a_diagnosis(wrong, text):
    assert text in failure(wrong)


def test_float_division_is_diagnosed():
    def float_div(size, kernel_size, stride=1, padding=0, dilation=1):
        return (size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride + 1

    with pytest.raises(GradingError, match="floor division"):
        check("conv_output_size", float_div, size=10, kernel_size=3, stride=3)


def test_missing_or_wrong_error_fails():
    def no_error(size, kernel_size, stride=1, padding=0, dilation=1):
        return max(1, (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1)

    def value_error(size, kernel_size, stride=1, padding=0, dilation=1):
        try:
            return conv_output_size(size, kernel_size, stride, padding, dilation)
        except RuntimeError:
            raise ValueError("no fit") from None

    assert "raise RuntimeError" in failure(no_error) or "RuntimeError" in failure(no_error)
    assert "torch raises RuntimeError" in failure(value_error)


def test_not_implemented_is_reported():
    def todo(size, kernel_size, stride=1, padding=0, dilation=1):
        raise NotImplementedError()

    assert "not implemented" in failure(todo, "visible")


# ---- the widget runs the learner's function -----------------------------------------------------


def test_learner_verdict_agrees_flags_and_survives_errors():
    from convcourse.widgets.kernel_size import learner_verdict

    fits, too_tall = KernelFit(6, 8, 3, 4), KernelFit(3, 8, 5, 2)
    assert learner_verdict(fits, None) == ""
    assert learner_verdict(fits, conv_output_size).endswith("H_out = 4, W_out = 5 ✓")
    assert "H: RuntimeError" in learner_verdict(too_tall, conv_output_size)
    assert "✓" in learner_verdict(too_tall, conv_output_size)
    assert "expected 4 ✗" in learner_verdict(fits, lambda size, k: size - k)
    assert "expected 4 ✗" in learner_verdict(fits, lambda size, k: (size - k) / 1 + 1)  # a float is not an int
    assert "should raise RuntimeError ✗" in learner_verdict(too_tall, lambda size, k: size - k + 1)

    def todo(size, k):
        raise NotImplementedError

    def broken(size, k):
        raise IndexError("oops")

    assert "not implemented yet" in learner_verdict(fits, todo)
    assert "raised IndexError ✗" in learner_verdict(fits, broken)

    def always_raises(size, k):
        raise RuntimeError("no")

    assert "but the kernel fits ✗" in learner_verdict(fits, always_raises)


def test_widget_with_the_learners_function_shows_the_verdict():
    view = kernel_size_widget(h=5, w=9, kh=2, kw=4, conv_output_size=conv_output_size)
    assert "H_out = 4, W_out = 6 ✓" in view.last_figure.get_supxlabel()
    view.controls["kh"].value = 7
    assert "RuntimeError" in view.last_figure.get_supxlabel()
    plt.close("all")
