"""Lesson 09: conv2d_fast checks (correctness, ban, vectorization monitor) and the im2col widget, headless."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from convcourse.checks import GradingError, check, check_suite, suite_cases
from convcourse.checks.exercises.l09_vectorized import MIN_PIXELS, LoopMonitor
from convcourse.widgets.vectorized import (
    Im2col,
    benchmark,
    draw,
    im2col_bytes,
    im2col_widget,
    memory_plot,
    time_call,
    timing_plot,
)

# ------------------------------------------------------------------ implementations written for the tests


def _pads(weight, stride, padding, dilation):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    kh, kw = weight.shape[-2:]
    if padding == "valid":
        return (0, 0, 0, 0), (sh, sw), (dh, dw)
    if padding == "same":
        if (sh, sw) != (1, 1):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return (tw // 2, tw - tw // 2, th // 2, th - th // 2), (sh, sw), (dh, dw)
    if isinstance(padding, str):
        raise RuntimeError(f"Invalid padding string: {padding!r}")
    ph, pw = pair(padding)
    if ph < 0 or pw < 0:
        raise RuntimeError("negative padding is not supported")
    return (pw, pw, ph, ph), (sh, sw), (dh, dw)


def _validate(input, weight, bias, stride, dilation, groups):
    if input.dim() not in (3, 4):
        raise RuntimeError("expected 3-D or 4-D input")
    if groups <= 0 or min(stride) <= 0:
        raise RuntimeError("non-positive groups/stride")
    if min(dilation) <= 0:
        raise RuntimeError("dilation should be greater than zero")
    if weight.shape[0] % groups or input.shape[-3] != weight.shape[1] * groups:
        raise RuntimeError("channels and groups do not match")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise RuntimeError("bad bias")
    if weight.dtype != input.dtype or (bias is not None and bias.dtype != input.dtype):
        raise RuntimeError("input, weight and bias dtypes differ")


def unfold_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A correct vectorized version: F.unfold + one batched matmul."""
    pads, stride, dilation = _pads(weight, stride, padding, dilation)
    _validate(input, weight, bias, stride, dilation, groups)
    x = input[None] if input.dim() == 3 else input
    x = F.pad(x, pads)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    out_h, out_w = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1, (w - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if out_h <= 0 or out_w <= 0:
        raise RuntimeError("kernel size can't be greater than the padded input")
    cols = F.unfold(x, (kh, kw), dilation=dilation, stride=stride)  # (n, c*kh*kw, L)
    cols = cols.reshape(n, groups, cg * kh * kw, -1)
    out = weight.reshape(groups, o // groups, -1) @ cols  # (n, g, o/g, L)
    out = out.reshape(n, o, out_h, out_w)
    if bias is not None:
        out = out + bias[:, None, None]
    return out[0] if input.dim() == 3 else out


def pixel_loop_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Correct but looped over output pixels (vectorized over channels)."""
    pads, stride, dilation = _pads(weight, stride, padding, dilation)
    _validate(input, weight, bias, stride, dilation, groups)
    x = input[None] if input.dim() == 3 else input
    x = F.pad(x, pads)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    out_h, out_w = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    if out_h <= 0 or out_w <= 0:
        raise RuntimeError("kernel too big")
    out = torch.zeros(n, o, out_h, out_w, dtype=x.dtype)
    wg = weight.reshape(groups, o // groups, cg, kh, kw)
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, :, i * sh : i * sh + dh * (kh - 1) + 1 : dh, j * sw : j * sw + dw * (kw - 1) + 1 : dw]
            patch = patch.reshape(n, groups, cg, kh, kw)
            out[:, :, i, j] = torch.einsum("ngchw,gochw->ngo", patch, wg).reshape(n, o)
    if bias is not None:
        out += bias[:, None, None]
    return out[0] if input.dim() == 3 else out


def numpy_loop_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Pixel loop in numpy (no torch ops inside the loop): only the line counter can see it."""
    import numpy as np

    pads, stride, dilation = _pads(weight, stride, padding, dilation)
    x = F.pad(input[None] if input.dim() == 3 else input, pads).numpy()
    wt = weight.numpy()
    n, c, h, w = x.shape
    o, cg, kh, kw = wt.shape
    (sh, sw), (dh, dw) = stride, dilation
    out_h, out_w = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            out[:, :, i, j] = np.einsum(
                "nchw,ochw->no",
                x[:, :, i * sh : i * sh + dh * (kh - 1) + 1 : dh, j * sw : j * sw + dw * (kw - 1) + 1 : dw],
                wt,
            )
    if bias is not None:
        out += bias.numpy()[:, None, None]
    return torch.from_numpy(out)


# ------------------------------------------------------------------ correctness suites


@pytest.mark.parametrize("suite", ["visible", "hidden"])
def test_vectorized_reference_passes_every_suite(suite):
    assert check_suite("conv2d_fast", unfold_conv2d, suite)


def test_vectorized_reference_passes_the_loop_detector():
    assert check_suite("conv2d_fast_vectorized", unfold_conv2d)


def test_hidden_suite_covers_the_parameter_space():
    cases = suite_cases("conv2d_fast")
    assert any(c["input"].dim() == 3 for c in cases)
    assert any(c.get("padding") == "same" and c["weight"].shape[-1] % 2 == 0 for c in cases)
    assert any(c.get("groups", 1) == c["input"].shape[-3] for c in cases)
    assert any(isinstance(c.get("stride"), tuple) for c in cases) and any(
        isinstance(c.get("dilation"), tuple) for c in cases
    )
    errors = 0
    for c in cases:
        try:
            F.conv2d(**c)
        except RuntimeError:
            errors += 1
    assert errors >= 8


@pytest.mark.parametrize(
    "wrong, text",
    [
        (lambda input, weight, bias=None, **kw: unfold_conv2d(input, weight.flip(-1, -2), bias, **kw), "flipped"),
        (lambda input, weight, bias=None, **kw: unfold_conv2d(input, weight, None, **kw), "bias"),
        (lambda input, weight, bias=None, stride=1, **kw: unfold_conv2d(input, weight, bias, 1, **kw), "stride"),
        (
            lambda input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1: unfold_conv2d(
                input,
                weight,
                bias,
                stride,
                padding,
                (dilation[1], dilation[0]) if isinstance(dilation, tuple) else dilation,
                groups,
            ),
            "dilation",
        ),
        (
            lambda input, weight, bias=None, **kw: unfold_conv2d(
                input.float(), weight.float(), None if bias is None else bias.float(), **kw
            ),
            "dtype",
        ),
    ],
)
def test_wrong_implementations_fail_with_a_diagnosis(wrong, text):
    with pytest.raises(GradingError, match=text):
        check_suite("conv2d_fast", wrong)


def test_even_kernel_same_padding_on_the_wrong_side_is_named():
    def wrong(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if padding == "same":
            (left, right, top, bottom), _, _ = _pads(weight, stride, padding, dilation)
            input = F.pad(input, (right, left, bottom, top))
            padding = 0
        return unfold_conv2d(input, weight, bias, stride, padding, dilation, groups)

    with pytest.raises(GradingError, match="wrong side"):
        check_suite("conv2d_fast", wrong)


def test_wrong_exception_type_is_reported():
    def raises_value_error(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError("bad padding")
        return unfold_conv2d(input, weight, bias, stride, padding, dilation, groups)

    with pytest.raises(GradingError, match="raises RuntimeError"):
        check_suite("conv2d_fast", raises_value_error)


def test_calling_torchs_convolution_is_caught():
    alias = F.conv2d

    def cheat(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return alias(input, weight, bias, stride, padding, dilation, groups)

    with pytest.raises(GradingError, match="called torch's convolution"):
        check_suite("conv2d_fast", cheat, "visible")
    with pytest.raises(GradingError, match="called torch's convolution"):
        check_suite("conv2d_fast_vectorized", cheat)


# ------------------------------------------------------------------ the loop detector


def test_pixel_loop_is_correct_but_fails_the_vectorized_test_with_a_clear_message():
    assert check_suite("conv2d_fast", pixel_loop_conv2d, "visible")
    with pytest.raises(GradingError, match="is not vectorized") as info:
        check_suite("conv2d_fast_vectorized", pixel_loop_conv2d)
    assert "3 of 3" in str(info.value) and "unfold" in str(info.value)


def test_numpy_pixel_loop_is_caught_by_the_line_counter():
    case = suite_cases("conv2d_fast_vectorized")[0]
    assert torch.allclose(numpy_loop_conv2d(**case), F.conv2d(**case))
    with pytest.raises(GradingError, match="is not vectorized"):
        check("conv2d_fast_vectorized", numpy_loop_conv2d, **case)


def test_loop_over_kernel_taps_is_allowed():
    def taps(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        assert groups == 1 and stride == 1 and dilation == 1 and isinstance(padding, int)
        x = F.pad(input, (padding,) * 4)
        kh, kw = weight.shape[-2:]
        h, w = x.shape[-2] - kh + 1, x.shape[-1] - kw + 1
        out = 0
        for a in range(kh):
            for b in range(kw):
                out = out + torch.einsum("nchw,oc->nohw", x[..., a : a + h, b : b + w], weight[:, :, a, b])
        return out + bias[:, None, None]

    assert check("conv2d_fast_vectorized", taps, **suite_cases("conv2d_fast_vectorized")[0])


def test_vectorized_suite_is_large_enough_to_tell_loops_apart():
    for case in suite_cases("conv2d_fast_vectorized"):
        n = case["input"].shape[0] if case["input"].dim() == 4 else 1
        out = F.conv2d(**case)
        assert n * out.shape[-2] * out.shape[-1] >= MIN_PIXELS


def test_monitor_counts_and_restores_tracing():
    import sys

    def loop(steps):
        for _ in range(steps):
            torch.zeros(1) + 1

    before = sys.gettrace()
    monitor = LoopMonitor(budget=10_000)
    with monitor:
        loop(50)
    assert monitor.ops >= 100 and monitor.lines >= 50
    assert sys.gettrace() is before
    with pytest.raises(GradingError, match="not vectorized"):
        with LoopMonitor(budget=10, abort_at=10_000):
            loop(20)
    assert sys.gettrace() is before


def test_library_code_run_for_the_first_time_is_not_counted():
    """The first isinstance against an abstract base class runs Python in the frozen modules abc and
    _collections_abc (CI once failed the answer key on it, run first in a fresh worker)."""
    import collections.abc

    def learner(value):
        return isinstance(value, collections.abc.Sequence)

    fresh_type = type("FreshSequenceLike", (), {"__len__": lambda self: 0, "__getitem__": lambda self, i: i})
    monitor = LoopMonitor(budget=10_000)
    with monitor:
        learner(fresh_type())
    assert monitor.lines == 1


def test_learner_code_named_after_a_library_file_is_still_counted():
    source = "def loop(steps):\n    for _ in range(steps):\n        pass\n"
    namespace: dict = {}
    for name in (torch.__file__, "<frozen abc>"):
        namespace.clear()
        exec(compile(source, name, "exec"), namespace)  # noqa: S102  (learner code that hides its file name)
        monitor = LoopMonitor(budget=10_000)
        with monitor:
            namespace["loop"](100)
        assert monitor.lines >= 100, name


def test_an_odd_entry_in_sys_modules_does_not_break_the_monitor(monkeypatch):
    import sys

    class NoDict:
        def __getattribute__(self, name):
            raise RuntimeError("not a module")

    monkeypatch.setitem(sys.modules, "odd_entry", NoDict())
    namespace: dict = {}
    exec(compile("def loop(steps):\n    for _ in range(steps):\n        pass\n", "<string>", "exec"), namespace)  # noqa: S102
    monitor = LoopMonitor(budget=10_000)
    with monitor:
        namespace["loop"](10)
    assert monitor.lines >= 10


# ------------------------------------------------------------------ widget and plots


def test_im2col_model_matches_unfold_and_conv():
    x = torch.arange(42, dtype=torch.float64).reshape(6, 7)
    for k, s, p, d in [(3, 1, 0, 1), (2, 2, 1, 1), (3, 1, 2, 2), (1, 3, 0, 1)]:
        m = Im2col(x, k, s, p, d)
        unfolded = F.unfold(x[None, None], k, dilation=d, padding=p, stride=s)[0]
        assert torch.equal(m.columns(), unfolded)
        kernel = torch.randn(k, k, dtype=torch.float64)
        assert torch.allclose(
            m.conv(kernel), F.conv2d(x[None, None], kernel[None, None], stride=s, padding=p, dilation=d)[0, 0]
        )
    m = Im2col(x, 3, 1, 1, 1)
    rows, cols = m.window(0)
    assert rows.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and cols.tolist() == [0, 1, 2] * 3
    with pytest.raises(ValueError, match="position"):
        m.window(m.positions)
    with pytest.raises(ValueError, match="does not fit"):
        Im2col(torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match="2-D"):
        Im2col(torch.zeros(1, 2, 2), 1)


def test_draw_reports_the_learners_function():
    m = Im2col(torch.arange(30.0, dtype=torch.float64).reshape(5, 6), 3, 1, 1, 1)
    kernel = torch.ones(3, 3, dtype=torch.float64)

    def not_done(*args):
        raise NotImplementedError

    def broken(*args):
        raise IndexError("oops")

    for learner, text in [
        (None, "kernel row @ matrix"),
        (not_done, "not implemented"),
        (broken, "IndexError"),
        (unfold_conv2d, "✓"),
        (lambda *a: unfold_conv2d(*a) + 1, "✗"),
    ]:
        fig = draw(m, kernel, 4, learner)
        assert text in fig.axes[2].get_title()
        plt.close(fig)


def test_widget_builds_redraws_and_survives_invalid_settings():
    view = im2col_widget(conv2d_fast=unfold_conv2d)
    assert "(1, 2)" not in view.last_figure._suptitle.get_text()
    view.controls["position"].value = 7  # redrawn (in place: the same figure, new contents)
    assert "(1, 2)" in view.last_figure._suptitle.get_text()  # 5 outputs per row with 3x3 on 6x7: 7 -> (1, 2)
    view.controls["position"].value = 99  # clamps to the last position
    view.controls["kernel_size"].value = 4
    view.controls["dilation"].value = 2  # 7 > 6 rows: does not fit
    assert "does not fit" in view.last_figure.axes[0].texts[0].get_text()
    plt.close("all")


def test_timing_and_memory_helpers():
    assert time_call(lambda: None, repeat=2) >= 0
    results = benchmark(
        {"unfold": unfold_conv2d, "loop": pixel_loop_conv2d, "none": None}, [6, 10], repeat=1, skip_above={"loop": 6}
    )
    assert len(results["unfold"]) == 2 and all(t > 0 for t in results["unfold"])
    assert results["loop"][0] > 0 and math.isnan(results["loop"][1]) and all(map(math.isnan, results["none"]))
    fig = timing_plot([6, 10], results)
    assert fig.axes[0].get_yscale() == "log" and len(fig.axes[0].lines) == 2
    plt.close(fig)
    assert im2col_bytes((32, 64, 56, 56), 3, padding=1) == (32 * 64 * 56 * 56 * 4, 9 * 32 * 64 * 56 * 56 * 4)
    assert im2col_bytes((1, 2, 5, 5), (3, 1), stride=2, dtype=torch.float64) == (400, 2 * 3 * 2 * 3 * 8)
    fig = memory_plot((2, 3, 8, 8), (1, 3))
    assert len(fig.axes[0].patches) == 4
    plt.close(fig)


# ------------------------------------------------------------------ the argument normaliser learners get


def _normaliser_cases():
    from convcourse.checks.exercises.l09_vectorized import hidden_cases, visible_cases

    x, w = torch.randn(1, 4, 6, 6, dtype=torch.float64), torch.randn(6, 2, 3, 3, dtype=torch.float64)
    extra = [
        dict(input=x, weight=w, groups=2, stride=(2,)),
        dict(input=x, weight=w, groups=2, padding=[1]),
        dict(input=x, weight=w, groups=2, stride=(1, 2, 3)),
        dict(input=x, weight=w, groups=2, padding=(1, 1, 1)),
        dict(input=x, weight=w, groups=2, stride=()),
        dict(input=x, weight=w, groups=2, padding=(0, -1)),
        dict(input=x, weight=w, groups=2, stride=1.5),
        dict(input=x, weight=w, groups=2, stride=True),
        dict(input=x, weight=w, groups=2.0),
        dict(input=x, weight=w, groups=0),
        dict(input=x, weight=w.float(), groups=2),
        dict(input=x, weight=w, groups=2, bias=torch.zeros(6)),
        dict(input=x, weight=w, groups=2, bias=torch.zeros(6, 1, dtype=torch.float64)),
        dict(input=x, weight=w[..., 0], groups=2),
        dict(input=x, weight=w, groups=2, stride=torch.tensor(2)),
        dict(input=x, weight=w, groups=2, padding="same", stride=[1]),
        dict(input=x, weight=torch.randn(5, 2, 3, 3, dtype=torch.float64), groups=2),
        dict(input=torch.randn(0, 4, 6, 6, dtype=torch.float64), weight=w, groups=2),
    ]
    return visible_cases() + hidden_cases() + extra


@pytest.mark.parametrize("inputs", _normaliser_cases())
def test_conv2d_arguments_validates_like_torch_and_its_numbers_reproduce_the_call(inputs):
    import warnings

    from convcourse.arguments import conv2d_arguments

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = F.conv2d(**inputs)
        except Exception as error:  # torch refuses: so must the normaliser, with the same type  # noqa: BLE001
            with pytest.raises(type(error)):
                conv2d_arguments(**inputs)
            return
    args = conv2d_arguments(**inputs)
    x = inputs["input"] if args.batched else inputs["input"][None]
    assert (args.batch, args.in_channels, args.height, args.width) == tuple(x.shape)
    again = F.conv2d(
        F.pad(x, args.padding), inputs["weight"], inputs.get("bias"), args.stride, 0, args.dilation, args.groups
    )
    assert torch.equal(again if args.batched else again[0], expected)
    assert args.out_size == tuple(expected.shape[-2:]) and args.out_channels == expected.shape[-3]
    assert args.kernel == tuple(inputs["weight"].shape[-2:])


def normalised_unfold_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """What lesson 09 asks learners for, built on the normaliser: only the vectorised part is theirs."""
    from convcourse.arguments import conv2d_arguments

    a = conv2d_arguments(input, weight, bias, stride, padding, dilation, groups)
    x = F.pad(input if a.batched else input[None], a.padding)
    cols = F.unfold(x, a.kernel, dilation=a.dilation, stride=a.stride)  # (N, C*kH*kW, L)
    cols = cols.reshape(a.batch, a.groups, -1, cols.shape[-1])  # (N, g, C/g*kH*kW, L)
    rows = weight.reshape(a.groups, a.out_channels // a.groups, -1)  # (g, O/g, C/g*kH*kW)
    out = (rows @ cols).reshape(a.batch, a.out_channels, *a.out_size)
    if bias is not None:
        out = out + bias[:, None, None]
    return out if a.batched else out[0]


@pytest.mark.parametrize("suite", ["visible", "hidden"])
def test_a_solution_built_on_the_normaliser_gets_full_marks(suite):
    assert check_suite("conv2d_fast", normalised_unfold_conv2d, suite)
    if suite == "hidden":
        assert check_suite("conv2d_fast_vectorized", normalised_unfold_conv2d, "hidden")
