"""Lesson 11: the who-touches-whom widget model and view, and the conv2d_backward / Conv2dFunction checks."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from convcourse.checks import GradingError, check, check_suite
from convcourse.checks.exercises.l11_backward import backward_case
from convcourse.widgets.backward import (
    INPUT_TO_OUTPUTS,
    OUTPUT_TO_INPUTS,
    ConvGeometry,
    LearnerResults,
    backward_widget,
    draw,
    touch_counts_figure,
)

SETTINGS = [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(3, 1)),
    dict(kernel_size=3, dilation=2, padding=(2, 0)),
    dict(kernel_size=4, stride=2),
]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


# ----------------------------------------------------------------------------- references written here


def loop_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
    """Loops over every output pixel and tap (slow, obviously right)."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c_in, h, w = input.shape
    c_out, cg, kh, kw = weight.shape
    xp = torch.zeros(n, c_in, h + 2 * ph, w + 2 * pw, dtype=input.dtype)
    xp[:, :, ph : ph + h, pw : pw + w] = input
    gxp = torch.zeros_like(xp)
    gw = torch.zeros_like(weight)
    per_group = c_out // groups
    for o in range(c_out):
        c0 = (o // per_group) * cg
        for i in range(grad_output.shape[2]):
            for j in range(grad_output.shape[3]):
                g = grad_output[:, o, i, j]  # (n,)
                for a in range(kh):
                    for b in range(kw):
                        r, q = i * sh + a * dh, j * sw + b * dw
                        gw[o, :, a, b] += (g[:, None] * xp[:, c0 : c0 + cg, r, q]).sum(0)
                        gxp[:, c0 : c0 + cg, r, q] += g[:, None] * weight[o, :, a, b]
    return gxp[:, :, ph : ph + h, pw : pw + w], gw, grad_output.sum((0, 2, 3))


def fold_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
    """unfold/fold version: shows F.unfold and F.fold are allowed."""
    n, c_in, h, w = input.shape
    c_out, cg, kh, kw = weight.shape
    args = dict(kernel_size=(kh, kw), dilation=dilation, padding=padding, stride=stride)
    cols = F.unfold(input, **args).reshape(n, groups, cg * kh * kw, -1)
    g = grad_output.reshape(n, groups, c_out // groups, -1)
    wg = weight.reshape(groups, c_out // groups, -1)
    grad_weight = torch.einsum("ngol,ngkl->gok", g, cols).reshape(weight.shape)
    grad_cols = torch.einsum("gok,ngol->ngkl", wg, g).reshape(n, c_in * kh * kw, -1)
    return F.fold(grad_cols, (h, w), **args), grad_weight, grad_output.sum((0, 2, 3))


class GoodFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        ctx.save_for_backward(input, weight)
        ctx.args, ctx.has_bias = (stride, padding, dilation, groups), bias is not None
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        gi, gw, gb = fold_backward(grad_output, input, weight, *ctx.args)
        return gi, gw, gb if ctx.has_bias else None, None, None, None, None


def fails(exercise, fn, suite, *texts):
    with pytest.raises(GradingError) as info:
        check_suite(exercise, fn, suite)
    for text in texts:
        assert text in str(info.value), str(info.value)
    return str(info.value)


# ----------------------------------------------------------------------------- widget model


@pytest.mark.parametrize("options", SETTINGS)
def test_geometry_links_match_torch_autograd(options):
    geo = ConvGeometry(7, 6, **options)
    kh, kw = _pair(options["kernel_size"])
    x = torch.zeros(1, 1, 7, 6, dtype=torch.float64, requires_grad=True)
    taps = torch.arange(1.0, kh * kw + 1, dtype=torch.float64).reshape(1, 1, kh, kw)
    conv = dict(stride=geo.stride, padding=geo.padding, dilation=geo.dilation)
    out = F.conv2d(x, taps, **conv)
    assert tuple(out.shape[-2:]) == geo.out_shape
    for i in range(geo.out_shape[0]):
        for j in range(geo.out_shape[1]):
            g = torch.zeros_like(out)
            g[0, 0, i, j] = 1
            (grad,) = torch.autograd.grad(out, x, g, retain_graph=True)
            expected = torch.zeros(7, 6, dtype=torch.float64)
            for (r, c), (a, b) in geo.inputs_of(i, j):
                if 0 <= r < 7 and 0 <= c < 6:
                    expected[r, c] += taps[0, 0, a, b]
            assert torch.equal(grad[0, 0], expected)
    # outputs_of is the inverse relation of inputs_of, and touch_counts counts it
    ones = torch.ones_like(taps)
    out = F.conv2d(x, ones, **conv)
    (counts,) = torch.autograd.grad(out, x, torch.ones_like(out))
    assert torch.equal(geo.touch_counts(), counts[0, 0].long())
    for r in range(7):
        for c in range(6):
            for (i, j), ab in geo.outputs_of(r, c):
                assert ((r, c), ab) in geo.inputs_of(i, j)


def test_geometry_errors_and_clamp():
    with pytest.raises(ValueError, match="does not fit"):
        ConvGeometry(3, 3, kernel_size=4)
    with pytest.raises(ValueError, match=">= 1"):
        ConvGeometry(5, 5, stride=0)
    geo = ConvGeometry(5, 5, kernel_size=3, stride=2)
    with pytest.raises(ValueError, match="outside"):
        geo.inputs_of(2, 0)
    with pytest.raises(ValueError, match="outside"):
        geo.outputs_of(5, 0)
    assert geo.clamp(OUTPUT_TO_INPUTS, 9, -1) == (1, 0) and geo.clamp(INPUT_TO_OUTPUTS, 9, 9) == (4, 4)
    # k=4, stride 2 on 9 pixels: the last row/column is read by no window
    assert ConvGeometry(9, 9, kernel_size=4, stride=2).outputs_of(8, 8) == []


def _panel_text(fig, index):
    ax = fig.axes[index]
    return " ".join([t.get_text() for t in ax.texts] + [ax.get_title()])


def test_draw_both_modes_and_the_learners_function():
    geo = ConvGeometry(6, 6, kernel_size=3, stride=2, padding=1)
    for mode in (INPUT_TO_OUTPUTS, OUTPUT_TO_INPUTS):
        fig = draw(geo, mode, 2, 3)
        assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert "grad_input[2, 3]" in draw(geo, INPUT_TO_OUTPUTS, 2, 3)._suptitle.get_text()

    def not_done(*args, **kwargs):
        raise NotImplementedError

    def broken(*args, **kwargs):
        raise IndexError("oops")

    def flipped(grad_output, input, weight, **kwargs):
        return loop_backward(grad_output, input, weight.flip(-1, -2), **kwargs)

    reused = None  # one figure redrawn in place through every learner and mode
    for learner, text in [
        (not_done, "not implemented"),
        (broken, "IndexError"),
        (loop_backward, "✓"),
        (flipped, "differs"),
    ]:
        for mode in (INPUT_TO_OUTPUTS, OUTPUT_TO_INPUTS):
            fig = draw(geo, mode, 1, 1, learner)
            assert text in _panel_text(fig, 3), (learner.__name__, mode, _panel_text(fig, 3))
            reused = draw(geo, mode, 1, 1, learner, figure=reused)
            assert _panel_text(reused, 3) == _panel_text(fig, 3)  # redrawn in place: the same panel


def test_the_learners_backward_runs_once_per_example():
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return loop_backward(*args, **kwargs)

    geo = ConvGeometry(5, 5, 3, stride=2, padding=1)
    results = LearnerResults(counted)
    ok, mine, expected = results(geo, INPUT_TO_OUTPUTS, 0, 0)
    assert ok and torch.equal(mine, expected) and len(calls) == 1  # once, under the grader's check
    results(geo, INPUT_TO_OUTPUTS, 2, 1)  # input mode: grad_output is all ones, whichever pixel is picked
    results(geo, OUTPUT_TO_INPUTS, 1, 1)
    results(geo, OUTPUT_TO_INPUTS, 0, 1)
    results(geo, OUTPUT_TO_INPUTS, 1, 1)  # seen before
    assert results.calls == 3 and len(calls) == 3

    def flipped(grad_output, input, weight, **kwargs):
        return loop_backward(grad_output, input, weight.flip(-1, -2), **kwargs)

    ok, mine, expected = LearnerResults(flipped)(geo, OUTPUT_TO_INPUTS, 1, 1)
    assert not ok and not torch.equal(mine, expected)

    def not_done(*args, **kwargs):
        raise NotImplementedError

    failing = LearnerResults(not_done)
    for _ in range(2):  # an error is raised each time, not kept
        with pytest.raises(NotImplementedError):
            failing(geo, INPUT_TO_OUTPUTS, 0, 0)
    assert failing.calls == 2


def test_widget_builds_redraws_and_reports_impossible_settings():
    view = backward_widget(conv2d_backward=loop_backward)
    assert "reads" not in view.last_figure._suptitle.get_text()
    view.controls["mode"].value = OUTPUT_TO_INPUTS
    assert "reads" in view.last_figure._suptitle.get_text()
    view.controls["kernel_size"].value = 4
    view.controls["padding"].value = 0
    view.controls["dilation"].value = 3  # 3*(4-1)+1 = 10 > 7: does not fit
    assert "does not fit" in " ".join(t.get_text() for t in view.last_figure.axes[0].texts)
    assert isinstance(touch_counts_figure(), plt.Figure)
    plt.close("all")


# ----------------------------------------------------------------------------- exercise checks


@pytest.mark.parametrize("fn", [loop_backward, fold_backward])
def test_correct_backwards_pass_every_suite(fn):
    assert check_suite("conv2d_backward", fn, "visible") and check_suite("conv2d_backward", fn, "hidden")


def test_wrong_grad_weight_and_grad_bias_get_per_part_messages():
    def flipped_weight(grad_output, input, weight, **kw):
        gi, gw, gb = loop_backward(grad_output, input, weight, **kw)
        return gi, gw.flip(-1, -2), gb

    message = fails(
        "conv2d_backward", flipped_weight, "visible", "grad_weight wrong", "flipped", "correct: grad_input, grad_bias"
    )
    assert "grad_input wrong" not in message

    def mean_bias(grad_output, input, weight, **kw):
        gi, gw, gb = loop_backward(grad_output, input, weight, **kw)
        return gi, gw, grad_output.mean((0, 2, 3))

    fails("conv2d_backward", mean_bias, "visible", "grad_bias wrong", "averaged")

    def first_sample_weight(grad_output, input, weight, **kw):
        gi, _, gb = loop_backward(grad_output, input, weight, **kw)
        return gi, loop_backward(grad_output[:1], input[:1], weight, **kw)[1], gb

    fails("conv2d_backward", first_sample_weight, "visible", "grad_weight wrong", "first sample")


def test_grad_input_shape_mistakes_are_explained():
    def sized_from_output(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
        gi, gw, gb = loop_backward(grad_output, input, weight, stride, padding, dilation, groups)
        (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
        rows = (grad_output.shape[2] - 1) * sh + dh * (weight.shape[2] - 1) + 1 - 2 * ph
        cols = (grad_output.shape[3] - 1) * sw + dw * (weight.shape[3] - 1) + 1 - 2 * pw
        return gi[:, :, :rows, :cols], gw, gb

    fails(
        "conv2d_backward",
        sized_from_output,
        "hidden",
        "grad_input has the wrong shape",
        "Remember output_padding when stride doesn't divide evenly",
    )

    def uncropped(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
        gi, gw, gb = loop_backward(grad_output, input, weight, stride, padding, dilation, groups)
        ph, pw = _pair(padding)
        return F.pad(gi, (pw, pw, ph, ph)), gw, gb

    fails("conv2d_backward", uncropped, "visible", "grad_input has the wrong shape", "crop the padded border")

    def float32(grad_output, input, weight, **kw):
        return tuple(t.float() for t in loop_backward(grad_output, input, weight, **kw))

    fails("conv2d_backward", float32, "visible", "dtype float32")

    def two_values(grad_output, input, weight, **kw):
        return loop_backward(grad_output, input, weight, **kw)[:2]

    fails("conv2d_backward", two_values, "visible", "tuple (grad_input, grad_weight, grad_bias)")


def test_torch_convolution_and_its_autograd_are_banned():
    def via_autograd(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
        x, w = input.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        out = F.conv2d(x, w, None, stride, padding, dilation, groups)
        gi, gw = torch.autograd.grad(out, (x, w), grad_output)
        return gi, gw, grad_output.sum((0, 2, 3))

    def via_aten(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
        return torch.ops.aten.convolution_backward(
            grad_output,
            input,
            weight,
            [weight.shape[0]],
            list(_pair(stride)),
            list(_pair(padding)),
            list(_pair(dilation)),
            False,
            [0, 0],
            groups,
            [True, True, True],
        )

    def via_transpose(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
        _, gw, gb = loop_backward(grad_output, input, weight, stride, padding, dilation, groups)
        return F.conv_transpose2d(grad_output, weight, None, stride, padding, 0, groups, dilation), gw, gb

    for fn in (via_autograd, via_aten, via_transpose):
        fails("conv2d_backward", fn, "visible", "called torch's convolution")


def test_single_check_and_case_builder():
    case = backward_case(2, 4, 5, 6, 4, 3, 2, stride=(2, 1), padding=1, groups=2, seed=3)
    assert tuple(case["grad_output"].shape) == (2, 4, 3, 7) and case["weight"].shape[1] == 2
    assert check("conv2d_backward", loop_backward, **case)


def test_conv2d_function_checks():
    assert check_suite("Conv2dFunction", GoodFunction.apply, "visible")
    assert check_suite("Conv2dFunction", GoodFunction.apply, "hidden")

    class TorchBackward(GoodFunction):
        @staticmethod
        def backward(ctx, grad_output):
            input, weight = ctx.saved_tensors
            s, p, d, g = ctx.args
            with torch.enable_grad():
                x, w = input.detach().requires_grad_(True), weight.detach().requires_grad_(True)
                gi, gw = torch.autograd.grad(F.conv2d(x, w, None, s, p, d, g), (x, w), grad_output)
            return gi, gw, grad_output.sum((0, 2, 3)) if ctx.has_bias else None, None, None, None, None

    fails("Conv2dFunction", TorchBackward.apply, "visible", "backward called torch's convolution")

    class NoBiasGrad(GoodFunction):
        @staticmethod
        def backward(ctx, grad_output):
            gi, gw, _, *rest = GoodFunction.backward(ctx, grad_output)
            return (gi, gw, None, *rest)

    fails("Conv2dFunction", NoBiasGrad.apply, "visible", "grad_bias is None")

    class FlippedInputGrad(GoodFunction):
        @staticmethod
        def backward(ctx, grad_output):
            input, weight = ctx.saved_tensors
            gi, _, _ = fold_backward(grad_output, input, weight.flip(-1, -2), *ctx.args)
            _, gw, gb = fold_backward(grad_output, input, weight, *ctx.args)
            return gi, gw, gb if ctx.has_bias else None, None, None, None, None

    fails("Conv2dFunction", FlippedInputGrad.apply, "visible", "grad_input wrong", "flipped kernel")

    def plain_function(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)

    fails("Conv2dFunction", plain_function, "visible", "not connected to autograd through your Function")

    def wrong_forward(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return GoodFunction.apply(input, weight.flip(-1), bias, stride, padding, dilation, groups)

    fails("Conv2dFunction", wrong_forward, "visible", "forward output is wrong")
