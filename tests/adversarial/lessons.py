"""Adversarial learners for lessons 05, 08, 09, 10, 11 and 12 (issue 11), one nbgrader run per lesson.

Each :class:`LessonSubmission` replaces the released notebook's solution cells (by grade id) with
learner code; ``expected`` maps the graded test cells it is about to the score the grader must give,
and ``message`` is text the first of those cells' outputs must contain. The answer key's own
solution (read from solutions/<lesson>) is the honest control. Categories: the grader's answer
looked up in caller frames or with gc (the old exploit: full marks before issue 11), torch's banned
operation reached with the dispatch modes switched off or through torch.ops, the lesson's own rules
(registry reference, subclassing nn.Conv2d, autograd in backward), and correct work in another
summation order, which must keep every point.
"""

from __future__ import annotations

import copy
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def solution_source(lesson: str, grade_id: str) -> str:
    nb = nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    return next(c.source for c in nb.cells if _grade_id(c) == grade_id)


def notebook(lesson: str, solutions: dict[str, str]) -> bytes:
    """The released notebook, lean (markdown and nbgrader cells only), with the given solution cells."""
    nb = copy.deepcopy(nbformat.read(REPO / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4))
    nb.cells = [c for c in nb.cells if c.cell_type == "markdown" or "nbgrader" in c.metadata]
    for cell in nb.cells:
        grade_id = _grade_id(cell)
        if grade_id in solutions:
            cell.source = textwrap.dedent(solutions[grade_id]).strip("\n")
    return nbformat.writes(nb).encode()


@dataclass(frozen=True)
class LessonSubmission:
    student: str
    what: str
    solutions: dict[str, str]
    expected: dict[str, float]
    message: str = ""
    lesson: str = ""
    extra: dict = field(default_factory=dict)

    def build(self) -> bytes:
        filled = {
            gid: (
                solution_source(self.lesson, gid)
                if src == "KEY"
                else solution_source(self.lesson, gid) + "\n\n" + src[len("KEY_THEN:") :]
                if src.startswith("KEY_THEN:")
                else src
            )
            for gid, src in self.solutions.items()
        }
        return notebook(self.lesson, filled)


# The exploit that earned full marks before issue 11: walk the caller frames (and gc) for the grader's
# answer ('expected') or torch's exception ('torch_error') and hand it back.
STEAL = """
import gc, sys

def _steal():
    frame = sys._getframe(2)
    while frame is not None:
        names = frame.f_locals
        if isinstance(names.get("torch_error"), Exception):
            raise names["torch_error"]
        if isinstance(names.get("expected"), torch.Tensor):
            return names["expected"].clone()
        if isinstance(names.get("expected"), tuple):
            return names["expected"]
        frame = frame.f_back
    for obj in gc.get_objects():
        if isinstance(obj, dict) and isinstance(obj.get("expected"), torch.Tensor):
            return obj["expected"].clone()
    return torch.zeros(1)
"""

DISABLED_MODES = """
from torch.utils._python_dispatch import _disable_current_modes
"""


def _conv_signature(name: str, body: str) -> str:
    return (
        f"def {name}(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):\n"
        + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
        + "\n"
    )


L05 = "05_padding"
L05_SUBMISSIONS = [
    LessonSubmission(
        "honest",
        "the answer key",
        {"pad2d": "KEY", "same_padding": "KEY"},
        {"test_pad2d": 5.0, "test_same_padding": 3.0},
        lesson=L05,
    ),
    LessonSubmission(
        "steal",
        "looks up the grader's answer in caller frames and gc",
        {
            "pad2d": STEAL + "def pad2d(x, pad, mode='constant', value=0.0):\n    return _steal()\n",
            "same_padding": STEAL + "def same_padding(kernel_size, dilation=1):\n    return _steal()\n",
        },
        {"test_pad2d": 0.0, "test_same_padding": 0.0},
        "pad2d",
        lesson=L05,
    ),
    LessonSubmission(
        "modes_off",
        "F.pad with the dispatch modes switched off; same_padding reads the registry",
        {
            "pad2d": DISABLED_MODES
            + """
def pad2d(x, pad, mode="constant", value=0.0):
    with _disable_current_modes():
        return torch.ops.aten.pad(x, list(pad), mode, value if mode == "constant" else None)
""",
            "same_padding": """
from convcourse.checks.core import get_exercise

def same_padding(kernel_size, dilation=1):
    return get_exercise("same_padding").reference(kernel_size, dilation)
""",
        },
        {"test_pad2d": 0.0, "test_same_padding": 0.0},
        "called torch's padding",
        lesson=L05,
    ),
]

L08 = "08_full_conv2d"
L08_PARTS = ("bias", "geometry", "same_valid", "groups", "unbatched", "errors")
L08_POINTS = {
    "test_conv2d_bias": 2.0,
    "test_conv2d_geometry": 3.0,
    "test_conv2d_same_valid": 2.0,
    "test_conv2d_groups": 2.0,
    "test_conv2d_unbatched": 1.0,
    "test_conv2d_errors": 2.0,
}
L08_ZERO = {k: 0.0 for k in L08_POINTS}
L08_SUBMISSIONS = [
    LessonSubmission("honest", "the answer key", {"conv2d": "KEY"}, L08_POINTS, lesson=L08),
    LessonSubmission(
        "steal",
        "looks up the grader's answer (or torch's exception) in caller frames and gc",
        {"conv2d": STEAL + _conv_signature("conv2d", "return _steal()")},
        L08_ZERO,
        lesson=L08,
    ),
    LessonSubmission(
        "modes_off",
        "F.conv2d with the dispatch modes switched off",
        {
            "conv2d": DISABLED_MODES
            + _conv_signature(
                "conv2d",
                """
with _disable_current_modes():
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)""",
            )
        },
        L08_ZERO,
        "called torch's convolution",
        lesson=L08,
    ),
]

L09 = "09_vectorized"
L09_SUBMISSIONS = [
    LessonSubmission(
        "honest",
        "the answer key",
        {"conv2d_fast": "KEY"},
        {"test_conv2d_fast": 6.0, "test_conv2d_fast_vectorized": 2.0},
        lesson=L09,
    ),
    LessonSubmission(
        "steal",
        "looks up the grader's answer in caller frames and gc",
        {"conv2d_fast": STEAL + _conv_signature("conv2d_fast", "return _steal()")},
        {"test_conv2d_fast": 0.0, "test_conv2d_fast_vectorized": 0.0},
        lesson=L09,
    ),
    LessonSubmission(
        "aten_no_dispatch",
        "torch.ops.aten.convolution under torch._C._DisableTorchDispatch",
        {
            "conv2d_fast": _conv_signature(
                "conv2d_fast",
                """
with torch._C._DisableTorchDispatch():
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)""",
            )
        },
        {"test_conv2d_fast": 0.0, "test_conv2d_fast_vectorized": 0.0},
        "called torch's convolution",
        lesson=L09,
    ),
]

L10 = "10_conv2d_module"
L10_POINTS = {
    "test_conv2d_module": 4.0,
    "test_reset_parameters": 2.0,
    "test_extra_repr": 1.0,
    "test_conv2d_errors": 2.0,
}
# The answer key with a forward that sums in another order (unfold + einsum): 6 of 9 points before issue 11.
UNFOLD_FORWARD = """
    def forward(self, input):
        batched = input.dim() == 4
        x = input if batched else input[None]
        x = F.pad(x, self._pads, mode="constant" if self.padding_mode == "zeros" else self.padding_mode)
        n = x.shape[0]
        o, cg, kh, kw = self.weight.shape
        cols = F.unfold(x, (kh, kw), dilation=self.dilation, stride=self.stride)
        cols = cols.view(n, self.groups, cg * kh * kw, -1)
        out = torch.einsum("ngkl,gok->ngol", cols, self.weight.view(self.groups, o // self.groups, -1))
        oh = (x.shape[2] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        out = out.reshape(n, o, oh, -1)
        if self.bias is not None:
            out = out + self.bias[None, :, None, None]
        return out if batched else out[0]
"""
L10_SUBMISSIONS = [
    LessonSubmission("honest", "the answer key", {"Conv2d": "KEY"}, L10_POINTS, lesson=L10),
    LessonSubmission(
        "subclass",
        "class Conv2d(nn.Conv2d): pass",
        {"Conv2d": "class Conv2d(nn.Conv2d):\n    pass\n"},
        {k: 0.0 for k in L10_POINTS},
        "torch's own nn.Conv2d code",
        lesson=L10,
    ),
    LessonSubmission(
        "wrapper",
        "wraps an nn.Conv2d and forwards to it",
        {
            "Conv2d": """
class Conv2d(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self._inner = nn.Conv2d(*args, **kwargs)
        self.weight, self.bias = self._inner.weight, self._inner.bias

    def forward(self, x):
        return self._inner(x)

    def extra_repr(self):
        return self._inner.extra_repr()
"""
        },
        {k: 0.0 for k in L10_POINTS},
        "torch's own nn.Conv2d code",
        lesson=L10,
    ),
    LessonSubmission(
        "unfold_forward",
        "correct, forward by unfold + einsum (another summation order)",
        {"Conv2d": "UNFOLD"},
        L10_POINTS,
        lesson=L10,
    ),
]

L11 = "11_backward"
L11_SUBMISSIONS = [
    LessonSubmission(
        "honest",
        "the answer key",
        {"conv2d_backward": "KEY", "Conv2dFunction": "KEY"},
        {"test_conv2d_backward": 6.0, "test_Conv2dFunction": 3.0},
        lesson=L11,
    ),
    LessonSubmission(
        "autograd",
        "gradients by torch.autograd through its own (loop) forward",
        {
            "conv2d_backward": """
def _forward(x, w, stride, padding, dilation, groups):
    two = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    (sh, sw), (ph, pw), (dh, dw) = two(stride), two(padding), two(dilation)
    x = F.pad(x, (pw, pw, ph, ph))
    o, cg, kh, kw = w.shape
    oh, ow = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1, (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    per, out = o // groups, 0
    cols = []
    for a in range(kh):
        for b in range(kw):
            patch = x[:, :, a * dh:a * dh + sh * (oh - 1) + 1:sh, b * dw:b * dw + sw * (ow - 1) + 1:sw]
            cols.append(torch.cat([torch.einsum("nchw,oc->nohw", patch[:, g * cg:(g + 1) * cg],
                                                w[g * per:(g + 1) * per, :, a, b]) for g in range(groups)], 1))
    return sum(cols)

def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
    x, w = input.detach().clone().requires_grad_(True), weight.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = _forward(x, w, stride, padding, dilation, groups)
        gx, gw = torch.autograd.grad(out, (x, w), grad_output)
    return gx, gw, grad_output.sum((0, 2, 3))
""",
            "Conv2dFunction": "KEY",
        },
        {"test_conv2d_backward": 0.0, "test_Conv2dFunction": 0.0},
        "used torch's autograd",
        lesson=L11,
    ),
    LessonSubmission(
        "steal",
        "looks up torch's gradients in caller frames and gc",
        {
            "conv2d_backward": STEAL
            + """
def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
    return _steal()
""",
            "Conv2dFunction": "KEY",
        },
        {"test_conv2d_backward": 0.0},
        lesson=L11,
    ),
]

L12 = "12_capstone"
L12_POINTS = {"test_build_model": 2.0, "test_train_model": 6.0}
L12_SUBMISSIONS = [
    LessonSubmission("honest", "the answer key", {"build_model": "KEY", "train_model": "KEY"}, L12_POINTS, lesson=L12),
    LessonSubmission(
        "subclass",
        "a network of nn.Conv2d subclasses instead of the course's Conv2d",
        {
            "build_model": """
class MyConv(nn.Conv2d):
    pass


def build_model():
    torch.manual_seed(0)
    return nn.Sequential(MyConv(1, 16, 3, padding=1), nn.ReLU(), MyConv(16, 32, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), MyConv(32, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(512, 10))
""",
            "train_model": "KEY",
        },
        {"test_build_model": 0.0, "test_train_model": 0.0},
        "torch's own convolution",
        lesson=L12,
    ),
    LessonSubmission(
        "thread",
        "trains in a background thread it joins before returning",
        {
            "build_model": "KEY",
            "train_model": "KEY_THEN:"
            + """
import threading
_train_model_in_this_thread = train_model


def train_model(model, x_train, y_train, **options):
    box = {}

    def train() -> None:
        box.update(h=_train_model_in_this_thread(model, x_train, y_train, **options))

    worker = threading.Thread(target=train)
    worker.start()
    worker.join()
    return box["h"]
""",
        },
        {"test_train_model": 0.0, "test_build_model": 2.0},
        "started a thread",
        lesson=L12,
    ),
]

# ---- lesson 13 (pooling) ------------------------------------------------------------------------- BEGIN L13
L13 = "13_pooling"
L13_MAX = {
    "test_max_pool2d_geometry": 3.0,
    "test_max_pool2d_ceil_mode": 1.0,
    "test_max_pool2d_indices": 2.0,
    "test_max_pool2d_errors": 2.0,
}
L13_AVG = {
    "test_avg_pool2d_geometry": 2.0,
    "test_avg_pool2d_ceil_mode": 1.0,
    "test_avg_pool2d_divisor": 2.0,
    "test_avg_pool2d_errors": 1.0,
}
L13_ZERO = {k: 0.0 for k in {**L13_MAX, **L13_AVG}}


def _l13_mutated(old: str, new: str) -> dict[str, str]:
    """Both answer keys with one line changed (a known mistake, made in both functions)."""
    return {gid: solution_source(L13, gid).replace(old, new) for gid in ("max_pool2d", "avg_pool2d")}


L13_SUBMISSIONS = [
    LessonSubmission(
        "honest", "the answer key", {"max_pool2d": "KEY", "avg_pool2d": "KEY"}, {**L13_MAX, **L13_AVG}, lesson=L13
    ),  # fmt: skip
    LessonSubmission(
        "numpy_results",
        "the answer key returning numpy arrays (values and indices): correct in another style",
        {
            "max_pool2d": "KEY_THEN:\n_key = max_pool2d\n\n\ndef max_pool2d(*args, **kwargs):\n"
            "    out = _key(*args, **kwargs)\n"
            "    return tuple(t.numpy() for t in out) if isinstance(out, tuple) else out.numpy()\n",
            "avg_pool2d": "KEY_THEN:\n_key_avg = avg_pool2d\n\n\ndef avg_pool2d(*args, **kwargs):\n"
            "    return _key_avg(*args, **kwargs).numpy()\n",
        },
        {**L13_MAX, **L13_AVG},
        lesson=L13,
    ),
    LessonSubmission(
        "steal",
        "looks up the grader's answer (or torch's exception) in caller frames and gc",
        {
            "max_pool2d": STEAL + "def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, "
            "ceil_mode=False, return_indices=False):\n    return _steal()\n",
            "avg_pool2d": STEAL + "def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, "
            "count_include_pad=True, divisor_override=None):\n    return _steal()\n",
        },
        L13_ZERO,
        lesson=L13,
    ),
    LessonSubmission(
        "alias",
        "max_pool2d is torch's own function under another name; avg_pool2d is honest",
        {"max_pool2d": "pool = F.max_pool2d\nmax_pool2d = pool\n", "avg_pool2d": "KEY"},
        {**{k: 0.0 for k in L13_MAX}, **L13_AVG},
        "called torch's pooling",
        lesson=L13,
    ),
    LessonSubmission(
        "stride_one",
        "stride defaults to 1 instead of kernel_size: only the errors parts pass",
        _l13_mutated(
            'sh, sw = pair(strides, "stride") if strides else (kh, kw)',
            'sh, sw = pair(strides, "stride") if strides else (1, 1)',
        ),
        {
            **{k: 0.0 for k in L13_MAX},
            "test_max_pool2d_errors": 2.0,
            **{k: 0.0 for k in L13_AVG},
            "test_avg_pool2d_errors": 1.0,
        },
        "stride defaults to 1",
        lesson=L13,
    ),  # fmt: skip
    LessonSubmission(
        "no_last_window_rule",
        "ceil_mode without the last-window rule: the ceil_mode parts and max's indices part are lost",
        _l13_mutated("if ceil_mode and (out - 1) * s >= length + p:", "if False:"),
        {
            **L13_MAX,
            "test_max_pool2d_ceil_mode": 0.0,
            "test_max_pool2d_indices": 0.0,
            **L13_AVG,
            "test_avg_pool2d_ceil_mode": 0.0,
        },
        lesson=L13,
    ),  # fmt: skip
]
# ---------------------------------------------------------------------------------------------------- END L13
# ---- lesson 15 (device and dtype) ---------------------------------------------------------------------------
L15 = "15_device_dtype"
L15_POINTS = {"test_conv2d_flops": 4.0, "test_im2col_bytes": 3.0, "test_smallest_dtype": 3.0}
L15_KEY = {"conv2d_flops": "KEY", "im2col_bytes": "KEY", "smallest_dtype": "KEY"}
# Honest, in another style: the output size through lesson 02's formula with math.floor, the element size from an
# empty tensor, the tolerance through torch.testing.assert_close (the same test as isclose).
L15_OTHER_STYLE = {
    "conv2d_flops": """
import math


def _two(v):
    return (v, v) if isinstance(v, int) else (v[0], v[-1])


def conv2d_flops(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    if len(input_shape) not in (3, 4):
        raise RuntimeError("Expected 3D (unbatched) or 4D (batched) input to conv2d")
    *batch, c, h, w = input_shape
    o, cg, kh, kw = weight_shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    if min(sh, sw, dh, dw) < 1 or c != cg * groups or o % groups:
        raise RuntimeError("shapes do not fit")
    if padding == "same":
        if (sh, sw) != (1, 1):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        out_h, out_w = h, w
    else:
        ph, pw = (0, 0) if padding == "valid" else _two(padding)
        out_h = math.floor((h + 2 * ph - dh * (kh - 1) - 1) / sh) + 1
        out_w = math.floor((w + 2 * pw - dw * (kw - 1) - 1) / sw) + 1
        if out_h < 1 or out_w < 1:
            raise RuntimeError("kernel larger than the padded input")
    images = batch[0] if batch else 1
    return images * o * out_h * out_w * cg * kh * kw * 2
""",
    "im2col_bytes": """
def im2col_bytes(input_shape, kernel_size, stride=1, padding=0, dilation=1, dtype=torch.float32):
    pairs = [(v, v) if isinstance(v, int) else tuple(v) for v in (kernel_size, stride, padding, dilation)]
    if any(len(p) != 2 for p in pairs):
        raise RuntimeError("expected two numbers each")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pairs
    if min(sh, sw) < 1 or min(ph, pw) < 0:
        raise RuntimeError("invalid arguments")
    *batch, c, h, w = input_shape
    windows = ((h + 2 * ph - dh * (kh - 1) - 1) // sh + 1) * ((w + 2 * pw - dw * (kw - 1) - 1) // sw + 1)
    if len(batch) > 1 or windows < 1 or (h + 2 * ph - dh * (kh - 1) - 1) < 0:
        raise RuntimeError("the kernel does not fit")
    return (batch[0] if batch else 1) * c * kh * kw * windows * torch.empty(0, dtype=dtype).element_size()
""",
    "smallest_dtype": """
def smallest_dtype(input, weight, rtol, atol=0.0):
    exact = F.conv2d(input.double(), weight.double())
    for dtype in [torch.float16, torch.bfloat16, torch.float32, torch.float64]:
        try:
            result = F.conv2d(input.to(dtype), weight.to(dtype)).double()
            torch.testing.assert_close(result, exact, rtol=rtol, atol=atol)
        except AssertionError:
            continue
        return dtype
""",
}
L15_SUBMISSIONS = [
    LessonSubmission("honest", "the answer key", L15_KEY, L15_POINTS, lesson=L15),
    LessonSubmission("other_style", "correct, in another style", L15_OTHER_STYLE, L15_POINTS, lesson=L15),
    LessonSubmission(
        "macs",
        "counts multiply-adds instead of FLOPs; bytes always for float32",
        {
            "conv2d_flops": "KEY_THEN:"
            + """
_flops = conv2d_flops


def conv2d_flops(*args, **kwargs):
    return _flops(*args, **kwargs) // 2
""",
            "im2col_bytes": "KEY_THEN:"
            + """
_bytes = im2col_bytes


def im2col_bytes(*args, dtype=torch.float32, **kwargs):
    return _bytes(*args, **kwargs)
""",
            "smallest_dtype": "KEY",
        },
        {"test_conv2d_flops": 0.0, "test_im2col_bytes": 0.0, "test_smallest_dtype": 3.0},
        "FlopCounterMode counts 2 FLOPs per multiply-add",
        lesson=L15,
    ),
    LessonSubmission(
        "rounded_inputs",
        "rounds the inputs to each dtype but convolves in float64 (misses float16's overflow)",
        {
            "conv2d_flops": "KEY",
            "im2col_bytes": "KEY",
            "smallest_dtype": """
def smallest_dtype(input, weight, rtol, atol=0.0):
    exact = F.conv2d(input, weight)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        result = F.conv2d(input.to(dtype).double(), weight.to(dtype).double())
        if torch.isclose(result, exact, rtol=rtol, atol=atol).all():
            return dtype
""",
        },
        {"test_conv2d_flops": 4.0, "test_im2col_bytes": 3.0, "test_smallest_dtype": 0.0},
        lesson=L15,
    ),
    LessonSubmission(
        "read_off_torch",
        "FlopCounterMode and F.unfold through aliases, on meta tensors",
        {
            "conv2d_flops": """
from torch.utils import flop_counter as _fc
_conv = getattr(F, "conv" + "2d")


def conv2d_flops(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    with _fc.FlopCounterMode(display=False) as counter:
        _conv(torch.empty(input_shape, device="meta"), torch.empty(weight_shape, device="meta"), None, stride,
              padding, dilation, groups)
    return counter.get_total_flops()
""",
            "im2col_bytes": """
_windows = torch.nn.functional.unfold


def im2col_bytes(input_shape, kernel_size, stride=1, padding=0, dilation=1, dtype=torch.float32):
    result = _windows(torch.empty(input_shape, dtype=dtype, device="meta"), kernel_size, dilation, padding, stride)
    return result.numel() * result.element_size()
""",
            "smallest_dtype": "KEY",
        },
        {"test_conv2d_flops": 0.0, "test_im2col_bytes": 0.0, "test_smallest_dtype": 3.0},
        "FLOP counter",
        lesson=L15,
    ),
    LessonSubmission(
        "patch_counter",
        "makes torch's FLOP counter agree with a wrong count (MACs)",
        {
            "conv2d_flops": "KEY_THEN:"
            + """
import torch.utils.flop_counter as _fc
_original = _fc.conv_flop_count
_fc.conv_flop_count = lambda *args, **kwargs: _original(*args, **kwargs) // 2
_flops = conv2d_flops


def conv2d_flops(*args, **kwargs):
    return _flops(*args, **kwargs) // 2
""",
            "im2col_bytes": "KEY",
            "smallest_dtype": "KEY",
        },
        {"test_conv2d_flops": 0.0},
        "changed torch.utils.flop_counter",
        lesson=L15,
    ),
]
# ---- end of lesson 15 -----------------------------------------------------------------------------------------

LESSONS = {
    L05: L05_SUBMISSIONS,
    L08: L08_SUBMISSIONS,
    L09: L09_SUBMISSIONS,
    L10: L10_SUBMISSIONS,
    L11: L11_SUBMISSIONS,
    L12: L12_SUBMISSIONS,
    L13: L13_SUBMISSIONS,
    L15: L15_SUBMISSIONS,
}


def build(submission: LessonSubmission) -> bytes:
    if submission.solutions.get("Conv2d") == "UNFOLD":
        key = solution_source(L10, "Conv2d")
        start = key.index("    def forward(")
        end = key.index("\n    def ", start + 10)
        source = (
            key[:start]
            + textwrap.dedent(UNFOLD_FORWARD).strip("\n").replace("\n", "\n    ").join(["    ", ""])
            + "\n"
            + key[end:]
        )
        return notebook(L10, {"Conv2d": source})
    return submission.build()


# ---- BEGIN lesson 14 (14_transposed) ------------------------------------------------------------------------
L14 = "14_transposed"
L14_FUNCTION = {
    "test_conv_transpose2d_geometry": 3.0,
    "test_conv_transpose2d_output_padding": 2.0,
    "test_conv_transpose2d_groups": 2.0,
    "test_conv_transpose2d_unbatched": 1.0,
    "test_conv_transpose2d_errors": 2.0,
}
L14_MODULE = {
    "test_ConvTranspose2d": 3.0,
    "test_ConvTranspose2d_output_size": 2.0,
    "test_ConvTranspose2d_init": 1.0,
    "test_ConvTranspose2d_errors": 1.0,
}
L14_SIGNATURE = (
    "def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):"
)
# The answer key kept under another name, to raise torch's errors (and, for the bugs, to build on).
L14_KEY_AS = "KEY_THEN:\n_key_conv_transpose2d = conv_transpose2d\n"
# Correct, but as a gather: zero-stuff the input by the stride, pad by dilation*(k-1), correlate with the flipped
# kernel tap by tap (einsum over the group's channels), crop the padding.
L14_GATHER = (
    L14_KEY_AS
    + L14_SIGNATURE
    + """
    shape = _key_conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation).shape
    two = lambda v: (v, v) if isinstance(v, int) else (v[0], v[-1])
    (sh, sw), (ph, pw), (oh, ow), (dh, dw) = two(stride), two(padding), two(output_padding), two(dilation)
    x = input if input.dim() == 4 else input[None]
    n, c, h, w = x.shape
    kh, kw = weight.shape[-2:]
    up = torch.zeros(n, c, (h - 1) * sh + 1 + oh, (w - 1) * sw + 1 + ow, dtype=x.dtype)
    up[:, :, : (h - 1) * sh + 1 : sh, : (w - 1) * sw + 1 : sw] = x
    up = F.pad(up, (dw * (kw - 1), dw * (kw - 1), dh * (kh - 1), dh * (kh - 1)))
    full_h, full_w = up.shape[2] - dh * (kh - 1), up.shape[3] - dw * (kw - 1)
    cg, per = c // groups, weight.shape[1]
    outs = []
    for g in range(groups):
        acc = 0
        for a in range(kh):
            for b in range(kw):
                window = up[:, g * cg : (g + 1) * cg, a * dh : a * dh + full_h, b * dw : b * dw + full_w]
                tap = weight[g * cg : (g + 1) * cg, :, kh - 1 - a, kw - 1 - b]
                acc = acc + torch.einsum("nchw,co->nohw", window, tap)
        outs.append(acc)
    out = torch.cat(outs, 1)[:, :, ph : ph + shape[-2], pw : pw + shape[-1]]
    if bias is not None:
        out = out + bias.view(-1, 1, 1)
    return out if input.dim() == 4 else out[0]
"""
)
L14_SUBMISSIONS = [
    LessonSubmission(
        "honest",
        "the answer key",
        {"conv_transpose2d": "KEY", "ConvTranspose2d": "KEY"},
        L14_FUNCTION | L14_MODULE,
        lesson=L14,
    ),  # fmt: skip
    LessonSubmission(
        "gather",
        "correct, as a gather (zero-stuffed input, flipped kernel, einsum per tap)",
        {"conv_transpose2d": L14_GATHER, "ConvTranspose2d": "KEY"},
        L14_FUNCTION,
        lesson=L14,
    ),
    LessonSubmission(
        "gather_no_flip",
        "the gather without flipping the kernel; the module's init with conv2d's fan_in",
        {
            "conv_transpose2d": L14_GATHER.replace("kh - 1 - a, kw - 1 - b", "a, b"),
            "ConvTranspose2d": "KEY_THEN:"
            + """
_KeyConvTranspose2d = ConvTranspose2d


class ConvTranspose2d(_KeyConvTranspose2d):
    def reset_parameters(self):
        bound = 1 / math.sqrt(self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1])
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)
""",
        },
        {
            "test_conv_transpose2d_geometry": 0.0,
            "test_conv_transpose2d_output_padding": 0.0,
            "test_conv_transpose2d_groups": 0.0,
            "test_conv_transpose2d_unbatched": 0.0,
            "test_conv_transpose2d_errors": 2.0,
            "test_ConvTranspose2d": 3.0,
            "test_ConvTranspose2d_init": 0.0,
        },
        "your kernel is flipped",
        lesson=L14,
    ),
    LessonSubmission(
        "output_padding_top_left",
        "scatter with the output_padding rows and columns at the top and left",
        {
            "conv_transpose2d": L14_KEY_AS
            + L14_SIGNATURE
            + """
    two = lambda v: (v, v) if isinstance(v, int) else (v[0], v[-1])
    (ph, pw), (oh, ow) = two(padding), two(output_padding)
    out = _key_conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)
    full = _key_conv_transpose2d(input, weight, None, stride, 0, 0, groups, dilation)
    full = F.pad(full, (ow, 0, oh, 0))[..., ph : ph + out.shape[-2], pw : pw + out.shape[-1]]
    return full if bias is None else full + bias.view(-1, 1, 1)
""",
        },
        {
            "test_conv_transpose2d_geometry": 3.0,
            "test_conv_transpose2d_output_padding": 0.0,
            "test_conv_transpose2d_groups": 0.0,
            "test_conv_transpose2d_unbatched": 0.0,
            "test_conv_transpose2d_errors": 2.0,
        },
        "",
        lesson=L14,
    ),
    LessonSubmission(
        "alias",
        "F.conv_transpose2d through an alias; a layer that subclasses nn.ConvTranspose2d",
        {
            "conv_transpose2d": "_transposed = F.conv_transpose2d\n\n"
            + L14_SIGNATURE
            + "\n    return _transposed(input, weight, bias, stride, padding, output_padding, groups, dilation)\n",
            "ConvTranspose2d": "class ConvTranspose2d(nn.ConvTranspose2d):\n    pass\n",
        },
        {k: 0.0 for k in L14_FUNCTION | L14_MODULE},
        "called torch's convolution",
        lesson=L14,
    ),
    LessonSubmission(
        "conv2d_gradient",
        "conv2d's grad_input by autograd (the same map), computed by torch",
        {
            "conv_transpose2d": L14_SIGNATURE
            + """
    two = lambda v: (v, v) if isinstance(v, int) else (v[0], v[-1])
    (sh, sw), (ph, pw), (oh, ow), (dh, dw) = two(stride), two(padding), two(output_padding), two(dilation)
    kh, kw = weight.shape[-2:]
    size = [(n - 1) * s - 2 * p + d * (k - 1) + o + 1
            for n, s, p, d, k, o in zip(input.shape[-2:], (sh, sw), (ph, pw), (dh, dw), (kh, kw), (oh, ow))]
    shape = (*input.shape[:-3], weight.shape[1] * groups, *size)
    x = torch.zeros(shape, dtype=input.dtype, requires_grad=True)
    with torch.enable_grad():
        out = F.conv2d(x, weight, None, stride, padding, dilation, groups)
        (grad_input,) = torch.autograd.grad(out, x, input)
    return grad_input if bias is None else grad_input + bias.view(-1, 1, 1)
""",
        },
        {k: 0.0 for k in L14_FUNCTION},
        "called torch's convolution",
        lesson=L14,
    ),
    LessonSubmission(
        "steal",
        "looks up the grader's answer (or torch's exception) in caller frames and gc",
        {"conv_transpose2d": STEAL + L14_SIGNATURE + "\n    return _steal()\n"},
        {k: 0.0 for k in L14_FUNCTION},
        lesson=L14,
    ),
]
LESSONS[L14] = L14_SUBMISSIONS
# ---- END lesson 14 ------------------------------------------------------------------------------------------
