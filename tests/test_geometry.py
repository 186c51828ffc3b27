"""convcourse.geometry, the one home of a convolution's arithmetic, measured against torch."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from convcourse import geometry


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ((2,), (2, 2)), ([1, 4], (1, 4)), ((0, 2), (0, 2))])
def test_pair_reads_arguments_as_conv2d_does(value, expected):
    assert geometry.pair(value) == expected
    x, w = torch.randn(1, 1, 9, 9), torch.randn(1, 1, 2, 2)
    if min(expected) >= 1:  # the same stride gives the same output as the pair
        assert torch.equal(F.conv2d(x, w, stride=value), F.conv2d(x, w, stride=expected))


@pytest.mark.parametrize("value", [(1, 2, 3), (), 2.0, True, (1, 2.5), "2"])
def test_pair_refuses_what_conv2d_refuses_with_the_same_exception_type(value):
    x, w = torch.randn(1, 1, 9, 9), torch.randn(1, 1, 2, 2)
    with pytest.raises((RuntimeError, TypeError)) as torch_error:
        F.conv2d(x, w, stride=value)
    with pytest.raises(type(torch_error.value)):
        geometry.pair(value, "stride")


SIZES = [(1, 1), (2, 3), (3, 3), (4, 1), (5, 2)]
DILATIONS = [(1, 1), (2, 1), (1, 3), (2, 2)]


@pytest.mark.parametrize("kernel, dilation", itertools.product(SIZES, DILATIONS))
def test_same_pads_split_the_total_as_torch_does(kernel, dilation):
    x = torch.randn(1, 1, 11, 12, dtype=torch.float64)
    w = torch.randn(1, 1, *kernel, dtype=torch.float64)
    padded = F.pad(x, geometry.same_pads(kernel, dilation))
    assert torch.equal(F.conv2d(padded, w, dilation=dilation), F.conv2d(x, w, padding="same", dilation=dilation))
    assert geometry.pads("same", kernel, dilation) == geometry.same_pads(kernel, dilation)


def test_pads_of_valid_ints_and_pairs():
    assert geometry.pads("valid", (3, 3)) == (0, 0, 0, 0)
    assert geometry.pads(2, (3, 3)) == (2, 2, 2, 2)
    assert geometry.pads((1, 3), (3, 3)) == (3, 3, 1, 1)  # (top/bottom, left/right) -> (left, right, top, bottom)
    with pytest.raises(RuntimeError, match="Invalid padding string"):
        geometry.pads("full", (3, 3))


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation",
    [
        (s, k, st, p, d)
        for s, k, st, p, d in itertools.product((5, 8, 13), (1, 2, 3), (1, 2, 3), (0, 1, 2), (1, 2))
        if s + 2 * p >= d * (k - 1) + 1
    ],
)
def test_output_size_is_the_length_torch_returns(size, kernel, stride, padding, dilation):
    x, w = torch.randn(1, 1, size, 7), torch.randn(1, 1, kernel, 1)
    out = F.conv2d(x, w, stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1))
    assert geometry.output_size(size, kernel, stride, padding, dilation) == out.shape[2]


def test_output_shape_with_uneven_padding():
    x, w = torch.randn(1, 1, 9, 10), torch.randn(1, 1, 4, 3)
    amounts = (1, 2, 0, 3)  # left, right, top, bottom
    expected = F.conv2d(F.pad(x, amounts), w, stride=(2, 3), dilation=(1, 2)).shape[2:]
    assert geometry.output_shape((9, 10), (4, 3), (2, 3), amounts, (1, 2)) == tuple(expected)


@pytest.mark.parametrize(
    "size, kernel, stride, padding, output_padding, dilation",
    [
        case
        for case in itertools.product((1, 4, 7), (1, 2, 3), (1, 2, 3), (0, 1, 2), (0, 1, 2), (1, 2))
        if case[4] < max(case[2], case[5]) and geometry.transposed_output_size(*case) >= 1
    ],
)
def test_transposed_output_size_is_the_length_torch_returns(size, kernel, stride, padding, output_padding, dilation):
    x, w = torch.randn(1, 1, size, 3), torch.randn(1, 1, kernel, 1)
    out = F.conv_transpose2d(
        x, w, stride=(stride, 1), padding=(padding, 0), output_padding=(output_padding, 0), dilation=(dilation, 1)
    )
    length = geometry.transposed_output_size(size, kernel, stride, padding, output_padding, dilation)
    assert length == out.shape[2]
    if output_padding == 0:  # the convolution with the same arguments maps stride lengths from here back to size
        for longer in range(length, length + stride):
            assert geometry.output_size(longer, kernel, stride, padding, dilation) == size


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_size_is_the_length_torch_pools_to(ceil_mode):
    """Floor and ceil_mode (with its last-window rule), measured against F.max_pool2d over a grid of arguments."""
    for size, kernel, stride, padding, dilation in itertools.product(
        range(1, 10), (1, 2, 3, 4), (1, 2, 3, 4), (0, 1, 2), (1, 2, 3)
    ):
        if padding > kernel // 2:
            continue
        x = torch.zeros(1, 1, size, 1)
        expected = geometry.pool_output_size(size, kernel, stride, padding, dilation, ceil_mode)
        if expected < 1:  # torch refuses: the window does not fit
            with pytest.raises(RuntimeError):
                F.max_pool2d(x, (kernel, 1), (stride, 1), (padding, 0), (dilation, 1), ceil_mode)
            continue
        out = F.max_pool2d(x, (kernel, 1), (stride, 1), (padding, 0), (dilation, 1), ceil_mode)
        assert out.shape[2] == expected, (size, kernel, stride, padding, dilation)


def test_pool_output_size_drops_a_last_window_on_the_right_padding():
    assert geometry.pool_output_size(4, 2, 3, 1, ceil_mode=True) == 2  # ceil gives 3; the third would start at 5
    assert geometry.pool_output_size(5, 2, 2, 0, ceil_mode=True) == 3  # a partial window inside the input is kept
