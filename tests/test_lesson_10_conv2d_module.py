"""Lesson 10: the Conv2d-module checks (right and wrong modules) and the layer widget, headless."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convcourse.checks import GradingError, check, check_suite
from convcourse.widgets.conv2d_module import build_layer, draw, layer_summary, layer_widget

MODES = ("zeros", "reflect", "replicate", "circular")


class Reference(nn.Module):
    """A correct Conv2d written for the tests (independent of the answer key)."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        padding_mode="zeros",
        device=None,
        dtype=None,
    ):
        super().__init__()
        two = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError("bad groups")
        if isinstance(padding, str) and (
            padding not in ("same", "valid") or (padding == "same" and two(stride) != (1, 1))
        ):
            raise ValueError("bad padding")
        if padding_mode not in MODES:
            raise ValueError("bad padding_mode")
        self.in_channels, self.out_channels, self.groups, self.padding_mode = (
            in_channels,
            out_channels,
            groups,
            padding_mode,
        )
        self.kernel_size, self.stride, self.dilation = two(kernel_size), two(stride), two(dilation)
        self.padding = padding if isinstance(padding, str) else two(padding)
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size, device=device, dtype=dtype)
        )
        self.bias = nn.Parameter(torch.empty(out_channels, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.weight[0].numel())
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def pads(self):
        if self.padding == "same":
            th, tw = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        if self.padding == "valid":
            return (0, 0, 0, 0)
        return (self.padding[1], self.padding[1], self.padding[0], self.padding[0])

    def forward(self, x):
        x = F.pad(x, self.pads(), mode="constant" if self.padding_mode == "zeros" else self.padding_mode)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0),):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


Reference.__name__ = Reference.__qualname__ = "Conv2d"  # repr() shows the class name, as torch's does

EXERCISES = ["Conv2d", "Conv2d_init", "Conv2d_repr", "Conv2d_errors"]


@pytest.mark.parametrize("exercise", EXERCISES)
def test_correct_module_passes_every_suite(exercise):
    from convcourse.checks.core import get_exercise

    for suite in get_exercise(exercise).suites:
        assert check_suite(exercise, Reference, suite)


def _subclass(**methods):
    return type("Conv2d", (Reference,), methods)


def _plain_tensor_init(self, *args, **kwargs):
    Reference.__init__(self, *args, **kwargs)
    weight = self.weight.detach()
    del self.weight
    self.weight = weight


def _init_with(fn):
    def reset_parameters(self):
        with torch.no_grad():
            fn(self)

    return reset_parameters


def _zero_bias(self):
    bound = 1 / math.sqrt(self.weight[0].numel())
    self.weight.uniform_(-bound, bound)
    if self.bias is not None:
        self.bias.zero_()


def _bias_without_register(self, *args, bias=True, **kwargs):
    Reference.__init__(self, *args, bias=bias, **kwargs)
    if not bias:
        del self.bias
        self.bias = nn.Parameter(torch.zeros(self.out_channels, dtype=self.weight.dtype))


WRONG_MODULES = [
    (
        "Conv2d",
        _subclass(
            forward=lambda self, x: F.conv2d(
                x,
                self.weight,
                self.bias,
                self.stride,
                self.padding if self.padding_mode == "zeros" else self.pads()[::-2][::-1],
                self.dilation,
                self.groups,
            )
        ),
        "padding_mode",
    ),
    (
        "Conv2d",
        _subclass(
            forward=lambda self, x: F.conv2d(
                F.pad(x, self.pads(), mode="constant" if self.padding_mode == "zeros" else self.padding_mode),
                self.weight,
                None,
                self.stride,
                0,
                self.dilation,
                self.groups,
            )
        ),
        "bias is not used",
    ),
    (
        "Conv2d",
        _subclass(
            forward=lambda self, x: F.conv2d(
                F.pad(x, self.pads()), self.weight, self.bias, 1, 0, self.dilation, self.groups
            )
        ),
        "stride is not passed",
    ),
    ("Conv2d", _subclass(__init__=_plain_tensor_init), "parameters"),
    ("Conv2d", _subclass(__init__=_bias_without_register), "register_parameter"),
    (
        "Conv2d",
        _subclass(
            forward=lambda self, x: F.conv2d(
                F.pad(x, self.pads(), mode="constant" if self.padding_mode == "zeros" else self.padding_mode),
                self.weight.flip(-1),
                self.bias,
                self.stride,
                0,
                self.dilation,
                self.groups,
            )
        ),
        "differs from nn.Conv2d",
    ),
    (
        "Conv2d_init",
        _subclass(reset_parameters=_init_with(lambda self: nn.init.kaiming_uniform_(self.weight))),
        "reaches",
    ),
    (
        "Conv2d_init",
        _subclass(
            reset_parameters=_init_with(lambda self: self.weight.normal_(0, 1 / math.sqrt(3 * self.weight[0].numel())))
        ),
        "reaches",
    ),
    ("Conv2d_init", _subclass(reset_parameters=_init_with(_zero_bias)), "bias is all zeros"),
    (
        "Conv2d_init",
        _subclass(
            reset_parameters=_init_with(
                lambda self: (
                    [
                        p.uniform_(
                            -1 / math.sqrt(self.in_channels * self.weight[0, 0].numel()),
                            1 / math.sqrt(self.in_channels * self.weight[0, 0].numel()),
                        )
                        for p in self.parameters()
                    ]
                    and None
                )
            )
        ),
        "only",
    ),  # fan_in ignores groups: bound too small
    (
        "Conv2d_repr",
        _subclass(extra_repr=lambda self: f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"),
        "extra_repr",
    ),
    (
        "Conv2d_repr",
        _subclass(extra_repr=lambda self: Reference.extra_repr(self).replace("padding_mode=", "padding_mode='")),
        "extra_repr",
    ),
]


@pytest.mark.parametrize("exercise, cls, text", WRONG_MODULES, ids=[f"{e}-{t}" for e, _, t in WRONG_MODULES])
def test_wrong_modules_fail_with_a_clear_message(exercise, cls, text):
    with pytest.raises(GradingError, match=text):
        check_suite(exercise, cls, "hidden")


def test_wrong_errors_are_reported():
    class NoChecks(Reference):
        def __init__(self, in_channels, out_channels, kernel_size, groups=1, padding_mode="zeros", **kw):
            nn.Module.__init__(self)
            if groups <= 0 or in_channels % groups:
                raise RuntimeError("wrong exception type")

        def extra_repr(self):
            return "unchecked"

    with pytest.raises(GradingError, match="raises ValueError"):
        check_suite("Conv2d_errors", NoChecks, "visible")

    class Lenient(Reference):
        def __init__(self, *args, padding_mode="zeros", **kwargs):
            super().__init__(*args, padding_mode="zeros", **kwargs)

    with pytest.raises(GradingError, match="invalid"):
        check_suite("Conv2d_errors", Lenient, "visible")


def test_uniform_check_is_not_fooled_by_one_case_and_is_deterministic():
    # Many independent constructions all pass: the tolerances cannot flake for a correct init.
    for seed in range(5):
        torch.manual_seed(seed)
        assert check("Conv2d_init", Reference, in_channels=8, out_channels=512, kernel_size=(1, 3), groups=4)


def test_not_implemented_and_not_a_module():
    class Stub(nn.Module):
        def __init__(self, *args, **kwargs):
            raise NotImplementedError()

    with pytest.raises(GradingError, match="not implemented"):
        check_suite("Conv2d", Stub, "visible")

    def factory(**kwargs):
        return torch.zeros(1)

    with pytest.raises(GradingError, match="nn.Module"):
        check("Conv2d", factory, in_channels=1, out_channels=1, kernel_size=1)


# ------------------------------------------------------------------ widget


def test_layer_summary_and_build_layer():
    s = layer_summary(3, 4, 3, padding="same", groups=1, bias=False, padding_mode="reflect", input_size=(10, 12))
    assert s["error"] is None and s["parameters"] == {"weight": (4, 3, 3, 3)} and s["count"] == 108
    assert s["output_shape"] == (1, 4, 10, 12) and "padding_mode=reflect" in s["repr"]
    assert layer_summary(3, 4, 3, groups=3)["error"].startswith("ValueError")
    assert "stride" in layer_summary(3, 3, 3, stride=2, padding="same")["error"]
    assert "forward" in layer_summary(3, 3, 7, dilation=3, input_size=(8, 8))["error"]

    class Stub(nn.Module):
        def __init__(self, *a, **k):
            raise NotImplementedError

    layer, who = build_layer(Stub, in_channels=3, out_channels=2, kernel_size=3)
    assert isinstance(layer, nn.Conv2d) and "not implemented" in who
    mine, who = build_layer(Reference, in_channels=3, out_channels=2, kernel_size=3)
    theirs, _ = build_layer(None, in_channels=3, out_channels=2, kernel_size=3)
    assert who == "your Conv2d" and isinstance(mine, Reference)
    # same seed, same distribution and draw order: identical initial weights
    assert torch.equal(mine.weight, theirs.weight)


def _summary(fig):
    return next(ax for ax in fig.axes if ax.get_label() == "summary")


def test_draw_and_widget_headless():
    image = torch.rand(3, 20, 24)
    fig = draw(layer_summary(3, 2, 3, input_size=(20, 24)), image)
    assert len(fig.axes) == 4 and "weight: (2, 3, 3, 3)" in _summary(fig).texts[0].get_text()
    plt.close(fig)
    fig = draw(layer_summary(3, 4, 3, groups=3), image)
    assert "Invalid arguments" in _summary(fig).texts[0].get_text()
    plt.close(fig)
    view = layer_widget(Reference, image=image)
    assert "circular" not in _summary(view.last_figure).texts[0].get_text()
    view.controls["padding_mode"].value = "circular"
    assert "padding_mode=circular" in _summary(view.last_figure).texts[0].get_text()  # redrawn (in place)
    assert "your Conv2d" in _summary(view.last_figure).texts[0].get_text()
    view.controls["out_channels"].value = 2
    assert [ax.get_title() for ax in view.last_figure.axes[2:]] == ["out channel 0", "out channel 1"]
    view.controls["groups"].value = 3  # 4 output channels: invalid
    assert "Invalid arguments" in _summary(view.last_figure).texts[0].get_text()
    plt.close("all")
