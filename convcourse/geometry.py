"""The arithmetic of a 2-D convolution (and of pooling), written once: pairs, padding amounts and output sizes.

The checks' known-mistake variants, the widget models, the capstone's stack and lesson 09's argument
normaliser all use these. Grading never trusts them: the checks compare with torch itself. The formulas
are the ones torch documents for ``nn.Conv2d``, ``nn.ConvTranspose2d`` and ``nn.MaxPool2d`` ("Shape"), and
tests/test_geometry.py measures each one against torch.
"""

from __future__ import annotations

import operator
from typing import Any

#: (height, width)
Pair = tuple[int, int]
#: (left, right, top, bottom): F.pad's order for the last two dimensions.
Pads = tuple[int, int, int, int]


def integer(value: Any, name: str = "argument") -> int:
    """``value`` as an int, refusing bools and floats as ``F.conv2d`` does (TypeError)."""
    if isinstance(value, bool):
        raise TypeError(f"conv2d: {name} must be an int, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"conv2d: {name} must be an int or a list of ints, got {type(value).__name__}") from None


def pair(value: Any, name: str = "argument") -> Pair:
    """(h, w) of an int or a sequence of one or two ints, as ``F.conv2d`` reads them (``stride=(2,)`` is 2, 2).

    Raises what torch raises: RuntimeError for a sequence of another length, TypeError for a non-integer.
    """
    if isinstance(value, (tuple, list)):
        if len(value) not in (1, 2):
            raise RuntimeError(
                f"expected {name} to be a single integer value or a list of 2 values to match "
                f"the convolution dimensions, but got {name}={list(value)}"
            )
        values = [integer(v, name) for v in value]
        return (values[0], values[-1])
    number = integer(value, name)
    return (number, number)


def same_pads(kernel_size: Pair, dilation: Pair = (1, 1)) -> Pads:
    """padding='same' as torch splits it: the total ``dilation * (kernel - 1)`` per axis, the smaller half
    first (left/top), the extra pixel of an odd total last (right/bottom)."""
    total_h, total_w = dilation[0] * (kernel_size[0] - 1), dilation[1] * (kernel_size[1] - 1)
    return (total_w // 2, total_w - total_w // 2, total_h // 2, total_h - total_h // 2)


def pads(padding: Any, kernel_size: Pair, dilation: Pair = (1, 1)) -> Pads:
    """(left, right, top, bottom) for any ``padding`` F.conv2d accepts: 'valid', 'same', an int or a pair."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        return same_pads(kernel_size, dilation)
    if isinstance(padding, str):
        raise RuntimeError(f"Invalid padding string: {padding!r}")
    ph, pw = pair(padding, "padding")
    return (pw, pw, ph, ph)


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length along one axis: floor((size + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1.

    ``padding`` is the amount on each side; for uneven sides pass the padded size and ``padding=0``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_size(
    size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Output length of ``max_pool2d``/``avg_pool2d`` along one axis (``padding`` on each side).

    floor mode is :func:`output_size`. ``ceil_mode`` rounds the division up, so a last, partial window
    is kept, but only if it starts inside the input or the left padding: when it would start at or after
    ``size + padding`` (all on the right padding) it is dropped, as torch's pooling shape check does."""
    span = dilation * (kernel - 1) + 1
    numerator = size + 2 * padding - span
    out = (-(-numerator // stride) if ceil_mode else numerator // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def output_shape(
    size: Pair, kernel_size: Pair, stride: Pair = (1, 1), padding: Pads = (0, 0, 0, 0), dilation: Pair = (1, 1)
) -> Pair:
    """(H_out, W_out) for an input of ``size`` (h, w) with (left, right, top, bottom) ``padding``."""
    left, right, top, bottom = padding
    return (
        output_size(size[0] + top + bottom, kernel_size[0], stride[0], 0, dilation[0]),
        output_size(size[1] + left + right, kernel_size[1], stride[1], 0, dilation[1]),
    )


def transposed_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a transposed convolution along one axis:
    (size − 1)·stride − 2·padding + dilation·(kernel − 1) + output_padding + 1.

    With ``output_padding=0`` this is the smallest length that a convolution with the same arguments maps back to
    ``size``; the ``stride - 1`` lengths above it map there too, and ``output_padding`` picks one of them."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
