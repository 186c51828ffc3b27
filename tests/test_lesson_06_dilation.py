"""Lesson 06: the dilation widget model and view (headless), and the conv2d_dilated / receptive_field checks."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convcourse.checks import GradingError, check, check_suite
from convcourse.checks.conv import randn
from convcourse.widgets.dilation import SCHEDULES, LayerStack, dilation_widget, draw, kernel_footprint, learner_verdict

# ---- correct implementations, written here (not imported from the notebook) ---------------------


def conv2d_dilated(x, weight, dilation):
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    if dh < 1 or dw < 1:
        raise RuntimeError("dilation must be positive")
    kh, kw = weight.shape[-2:]
    out_h, out_w = x.shape[-2] - dh * (kh - 1), x.shape[-1] - dw * (kw - 1)
    if out_h < 1 or out_w < 1:
        raise RuntimeError("kernel too large")
    out = torch.zeros(x.shape[0], weight.shape[0], out_h, out_w, dtype=x.dtype)
    for a in range(kh):  # loop over taps: shifted views times one weight column
        for b in range(kw):
            patch = x[:, :, a * dh : a * dh + out_h, b * dw : b * dw + out_w]
            out += torch.einsum("nchw,oc->nohw", patch, weight[:, :, a, b])
    return out


def receptive_field(kernel_sizes, strides=None, dilations=None):
    n = len(kernel_sizes)
    strides = [1] * n if strides is None else list(strides)
    dilations = [1] * n if dilations is None else list(dilations)
    if len(strides) != n or len(dilations) != n:
        raise ValueError("lengths differ")
    field, jump = 1, 1
    for k, s, d in zip(kernel_sizes, strides, dilations):
        field += d * (k - 1) * jump
        jump *= s
    return field


def failure(name, fn, **inputs) -> str:
    with pytest.raises(GradingError) as info:
        check(name, fn, **inputs)
    return str(info.value)


# ---- widget model ---------------------------------------------------------------------------------


def test_kernel_footprint():
    grid = kernel_footprint(3, 2)
    assert grid.shape == (5, 5) and grid.sum() == 9
    assert grid[0, 0] and not grid[0, 1] and grid[4, 4]
    assert kernel_footprint(4, 1).all() and kernel_footprint(1, 3).shape == (1, 1)
    with pytest.raises(ValueError):
        kernel_footprint(3, 0)


@pytest.mark.parametrize("kernel, dilations", [(3, (1, 2, 4)), (2, (1, 1)), (3, (2, 2, 2, 2)), (5, (1,)), (1, (1, 3))])
def test_stack_matches_autograd(kernel, dilations):
    stack = LayerStack(kernel, dilations)
    assert stack.receptive_field == receptive_field([kernel] * len(dilations), dilations=list(dilations))
    levels = stack.paths()
    assert len(levels) == len(dilations) + 1 and levels[0].sum() == 1
    # the input row counts paths: compare with the gradient of one output pixel for all-ones kernels
    x = torch.zeros(1, 1, 1, stack.receptive_field, dtype=torch.float64, requires_grad=True)
    out = x
    for d in dilations:
        out = F.conv2d(out, torch.ones(1, 1, 1, kernel, dtype=torch.float64), dilation=(1, d))
    out[0, 0, 0, 0].backward()
    assert np.array_equal(levels[-1], x.grad[0, 0, 0].long().numpy())


def test_gridding_leaves_gaps_and_bad_stacks_are_refused():
    gaps = LayerStack(3, (2, 2)).paths()[-1]
    assert (gaps == 0).any() and (LayerStack(3, (1, 2)).paths()[-1] > 0).all()
    with pytest.raises(ValueError):
        LayerStack(3, (1, 0))


def test_draw_returns_a_figure_with_the_receptive_field():
    fig = draw(3, 2, (1, 2, 4, 8))
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 2
    assert "receptive field 31" in fig.axes[1].get_title()
    assert "5×5" in fig.axes[0].get_title()
    plt.close(fig)


def test_learner_verdict_shows_the_learners_answer_or_its_failure():
    def not_done(kernel_sizes, strides=None, dilations=None):
        raise NotImplementedError

    def broken(kernel_sizes, strides=None, dilations=None):
        raise KeyError("oops")

    def ignores_dilation(kernel_sizes, strides=None, dilations=None):
        return receptive_field(kernel_sizes, strides)

    assert learner_verdict(None, 3, (1, 2)) == ""
    assert learner_verdict(receptive_field, 3, (1, 2, 4)) == "your receptive_field: 15 ✓"
    assert "not implemented yet" in learner_verdict(not_done, 3, (1, 2))
    assert "raised KeyError" in learner_verdict(broken, 3, (1, 2))
    assert learner_verdict(ignores_dilation, 3, (1, 2, 4)) == "your receptive_field: 7 ✗ (the picture shows 15)"
    assert "✗" in learner_verdict(lambda *a: 15.0, 3, (1, 2, 4))  # a float is not the int asked for
    fig = draw(3, 2, (1, 2, 4), ignores_dilation)
    assert "✗" in fig.axes[1].get_xlabel()
    plt.close(fig)


def test_widget_builds_and_redraws_headless():
    view = dilation_widget()
    assert "receptive field 31" not in view.last_figure.axes[1].get_title()
    view.controls["layers"].value = 4  # redrawn (in place: the same figure, new contents)
    assert "receptive field 31" in view.last_figure.axes[1].get_title()
    view.controls["schedule"].value = [k for k in SCHEDULES if SCHEDULES[k] == (1, 1, 1, 1)][0]
    assert "receptive field 9" in view.last_figure.axes[1].get_title()
    with_learner = dilation_widget(receptive_field=receptive_field)
    with_learner.controls["layers"].value = 4
    assert "your receptive_field: 31 ✓" in with_learner.last_figure.axes[1].get_xlabel()
    plt.close("all")


# ---- conv2d_dilated -------------------------------------------------------------------------------


def test_correct_conv2d_dilated_passes_every_suite():
    assert check_suite("conv2d_dilated", conv2d_dilated, "visible")
    assert check_suite("conv2d_dilated", conv2d_dilated, "hidden")


X = randn(1, 2, 9, 10, seed=3)
W = randn(2, 2, 3, 2, seed=4)


def dilates_input(x, weight, dilation):
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    return conv2d_dilated(x[..., ::dh, ::dw], weight, 1)


def dilation_as_stride(x, weight, dilation):
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    return conv2d_dilated(x, weight, 1)[..., ::dh, ::dw]


def swapped_axes(x, weight, dilation):
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    return conv2d_dilated(x, weight, (dw, dh))


@pytest.mark.parametrize(
    "wrong, dilation, expected",
    [
        (dilates_input, 2, "applied to the input"),
        (dilation_as_stride, (2, 3), "used as the stride"),
        (swapped_axes, (2, 3), "wrong axis"),
    ],
)
def test_wrong_conv2d_dilated_is_diagnosed(wrong, dilation, expected):
    message = failure("conv2d_dilated", wrong, x=X, weight=W, dilation=dilation)
    assert "Likely mistake" in message and expected in message, message


def test_conv2d_dilated_errors_and_banned_calls():
    def no_checks(x, weight, dilation):
        return torch.zeros(1, 1, 1, 1, dtype=x.dtype)

    message = failure(
        "conv2d_dilated", no_checks, x=randn(1, 1, 6, 6, seed=1), weight=randn(1, 1, 3, 3, seed=2), dilation=0
    )
    assert "RuntimeError" in message
    message = failure(
        "conv2d_dilated", lambda x, weight, dilation: F.conv2d(x, weight, dilation=dilation), x=X, weight=W, dilation=2
    )
    assert "called torch's convolution" in message
    message = failure(
        "conv2d_dilated",
        lambda x, weight, dilation: F.unfold(x, (3, 2), dilation=dilation).sum(),
        x=X,
        weight=W,
        dilation=2,
    )
    assert "unfold" in message


# ---- receptive_field ------------------------------------------------------------------------------


def test_correct_receptive_field_passes_every_suite():
    assert check_suite("receptive_field", receptive_field, "visible")
    assert check_suite("receptive_field", receptive_field, "hidden")


def stride_first(kernel_sizes, strides=None, dilations=None):
    n = len(kernel_sizes)
    strides, dilations = strides or [1] * n, dilations or [1] * n
    field, jump = 1, 1
    for k, s, d in zip(kernel_sizes, strides, dilations):
        jump *= s
        field += d * (k - 1) * jump
    return field


@pytest.mark.parametrize(
    "wrong, inputs, expected",
    [
        (
            lambda kernel_sizes, strides=None, dilations=None: receptive_field(kernel_sizes, None, dilations),
            dict(kernel_sizes=[3, 3], strides=[2, 1]),
            "strides are ignored",
        ),
        (
            lambda kernel_sizes, strides=None, dilations=None: receptive_field(kernel_sizes, strides),
            dict(kernel_sizes=[3, 3, 3], dilations=[1, 2, 4]),
            "dilations are ignored",
        ),
        (stride_first, dict(kernel_sizes=[3, 3], strides=[2, 1]), "own stride"),
        (
            lambda kernel_sizes, strides=None, dilations=None: sum(kernel_sizes),
            dict(kernel_sizes=[3, 3]),
            "simply added up",
        ),
    ],
)
def test_wrong_receptive_field_is_diagnosed(wrong, inputs, expected):
    message = failure("receptive_field", wrong, **inputs)
    assert "Likely mistake" in message and expected in message, message


def test_receptive_field_must_raise_value_error_for_mismatched_lengths():
    message = failure(
        "receptive_field", lambda kernel_sizes, strides=None, dilations=None: 5, kernel_sizes=[3, 3], strides=[1]
    )
    assert "ValueError" in message
