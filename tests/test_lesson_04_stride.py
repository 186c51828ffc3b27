"""Lesson 04: the stride widget model and view, and the conv2d_strided exercise."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convcourse.checks import GradingError, check, check_suite, randn
from convcourse.widgets.stride import StrideGeometry, draw, stride_widget


def conv2d_strided(x, weight, stride):
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    if sh < 1 or sw < 1:
        raise RuntimeError("stride must be positive")
    n, c, h, w = x.shape
    o, c_w, kh, kw = weight.shape
    if c != c_w or kh > h or kw > w:
        raise RuntimeError("bad shapes")
    out = torch.zeros(n, o, (h - kh) // sh + 1, (w - kw) // sw + 1, dtype=x.dtype)
    for b in range(n):
        for k in range(o):
            for i in range(out.shape[2]):
                for j in range(out.shape[3]):
                    out[b, k, i, j] = (x[b, :, i * sh : i * sh + kh, j * sw : j * sw + kw] * weight[k]).sum()
    return out


def failure(fn, suite="hidden") -> str:
    with pytest.raises(GradingError) as info:
        check_suite("conv2d_strided", fn, suite)
    return str(info.value)


# ---- widget model -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "h, w, kh, kw, sh, sw",
    [(7, 9, 3, 3, 2, 2), (8, 11, 3, 3, 2, 3), (9, 9, 2, 2, 3, 3), (5, 5, 5, 5, 4, 1), (6, 7, 1, 1, 2, 5)],
)
def test_model_matches_torch(h, w, kh, kw, sh, sw):
    model = StrideGeometry(h, w, kh, kw, sh, sw)
    assert model.out_shape == tuple(
        F.conv2d(torch.zeros(1, 1, h, w), torch.zeros(1, 1, kh, kw), stride=(sh, sw)).shape[-2:]
    )
    # a pixel is read exactly when its gradient through torch's strided conv is non-zero
    x = torch.zeros(1, 1, h, w, requires_grad=True)
    F.conv2d(x, torch.ones(1, 1, kh, kw), stride=(sh, sw)).sum().backward()
    assert np.array_equal(model.coverage(), x.grad[0, 0].numpy().astype(int))
    assert str(model.out_shape[0]) in model.formula()


def test_leftover_rows_columns_and_positions():
    model = StrideGeometry(8, 11, 3, 3, 2, 3)
    assert model.out_shape == (3, 3) and model.steps == 9
    assert model.leftover == (1, 2)
    assert model.output_index(5) == (1, 2) and model.corner(1, 2) == (2, 6)
    assert (model.coverage()[7] == 0).all() and (model.coverage()[:, 9:] == 0).all()
    with pytest.raises(ValueError, match="step"):
        model.output_index(9)
    with pytest.raises(ValueError, match="stride"):
        StrideGeometry(5, 5, 2, 2, 0, 1)
    with pytest.raises(ValueError, match="does not fit"):
        StrideGeometry(2, 5, 3, 2)


def test_draw_returns_a_figure_and_clamps_the_step():
    fig = draw(StrideGeometry(8, 11, 3, 3, 2, 3), step=50)
    assert isinstance(fig, plt.Figure)
    assert "out[2, 2]" in fig.axes[1].get_xlabel() and "W_out" in fig.get_suptitle()
    plt.close(fig)


def test_widget_builds_redraws_and_adapts_the_step_slider():
    view = stride_widget()
    assert "out[1, 1]" not in view.last_figure.axes[1].get_xlabel()
    assert view.controls["step"].max == 11  # 7x9 input, 3x3 kernel, stride 2: 3x4 positions
    view.controls["step"].value = 5  # redrawn (in place: the same figure, new contents)
    assert "out[1, 1]" in view.last_figure.axes[1].get_xlabel()
    view.controls["sw"].value = 5  # 1 column of positions now
    assert view.controls["step"].max == model_steps(7, 9, 3, 3, 2, 5) - 1
    view.controls["kh"].value = 6
    view.controls["h"].value = 3  # kernel larger than the input: a message, not an error
    assert "does not fit" in " ".join(t.get_text() for t in view.last_figure.axes[0].texts)
    plt.close("all")


def model_steps(*args):
    return StrideGeometry(*args).steps


# ---- exercise -----------------------------------------------------------------------------------


def test_correct_implementation_passes_every_suite():
    assert check_suite("conv2d_strided", conv2d_strided, "visible")
    assert check_suite("conv2d_strided", conv2d_strided, "hidden")


def test_stride_on_the_wrong_axis_is_diagnosed():
    def swapped(x, weight, stride):
        s = (stride, stride) if isinstance(stride, int) else stride
        return conv2d_strided(x, weight, (s[1], s[0]))

    assert "stride is applied to the wrong axis" in failure(swapped, "visible")


def test_ignored_stride_and_off_by_one_are_diagnosed():
    def ignored(x, weight, stride):
        return conv2d_strided(x, weight, 1)

    def one_short(x, weight, stride):
        return conv2d_strided(x, weight, stride)[..., :-1, :-1]

    assert "stride is ignored" in failure(ignored, "visible")
    message = str(
        pytest.raises(
            GradingError,
            check,
            "conv2d_strided",
            one_short,
            x=randn(1, 1, 7, 7, seed=1),
            weight=randn(1, 1, 3, 3, seed=2),
            stride=2,
        ).value
    )
    assert "off-by-one" in message


def test_float32_output_and_missing_errors_fail():
    def float32(x, weight, stride):
        return conv2d_strided(x, weight, stride).float()

    def no_checks(x, weight, stride):
        s = (stride, stride) if isinstance(stride, int) else stride
        return conv2d_strided(x, weight, (max(s[0], 1), max(s[1], 1)))

    assert "dtype" in failure(float32, "visible")
    assert "torch raises RuntimeError" in failure(no_checks)


def test_banned_convolution_and_unfold_fail():
    def uses_torch(x, weight, stride):
        return F.conv2d(x, weight, stride=stride)

    def uses_unfold(x, weight, stride):
        cols = F.unfold(x, weight.shape[-2:], stride=stride)
        out = weight.reshape(weight.shape[0], -1) @ cols
        h = (x.shape[2] - weight.shape[2]) // (stride if isinstance(stride, int) else stride[0]) + 1
        return out.reshape(x.shape[0], weight.shape[0], h, -1)

    assert "called torch's convolution" in failure(uses_torch, "visible")
    assert "unfold" in failure(uses_unfold, "visible")
