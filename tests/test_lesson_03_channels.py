"""Lesson 03: the channel-mixing widget model and the conv2d_channels checks."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from convcourse.checks import GradingError, check_suite
from convcourse.widgets.channels import ChannelMixer, channels_widget, draw, filter_bank


def loops(x, weight):
    n, c, h, w = x.shape
    o, c_w, kh, kw = weight.shape
    if c != c_w:
        raise RuntimeError("channel mismatch")
    out = torch.zeros(n, o, h - kh + 1, w - kw + 1, dtype=x.dtype)
    for i in range(h - kh + 1):
        for j in range(w - kw + 1):
            out[:, :, i, j] = torch.einsum("nchw,ochw->no", x[:, :, i:i + kh, j:j + kw], weight)
    return out


def test_correct_loops_pass_every_suite():
    assert check_suite("conv2d_channels", loops, "visible")
    assert check_suite("conv2d_channels", loops, "hidden")


@pytest.mark.parametrize("wrong, message", [
    (lambda x, weight: loops(x, weight.flip(-1, -2)), "flipped"),
    (lambda x, weight: loops(x, weight).float(), "dtype"),
    (lambda x, weight: loops(x, weight)[..., :-1, :], "off-by-one"),
    (lambda x, weight: loops(x, weight.transpose(-1, -2)), "rows and columns are swapped"),
    (lambda x, weight: F.conv2d(x, weight), "called torch's convolution"),
])
def test_wrong_implementations_get_a_diagnosis(wrong, message):
    with pytest.raises(GradingError, match=message):
        check_suite("conv2d_channels", wrong, "visible")


def test_ignoring_the_channel_mismatch_fails_with_the_exception_type():
    def no_check(x, weight):
        return loops(x, weight[:, :x.shape[1]])

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

    def unfinished(x, w):
        raise NotImplementedError

    fig = draw(mixer, 2, unfinished)
    assert any("not implemented" in t.get_text() for ax in fig.axes for t in ax.texts)
    plt.close(fig)
    view = channels_widget(image, conv2d_channels=lambda x, w: F.conv2d(x, w))
    view.controls["o"].value = 3
    assert any("✓" in ax.get_title() for ax in view.last_figure.axes)
    plt.close("all")
