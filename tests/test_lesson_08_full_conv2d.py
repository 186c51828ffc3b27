"""Lesson 08: the full conv2d (checks and diagnoses per part, partial credit in real nbgrader, the playground)."""

from __future__ import annotations

import inspect
import itertools

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from convcourse.checks import GradingError, check, check_suite, randn, suite_cases
from convcourse.checks.exercises.l08_full_conv2d import PARTS
from convcourse.widgets.full_conv2d import ConvCall, conv2d_widget, draw, learner_verdict

from course import REPO, cell_by_id, run_in

LESSON = "08_full_conv2d"


# ------------------------------------------------------------------ a loop implementation written for the tests


def _pair(value):
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(int(v) for v in value)
    raise RuntimeError(f"bad pair {value!r}")


def loop_conv2d(
    input,
    weight,
    bias=None,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    *,
    same_split=None,
    same_uses_dilation=True,
    keep_batch=False,
    validate=True,
    error=RuntimeError,
):
    """Correct F.conv2d with scalar loops; the keyword-only switches turn on one known mistake each."""
    if input.dim() not in (3, 4) or weight.dim() != 4:
        raise error("bad rank")
    x = input[None] if input.dim() == 3 else input
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    if validate and (
        min(sh, sw, dh, dw) < 1
        or groups < 1
        or c % groups
        or o % groups
        or cg * groups != c
        or (bias is not None and tuple(bias.shape) != (o,))
        or weight.dtype != input.dtype
        or (bias is not None and bias.dtype != input.dtype)
    ):
        raise error("invalid arguments")
    if padding == "same":
        if validate and (sh, sw) != (1, 1):
            raise error("'same' with stride")
        eh, ew = (dh, dw) if same_uses_dilation else (1, 1)
        th, tw = eh * (kh - 1), ew * (kw - 1)
        split = same_split or (lambda total: (total // 2, total - total // 2))
        (top, bottom), (left, right) = split(th), split(tw)
    elif padding == "valid":
        top = bottom = left = right = 0
    elif isinstance(padding, str):
        raise error("padding string")
    else:
        top, left = _pair(padding)
        if validate and min(top, left) < 0:
            raise error("negative padding")
        bottom, right = top, left
    x = F.pad(x, (left, right, top, bottom))
    out_h = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    out_w = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    if out_h < 1 or out_w < 1:
        raise error("kernel too large")
    out = torch.zeros(n, o, out_h, out_w, dtype=x.dtype)
    per_group = o // groups
    for oc, i, j in itertools.product(range(o), range(out_h), range(out_w)):
        g = oc // per_group
        rows = torch.arange(kh) * dh + i * sh
        cols = torch.arange(kw) * dw + j * sw
        window = x[:, g * cg : (g + 1) * cg][:, :, rows][:, :, :, cols]  # (n, cg, kh, kw)
        out[:, oc, i, j] = (window * weight[oc]).sum((1, 2, 3)) + (bias[oc] if bias is not None else 0)
    return out[0] if input.dim() == 3 and not keep_batch else out


def variant(**mistake):
    def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return loop_conv2d(input, weight, bias, stride, padding, dilation, groups, **mistake)

    return conv2d


correct = variant()


# ------------------------------------------------------------------ the checks


def test_every_part_has_a_visible_and_a_hidden_suite_and_the_unions_cover_them():
    for part in PARTS:
        assert suite_cases("conv2d", part) and suite_cases("conv2d", f"{part}_hidden")
    assert len(suite_cases("conv2d", "visible")) == sum(len(suite_cases("conv2d", p)) for p in PARTS)
    assert len(suite_cases("conv2d", "hidden")) == sum(len(suite_cases("conv2d", f"{p}_hidden")) for p in PARTS)


def test_error_suites_hold_only_calls_torch_refuses_and_the_others_only_calls_it_accepts():
    for part in PARTS:
        for suite in (part, f"{part}_hidden"):
            for inputs in suite_cases("conv2d", suite):
                try:
                    F.conv2d(**inputs)
                    refused = False
                except RuntimeError:
                    refused = True
                assert refused == (part == "errors"), (suite, inputs)


def test_a_correct_loop_implementation_passes_every_suite():
    assert check_suite("conv2d", correct, "visible")
    assert check_suite("conv2d", correct, "hidden")


@pytest.mark.parametrize(
    "suite, wrong, message",
    [
        ("bias", lambda input, weight, bias=None, **kw: correct(input, weight, None, **kw), "bias is missing"),
        (
            "bias_hidden",
            lambda input, weight, bias=None, **kw: correct(input, weight, None if bias is None else 2 * bias, **kw),
            "bias is added twice",
        ),
        ("unbatched", variant(keep_batch=True), "unbatched"),
        ("same_valid_hidden", variant(same_split=lambda t: (t // 2, t // 2)), "one too few"),
        ("same_valid_hidden", variant(same_split=lambda t: ((t + 1) // 2, (t + 1) // 2)), "one too many"),
        ("same_valid_hidden", variant(same_split=lambda t: (t - t // 2, t // 2)), "wrong side"),
        ("same_valid_hidden", variant(same_uses_dilation=False), "ignores the dilation"),
        (
            "groups",
            lambda input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1: correct(
                input, weight.repeat(1, groups, 1, 1), bias, stride, padding, dilation, 1
            ),
            "groups mix channels",
        ),
        (
            "geometry",
            lambda input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1: correct(
                input, weight, bias, 1, padding, dilation, groups
            ),
            "stride is ignored",
        ),
        (
            "geometry",
            lambda input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1: correct(
                input, weight.flip(-1, -2), bias, stride, padding, dilation, groups
            ),
            "flipped-kernel",
        ),
    ],
)
def test_known_mistakes_are_named(suite, wrong, message):
    with pytest.raises(GradingError, match=message):
        check_suite("conv2d", wrong, suite)


def test_invalid_arguments_must_raise_runtime_error():
    with pytest.raises(GradingError, match="raised ValueError, but torch raises RuntimeError"):
        check_suite("conv2d", variant(error=ValueError), "errors")
    same_with_stride = dict(input=randn(1, 2, 6, 6, seed=0), weight=randn(2, 2, 3, 3, seed=1), padding="same", stride=2)
    with pytest.raises(
        GradingError,
        match="returned tensor of shape .* but these arguments are invalid: torch raises "
        "RuntimeError .padding='same' is not supported for strided",
    ):
        check("conv2d", variant(validate=False), **same_with_stride)
    with pytest.raises(GradingError, match="errors_hidden test cases of conv2d fail"):
        check_suite("conv2d", variant(validate=False), "errors_hidden")


def test_torch_convolution_and_unfold_are_banned_but_pad_is_allowed():
    with pytest.raises(GradingError, match="called torch's convolution"):
        check_suite("conv2d", F.conv2d, "bias")

    def via_unfold(input, weight, bias=None, **kw):
        cols = F.unfold(input, weight.shape[-2:])
        return correct(input, weight, bias, **kw) + 0 * cols.sum()

    with pytest.raises(GradingError, match="unfold"):
        check_suite("conv2d", via_unfold, "bias")
    assert check("conv2d", correct, input=randn(1, 1, 4, 4, seed=0), weight=randn(1, 1, 3, 3, seed=1), padding=1)


def test_a_crash_in_one_part_does_not_hide_the_others():
    def no_groups(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if groups != 1:
            raise TypeError("groups not supported")
        return correct(input, weight, bias, stride, padding, dilation, groups)

    for part in ("bias", "geometry", "same_valid", "unbatched"):
        for suite in (part, f"{part}_hidden"):
            if all(case.get("groups", 1) == 1 for case in suite_cases("conv2d", suite)):
                assert check_suite("conv2d", no_groups, suite)
            else:  # a hidden suite that mixes in groups loses only its grouped cases
                with pytest.raises(GradingError, match=r"^1 of \d+ .* fail"):
                    check_suite("conv2d", no_groups, suite)
    with pytest.raises(GradingError, match="raised TypeError: groups not supported"):
        check_suite("conv2d", no_groups, "groups")


# ------------------------------------------------------------------ partial credit with real nbgrader


def _with_conv2d(source: str):
    """The answer key with its conv2d cell replaced by ``source``."""
    import nbformat

    key = nbformat.read(REPO / "solutions" / LESSON / f"{LESSON}.ipynb", as_version=4)
    cell_by_id(key, "conv2d").source = source
    return key


# The submission carries its own copy of the loop implementation: the sandboxed grading kernel sees the learner's
# files, never the repository's tests/.
WRAPPER = """
import itertools
import torch
import torch.nn.functional as F

{helpers}

def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    {body}
"""


HELPERS = inspect.getsource(_pair) + "\n\n" + inspect.getsource(loop_conv2d)


@pytest.mark.slow
def test_nbgrader_gives_partial_credit_part_by_part(course_factory, grading_pool):
    learners = {
        # 'same' padding that forgets the dilation: the 'same'/'valid' part is lost, and the groups part, whose
        # hidden suite has a dilated 'same' case (2 + 2 points)
        "same_without_dilation": "return loop_conv2d(input, weight, bias, stride, padding, dilation, groups, "
        "same_uses_dilation=False)",
        # never raises for invalid arguments: only the errors part (2 points) is lost
        "no_validation": "return loop_conv2d(input, weight, bias, stride, padding, dilation, groups, validate=False)",
        # forgets to drop the batch dimension again: only the unbatched part (1 point) is lost
        "keeps_batch": "return loop_conv2d(input, weight, bias, stride, padding, dilation, groups, keep_batch=True)",
    }
    course = course_factory([LESSON], students=list(learners))
    run_in(course, ["generate_assignment", LESSON, "--force"])
    for student, body in learners.items():
        course.submit(LESSON, student, _with_conv2d(WRAPPER.format(helpers=HELPERS, body=body)))
    report = course.grade(LESSON, grading_pool)  # nbgrader's Autograde in the course's grading workers
    assert {o.student: o.status for o in report.graded} == dict.fromkeys(learners, "ok")

    lost = {student: {k: v for k, v in course.scores(LESSON, student).items() if v == 0} for student in learners}
    assert lost == {
        "same_without_dilation": {"test_conv2d_same_valid": 0, "test_conv2d_groups": 0},
        "no_validation": {"test_conv2d_errors": 0},
        "keeps_batch": {"test_conv2d_unbatched": 0},
    }
    assert course.max_score(LESSON) == 16  # 12 for conv2d, 4 for the questions (answered in the key)
    assert course.total(LESSON, "same_without_dilation") == 12 and course.total(LESSON, "keeps_batch") == 15
    failed = cell_by_id(course.autograded(LESSON, "same_without_dilation"), "test_conv2d_same_valid")
    message = "".join(o.get("evalue", "") for o in failed.outputs if o.get("output_type") == "error")
    assert "ignores the dilation" in message


# ------------------------------------------------------------------ the playground (model + view, headless)

CALLS = [
    ConvCall(7, 8, 3, 3, (1, 1), 1, (1, 1), 1, True),
    ConvCall(7, 8, 2, 3, (1, 1), "same", (2, 1), 2, True),
    ConvCall(9, 6, 3, 2, (2, 3), (1, 0), (1, 2), 4, False),
    ConvCall(5, 10, 4, 2, (1, 2), "valid", (1, 3), 2, True),
    ConvCall(6, 6, 2, 2, (3, 1), (0, 2), (2, 2), 1, False),
]


@pytest.mark.parametrize("call", CALLS)
def test_model_shapes_taps_and_channels_match_torch(call):
    """Output shape from the formula; the taps and input channels of each output pixel from autograd."""
    result = call.torch_result()
    assert tuple(result.shape[-2:]) == call.out_shape
    inputs = call.inputs()
    for o, i, j in [
        (0, 0, 0),
        (call.out_channels - 1, call.out_shape[0] - 1, call.out_shape[1] - 1),
        (1, call.out_shape[0] // 2, call.out_shape[1] // 2),
    ]:
        x = inputs["input"].clone().requires_grad_()
        F.conv2d(x, inputs["weight"], inputs["bias"], call.stride, call.padding, call.dilation, call.groups)[
            0, o, i, j
        ].backward()
        touched = x.grad[0].abs().sum(0).nonzero().tolist()
        on_input = sorted([r, c] for r, c in call.taps(i, j) if 0 <= r < call.h and 0 <= c < call.w)
        assert sorted(touched) == on_input
        assert x.grad[0].abs().sum((1, 2)).nonzero().flatten().tolist() == list(call.input_channels_of(o))


def test_model_reports_torch_errors():
    for call in [
        ConvCall(stride=(0, 1)),
        ConvCall(padding=-1),
        ConvCall(padding="same", stride=(2, 1)),
        ConvCall(h=2, w=8, kh=3),
    ]:
        assert isinstance(call.torch_result(), RuntimeError)
    assert ConvCall(padding="same", kh=2, kw=4, dilation=(1, 3)).pads() == (4, 5, 0, 1)


def test_verdict_uses_the_grader():
    call = CALLS[2]
    assert learner_verdict(call, None) == ""
    assert learner_verdict(call, correct).startswith("your conv2d ✓ matches torch")
    no_bias = lambda input, weight, bias=None, **kw: correct(input, weight, None, **kw)  # noqa: E731
    assert "bias is missing" in learner_verdict(CALLS[0], no_bias)
    assert "raises RuntimeError, like torch" in learner_verdict(ConvCall(padding=-1), correct)
    assert "returned" in learner_verdict(ConvCall(padding=-1), variant(validate=False))
    assert "called torch's convolution" in learner_verdict(call, F.conv2d)


def test_draw_and_widget_headless():
    fig = draw(CALLS[1], o=3, pixel=0, conv2d=correct)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("✓" in t for t in texts) and "out[3, 0, 0]" in fig.axes[0].get_title()
    plt.close(fig)
    fig = draw(ConvCall(padding="same", stride=(2, 2)))
    assert any("padding='same' is not supported" in t.get_text() for t in fig.axes[2].texts)
    plt.close(fig)

    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return correct(*args, **kwargs)

    view = conv2d_widget(counting)
    assert view.controls["pixel"].max == 7 * 8 - 1  # padding 1, 3x3: 7x8 output
    view.controls["sh"].value = 2
    assert view.controls["pixel"].max == 4 * 8 - 1
    before = len(calls)
    view.controls["pixel"].value = 5
    view.controls["o"].value = 2
    assert len(calls) == before  # the same call is graded once, not on every redraw
    assert "out[2, 0, 5]" in view.last_figure.axes[0].get_title()
    view.controls["padding"].value = "same"  # with stride 2: torch refuses
    assert "torch raises" in view.last_figure.axes[1].texts[0].get_text()
    plt.close("all")
