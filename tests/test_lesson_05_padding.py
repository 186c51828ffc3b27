"""Lesson 05: the padding widget model and view (headless), and the pad2d / same_padding checks."""

from __future__ import annotations

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convcourse.checks import GradingError, check, check_suite
from convcourse.checks.conv import randn
from convcourse.plots import COLORS
from convcourse.widgets.padding import MODES, PaddedGrid, draw, padding_widget, same_caption, torch_same_padding

# ---- correct implementations, written here (not imported from the notebook) ---------------------


def pad2d(x, pad, mode="constant", value=0.0):
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    if mode != "constant" and value != 0:
        raise RuntimeError("value only with constant")
    if mode == "reflect" and (max(left, right) >= w or max(top, bottom) >= h):
        raise RuntimeError("reflect too large")
    if mode == "circular" and (max(left, right) > w or max(top, bottom) > h):
        raise RuntimeError("circular wraps twice")
    rows = torch.arange(-top, h + bottom)
    cols = torch.arange(-left, w + right)
    if mode == "constant":
        out = torch.full((*x.shape[:-2], h + top + bottom, w + left + right), value, dtype=x.dtype)
        out[..., top : top + h, left : left + w] = x
        return out
    if mode == "replicate":
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    elif mode == "reflect":
        rows = torch.where(rows < 0, -rows, torch.where(rows >= h, 2 * (h - 1) - rows, rows))
        cols = torch.where(cols < 0, -cols, torch.where(cols >= w, 2 * (w - 1) - cols, cols))
    else:
        rows, cols = rows % h, cols % w
    return x[..., rows[:, None], cols[None, :]]


def same_padding(kernel_size, dilation=1):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    th, tw = dh * (kh - 1), dw * (kw - 1)
    return (tw // 2, tw - tw // 2, th // 2, th - th // 2)


def failure(name, fn, **inputs) -> str:
    with pytest.raises(GradingError) as info:
        check(name, fn, **inputs)
    return str(info.value)


# ---- widget model ---------------------------------------------------------------------------------


def grid(pad=(2, 1, 1, 2), mode="reflect"):
    return PaddedGrid(torch.arange(1, 21, dtype=torch.float64).reshape(4, 5), pad, mode)


@pytest.mark.parametrize("mode", MODES)
def test_model_pads_like_torch_and_sources_point_at_the_copied_cell(mode):
    m = grid(mode=mode)
    padded = m.padded()
    assert padded.shape == (7, 8)
    assert torch.equal(padded, F.pad(m.x[None], m.pad, mode=mode)[0])
    sources = m.sources()
    mask = m.is_padding()
    assert mask.sum() == 7 * 8 - 20 and not mask[1:5, 2:7].any()
    for (i, j), copied in np.ndenumerate(padded.numpy()):
        r, c = sources[i, j]
        if r < 0:
            assert mode == "constant" and mask[i, j] and copied == 0
        else:
            assert copied == m.x[r, c]


def test_model_labels_and_specific_sources():
    assert grid(mode="reflect").label(0, 0) == "1,2"  # mirror around the edge, not repeated
    assert grid(mode="replicate").label(0, 0) == "0,0"
    assert grid(mode="circular").label(0, 0) == "3,3"  # wraps from the far corner
    assert grid(mode="constant").label(0, 0) == "0"


def test_model_rejects_bad_arguments_and_torch_refusals_are_shown():
    with pytest.raises(ValueError, match="mode"):
        PaddedGrid(torch.zeros(3, 3), (1, 1, 1, 1), "mirror")
    with pytest.raises(ValueError, match="non-negative"):
        PaddedGrid(torch.zeros(3, 3), (1, -1, 1, 1))
    with pytest.raises(ValueError, match="2-D"):
        PaddedGrid(torch.zeros(1, 3, 3), (1, 1, 1, 1))
    too_big = grid(pad=(5, 0, 0, 0), mode="reflect")
    with pytest.raises(RuntimeError):
        too_big.padded()
    fig = draw(too_big)
    assert "torch refuses" in fig.axes[0].texts[0].get_text()
    plt.close(fig)


def test_draw_shows_the_learners_function_and_its_failures():
    m = grid()
    fig = draw(m)
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 1
    plt.close(fig)

    def not_done(x, pad, mode="constant", value=0.0):
        raise NotImplementedError

    def broken(x, pad, mode="constant", value=0.0):
        raise IndexError("oops")

    def replicate_always(x, pad, mode="constant", value=0.0):
        return F.pad(x, pad, mode="replicate")

    for learner, text in [
        (not_done, "not implemented"),
        (broken, "IndexError"),
        (pad2d, "✓"),
        (replicate_always, "differs"),
    ]:
        fig = draw(m, learner)
        texts = " ".join([t.get_text() for t in fig.axes[1].texts] + [fig.axes[1].get_title()])
        assert text in texts, (learner.__name__, texts)
        plt.close(fig)


def test_learners_panel_outlines_exactly_the_cells_that_differ():
    m = grid(pad=(2, 1, 1, 2), mode="reflect")

    def replicate_always(x, pad, mode="constant", value=0.0):
        return pad2d(x, pad, "replicate")

    expected = int((pad2d(m.x[None], m.pad, "replicate")[0] != m.padded()).sum())
    assert expected > 0
    fig = draw(m, replicate_always)
    red = [p for p in fig.axes[1].patches if p.get_edgecolor()[:3] == matplotlib.colors.to_rgb(COLORS["highlight"])]
    assert len(red) == expected and f"differs in {expected} cells" in fig.axes[1].get_title()
    plt.close(fig)
    fig = draw(m, pad2d)
    assert "✓" in fig.axes[1].get_title() and len(fig.axes[1].patches) == 1  # only the input's frame
    plt.close(fig)


def test_widget_builds_and_redraws_headless():
    view = padding_widget(pad2d=pad2d)
    assert "circular" not in view.last_figure.axes[0].get_title()
    view.controls["mode"].value = "circular"  # redrawn (in place: the same figure, new contents)
    assert "circular" in view.last_figure.axes[0].get_title()
    view.controls["left"].value = 0
    assert "left=0" in view.last_figure._suptitle.get_text()
    plt.close("all")


def test_widget_keeps_each_settings_verdict_and_calls_again_after_an_error():
    """A slider moved back shows the verdict kept for that padding: the learner's function is not run again.
    What it raised is not kept."""
    calls = []

    def counted(x, pad, mode="constant", value=0.0):
        calls.append(pad)
        if pad[0] == 3:
            raise RuntimeError("left=3 is not done yet")
        return pad2d(x, pad, mode) if mode != "constant" else pad2d(x, pad, mode, value)

    view = padding_widget(pad2d=counted)
    first = view.last_figure.axes[1].get_title()
    assert len(calls) == 1 and "✓" in first
    view.controls["left"].value = 0
    view.controls["left"].value = 2  # back to the first setting
    assert len(calls) == 2 and view.last_figure.axes[1].get_title() == first
    view.controls["left"].value = 3
    view.controls["left"].value = 2
    view.controls["left"].value = 3  # raised: called again
    assert len(calls) == 4 and "RuntimeError" in view.last_figure.axes[1].texts[0].get_text()
    view.controls["mode"].value = "circular"  # another mode: another setting
    assert len(calls) == 5
    plt.close("all")


@pytest.mark.parametrize("kernel, dilation", [(3, 1), ((2, 4), 1), ((5, 2), 1), ((1, 6), 1), ((2, 2), (3, 2)), (4, 2)])
def test_torch_same_padding_is_measured_and_explicit_padding_reproduces_same(kernel, dilation):
    pad = torch_same_padding(kernel, dilation)
    assert pad == same_padding(kernel, dilation)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x, wt = randn(1, 1, 7, 9, seed=1), randn(1, 1, kh, kw, seed=2)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        expected = F.conv2d(x, wt, padding="same", dilation=dilation)
    assert torch.equal(F.conv2d(F.pad(x, pad), wt, dilation=dilation), expected)
    with pytest.raises(ValueError):
        torch_same_padding(0)


def test_same_view_outlines_the_window_and_grades_the_learners_same_padding():
    kernel = (2, 4)
    pad = torch_same_padding(kernel)
    assert pad == (1, 2, 0, 1)
    assert "bottom/right" in same_caption(kernel, pad) and "bottom/right" not in same_caption((3, 3), (1, 1, 1, 1))

    def not_done(kernel_size, dilation=1):
        raise NotImplementedError

    def swapped(kernel_size, dilation=1):
        left, right, top, bottom = same_padding(kernel_size, dilation)
        return (right, left, bottom, top)

    for learner, text in [
        (same_padding, "✓"),
        (swapped, "✗ torch: (1, 2, 0, 1)"),
        (not_done, "not implemented"),
        (lambda kernel_size: 1 / 0, "ZeroDivisionError"),
    ]:
        fig = draw(PaddedGrid(torch.ones(4, 5), pad, "constant"), pad2d, kernel=kernel, learner_same=learner)
        assert text in fig._suptitle.get_text(), fig._suptitle.get_text()
        dashed = [p for p in fig.axes[0].patches if p.get_linestyle() == "--"]
        assert len(dashed) == 1 and (dashed[0].get_width(), dashed[0].get_height()) == (4, 2)
        plt.close(fig)


def test_widget_in_same_mode_follows_the_kernel_sliders():
    view = padding_widget(pad2d=pad2d, same_padding=same_padding, source="'same'")
    assert "left=1, right=2, top=0, bottom=1" in view.last_figure._suptitle.get_text()
    view.controls["kernel_h"].value = 5
    assert "top=2, bottom=2" in view.last_figure._suptitle.get_text()
    sides, kernel = ("left", "right", "top", "bottom"), ("kernel_h", "kernel_w")
    assert all(view.controls[n].disabled for n in sides) and not any(view.controls[n].disabled for n in kernel)
    view.controls["source"].value = "sliders"
    assert "left=2, right=1, top=1, bottom=2" in view.last_figure._suptitle.get_text()
    assert not any(view.controls[n].disabled for n in sides) and all(view.controls[n].disabled for n in kernel)
    with pytest.raises(ValueError):
        padding_widget(source="full")
    plt.close("all")


# ---- pad2d checks ---------------------------------------------------------------------------------


def test_correct_pad2d_passes_every_suite():
    assert check_suite("pad2d", pad2d, "visible")
    assert check_suite("pad2d", pad2d, "hidden")


X = randn(1, 2, 4, 5, seed=7)


def symmetric_reflect(x, pad, mode="constant", value=0.0):
    """numpy's 'symmetric' (edge repeated) instead of torch's reflect, with indexing only."""
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    rows = torch.arange(-top, h + bottom)
    cols = torch.arange(-left, w + right)
    rows = torch.where(rows < 0, -rows - 1, torch.where(rows >= h, 2 * h - 1 - rows, rows))
    cols = torch.where(cols < 0, -cols - 1, torch.where(cols >= w, 2 * w - 1 - cols, cols))
    return x[..., rows[:, None], cols[None, :]]


def circular_wrong_side(x, pad, mode="constant", value=0.0):
    left, right, top, bottom = pad
    x = torch.cat([x[..., :left], x, x[..., x.shape[-1] - right :]], dim=-1)
    return torch.cat([x[..., :top, :], x, x[..., x.shape[-2] - bottom :, :]], dim=-2)


def swapped_sides(x, pad, mode="constant", value=0.0):
    return pad2d(x, (pad[1], pad[0], pad[2], pad[3]), mode, value)


def wrong_order(x, pad, mode="constant", value=0.0):
    return pad2d(x, (pad[2], pad[3], pad[0], pad[1]), mode, value)


def replicate_for_reflect(x, pad, mode="constant", value=0.0):
    return pad2d(x, pad, "replicate" if mode == "reflect" else mode, value)


def reflect_for_replicate(x, pad, mode="constant", value=0.0):
    return pad2d(x, pad, "reflect" if mode == "replicate" else mode, value)


def zeros_always(x, pad, mode="constant", value=0.0):
    return pad2d(x, pad, mode, 0.0)


@pytest.mark.parametrize(
    "wrong, inputs, expected",
    [
        (swapped_sides, dict(pad=(2, 0, 1, 1), mode="reflect"), "left and right are swapped"),
        (wrong_order, dict(pad=(2, 1, 0, 1), mode="replicate"), "pad order is wrong"),
        (replicate_for_reflect, dict(pad=(2, 1, 1, 2), mode="reflect"), "this is 'replicate'"),
        (reflect_for_replicate, dict(pad=(2, 1, 1, 2), mode="replicate"), "this is 'reflect'"),
        (symmetric_reflect, dict(pad=(2, 1, 1, 2), mode="reflect"), "repeats the edge pixel"),
        (circular_wrong_side, dict(pad=(2, 1, 1, 2), mode="circular"), "wraps from the wrong side"),
        (zeros_always, dict(pad=(1, 1, 1, 1), value=2.5), "filled with zeros"),
    ],
)
def test_wrong_pad2d_is_diagnosed_by_name(wrong, inputs, expected):
    message = failure("pad2d", wrong, x=X, **inputs)
    assert "Likely mistake" in message and expected in message, message


def test_pad2d_errors_must_match_torch():
    def never_raises(x, pad, mode="constant", value=0.0):
        return pad2d(x, pad, "replicate" if mode == "reflect" else mode)

    message = failure("pad2d", never_raises, x=randn(1, 3, 4, seed=1), pad=(4, 0, 0, 0), mode="reflect")
    assert "RuntimeError" in message

    def value_error(x, pad, mode="constant", value=0.0):
        raise ValueError("too big")

    message = failure("pad2d", value_error, x=randn(1, 3, 4, seed=1), pad=(4, 0, 0, 0), mode="reflect")
    assert "raises RuntimeError" in message


def test_pad2d_that_calls_torch_padding_is_refused():
    for mode in MODES:
        message = failure(
            "pad2d",
            lambda x, pad, mode="constant", value=0.0: F.pad(x, pad, mode=mode),
            x=X,
            pad=(1, 1, 1, 1),
            mode=mode,
        )
        assert "called torch's padding" in message, message


# ---- same_padding checks --------------------------------------------------------------------------


def test_correct_same_padding_passes_every_suite():
    assert check_suite("same_padding", same_padding, "visible")
    assert check_suite("same_padding", same_padding, "hidden")


@pytest.mark.parametrize(
    "wrong, inputs, expected",
    [
        (
            lambda kernel_size, dilation=1: (
                tuple(reversed(same_padding(kernel_size, dilation)[:2]))
                + tuple(reversed(same_padding(kernel_size, dilation)[2:]))
            ),
            dict(kernel_size=(2, 4)),
            "wrong side",
        ),
        (
            lambda kernel_size, dilation=1: (
                same_padding(kernel_size, dilation)[2:] + same_padding(kernel_size, dilation)[:2]
            ),
            dict(kernel_size=(3, 5)),
            "order is wrong",
        ),
        (
            lambda kernel_size, dilation=1: same_padding(kernel_size),
            dict(kernel_size=3, dilation=2),
            "dilation is ignored",
        ),
        (
            lambda kernel_size, dilation=1: ((kernel_size - 1) // 2,) * 4,
            dict(kernel_size=4),
            "both sides get total // 2",
        ),
        (lambda kernel_size, dilation=1: (kernel_size // 2,) * 4, dict(kernel_size=3, dilation=1), None),
    ],
)
def test_wrong_same_padding_is_diagnosed(wrong, inputs, expected):
    message = failure("same_padding", wrong, **inputs) if expected else None
    if expected is None:  # k // 2 is right for odd kernels: passes there, fails on even ones
        assert check("same_padding", wrong, **inputs)
        message = failure("same_padding", wrong, kernel_size=2)
        assert "from torch) is (0, 1, 0, 1)" in message, message
        return
    assert "Likely mistake" in message and expected in message, message


@pytest.mark.parametrize(
    "cheat",
    [
        lambda x, pad, mode="constant", value=0.0: torch.nn.CircularPad2d(pad)(x),
        lambda x, pad, mode="constant", value=0.0: torch.ops.aten._pad_circular(x, pad),
        lambda x, pad, mode="constant", value=0.0: torch.nn.ReflectionPad2d(pad)(x),
    ],
)
def test_padding_modules_and_raw_ops_are_refused_too(cheat):
    message = failure("pad2d", cheat, x=X, pad=(1, 2, 1, 0), mode="circular")
    assert "called torch's padding" in message, message
