"""Lesson 07: grouped convolution checks, parameter counts and the wiring widget."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from convcourse.checks import GradingError, check_suite
from convcourse.widgets.groups import GroupedConv, draw, groups_widget, separable_weights, valid_groups


def grouped(x, weight, groups):
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    if groups < 1 or c % groups or o % groups or cg != c // groups:
        raise RuntimeError("bad groups")
    out = torch.zeros(n, o, h - kh + 1, w - kw + 1, dtype=x.dtype)
    per = o // groups
    for oc in range(o):
        g = oc // per
        for i in range(h - kh + 1):
            for j in range(w - kw + 1):
                out[:, oc, i, j] = (x[:, g * cg : (g + 1) * cg, i : i + kh, j : j + kw] * weight[oc]).sum(dim=(1, 2, 3))
    return out


def count(in_channels, out_channels, kernel_size, groups=1, bias=True):
    if groups <= 0 or in_channels % groups or out_channels % groups:
        raise ValueError("bad groups")
    kh, kw = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def test_correct_implementations_pass_every_suite():
    for suite in ("visible", "hidden"):
        assert check_suite("conv2d_grouped", grouped, suite)
        assert check_suite("conv_param_count", count, suite)


def test_groups_mixing_channels_is_diagnosed():
    def first_group_only(x, weight, groups):
        return grouped(x[:, : weight.shape[1]].repeat(1, groups, 1, 1), weight, groups)

    with pytest.raises(GradingError, match="first group's input channels"):
        check_suite("conv2d_grouped", first_group_only, "visible")


def test_modulo_group_assignment_is_diagnosed():
    def modulo(x, weight, groups):
        n, c, h, w = x.shape
        o, cg, kh, kw = weight.shape
        out = torch.zeros(n, o, h - kh + 1, w - kw + 1, dtype=x.dtype)
        for oc in range(o):
            g = oc % groups
            for i in range(h - kh + 1):
                for j in range(w - kw + 1):
                    out[:, oc, i, j] = (x[:, g * cg : (g + 1) * cg, i : i + kh, j : j + kw] * weight[oc]).sum(
                        dim=(1, 2, 3)
                    )
        return out

    with pytest.raises(GradingError, match="o % groups"):
        check_suite("conv2d_grouped", modulo, "hidden")


def test_missing_validation_and_banned_calls_fail():
    def unchecked(x, weight, groups):
        return grouped(x, weight, 1) if weight.shape[1] == x.shape[1] else torch.zeros(1)

    with pytest.raises(GradingError):
        check_suite("conv2d_grouped", unchecked, "hidden")
    with pytest.raises(GradingError, match="called torch's convolution"):
        check_suite("conv2d_grouped", lambda x, weight, groups: F.conv2d(x, weight, groups=groups), "visible")


@pytest.mark.parametrize(
    "wrong, message",
    [
        (
            lambda in_channels, out_channels, kernel_size, groups=1, bias=True: count(
                in_channels, out_channels, kernel_size, 1, bias
            ),
            "groups are ignored",
        ),
        (
            lambda in_channels, out_channels, kernel_size, groups=1, bias=True: count(
                in_channels, out_channels, kernel_size, groups, False
            ),
            "bias is missing",
        ),
    ],
)
def test_param_count_diagnoses(wrong, message):
    with pytest.raises(GradingError, match=message):
        check_suite("conv_param_count", wrong, "visible")


def test_param_count_must_raise_value_error_like_nn_conv2d():
    def no_validation(in_channels, out_channels, kernel_size, groups=1, bias=True):
        kh, kw = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
        return out_channels * (in_channels // max(groups, 1)) * kh * kw + (out_channels if bias else 0)

    with pytest.raises(GradingError, match="ValueError"):
        check_suite("conv_param_count", no_validation, "hidden")


def test_model_wiring_matches_torch():
    model = GroupedConv(6, 4, groups=2)
    assert list(model.inputs_of(0)) == [0, 1, 2] and list(model.inputs_of(3)) == [3, 4, 5]
    assert len(model.connections()) == 4 * 3
    layer = torch.nn.Conv2d(6, 4, 3, groups=2, bias=False)
    assert model.weights() == layer.weight.numel()
    assert separable_weights(8, 16) == 8 * 9 + 8 * 16
    assert valid_groups(6, 4) == [1, 2]
    with pytest.raises(ValueError, match="divisible"):
        GroupedConv(6, 4, groups=3)


def test_draw_and_widget_headless():
    fig = draw(8, 8, 4)
    assert "16 wires" in fig.axes[0].get_title()
    plt.close(fig)
    fig = draw(6, 4, 3)
    assert "refuses" in fig.axes[0].texts[0].get_text()
    plt.close(fig)
    view = groups_widget()
    view.controls["groups"].value = 8
    assert "groups=8" in view.last_figure.axes[0].get_title()
    view.controls["c_in"].value = 6
    assert view.controls["groups"].value in valid_groups(6, 8)
    plt.close("all")
