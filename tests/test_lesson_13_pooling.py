"""Lesson 13: max_pool2d and avg_pool2d (the answer key against torch over the whole parameter space, the checks
and their diagnoses part by part, the pooling playground headless)."""

from __future__ import annotations

import random
import warnings

import matplotlib.pyplot as plt
import nbformat
import pytest
import torch
import torch.nn.functional as F

from convcourse.checks import GradingError, check, check_answer, check_suite, randn, suite_cases
from convcourse.checks.exercises.l13_pooling import AVG_PARTS, MAX_PARTS
from convcourse.widgets.pooling import PoolCall, draw, learner_verdict, pooling_widget

from course import REPO, cell_by_id

LESSON = "13_pooling"
PARTS = {"max_pool2d": MAX_PARTS, "avg_pool2d": AVG_PARTS}
TORCH = {"max_pool2d": F.max_pool2d, "avg_pool2d": F.avg_pool2d}


def _key_source(grade_id: str) -> str:
    key = nbformat.read(REPO / "solutions" / LESSON / f"{LESSON}.ipynb", as_version=4)
    return cell_by_id(key, grade_id).source


def _load(source: str, name: str):
    namespace = {"torch": torch, "F": F}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - the answer key's own cell
    return namespace[name]


MAX_KEY = _load(_key_source("max_pool2d"), "max_pool2d")
AVG_KEY = _load(_key_source("avg_pool2d"), "avg_pool2d")
KEYS = {"max_pool2d": MAX_KEY, "avg_pool2d": AVG_KEY}


def _mutated(name: str, old: str, new: str):
    """The answer key with one line changed: a known mistake made the way a learner makes it."""
    source = _key_source(name)
    assert old in source, old
    return _load(source.replace(old, new), name)


# ------------------------------------------------------------------ the answer key against torch


def _pair_argument(rng: random.Random, good: list[int], bad: list):
    if rng.random() < 0.04:
        return rng.choice(bad)
    first = rng.choice(good)
    form = rng.random()
    if form < 0.5:
        return first
    if form < 0.6:
        return (first,)
    second = rng.choice(good)
    return (first, second) if form < 0.85 else [first, second]


DTYPES = [torch.float64] * 8 + [
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.uint8,
    torch.bool,
    torch.complex128,
]


def _input(rng: random.Random, generator: torch.Generator):
    odd = rng.random()
    if odd < 0.04:
        shape = rng.choice([(5, 6), (7,), (), (1, 1, 2, 5, 5), (0, 5, 5), (1, 0, 5, 5), (1, 2, 0, 4)])
    elif odd < 0.08:
        shape = (0, 2, rng.randint(1, 6), rng.randint(1, 6))
    elif odd < 0.35:
        shape = (rng.randint(1, 2), rng.randint(1, 6), rng.randint(1, 6))  # unbatched
    else:
        shape = (rng.randint(1, 2), rng.randint(1, 2), rng.randint(1, 7), rng.randint(1, 7))
    if rng.random() < 0.3:
        x = torch.randint(-3, 4, shape, generator=generator).double()  # ties
    else:
        x = 3 * torch.randn(shape, generator=generator, dtype=torch.float64)
    if rng.random() < 0.1 and x.numel():
        x.view(-1)[torch.randint(0, x.numel(), (2,), generator=generator)] = float("nan")
    dtype = rng.choice(DTYPES)
    if dtype == torch.bool:
        return x > 0
    if not dtype.is_floating_point and not dtype.is_complex:
        low = 0 if dtype == torch.uint8 else -100
        return x.nan_to_num(0).round().clamp(low, 100).to(dtype)
    if rng.random() < 0.01:
        return x.tolist()  # not a tensor: TypeError
    return x.to(dtype)


def _random_call(rng: random.Random, generator: torch.Generator, name: str) -> dict:
    call = dict(input=_input(rng, generator))
    call["kernel_size"] = _pair_argument(rng, [1, 2, 3, 4], [0, -1, (1, 2, 3), (), 2.0, True, (2, 2.0), "2"])
    if rng.random() < 0.7:
        stride_bad = [0, -1, (1, 1, 1), 1.5, True]
        call["stride"] = (
            rng.choice([None, (), []]) if rng.random() < 0.2 else _pair_argument(rng, [1, 2, 3], stride_bad)
        )
    if rng.random() < 0.7:
        call["padding"] = _pair_argument(rng, [0, 1, 2], [-1, (0, 0, 0), (), 0.5, "same"])
    if rng.random() < 0.6:
        call["ceil_mode"] = rng.choice([False, True, True, 1, None] if rng.random() < 0.1 else [False, True])
    if name == "max_pool2d":
        if rng.random() < 0.6:
            call["dilation"] = _pair_argument(rng, [1, 2, 3], [0, (), (1, 1, 1), 1.0])
        if rng.random() < 0.6:
            call["return_indices"] = rng.choice([False, True])
    else:
        if rng.random() < 0.6:
            call["count_include_pad"] = rng.choice([True, False, 0] if rng.random() < 0.1 else [True, False])
        if rng.random() < 0.4:
            call["divisor_override"] = rng.choice(
                [None, 1, 3, 5, -2, 0, 1.5, True] if rng.random() < 0.2 else [None, 1, 3, 5, -2]
            )
    return call


def _call(function, call: dict):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function(**call), None
    except Exception as error:  # noqa: BLE001 - compared with torch's
        return None, error


def _same_result(mine, theirs) -> bool:
    if isinstance(mine, tuple) != isinstance(theirs, tuple):
        return False
    pairs = zip(mine, theirs) if isinstance(theirs, tuple) else [(mine, theirs)]
    for a, b in pairs:
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if b.dtype in (torch.float16, torch.bfloat16, torch.float32):  # summed in another order
            if not torch.allclose(a.double(), b.double(), rtol=1e-2, atol=1e-3, equal_nan=True):
                return False
        elif not torch.equal(
            a.nan_to_num(7.5) if b.is_floating_point() else a, b.nan_to_num(7.5) if b.is_floating_point() else b
        ):
            return False
    return True


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_answer_key_matches_torch_on_every_argument_combination(name):
    """Random calls over the whole parameter space (ints, pairs, lists, 1-tuples, None/empty stride, every dtype,
    batched, unbatched, empty batches, NaN and ties, invalid types and values): the answer key returns what torch
    returns (values, and indices exactly), or raises the exception type torch raises."""
    rng, generator = random.Random(13), torch.Generator().manual_seed(13)
    accepted = refused = 0
    problems = []
    for _ in range(700):
        call = _random_call(rng, generator, name)
        theirs, torch_error = _call(TORCH[name], call)
        mine, my_error = _call(KEYS[name], call)
        if torch_error is not None:
            refused += 1
            if type(my_error) is not type(torch_error):
                problems.append((call, torch_error, my_error))
        else:
            accepted += 1
            if my_error is not None or not _same_result(mine, theirs):
                problems.append((call, "accepted", my_error or mine))
    assert not problems, problems[:3]
    assert accepted > 150 and refused > 150


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize(
    "dtype",
    [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.int8]
    + [torch.bool, torch.complex64],
)
@pytest.mark.parametrize("batched", [True, False])
def test_answer_key_accepts_and_refuses_every_dtype_as_torch_does(name, dtype, batched):
    x = (5 * randn(2, 2, 5, 6, seed=1)).round()
    x = (
        (x > 0 if dtype == torch.bool else x.clamp(min=0).to(dtype))
        if dtype in (torch.bool, torch.uint8)
        else x.to(dtype)
    )
    x = x if batched else x[0]
    options = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    theirs, torch_error = _call(TORCH[name], dict(input=x, **options))
    mine, my_error = _call(KEYS[name], dict(input=x, **options))
    if torch_error is not None:
        assert type(my_error) is type(torch_error)
    else:
        assert my_error is None and _same_result(mine, theirs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_averages_are_summed_in_float32_as_torch_does(dtype):
    """The lesson says so: the key, summing in float32, equals torch bit for bit (a sum in the input's own
    precision would not)."""
    x = (10 * randn(2, 3, 6, 6, seed=4)).to(dtype)
    assert torch.equal(AVG_KEY(x, 3, stride=1, padding=1), F.avg_pool2d(x, 3, stride=1, padding=1))


def test_max_pool2d_key_keeps_torchs_nan_and_all_padding_conventions():
    """NaN wins (the last NaN of a window); a dilated window wholly on padding gives -inf (the dtype's minimum for
    integers) and torch's index of its first tap at or after 0."""
    x = torch.tensor([[[[float("nan"), 1.0, float("nan")], [2.0, 3.0, 4.0]]]], dtype=torch.float64)
    for call in (dict(kernel_size=(2, 3)), dict(kernel_size=2, stride=1, padding=1)):
        mine, theirs = MAX_KEY(x, return_indices=True, **call), F.max_pool2d(x, return_indices=True, **call)
        assert _same_result(mine, theirs)
    corner = torch.arange(4.0).reshape(1, 1, 2, 2)
    for tensor in (corner, corner.long()):
        mine = MAX_KEY(tensor, 2, padding=1, dilation=3, return_indices=True)
        assert _same_result(mine, F.max_pool2d(tensor, 2, padding=1, dilation=3, return_indices=True))


# ------------------------------------------------------------------ the suites


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_error_suites_hold_only_calls_torch_refuses_and_the_others_only_calls_it_accepts(name):
    for part in PARTS[name]:
        for suite in (part, f"{part}_hidden"):
            cases = suite_cases(name, suite)
            assert cases
            for inputs in cases:
                _, error = _call(TORCH[name], inputs)
                assert (error is not None) == (part == "errors"), (suite, inputs)
                assert not isinstance(error, NotImplementedError)  # the checks read it as "not written yet"
    assert len(suite_cases(name, "hidden")) == sum(len(suite_cases(name, f"{p}_hidden")) for p in PARTS[name])


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_the_answer_key_passes_every_suite(name):
    assert check_suite(name, KEYS[name], "visible")
    assert check_suite(name, KEYS[name], "hidden")


def _with_stride_default_one(key):
    def pool(input, kernel_size, stride=None, *args, **kwargs):
        return key(input, kernel_size, 1 if stride is None else stride, *args, **kwargs)

    return pool


def _zero_padded_max(input, kernel_size, stride=None, padding=0, *args, **kwargs):
    pads = (padding, padding) if isinstance(padding, int) else tuple(padding) * (3 - len(padding))
    x = F.pad(input, (pads[1], pads[1], pads[0], pads[0]))
    return MAX_KEY(x, kernel_size, kernel_size if stride is None else stride, 0, *args, **kwargs)


def _indices_changed(change):
    def pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        out = MAX_KEY(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
        if not return_indices:
            return out
        return out[0], change(out[1], input, kernel_size, stride, padding, dilation)

    return pool


def _padded_indices(indices, input, kernel_size, stride, padding, dilation):
    ph, pw = (padding, padding) if isinstance(padding, int) else (padding[0], padding[-1])
    w = input.shape[-1]
    return (indices // w + ph) * (w + 2 * pw) + indices % w + pw


def _channel_indices(indices, input, *args):
    h, w = input.shape[-2:]
    return indices + torch.arange(input.shape[-3]).view(-1, 1, 1) * h * w


def _keeps_batch(key):
    def pool(input, *args, **kwargs):
        out = key(input[None] if input.dim() == 3 else input, *args, **kwargs)
        return out

    return pool


def _avg_flipped_count(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, **kw):
    return AVG_KEY(input, kernel_size, stride, padding, ceil_mode, not count_include_pad, **kw)


@pytest.mark.parametrize(
    "name, suite, wrong, message",
    [
        ("max_pool2d", "geometry", _with_stride_default_one(MAX_KEY), "stride defaults to 1"),
        ("avg_pool2d", "geometry", _with_stride_default_one(AVG_KEY), "stride defaults to 1"),
        ("max_pool2d", "geometry", _zero_padded_max, "padding is filled with 0"),
        ("max_pool2d", "geometry", _keeps_batch(MAX_KEY), "unbatched"),
        ("avg_pool2d", "geometry_hidden", _keeps_batch(AVG_KEY), "unbatched"),
        (
            "max_pool2d",
            "ceil_mode",
            _mutated("max_pool2d", "if ceil_mode and (out - 1) * s >= length + p:", "if False:"),
            "last-window rule is missing",
        ),
        (
            "avg_pool2d",
            "ceil_mode_hidden",
            _mutated("avg_pool2d", "if ceil_mode and (out - 1) * s >= length + p:", "if False:"),
            "last-window rule is missing",
        ),
        (
            "max_pool2d",
            "ceil_mode",
            lambda input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, **kw: MAX_KEY(
                input, kernel_size, stride, padding, dilation, False, **kw
            ),
            "you used floor where torch uses ceil",
        ),
        (
            "max_pool2d",
            "indices",
            _indices_changed(_padded_indices),
            "indices count positions in the padded input",
        ),
        ("max_pool2d", "indices", _indices_changed(_channel_indices), "count through all channels"),
        (
            "max_pool2d",
            "indices_hidden",
            _mutated("max_pool2d", "better = (value > best) | value.isnan()", "better = value >= best"),
            "first maximum",
        ),
        ("avg_pool2d", "divisor", _avg_flipped_count, "count_include_pad=False is handled the wrong way round"),
        (
            "avg_pool2d",
            "divisor",
            lambda input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, **kw: AVG_KEY(
                input, kernel_size, stride, padding, ceil_mode, count_include_pad
            ),
            "divisor_override=3 is ignored",
        ),
        (
            "avg_pool2d",
            "divisor_hidden",
            _mutated("avg_pool2d", "divisor = padded_count", "divisor = kh * kw"),
            "counts only its cells inside the padded input",
        ),
    ],
)
def test_known_mistakes_are_named(name, suite, wrong, message):
    with pytest.raises(GradingError, match=message):
        check_suite(name, wrong, suite)


def test_values_and_indices_must_come_as_torch_returns_them():
    pair_always = lambda input, *args, **kw: (MAX_KEY(input, *args, **kw), None)  # noqa: E731
    with pytest.raises(GradingError, match="should return one tensor"):
        check_suite("max_pool2d", pair_always, "geometry")
    values_only = lambda *args, return_indices=False, **kw: MAX_KEY(*args, **kw)  # noqa: E731
    with pytest.raises(GradingError, match=r"should return a pair \(values, indices\)"):
        check_suite("max_pool2d", values_only, "indices")
    int32 = _indices_changed(lambda indices, *args: indices.int())
    with pytest.raises(GradingError, match="the values are right, but the indices have dtype int32"):
        check_suite("max_pool2d", int32, "indices")


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_invalid_arguments_must_raise_torchs_exception_type(name):
    def value_error(*args, **kwargs):
        raise ValueError("no")

    with pytest.raises(GradingError, match="raised ValueError, but torch raises RuntimeError"):
        check_suite(name, value_error, "errors")
    accepts_everything = _mutated(name, "if ph > kh // 2 or pw > kw // 2:", "if False:")
    with pytest.raises(GradingError, match="but these arguments are invalid: torch raises RuntimeError"):
        check_suite(name, accepts_everything, "errors")
    float_kernel = dict(input=randn(1, 1, 4, 4, seed=0), kernel_size=2.0)
    with pytest.raises(GradingError, match="torch raises TypeError"):
        check(name, lambda input, kernel_size, **kw: KEYS[name](input, int(kernel_size), **kw), **float_kernel)


def test_torch_pooling_convolution_and_unfold_are_banned_but_pad_is_allowed():
    with pytest.raises(GradingError, match="called torch's pooling"):
        check_suite("max_pool2d", F.max_pool2d, "geometry")
    alias = torch.nn.functional.avg_pool2d
    with pytest.raises(GradingError, match="called torch's pooling"):
        check_suite("avg_pool2d", lambda *args, **kwargs: alias(*args, **kwargs), "geometry")

    def by_convolution(input, kernel_size, **kwargs):
        weight = torch.full((input.shape[-3], 1, kernel_size, kernel_size), 1 / kernel_size**2, dtype=input.dtype)
        return F.conv2d(input, weight, stride=kernel_size, groups=input.shape[-3])

    with pytest.raises(GradingError, match="called torch's convolution"):
        check("avg_pool2d", by_convolution, input=randn(1, 2, 4, 4, seed=0), kernel_size=2)

    def by_unfold(input, kernel_size, **kwargs):
        return input.unfold(-2, kernel_size, kernel_size).unfold(-2, kernel_size, kernel_size).amax((-2, -1))

    with pytest.raises(GradingError, match="unfold"):
        check("max_pool2d", by_unfold, input=randn(1, 2, 4, 4, seed=0), kernel_size=2)
    padded_first = lambda input, *args, **kwargs: MAX_KEY(F.pad(input, (0, 0, 0, 0)), *args, **kwargs)  # noqa: E731
    assert check_suite("max_pool2d", padded_first, "geometry")  # F.pad itself is allowed


def test_the_questions_answers_in_the_key_are_right():
    assert check_answer(f"{LESSON}.q1", (1, 3, 3, 3))
    assert check_answer(f"{LESSON}.q2", 2)
    assert check_answer(f"{LESSON}.q3", 4 / 9)
    assert check_answer(f"{LESSON}.q4", "RuntimeError")


# ------------------------------------------------------------------ the playground (model + view, headless)

CALLS = [
    PoolCall("max", 7, 7, (2, 2)),
    PoolCall("max", 7, 8, (3, 2), (2, 3), (1, 1), (2, 1), True),
    PoolCall("avg", 4, 4, (2, 2), (3, 3), (1, 1), (1, 1), True, True),
    PoolCall("avg", 6, 5, (3, 3), (2, 1), (1, 0), (1, 1), True, False),
    PoolCall("max", 5, 5, (2, 2), (3, 3), (1, 1), (1, 1), True),
]


@pytest.mark.parametrize("call", CALLS)
def test_model_sizes_and_windows_match_torch(call):
    """Output shape from the arithmetic; the input cells each output pixel reads, from autograd."""
    result = call.torch_result()
    assert tuple(result.shape[-2:]) == call.sizes()
    function = F.max_pool2d if call.kind == "max" else F.avg_pool2d
    inputs = call.inputs()
    x = (inputs.pop("input") * 0 + torch.arange(call.h * call.w).view(1, 1, call.h, call.w)).double()
    for i, j in [(0, 0), (call.sizes()[0] - 1, call.sizes()[1] - 1)]:
        leaf = x.clone().requires_grad_()
        function(leaf, **inputs)[0, 0, i, j].backward()
        inside = {(r, c) for r, c in call.taps(i, j) if 0 <= r < call.h and 0 <= c < call.w}
        touched = {tuple(p) for p in leaf.grad[0, 0].nonzero().tolist()}
        assert touched <= inside and (call.kind == "max" or touched == inside)


def test_model_formula_errors_and_verdicts():
    assert "dropped" in CALLS[2].formula() and "⌈" in CALLS[2].formula()
    assert isinstance(PoolCall(padding=(2, 2)).torch_result(), RuntimeError)
    assert isinstance(PoolCall(stride=(0, 0)).torch_result(), RuntimeError)
    assert learner_verdict(CALLS[0], None) == ""
    assert learner_verdict(CALLS[1], MAX_KEY).startswith("your max_pool2d ✓ matches torch")
    assert "raises RuntimeError, like torch" in learner_verdict(PoolCall(padding=(2, 2)), MAX_KEY)
    assert "stride defaults to 1" in learner_verdict(CALLS[0], _with_stride_default_one(MAX_KEY))
    assert "called torch's pooling" in learner_verdict(CALLS[0], F.max_pool2d)


def test_draw_and_widget_headless():
    fig = draw(CALLS[2], pixel=1, function=AVG_KEY)
    assert "✓" in " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    plt.close(fig)
    fig = draw(PoolCall(padding=(2, 2)))
    assert any("torch raises" in t.get_text() for t in fig.axes[1].texts)
    plt.close(fig)

    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return MAX_KEY(*args, **kwargs)

    view = pooling_widget(counting, AVG_KEY)
    assert view.last_error is None and view.controls["pixel"].max == 3 * 3 - 1
    view.controls["stride"].value = (1, 1)
    assert view.controls["pixel"].max == 6 * 6 - 1
    before = len(calls)
    view.controls["pixel"].value = 5
    assert len(calls) == before  # the same call is graded once, not on every redraw
    view.controls["kind"].value = "avg"
    assert view.controls["dilation"].disabled and not view.controls["count_include_pad"].disabled
    view.controls["ph"].value = 3  # more than half the kernel: torch refuses
    assert view.last_error is None and "torch raises" in view.last_figure.axes[1].texts[0].get_text()
    plt.close("all")
