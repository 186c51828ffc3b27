"""Lesson 03: the channel-mixing widget model and the conv2d_channels checks."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from convcourse.checks import GradingError, check, check_suite, randn, suite_cases
from convcourse.widgets.channels import ChannelMixer, channels_widget, draw, filter_bank


def loops(x, weight):
    n, c, h, w = x.shape
    o, c_w, kh, kw = weight.shape
    if c != c_w:
        raise RuntimeError("channel mismatch")
    out = torch.zeros(n, o, h - kh + 1, w - kw + 1, dtype=x.dtype)
    for i in range(h - kh + 1):
        for j in range(w - kw + 1):
            out[:, :, i, j] = torch.einsum("nchw,ochw->no", x[:, :, i : i + kh, j : j + kw], weight)
    return out


def test_correct_loops_pass_every_suite():
    assert check_suite("conv2d_channels", loops, "visible")
    assert check_suite("conv2d_channels", loops, "hidden")


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda x, weight: loops(x, weight.flip(-1, -2)), "flipped"),
        (lambda x, weight: loops(x, weight).float(), "dtype"),
        (lambda x, weight: loops(x, weight)[..., :-1, :], "off-by-one"),
        (lambda x, weight: loops(x, weight.transpose(-1, -2)), "rows and columns are swapped"),
        (lambda x, weight: F.conv2d(x, weight), "called torch's convolution"),
    ],
)
def test_wrong_implementations_get_a_diagnosis(wrong, message):
    with pytest.raises(GradingError, match=message):
        check_suite("conv2d_channels", wrong, "visible")


def test_ignoring_the_channel_mismatch_fails_with_the_exception_type():
    def no_check(x, weight):
        return loops(x, weight[:, : x.shape[1]])

    with pytest.raises(GradingError, match="torch raises RuntimeError"):
        check_suite("conv2d_channels", no_check, "hidden")


def test_mixer_contributions_sum_to_torchs_output():
    image = torch.rand(3, 10, 12, dtype=torch.float64)
    weight = torch.stack(list(filter_bank(torch.float64).values()))
    mixer = ChannelMixer(image, weight)
    reference = F.conv2d(image[None], weight)[0]
    for o in range(4):
        assert mixer.contributions(o).shape == (3, 8, 10)
        assert torch.allclose(mixer.output(o), reference[o])
    with pytest.raises(ValueError, match="output channel"):
        mixer.contributions(4)
    with pytest.raises(ValueError, match="input channels"):
        ChannelMixer(torch.rand(2, 5, 5), weight)


def test_draw_and_widget_show_the_learners_function():
    image = torch.rand(3, 9, 9, dtype=torch.float64)
    mixer = ChannelMixer(image, torch.stack(list(filter_bank(torch.float64).values())))

    def unfinished(x, weight):
        raise NotImplementedError

    def taps(x, weight):  # one shifted product per kernel tap: no torch convolution, as the exercise asks
        kh, kw = weight.shape[-2:]
        oh, ow = x.shape[-2] - kh + 1, x.shape[-1] - kw + 1
        return sum(
            torch.einsum("nchw,oc->nohw", x[..., a : a + oh, b : b + ow], weight[..., a, b])
            for a in range(kh)
            for b in range(kw)
        )

    fig = draw(mixer, 2, unfinished)
    assert any("not implemented" in t.get_text() for ax in fig.axes for t in ax.texts)
    plt.close(fig)
    view = channels_widget(image, conv2d_channels=taps)
    view.controls["o"].value = 3
    assert any("✓" in ax.get_title() for ax in view.last_figure.axes)
    # The widget's ✓ is the grader's check: torch's own convolution gives the right numbers but fails it.
    view = channels_widget(image, conv2d_channels=lambda x, weight: F.conv2d(x, weight))
    assert not any("✓" in ax.get_title() for ax in view.last_figure.axes)
    plt.close("all")


# ---- channel-specific diagnoses, filter bank plot, the widget calls the learner once ----------


def loops_with(mistake):
    """An honest loop implementation with one deliberate channel mistake."""

    def fn(x, weight):
        n, c, h, w = x.shape
        o, _, kh, kw = weight.shape
        out = torch.zeros(n, o, h - kh + 1, w - kw + 1, dtype=x.dtype)
        for b in range(n):
            for k in range(o):
                for ch in range(c):
                    for i in range(h - kh + 1):
                        for j in range(w - kw + 1):
                            kernel = weight[ch, k] if mistake == "swapped" else weight[k, ch]
                            v = (x[b, ch, i : i + kh, j : j + kw] * kernel).sum()
                            if mistake == "assign":
                                out[b, k, i, j] = v
                            else:
                                out[b, k, i, j] += v
        return out / c if mistake == "mean" else out

    return fn


@pytest.mark.parametrize(
    "mistake, message",
    [
        ("assign", r"only the LAST input channel"),
        ("mean", r"averaged instead of summed"),
    ],
)
def test_channel_mistakes_are_named(mistake, message):
    with pytest.raises(GradingError, match=message):
        check_suite("conv2d_channels", loops_with(mistake), "hidden")


def test_weight_read_as_in_out_is_named_where_in_equals_out():
    # the hidden suite has a case with 3 input and 3 output channels, where weight[c, o] does not crash
    case = dict(x=randn(2, 3, 5, 7, seed=1), weight=randn(3, 3, 2, 4, seed=2))
    with pytest.raises(GradingError, match=r"weight\[o, c\], not weight\[c, o\]"):
        check("conv2d_channels", loops_with("swapped"), **case)
    assert any(
        c["x"].shape[1] == c["weight"].shape[0] == c["weight"].shape[1] > 1
        for c in suite_cases("conv2d_channels", "hidden")
    )


def test_batch_mistake_is_named():
    def last_image_everywhere(x, weight):
        out = loops(x, weight)
        return out[-1:].expand_as(out).clone()

    with pytest.raises(GradingError, match="LAST image"):
        check_suite("conv2d_channels", last_image_everywhere, "visible")


def test_filter_bank_figure_has_one_panel_per_weight_slice():
    from convcourse.widgets.channels import show_filter_bank

    fig = show_filter_bank(filter_bank())
    assert len(fig.axes) == 4 * 3
    assert "(4, 3, 3, 3)" in fig.get_suptitle()
    assert fig.axes[5].get_title() == "weight[1, 2]"
    plt.close(fig)
    with pytest.raises(ValueError, match="one shape"):
        show_filter_bank({"a": torch.zeros(3, 3, 3), "b": torch.zeros(2, 3, 3)})


def test_widget_calls_the_learner_once_and_remembers_errors():
    from convcourse.widgets.channels import CallOnce

    image = torch.rand(3, 7, 8, dtype=torch.float64)
    counter = CallOnce(lambda x, w: F.conv2d(x, w))
    view = channels_widget(image)
    view = channels_widget(image, conv2d_channels=counter)
    for o in (1, 2, 3):
        view.controls["o"].value = o
    assert counter.calls == 1
    assert view.controls["o"].options[2][0] == "2: red minus green"

    def broken(x, w):
        raise IndexError("oops")

    once = CallOnce(broken)
    for _ in range(2):
        with pytest.raises(IndexError):
            once(image, None)
    assert once.calls == 1
    plain = channels_widget(image, weight=torch.rand(2, 3, 2, 2, dtype=torch.float64))
    assert [label for label, _ in plain.controls["o"].options] == ["0", "1"]
    plt.close("all")
