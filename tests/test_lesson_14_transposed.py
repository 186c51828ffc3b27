"""Lesson 14: conv_transpose2d and ConvTranspose2d (suites, diagnoses, bans, the answer key against torch over the
whole parameter space, and the C / Cᵀ widget)."""

from __future__ import annotations

import itertools
import math
import random

import matplotlib.pyplot as plt
import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convcourse.checks import GradingError, check, check_suite, randn, suite_cases
from convcourse.checks.exercises.l14_transposed import PARTS
from convcourse.widgets.transposed import TransposedCall, draw, learner_verdict, transposed_widget

from course import REPO

LESSON = "14_transposed"
MODULE_EXERCISES = ("ConvTranspose2d", "ConvTranspose2d_output_size", "ConvTranspose2d_init", "ConvTranspose2d_errors")


def _answer_key() -> dict:
    """The solution cells of the source notebook, run in a namespace with the setup cell's imports."""
    notebook = nbformat.read(REPO / "autograder" / "source" / LESSON / f"{LESSON}.ipynb", as_version=4)
    namespace = {"torch": torch, "F": F, "nn": nn, "math": math}
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            exec(compile(cell.source, f"<{LESSON} solution {cell.id}>", "exec"), namespace)  # noqa: S102 (our own key)
    return namespace


KEY = _answer_key()
key = KEY["conv_transpose2d"]
KeyLayer = KEY["ConvTranspose2d"]


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


# ------------------------------------------------------------------ suites


def test_every_part_has_a_visible_and_a_hidden_suite_and_the_unions_cover_them():
    for part in PARTS:
        assert suite_cases("conv_transpose2d", part) and suite_cases("conv_transpose2d", f"{part}_hidden")
    for suite, suffix in (("visible", ""), ("hidden", "_hidden")):
        expected = sum(len(suite_cases("conv_transpose2d", p + suffix)) for p in PARTS)
        assert len(suite_cases("conv_transpose2d", suite)) == expected


def test_error_suites_hold_only_calls_torch_refuses_and_the_others_only_calls_it_accepts():
    for part in PARTS:
        for suite in (part, f"{part}_hidden"):
            for inputs in suite_cases("conv_transpose2d", suite):
                try:
                    F.conv_transpose2d(**inputs)
                    refused = False
                except (RuntimeError, TypeError):
                    refused = True
                assert refused == (part == "errors"), (suite, inputs)


def test_the_answer_key_passes_every_suite_of_both_exercises():
    for suite in ("visible", "hidden"):
        assert check_suite("conv_transpose2d", key, suite)
        for exercise in MODULE_EXERCISES:
            assert check_suite(exercise, KeyLayer, suite)


# ------------------------------------------------------------------ known mistakes of conv_transpose2d


def _wrong(**mistake):
    """The answer key with one known mistake switched on."""

    def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        (ph, pw), (oh, ow) = _pair(padding), _pair(output_padding)
        if mistake.get("flip"):
            weight = weight.flip(-1, -2)
        if mistake.get("layout"):  # reads weight[o, c] where weight[c, o] belongs
            c, per = weight.shape[0] // groups, weight.shape[1]
            weight = weight.reshape(groups, c, per, *weight.shape[2:]).transpose(1, 2).reshape(weight.shape)
        if mistake.get("no_bias"):
            bias = None
        if mistake.get("ignore_groups"):
            groups = 1
        if mistake.get("pad_output"):  # pads the output with zeros instead of cropping
            out = key(input, weight, None, stride, 0, output_padding, groups, dilation)
            out = F.pad(out, (pw, pw, ph, ph))
        elif mistake.get("output_padding_side") or mistake.get("output_padding_zeros"):
            full = key(input, weight, None, stride, 0, 0, groups, dilation)
            h_out, w_out = full.shape[-2] - 2 * ph + oh, full.shape[-1] - 2 * pw + ow
            if mistake.get("output_padding_side"):  # the extra rows at the top and left
                out = F.pad(full, (ow, 0, oh, 0))[..., ph : ph + h_out, pw : pw + w_out]
            else:  # zeros appended after the crop
                out = F.pad(full[..., ph : full.shape[-2] - ph, pw : full.shape[-1] - pw], (0, ow, 0, oh))
        else:
            out = key(input, weight, None, stride, padding, output_padding, groups, dilation)
        if bias is not None:
            out = out + bias.view(-1, 1, 1)
        if mistake.get("keep_batch") and input.dim() == 3:
            out = out[None]
        return out

    return conv_transpose2d


@pytest.mark.parametrize(
    "suite, wrong, message",
    [
        ("geometry", _wrong(flip=True), "your kernel is flipped"),
        ("geometry", _wrong(no_bias=True), "bias is missing"),
        ("geometry", _wrong(pad_output=True), "padding is added instead of cropped"),
        ("output_padding", _wrong(output_padding_side=True), "output_padding is added on the wrong side"),
        ("output_padding", _wrong(output_padding_zeros=True), "output_padding appends zeros"),
        ("groups_hidden", _wrong(ignore_groups=True), "groups are ignored"),
        ("unbatched", _wrong(keep_batch=True), "unbatched"),
    ],
)
def test_known_mistakes_are_named(suite, wrong, message):
    with pytest.raises(GradingError, match=message):
        check_suite("conv_transpose2d", wrong, suite)


def test_conv2d_weight_layout_is_named_where_channel_counts_let_it_run():
    """Reading weight[o, c] (conv2d's layout) runs without a shape error only when in and out channels per group
    agree; the suites hold such cases, and the diagnosis names the layout there."""
    square = [
        inputs
        for suite in ("geometry_hidden", "groups_hidden")
        for inputs in suite_cases("conv_transpose2d", suite)
        if inputs["weight"].shape[0] // inputs.get("groups", 1) == inputs["weight"].shape[1] > 1
    ]
    assert len(square) >= 3
    for inputs in square:
        with pytest.raises(GradingError, match="conv2d's layout"):
            check("conv_transpose2d", _wrong(layout=True), **inputs)


def test_invalid_arguments_must_raise_torchs_exception_type():
    def no_validation(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        return key(input, weight, bias, stride, padding, 0, groups, dilation)  # drops the invalid output_padding

    with pytest.raises(GradingError, match="but these arguments are invalid: torch raises RuntimeError"):
        check_suite("conv_transpose2d", no_validation, "errors")

    def value_errors(*args, **kwargs):
        try:
            return key(*args, **kwargs)
        except RuntimeError as error:
            raise ValueError(str(error)) from None

    with pytest.raises(GradingError, match="raised ValueError, but torch raises RuntimeError"):
        check_suite("conv_transpose2d", value_errors, "errors")


def test_torch_convolution_its_backward_and_fold_are_banned():
    alias = F.conv_transpose2d
    with pytest.raises(GradingError, match="called torch's convolution"):
        check_suite("conv_transpose2d", alias, "geometry")

    def via_conv2d_gradient(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        size = key(input, weight, None, stride, padding, output_padding, groups, dilation).shape
        x = torch.zeros(size, dtype=input.dtype, requires_grad=True)
        (grad_input,) = torch.autograd.grad(F.conv2d(x, weight, None, stride, padding, dilation, groups), x, input)
        return grad_input if bias is None else grad_input + bias.view(-1, 1, 1)

    with pytest.raises(GradingError, match="called torch's convolution"):
        check_suite("conv_transpose2d", via_conv2d_gradient, "geometry")

    def via_backward_op(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        size = key(input, weight, None, stride, padding, output_padding, groups, dilation).shape
        grad_input, _, _ = torch.ops.aten.convolution_backward(
            input, torch.zeros(size, dtype=input.dtype), weight, None, _pair(stride), _pair(padding),
            _pair(dilation), False, [0, 0], groups, [True, False, False],
        )  # fmt: skip
        return grad_input if bias is None else grad_input + bias.view(-1, 1, 1)

    with pytest.raises(GradingError, match="called torch's convolution"):
        check_suite("conv_transpose2d", via_backward_op, "geometry")

    def via_fold(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        out = key(input, weight, bias, stride, padding, output_padding, groups, dilation)
        return out + 0 * F.fold(torch.zeros(1, 4, 1, dtype=input.dtype), (2, 2), 2).sum()

    with pytest.raises(GradingError, match="unfold"):
        check_suite("conv_transpose2d", via_fold, "geometry")


# ------------------------------------------------------------------ the answer key against torch, everywhere


def _outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as error:  # noqa: BLE001 - the exception type is what is compared
        return error


def _random_call(rng: random.Random) -> tuple:
    """One F.conv_transpose2d call drawn from the whole argument space, valid or not."""
    groups = rng.choice([1, 1, 1, 2, 2, 3]) if rng.random() < 0.95 else rng.choice([0, -1, 2.0, True])
    g = groups if isinstance(groups, int) and not isinstance(groups, bool) and groups > 0 else 1
    c_in = rng.choice([g, 2 * g]) if rng.random() < 0.93 else rng.choice([0, 3, 5])
    per_group = rng.choice([1, 2, 3])
    kh, kw = rng.choice([1, 2, 3]), rng.choice([1, 2, 3, 0] if rng.random() < 0.05 else [1, 2, 3])

    def axis_value(choices, bad):
        pick = lambda: rng.choice(choices if rng.random() > 0.04 else bad)  # noqa: E731
        shape = rng.random()
        if shape < 0.5:
            return pick()
        if shape < 0.8:
            return (pick(), pick())
        if shape < 0.97:
            return [pick(), pick()]
        return rng.choice([(pick(),), (pick(), pick(), pick()), ()])

    stride = axis_value([1, 2, 2, 3], [0, -1, 1.5, True])
    padding = axis_value([0, 1, 2], [-1, 4, 0.0])
    output_padding = axis_value([0, 0, 0, 1], [-1, 2, 3])
    dilation = axis_value([1, 2], [0, -2])
    h, w = rng.choice([1, 2, 3, 4]), rng.choice([1, 2, 3, 0] if rng.random() < 0.03 else [1, 3, 4])
    dtype = rng.choice([torch.float64, torch.float64, torch.float32, torch.int64])
    if rng.random() < 0.1:  # dtypes torch refuses (NotImplementedError, RuntimeError) or computes in
        dtype = rng.choice([torch.int32, torch.int16, torch.int8, torch.bool, torch.complex128, torch.float16])
    batch = rng.choice([None, 0, 1, 2])  # None: unbatched
    shape = (c_in, h, w) if batch is None else (batch, c_in, h, w)
    if rng.random() < 0.03:
        shape = rng.choice([(h, w), (1, 1, c_in, h, w)])
    seed = rng.randrange(10**6)
    x = (10 * randn(*shape, seed=seed)).to(dtype)
    weight_dtype = dtype if rng.random() < 0.9 else rng.choice([torch.float32, torch.float64, torch.int64])
    weight = (10 * randn(c_in + (rng.random() < 0.04), per_group, kh, kw, seed=seed + 1)).to(weight_dtype)
    bias = None
    if rng.random() < 0.6:
        size = per_group * g + (rng.random() < 0.05)
        bias_dtype = (
            dtype if rng.random() < 0.8 else rng.choice([torch.float32, torch.float64, torch.int64, torch.cdouble])
        )
        bias = (10 * randn(size, seed=seed + 2)).to(bias_dtype)
    return (x, weight, bias, stride, padding, output_padding, groups, dilation)


def test_the_answer_key_matches_torch_on_every_call_torch_accepts_and_refuses_like_it(monkeypatch):
    """Random calls over the whole argument space, valid or not, in float32, float64 and int64 (mixed dtypes too),
    and now and then a dtype torch refuses (int32/16/8, bool) or computes in (complex128, float16).

    torch's oneDNN backend, which some float32 calls take depending on the batch, the groups and the number of
    threads, refuses a bias of another dtype and returns empty outputs its own kernels refuse; the key follows
    torch's own kernels, so they are compared with oneDNN switched off (float64, as the grader uses, never
    takes it)."""
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    rng = random.Random(14)
    accepted = refused = 0
    for _ in range(800):
        args = _random_call(rng)
        theirs = _outcome(F.conv_transpose2d, *args)
        mine = _outcome(key, *args)
        if isinstance(theirs, Exception):
            refused += 1
            assert isinstance(mine, type(theirs)), (args[3:], theirs, mine)
            continue
        accepted += 1
        assert not isinstance(mine, Exception), (args[3:], mine)
        assert mine.shape == theirs.shape and mine.dtype == theirs.dtype, (args[3:], mine.shape, theirs.shape)
        if theirs.dtype == torch.float16:  # summed in another order: half precision's own tolerance
            torch.testing.assert_close(mine, theirs, rtol=1e-2, atol=1e-1)
        elif theirs.dtype.is_floating_point or theirs.dtype.is_complex:
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-3)
        else:
            assert torch.equal(mine, theirs)
    assert accepted > 250 and refused > 250  # both halves of the space are covered


@pytest.mark.parametrize(
    "arguments",
    [
        dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, stride=2, output_padding=1),
        dict(in_channels=3, out_channels=2, kernel_size=(2, 3), stride=(3, 1), padding=(1, 0), dilation=(1, 2)),
        dict(in_channels=2, out_channels=2, kernel_size=1, bias=False, dtype=torch.float64),
        dict(in_channels=4, out_channels=4, kernel_size=2, groups=4, dilation=3, output_padding=2, stride=1),
        dict(in_channels=4, out_channels=6, kernel_size=3, groups=4),
        dict(in_channels=4, out_channels=6, kernel_size=3, groups=3),
        dict(in_channels=4, out_channels=6, kernel_size=3, groups=0),
        dict(in_channels=2, out_channels=2, kernel_size=3, padding_mode="reflect"),
        dict(in_channels=2, out_channels=2, kernel_size=3, padding_mode="zeros", device="cpu"),
    ],
)
def test_the_answer_keys_layer_behaves_like_torchs(arguments):
    """Construction, parameters, forward with the same state (batched and unbatched) and every output_size form."""
    theirs = _outcome(lambda: nn.ConvTranspose2d(**arguments))
    mine = _outcome(lambda: KeyLayer(**arguments))
    if isinstance(theirs, Exception):
        assert isinstance(mine, type(theirs))
        return
    assert {k: v.shape for k, v in mine.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    mine.load_state_dict(theirs.state_dict())
    x = randn(2, arguments["in_channels"], 3, 4, seed=0).to(theirs.weight.dtype)
    stride = _pair(arguments.get("stride", 1))
    smallest = theirs(x).shape[-2:]
    sizes = [None, [smallest[0] + stride[0] - 1, smallest[1]], [smallest[0] + stride[0], smallest[1]], [5]]
    sizes += [[2, theirs.out_channels, *smallest], [1, 2, 3, 4, 5], torch.Size(smallest)]
    for batched, size in itertools.product((True, False), sizes):
        inp = x if batched else x[0]
        if size is not None and len(size) == 4 and not batched:
            size = size[1:]
        expected = _outcome(lambda: theirs(inp, output_size=size))
        got = _outcome(lambda: mine(inp, output_size=size))
        if isinstance(expected, Exception):
            assert isinstance(got, type(expected)), (size, expected, got)
        else:
            torch.testing.assert_close(got, expected)


# ------------------------------------------------------------------ the module's known mistakes and cheats


class _Layer(nn.Module):
    """The answer key's layer with switchable mistakes."""

    def __init__(self, in_channels, out_channels, kernel_size, *args, mistake="", **kwargs):
        super().__init__()
        self.inner = KeyLayer(in_channels, out_channels, kernel_size, *args, **kwargs)
        self.mistake = mistake


def _mistaken(mistake: str):
    class Wrong(KeyLayer):
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                     bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):  # fmt: skip
            if mistake == "no_padding_mode_check":
                padding_mode = "zeros"
            super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                             dilation, padding_mode, device, dtype)  # fmt: skip
            if mistake == "conv2d_layout":
                weight = torch.empty(out_channels, in_channels // groups, *self.kernel_size, dtype=dtype)
                self.weight = nn.Parameter(weight)
                self.reset_parameters()

        def reset_parameters(self):
            if mistake != "conv2d_fan_in":
                return super().reset_parameters()
            bound = 1 / math.sqrt(self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1])
            with torch.no_grad():
                self.weight.uniform_(-bound, bound)
                if self.bias is not None:
                    self.bias.uniform_(-bound, bound)

        def forward(self, input, output_size=None):
            return super().forward(input, None if mistake == "ignore_output_size" else output_size)

    return Wrong


@pytest.mark.parametrize(
    "exercise, mistake, message",
    [
        ("ConvTranspose2d", "conv2d_layout", r"weight is \(in_channels, out_channels // groups, kH, kW\)"),
        ("ConvTranspose2d_init", "conv2d_fan_in", "conv2d's fan_in"),
        ("ConvTranspose2d_output_size", "ignore_output_size", "output_size picks the output_padding"),
        ("ConvTranspose2d_errors", "no_padding_mode_check", "torch raises ValueError"),
    ],
)
def test_module_mistakes_are_named(exercise, mistake, message):
    with pytest.raises(GradingError, match=message):
        check_suite(exercise, _mistaken(mistake), "visible")


def test_the_module_may_not_run_torchs_layer():
    class Subclass(nn.ConvTranspose2d):
        pass

    with pytest.raises(GradingError, match="torch's own conv-layer code|subclasses torch's conv layer"):
        check_suite("ConvTranspose2d", Subclass, "visible")

    class Wrapper(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            self.layer = nn.ConvTranspose2d(*args, **kwargs)

    with pytest.raises(GradingError, match="torch's own conv-layer code"):
        check("ConvTranspose2d", Wrapper, in_channels=2, out_channels=3, kernel_size=3)


# ------------------------------------------------------------------ the widget (model + view, headless)


def test_model_transposed_convolution_is_c_transpose_for_every_setting_torch_accepts():
    accepted = 0
    for size, kernel, stride, padding, output_padding, dilation in itertools.product(
        (1, 3), (1, 2, 3), (1, 2, 3), (0, 1), (0, 1, 2), (1, 2)
    ):
        call = TransposedCall(size, kernel, stride, padding, output_padding, dilation)
        result = call.torch_result()
        if isinstance(result, Exception):
            continue
        accepted += 1
        assert result.shape[-1] == call.out_size
        assert torch.allclose(call.via_matrix(), result)
    assert accepted > 60


def test_verdict_uses_the_grader():
    call = TransposedCall(3, 3, 2, 1, 1, 1)
    assert learner_verdict(call, None) == ""
    assert learner_verdict(call, key).startswith("your conv_transpose2d ✓ matches torch")
    assert "kernel is flipped" in learner_verdict(call, _wrong(flip=True))
    assert "raises RuntimeError, like torch" in learner_verdict(TransposedCall(output_padding=1), key)
    assert "called torch's convolution" in learner_verdict(call, F.conv_transpose2d)


def test_draw_and_widget_headless():
    fig = draw(TransposedCall(2, 3, 2, 1, 1, 1), key)
    assert "C: conv2d on a 4×4 image" in fig.axes[0].get_title()
    assert any("✓" in t.get_text() for ax in fig.axes for t in ax.texts)
    plt.close(fig)
    fig = draw(TransposedCall(output_padding=1))
    assert any("torch raises RuntimeError" in t.get_text() for ax in fig.axes for t in ax.texts)
    plt.close(fig)

    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return key(*args, **kwargs)

    view = transposed_widget(counting)
    view.controls["stride"].value = 2
    assert "C: conv2d on a 5×5 image" in view.last_figure.axes[0].get_title()
    before = len(calls)
    view.update()
    assert len(calls) == before  # the same call is graded once, not on every redraw
    figure = view.last_figure
    view.controls["output_padding"].value = 2  # not below stride 2 or dilation 1: torch refuses
    assert view.last_error is None
    assert not figure.axes[0].axison and not figure.axes[2].axison  # C and torch's output: nothing to show
    view.controls["output_padding"].value = 1  # accepted again
    assert figure.axes[0].axison and "C: conv2d" in figure.axes[0].get_title()
    assert view.last_figure is figure  # refused or not, the same figure redrawn in place
    plt.close("all")
