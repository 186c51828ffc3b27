"""Lesson 05: ``pad2d(x, pad, mode='constant', value=0.0)`` and ``same_padding(kernel_size, dilation=1)``.

``pad2d`` is compared with F.pad (which it may not call); its known-wrong variants recognise the
usual mix-ups of sides, order and modes. ``same_padding``'s answer is *measured* from torch: the
explicit (left, right, top, bottom) padding for which F.pad + F.conv2d reproduces
F.conv2d(padding='same') on a random input, found by search (no formula).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

from ...geometry import pair
from .. import _guard
from ..conv import randn
from ..core import CONVOLUTION_OPS, PAD_OPS, VALUES, Exercise, GradingError, Mistakes, register
from ..quiz import Question, error_name, register_question

_PAD_FUNCTIONS = frozenset(PAD_OPS | {"circular_pad2d", "reflection_pad3d", "replication_pad3d"})


class PadWatch(TorchFunctionMode):
    """Refuses torch's padding functions at the Python level, while active.

    The dispatcher tripwire (``banned=PAD_OPS``) does not see ``mode='circular'``: torch builds it from
    slices and ``cat`` before dispatch. F.pad, nn.CircularPad2d and torch.ops.aten._pad_circular all
    pass through torch-function handling, so this mode catches them (aliases included).
    """

    def __init__(self):
        super().__init__()
        self.hits: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        packet = getattr(func, "overloadpacket", func)
        name = getattr(packet, "__name__", "")
        if name in _PAD_FUNCTIONS:
            self.hits.append(name)
            raise GradingError(_PAD_MESSAGE)
        return func(*args, **(kwargs or {}))

    def __exit__(self, exc_type, exc, tb):
        super().__exit__(exc_type, exc, tb)
        if self.hits and exc_type is None:
            raise GradingError(_PAD_MESSAGE)
        return False


_PAD_MESSAGE = (
    "pad2d called torch's padding (F.pad). This exercise asks you to compute it yourself; the point "
    "is to see where every padded value comes from."
)

# ---- pad2d ----------------------------------------------------------------------------------------


def _pad_reference(x, pad, mode="constant", value=0.0):
    return _guard.pad(x, tuple(pad), mode=mode, value=value)


def _cat_w(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p for p in parts], dim=-1)


def _cat_h(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p for p in parts], dim=-2)


def _by_hand(x: torch.Tensor, pad, take: Callable[[torch.Tensor, int, int, int], tuple[torch.Tensor, torch.Tensor]]):
    """Pad width then height, taking the (before, after) strips from ``take(x, dim, before, after)``."""
    left, right, top, bottom = pad
    lo, hi = take(x, -1, left, right)
    x = _cat_w([lo, x, hi])
    lo, hi = take(x, -2, top, bottom)
    return _cat_h([lo, x, hi])


def _strip(x: torch.Tensor, dim: int, start: int, length: int) -> torch.Tensor:
    return x.narrow(dim, start, length)


def _symmetric(x, dim, before, after):
    """numpy's 'symmetric': the mirror includes the edge pixel (torch's reflect does not)."""
    n = x.shape[dim]
    return _strip(x, dim, 0, before).flip(dim), _strip(x, dim, n - after, after).flip(dim)


def _circular_wrong_side(x, dim, before, after):
    """The strip before the input copied from its start, the strip after from its end."""
    n = x.shape[dim]
    return _strip(x, dim, 0, before), _strip(x, dim, n - after, after)


def _pad_variants(inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
    x, pad = inputs["x"], tuple(inputs["pad"])
    mode, value = inputs.get("mode", "constant"), inputs.get("value", 0.0)
    left, right, top, bottom = pad
    out = Mistakes()
    add = out.add

    def same_mode(p):
        return _guard.pad(x, p, mode=mode, value=value)

    if (left, right) != (right, left):
        add(
            "left and right are swapped: pad[0] is the number of columns added on the LEFT, pad[1] on the right.",
            lambda: same_mode((right, left, top, bottom)),
        )
    if (top, bottom) != (bottom, top):
        add(
            "top and bottom are swapped: pad[2] is the number of rows added at the TOP, pad[3] at the bottom.",
            lambda: same_mode((left, right, bottom, top)),
        )
    if (left, right) != (right, left) and (top, bottom) != (bottom, top):
        add(
            "every side is swapped with its opposite (right for left, bottom for top).",
            lambda: same_mode((right, left, bottom, top)),
        )
    if (left, right) != (top, bottom):
        add(
            "the pad order is wrong: F.pad reads pad as (left, right, top, bottom), starting from the LAST "
            "dimension (width), not (top, bottom, left, right).",
            lambda: same_mode((top, bottom, left, right)),
        )
    if mode == "reflect":
        add(
            "this is 'replicate' (the edge value repeated), but 'reflect' mirrors the input around the edge "
            "pixel without repeating it: [a b c d] padded by 2 on the left gives [c b | a b c d].",
            lambda: _guard.pad(x, pad, mode="replicate"),
        )
        add(
            "your mirror repeats the edge pixel (numpy's 'symmetric' mode): torch's 'reflect' mirrors around "
            "the edge pixel, so [a b c d] padded by 2 on the left gives [c b | a b c d], not [b a | a b c d].",
            lambda: _by_hand(x, pad, _symmetric),
        )
    if mode == "replicate":
        add(
            "this is 'reflect' (a mirror image), but 'replicate' repeats the edge value: [a b c d] padded by 2 "
            "on the left gives [a a | a b c d].",
            lambda: _guard.pad(x, pad, mode="reflect"),
        )
    if mode == "circular":
        add(
            "circular padding wraps from the wrong side: the columns added on the LEFT come from the input's "
            "RIGHT end (as if the image were tiled), so [a b c d] padded by 1 on the left gives [d | a b c d].",
            lambda: _by_hand(x, pad, _circular_wrong_side),
        )
        add(
            "this is 'reflect', but 'circular' wraps around: the left padding is copied from the right end.",
            lambda: _guard.pad(x, pad, mode="reflect"),
        )
    if mode == "constant" and value != 0:
        add(
            f"the padding is filled with zeros, but value={value} asks for that value.",
            lambda: _guard.pad(x, pad, mode="constant", value=0.0),
        )
    if mode != "constant":
        add(
            f"the padding is filled with a constant, but mode={mode!r} copies values from the input.",
            lambda: _guard.pad(x, pad, mode="constant", value=0.0),
        )
    return out


def _pad_case(shape, pad, mode=None, value=None, seed=0):
    inputs: dict[str, Any] = dict(x=randn(*shape, seed=seed), pad=pad)
    if mode is not None:
        inputs["mode"] = mode
    if value is not None:
        inputs["value"] = value
    return inputs


def _pad_visible():
    return [
        _pad_case((1, 3, 4), (1, 2, 0, 1), seed=1),
        _pad_case((1, 1, 4, 5), (2, 1, 1, 2), "reflect", seed=2),
        _pad_case((2, 3, 4), (1, 2, 2, 1), "replicate", seed=3),
        _pad_case((1, 1, 3, 4), (1, 2, 2, 1), "circular", seed=4),
    ]


def _pad_hidden():
    specs = [
        ((2, 3, 5, 4), (2, 1, 3, 0), "constant", None),
        ((1, 4, 6), (0, 0, 0, 0), "reflect", None),  # no padding at all
        ((3, 5, 4), (1, 1, 1, 1), "constant", 1.5),  # a fill value
        ((1, 2, 4, 6), (5, 0, 1, 3), "reflect", None),  # reflect: largest allowed amounts
        ((2, 6, 3), (2, 0, 0, 5), "reflect", None),
        ((1, 1, 3, 2), (4, 3, 0, 6), "replicate", None),  # replicate: larger than the input
        ((2, 1, 5, 4), (3, 1, 2, 4), "circular", None),
        ((1, 4, 3), (0, 3, 3, 1), "circular", None),  # circular: up to the input size
        ((1, 1, 1, 1), (2, 2, 2, 2), "replicate", None),  # a single pixel
        ((2, 2, 3, 4), (0, 2, 1, 0), "constant", -2.0),
        ((2, 3, 4), [1, 0, 2, 1], "replicate", None),  # pad given as a list, as F.pad allows
        # invalid: torch raises RuntimeError
        ((1, 3, 4), (4, 0, 0, 0), "reflect", None),  # reflect width pad == width
        ((1, 2, 3, 5), (0, 1, 3, 0), "reflect", None),  # reflect height pad == height
        ((1, 2, 3), (0, 0, 0, 3), "circular", None),  # would wrap around twice
        ((1, 3, 4), (1, 1, 1, 1), "reflect", 2.0),  # value with a non-constant mode
    ]
    return [_pad_case(shape, pad, mode, value, seed=20 + i) for i, (shape, pad, mode, value) in enumerate(specs)]


register(
    Exercise(
        name="pad2d",
        lesson="05_padding",
        reference=_pad_reference,
        banned=PAD_OPS,
        variants=_pad_variants,
        suites={"visible": _pad_visible, "hidden": _pad_hidden},
        monitor=PadWatch,
        rtol=0.0,
        atol=0.0,
        hint="output[..., i, j] is x[..., i - top, j - left] inside the input; outside it depends on the mode "
        "(constant: value; replicate: the nearest edge pixel; reflect: the mirror image without repeating "
        "the edge; circular: wrap around).",
    )
)

# ---- same_padding ---------------------------------------------------------------------------------


def _axis_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding along one axis for which pad + conv equals torch's padding='same'."""
    length = 2 * kernel * dilation + 3
    x = randn(1, 1, 1, length, seed=kernel * 131 + dilation)
    w = randn(1, 1, 1, kernel, seed=kernel * 17 + dilation + 7)
    with warnings.catch_warnings():  # torch warns that even kernels need an extra padded copy
        warnings.simplefilter("ignore")
        target = _guard.conv2d(x, w, None, 1, "same", (1, dilation), 1)
    for before in range(kernel * dilation + 1):
        for after in range(kernel * dilation + 1):
            padded = _guard.pad(x, (before, after, 0, 0))
            if padded.shape[-1] < dilation * (kernel - 1) + 1:
                continue
            got = _guard.conv2d(padded, w, None, 1, 0, (1, dilation), 1)
            if got.shape == target.shape and _guard.allclose(got, target, rtol=1e-12, atol=1e-12):
                return before, after
    raise RuntimeError(f"no explicit padding reproduces 'same' for kernel {kernel}, dilation {dilation}")


def _same_reference(kernel_size, dilation=1):
    (kh, kw), (dh, dw) = pair(kernel_size), pair(dilation)
    left, right = _axis_padding(kw, dw)
    top, bottom = _axis_padding(kh, dh)
    return (left, right, top, bottom)


def _same_variants(inputs: dict[str, Any]) -> dict[str, tuple]:
    (kh, kw), (dh, dw) = pair(inputs["kernel_size"]), pair(inputs.get("dilation", 1))
    out: dict[str, tuple] = {}

    def split(total_w, total_h, first=lambda t: t // 2):
        return (first(total_w), total_w - first(total_w), first(total_h), total_h - first(total_h))

    tw, th = dw * (kw - 1), dh * (kh - 1)
    right = split(tw, th)
    out[
        "the uneven split is on the wrong side: torch puts total // 2 on the left/top and the extra pixel on "
        "the right/bottom."
    ] = split(tw, th, first=lambda t: t - t // 2)
    out["the order is wrong: return (left, right, top, bottom), width first, like F.pad."] = (
        right[2],
        right[3],
        right[0],
        right[1],
    )
    out[
        "height and width are swapped: kernel_size[0] is the height (top/bottom), kernel_size[1] the width "
        "(left/right)."
    ] = split(th, tw)
    out[
        "dilation is ignored: a dilated kernel spans dilation*(k-1)+1 pixels, so the total padding is dilation*(k-1)."
    ] = split(kw - 1, kh - 1)
    out["both sides get total // 2, so an even kernel loses a pixel; the rest goes right/bottom."] = (
        tw // 2,
        tw // 2,
        th // 2,
        th // 2,
    )
    out["the total padding is k instead of k - 1 (dilation*(k-1) in general)."] = split(dw * kw, dh * kh)
    return {k: v for k, v in out.items() if v != right}


def _same_visible():
    return [dict(kernel_size=3), dict(kernel_size=(2, 4)), dict(kernel_size=3, dilation=2)]


def _same_hidden():
    return [
        dict(kernel_size=1),
        dict(kernel_size=2),
        dict(kernel_size=5, dilation=1),
        dict(kernel_size=4),
        dict(kernel_size=(3, 1)),
        dict(kernel_size=(1, 6)),
        dict(kernel_size=2, dilation=3),
        dict(kernel_size=(4, 3), dilation=(1, 2)),
        dict(kernel_size=(2, 5), dilation=(3, 2)),
        dict(kernel_size=(6, 2), dilation=2),
    ]


register(
    Exercise(
        name="same_padding",
        lesson="05_padding",
        reference=_same_reference,
        comparison=VALUES,
        banned=CONVOLUTION_OPS | PAD_OPS,  # the answer must be worked out, not measured with torch (or the registry)
        variants=_same_variants,
        suites={"visible": _same_visible, "hidden": _same_hidden},
        hint="along one axis the kernel spans dilation*(k-1)+1 pixels, so 'same' needs dilation*(k-1) extra "
        "pixels in all; torch puts half of that (rounded down) first and the rest after.",
    )
)


# Check your understanding (graded, 1 point each): answers are computed from torch when checked.
def _measured_same_padding(kernel_size: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) read off F.conv2d(padding='same'): a kernel whose only tap is its top-left
    one copies the padded input, so input pixel (0, 0) lands at output (top, left)."""
    (kh, kw), (dh, dw) = kernel_size, dilation
    total_h, total_w = dh * (kh - 1), dw * (kw - 1)
    h, w = total_h + 1, total_w + 1
    x = torch.arange(1.0, h * w + 1, dtype=torch.float64).reshape(1, 1, h, w)
    tap = torch.zeros(1, 1, kh, kw, dtype=torch.float64)
    tap[0, 0, 0, 0] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _guard.conv2d(x, tap, None, 1, "same", (dh, dw), 1)[0, 0]
    top, left = (int(v) for v in (out == 1).nonzero()[0])
    return (left, total_w - left, top, total_h - top)


def _windows_per_pixel(size: int, kernel_size: int, padding: int) -> torch.Tensor:
    """How many windows of a stride-1 convolution read each input pixel: the gradient of the sum of all
    outputs of an all-ones kernel with respect to the input."""
    x = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    ones = torch.ones(1, 1, kernel_size, kernel_size, dtype=torch.float64)
    _guard.conv2d(x, ones, None, 1, padding, 1, 1).sum().backward()
    return x.grad[0, 0]


def _reflect_row() -> tuple[float, ...]:
    return tuple(_guard.pad(torch.arange(4.0).reshape(1, 1, 4), (2, 1), mode="reflect")[0, 0].tolist())


def _coverage() -> tuple[int, int, int]:
    counts = _windows_per_pixel(8, 3, 1)
    return (int(counts[0, 0]), int(counts[0, 4]), int(counts[4, 4]))


for _question in (
    Question(
        name="05_padding.q1",
        lesson="05_padding",
        form="a tuple of four ints (left, right, top, bottom)",
        answer=lambda: _measured_same_padding((4, 3), (1, 2)),
        explain="Per axis 'same' needs dilation*(k-1) extra pixels: 1*(4-1) = 3 rows and 2*(3-1) = 4 columns. "
        "torch puts total // 2 first: rows 1 top and 2 bottom, columns 2 left and 2 right; F.pad "
        "wants the width first: (left, right, top, bottom).",
    ),
    Question(
        name="05_padding.q2",
        lesson="05_padding",
        form="a tuple of three ints (corner, edge, centre)",
        answer=_coverage,
        explain="With padding=1 the 8x8 input gives 8x8 window positions. A corner pixel lies under the "
        "windows whose centre is within one pixel of it and inside the image: 2 rows x 2 columns = 4; "
        "an edge pixel 2 x 3 = 6; an interior pixel 3 x 3 = 9. 'same' padding keeps the size but "
        "does not make the border count as much as the middle.",
    ),
    Question(
        name="05_padding.q3",
        lesson="05_padding",
        form="a tuple of seven numbers",
        answer=_reflect_row,
        explain="'reflect' mirrors around the edge pixel without repeating it: two on the left are x[2], x[1] "
        "= 2, 1, one on the right is x[2] = 2, so [2, 1, 0, 1, 2, 3, 2].",
    ),
    Question(
        name="05_padding.q4",
        lesson="05_padding",
        kind="error",
        form="the exception's name, e.g. 'TypeError' (or the class itself)",
        answer=lambda: error_name(lambda: torch.nn.Conv2d(3, 16, 3, stride=2, padding="same")),
        explain="nn.Conv2d checks its arguments when it is built and raises ValueError: padding='same' is "
        "not supported for strided convolutions. (F.conv2d, called with the same arguments, raises "
        "RuntimeError.)",
    ),
):
    register_question(_question)
