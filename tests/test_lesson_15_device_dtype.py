"""Lesson 15: FLOP and im2col-byte counts and the dtype choice, measured from torch; the widget's model."""

from __future__ import annotations

import itertools
import math
import random

import matplotlib.pyplot as plt
import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch.utils import flop_counter

from convcourse.checks import GradingError, check, check_answer, check_suite, suite_cases
from convcourse.checks.exercises.l15_device_dtype import (
    CANDIDATES,
    measured_flops,
    measured_im2col_bytes,
    measured_smallest_dtype,
    precision_excess,
)
from convcourse.plots import figure_alt_text
from convcourse.stack import reference_conv2d_fast
from convcourse.widgets.device_dtype import (
    COST_CHOICES,
    COST_SIZES,
    LayerCost,
    conv_errors,
    cost_limits,
    cost_widget,
    draw_cost,
    one_thread,
    peak_bytes,
    precision_plot,
    race,
    race_plot,
    sum_in,
)

from course import REPO

LESSON = "15_device_dtype"


def _answer_key() -> dict:
    """The answer key's solution cells, run in a namespace like the notebook's."""
    nb = nbformat.read(REPO / "autograder" / "source" / LESSON / f"{LESSON}.ipynb", as_version=4)
    namespace: dict = {"torch": torch, "F": F}
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            exec(compile(cell.source, f"<{LESSON} answer key>", "exec"), namespace)  # noqa: S102
    return namespace


KEY = _answer_key()
conv2d_flops, im2col_bytes, smallest_dtype = KEY["conv2d_flops"], KEY["im2col_bytes"], KEY["smallest_dtype"]


def _outcome(fn, *args, **kwargs):
    try:
        return "value", fn(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - the exception type is what is compared
        return "error", type(error)


def _agrees(mine, torch_s) -> bool:
    """As the grader judges: equal values, or the learner raising (a subclass of) torch's exception type."""
    if torch_s[0] == "error":
        return mine[0] == "error" and issubclass(mine[1], torch_s[1])
    return mine == torch_s


# ---------------------------------------------------------------------------- the answer key against torch
def _arguments(rng: random.Random):
    """Random F.conv2d-style arguments, valid and invalid, ints, pairs, lists and strings."""
    scalar = [0, 1, 2, 3, -1]
    pairs = [(1, 2), (2, 1), [2], (1, 2, 3), (0, 1), True, 2.0]
    stride = rng.choice(scalar[:4] + pairs + [1, 1, 1])
    dilation = rng.choice([1, 1, 1, 2, 0, (1, 3), (2, 1), [2], (1, 2, 3), 1.0])
    padding = rng.choice([0, 0, 1, 2, -1, (1, 0), (0, 2), [1], (1, 2, 3), "same", "valid", "full", 1.5])
    return stride, padding, dilation


@pytest.mark.parametrize("seed", range(2))
def test_answer_key_conv2d_flops_matches_flop_counter_everywhere(seed):
    """Batched and unbatched inputs, empty batches, every argument form torch accepts, and torch's exception
    type wherever F.conv2d refuses the call (wrong ranks, channels, groups, sizes, strings, types)."""
    rng = random.Random(seed)
    for _ in range(150):
        groups = rng.choice([1, 1, 1, 2, 3, 0, -1, 2.0])
        g = groups if isinstance(groups, int) and groups > 0 else 1
        c = g * rng.randint(1, 3) + rng.choice([0, 0, 0, 0, 1])
        o = g * rng.randint(1, 3) + rng.choice([0, 0, 0, 0, 1])
        kernel = (rng.randint(1, 4), rng.randint(1, 4))
        spatial = (rng.randint(1, 8), rng.randint(1, 8))
        rank = rng.choice([4, 4, 3, 3, 2, 5])
        input_shape = {
            4: (rng.choice([0, 1, 2, 3]), c, *spatial),
            3: (c, *spatial),
            2: spatial,
            5: (1, c, 1, *spatial),
        }[rank]
        weight_shape = rng.choice(
            [(o, c // g, *kernel)] * 6 + [(o, c // g, kernel[0]), (o, 0, *kernel), (0, c, *kernel)]
        )
        stride, padding, dilation = _arguments(rng)
        args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        mine = _outcome(conv2d_flops, input_shape, weight_shape, **args)
        theirs = _outcome(measured_flops, input_shape, weight_shape, **args)
        assert _agrees(mine, theirs), (input_shape, weight_shape, args, mine, theirs)


def test_answer_key_conv2d_flops_on_large_layers_and_odd_shapes():
    for x, w, kw in [
        ((64, 256, 56, 56), (256, 256, 3, 3), dict(padding=1)),
        ((1, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3)),
        ((512, 7, 7), (512, 1, 3, 3), dict(padding="same", groups=512)),
        ((2, 4, 9, 9), (4, 4, 2, 4), dict(padding="same", dilation=(3, 1))),
        ((1, 2, 5, 5), (-1, 2, 3, 3), {}),  # negative dimension
        ((1, 0, 5, 5), (2, 0, 3, 3), {}),  # no input channels
        ((1, 2, 5, 5), (2, 2, 0, 3), {}),  # empty kernel
    ]:
        assert _agrees(_outcome(conv2d_flops, x, w, **kw), _outcome(measured_flops, x, w, **kw)), (x, w, kw)


DTYPES = [
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.complex128,
    torch.int8,
    torch.uint8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
    torch.float8_e4m3fn,
]


@pytest.mark.parametrize("seed", range(2))
def test_answer_key_im2col_bytes_matches_unfold_everywhere(seed):
    """Every dtype (integer, bool, complex and float8 too), batched, unbatched and empty-batch inputs, and
    torch's exception type wherever F.unfold refuses the call (rank, zero sizes, kernel, stride, padding)."""
    rng = random.Random(100 + seed)
    for _ in range(150):
        spatial = (rng.randint(0, 8) if rng.random() < 0.1 else rng.randint(1, 8), rng.randint(1, 8))
        c = rng.choice([1, 2, 3, 0]) if rng.random() < 0.1 else rng.choice([1, 2, 3])
        rank = rng.choice([4, 4, 3, 3, 2, 1, 5])
        input_shape = {4: (rng.choice([0, 1, 2]), c, *spatial), 3: (c, *spatial), 2: spatial, 1: spatial[:1]}.get(
            rank, (1, c, 1, *spatial)
        )
        kernel = rng.choice([1, 2, 3, (1, 3), (2, 1), [2], (1, 2, 3), 0, (0, 2), 2.0])
        stride, padding, dilation = _arguments(rng)
        if isinstance(padding, str):
            padding = 0 if padding != "full" else padding
        dtype = rng.choice(DTYPES)
        args = dict(stride=stride, padding=padding, dilation=dilation, dtype=dtype)
        mine = _outcome(im2col_bytes, input_shape, kernel, **args)
        theirs = _outcome(measured_im2col_bytes, input_shape, kernel, **args)
        assert _agrees(mine, theirs), (input_shape, kernel, args, mine, theirs)


def test_answer_key_im2col_bytes_for_every_dtype_and_bad_dtypes():
    for dtype in DTYPES:
        for shape in [(2, 3, 8, 8), (3, 8, 8), (0, 3, 8, 8)]:
            assert im2col_bytes(shape, 3, padding=1, dtype=dtype) == measured_im2col_bytes(
                shape, 3, padding=1, dtype=dtype
            )
    for bad in ("float32", 4, None):
        assert _agrees(
            _outcome(im2col_bytes, (1, 2, 5, 5), 3, dtype=bad),
            _outcome(measured_im2col_bytes, (1, 2, 5, 5), 3, dtype=bad),
        )


def test_answer_key_smallest_dtype_matches_the_measurement():
    rng = random.Random(7)
    for _ in range(20):
        c, o, k = rng.randint(1, 6), rng.randint(1, 4), rng.randint(1, 4)
        shape = (rng.randint(1, 2), c, rng.randint(k, 9), rng.randint(k, 9))
        if rng.random() < 0.3:
            shape = shape[1:]  # unbatched
        scale = rng.choice([1e-4, 1.0, 1.0, 30.0, 80.0])
        x = scale * torch.randn(shape, dtype=torch.float64)
        w = scale * torch.randn(o, c + (1 if rng.random() < 0.1 else 0), k, k, dtype=torch.float64)
        rtol, atol = rng.choice([1e-1, 1e-2, 1e-3, 1e-5, 1e-9]), rng.choice([0.0, 1e-6, 1e-2, 1.0])
        mine, theirs = _outcome(smallest_dtype, x, w, rtol, atol), _outcome(measured_smallest_dtype, x, w, rtol, atol)
        assert _agrees(mine, theirs), (shape, tuple(w.shape), scale, rtol, atol, mine, theirs)


def test_answer_key_passes_every_suite_and_every_question():
    for name, fn in [
        ("conv2d_flops", conv2d_flops),
        ("im2col_bytes", im2col_bytes),
        ("smallest_dtype", smallest_dtype),
    ]:
        for suite in ("visible", "hidden"):
            assert check_suite(name, fn, suite)
    answers = {1: 236027904, 2: 65504.0, 3: 9437184, 4: (60, 1, 15, 3), 5: RuntimeError}
    for number, answer in answers.items():
        assert check_answer(f"{LESSON}.q{number}", answer)


def test_smallest_dtype_suites_are_clear_of_the_tolerance_boundary():
    """Every dtype either meets its case's tolerance with room (at most 1/2 the allowed error) or misses it by
    2x or more, so that correct code comparing in another order never lands on the other side."""
    for suite in ("visible", "hidden"):
        for inputs in suite_cases("smallest_dtype", suite):
            if inputs["input"].shape[-3] != inputs["weight"].shape[1]:
                continue  # the invalid case
            for dtype in CANDIDATES:
                excess = precision_excess(inputs["input"], inputs["weight"], dtype, inputs["rtol"], inputs["atol"])
                assert excess <= 0.5 or excess >= 2, (suite, dtype, excess)


def test_smallest_dtype_suites_cover_every_answer_and_overflow():
    answers = [measured_smallest_dtype(**c) for c in suite_cases("smallest_dtype", "hidden")[:-1]]
    assert set(answers) == set(CANDIDATES)
    overflow = suite_cases("smallest_dtype", "hidden")[1]
    assert precision_excess(overflow["input"], overflow["weight"], torch.float16, 0.1, 500.0) == math.inf


# ---------------------------------------------------------------------------- known mistakes
def test_flop_mistakes_are_diagnosed():
    key = conv2d_flops
    for wrong, message, suite in [
        (lambda *a, **k: key(*a, **k) // 2, "multiply-adds", "visible"),
        (
            lambda input_shape, weight_shape, **k: key(
                (1, *input_shape[1:]) if len(input_shape) == 4 else input_shape, weight_shape, **k
            ),
            "batch is missing",
            "visible",
        ),
        (
            lambda input_shape, weight_shape, groups=1, **k: key(
                input_shape, (weight_shape[0], weight_shape[1] * groups, *weight_shape[2:]), groups=1, **k
            ),
            "groups are ignored",
            "hidden",
        ),
        (lambda **k: key(**k) // k.get("groups", 1), "divided by groups", "hidden"),
        (
            lambda input_shape, weight_shape, **k: (
                2 * math.prod(weight_shape) * math.prod(input_shape) // input_shape[1]
            ),
            "per input pixel",
            "visible",
        ),
    ]:
        with pytest.raises(GradingError, match=message):
            check_suite("conv2d_flops", wrong, suite)


def test_bytes_mistakes_are_diagnosed():
    key = im2col_bytes
    for wrong, message, suite in [
        (
            lambda *a, dtype=torch.float32, **k: key(*a, dtype=dtype, **k) // dtype.itemsize,
            "number of elements",
            "visible",
        ),
        (lambda *a, dtype=torch.float32, **k: key(*a, **k), "bytes are for float32", "visible"),
        (
            lambda input_shape, **k: key((1, *input_shape[1:]) if len(input_shape) == 4 else input_shape, **k),
            "batch is missing",
            "visible",
        ),
        (lambda *a, padding=0, **k: key(*a, **k), "padding is ignored", "visible"),
        (lambda *a, stride=1, **k: key(*a, **k), "stride is ignored", "hidden"),
    ]:
        with pytest.raises(GradingError, match=message):
            check_suite("im2col_bytes", wrong, suite)


def test_unbatched_input_counted_as_a_batch_fails():
    def batch_of_channels(input_shape, weight_shape, **kwargs):
        shape = tuple(input_shape)
        return conv2d_flops((shape[0], 1, *shape[1:]) if len(shape) == 3 else shape, weight_shape, **kwargs)

    with pytest.raises(GradingError, match="conv2d_flops"):
        check_suite("conv2d_flops", batch_of_channels, "hidden")


def test_dtype_mistakes_are_diagnosed():
    def rounded_inputs_only(input, weight, rtol, atol=0.0):
        exact = F.conv2d(input, weight)
        for dtype in CANDIDATES:
            result = F.conv2d(input.to(dtype).double(), weight.to(dtype).double())
            if torch.isclose(result, exact, rtol=rtol, atol=atol).all():
                return dtype

    def bfloat16_first(input, weight, rtol, atol=0.0):
        exact = F.conv2d(input, weight)
        for dtype in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
            if torch.isclose(F.conv2d(input.to(dtype), weight.to(dtype)).double(), exact, rtol=rtol, atol=atol).all():
                return dtype

    hidden = suite_cases("smallest_dtype", "hidden")
    overflow, both_fit = hidden[1], hidden[5]  # float16 overflows; float16 and bfloat16 both meet the tolerance
    visible = suite_cases("smallest_dtype", "visible")[0]
    for wrong, message, inputs in [
        (rounded_inputs_only, "computed in float64", overflow),
        (lambda input, weight, rtol, atol=0.0: smallest_dtype(input, weight, rtol), "atol is ignored", visible),
        (bfloat16_first, "bfloat16 comes before float16", both_fit),
        (lambda *a, **k: torch.float64, "narrower dtype", visible),
        (lambda *a, **k: "float16", "return a torch.dtype", visible),
    ]:
        with pytest.raises(GradingError, match=message):
            check("smallest_dtype", wrong, **inputs)


def test_a_wrong_dtype_shows_what_was_measured():
    with pytest.raises(GradingError, match=r"Measured: float16: meets it"):
        check_suite("smallest_dtype", lambda *a, **k: torch.float32, "visible")


def test_torch_errors_are_required():
    def never_raises(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1):
        return 0

    with pytest.raises(GradingError, match="torch raises RuntimeError"):
        check("conv2d_flops", never_raises, input_shape=(1, 3, 4, 4), weight_shape=(2, 3, 5, 5))
    with pytest.raises(GradingError, match="torch raises RuntimeError"):
        check("im2col_bytes", lambda *a, **k: 0, input_shape=(1, 3, 8, 8), kernel_size=3, stride=0)


# ---------------------------------------------------------------------------- banned: reading it off torch
def test_reading_the_answer_off_torch_is_refused():
    def with_flop_counter(input_shape, weight_shape, **kwargs):
        with flop_counter.FlopCounterMode(display=False) as counter:
            F.conv2d(torch.empty(input_shape, device="meta"), torch.empty(weight_shape, device="meta"), **kwargs)
        return counter.get_total_flops()

    def with_formula(input_shape, weight_shape, **kwargs):
        out = (input_shape[0], weight_shape[0], input_shape[2] - 2, input_shape[3] - 2)
        return flop_counter.conv_flop_count(list(input_shape), list(weight_shape), list(out))

    def with_unfold(input_shape, kernel_size, stride=1, padding=0, dilation=1, dtype=torch.float32):
        result = F.unfold(torch.empty(input_shape, dtype=dtype, device="meta"), kernel_size, dilation, padding, stride)
        return result.numel() * result.element_size()

    with pytest.raises(GradingError, match="FLOP counter|torch's convolution"):
        check_suite("conv2d_flops", with_flop_counter, "visible")
    with pytest.raises(GradingError, match="FLOP counter"):
        check_suite("conv2d_flops", with_formula, "visible")
    with pytest.raises(GradingError, match="unfold"):
        check_suite("im2col_bytes", with_unfold, "visible")


def test_changing_torchs_flop_counter_is_refused(monkeypatch):
    monkeypatch.setattr(flop_counter, "conv_flop_count", lambda *args, **kwargs: 0)
    with pytest.raises(GradingError, match="changed torch.utils.flop_counter"):
        check_suite("conv2d_flops", conv2d_flops, "visible")


def test_code_swap_in_torchs_formula_is_refused_but_new_formulas_are_not(monkeypatch):
    def nothing(x_shape, w_shape, out_shape, transposed=False):
        return 0

    monkeypatch.setitem(flop_counter.flop_registry, torch.ops.aten.addcmul, lambda *args, **kwargs: 0)
    assert check_suite("conv2d_flops", conv2d_flops, "visible")  # another module's formula for another operator
    monkeypatch.setattr(flop_counter.conv_flop_count, "__code__", nothing.__code__)
    with pytest.raises(GradingError, match="changed torch.utils.flop_counter"):
        check_suite("conv2d_flops", conv2d_flops, "visible")


def test_registry_entry_swap_is_refused(monkeypatch):
    monkeypatch.setitem(flop_counter.flop_registry, torch.ops.aten.convolution, lambda *a, **k: 0)
    with pytest.raises(GradingError, match="changed torch.utils.flop_counter"):
        check_suite("conv2d_flops", conv2d_flops, "visible")


# ---------------------------------------------------------------------------- the widget and measurements
def test_widget_model_measures_and_judges_the_learners_functions():
    cost = LayerCost(batch=2, in_channels=4, out_channels=8, kernel_size=3, stride=2, groups=2, dtype=torch.float16)
    measured = cost.measured([8, 16])
    assert measured["flops"] == [measured_flops(**cost.flops_args(s)) for s in (8, 16)]
    assert measured["bytes"][1] == im2col_bytes(**cost.bytes_args(16))
    right = draw_cost(cost, (8, 16), conv2d_flops, im2col_bytes)
    assert "matches torch's measurement ✓" in right._supxlabel.get_text()
    wrong = draw_cost(cost, (8, 16), lambda *a, **k: conv2d_flops(*a, **k) // 2, im2col_bytes)
    assert "conv2d_flops: differs from torch's measurement ✗" in wrong._supxlabel.get_text()

    def stub(*args, **kwargs):
        raise NotImplementedError

    assert "not implemented yet" in draw_cost(cost, (8, 16), stub, None)._supxlabel.get_text()
    assert draw_cost(cost, (8, 16))._supxlabel is None
    plt.close("all")


def test_the_cost_widgets_fixed_axes_hold_every_choice():
    """The widget's y ranges come from two torch measurements (the cheapest and the dearest layer); every
    combination of its choices, at every size, lies inside them (the answer key's formulas, which the tests
    above check against torch, for the 1296 combinations)."""
    limits = cost_limits()
    seen = {"flops": [], "bytes": []}
    for values in itertools.product(*COST_CHOICES.values()):
        cost = LayerCost(**dict(zip(COST_CHOICES, values)))
        for size in COST_SIZES:
            seen["flops"].append(conv2d_flops(**cost.flops_args(size)))
            seen["bytes"] += [im2col_bytes(**cost.bytes_args(size)), cost.input_bytes(size)]
    for key, (low, high) in limits.items():
        assert (min(seen[key]), max(seen[key])) == (low, high), key  # inside, and reached: not wider than needed


def test_the_cost_figure_keeps_its_frames_and_moves_its_lines():
    """A redraw changes the lines' layer only: the frames (ticks, labels, grid) and the legends stay as they
    were, so the browser's scene keeps them; a value outside the fixed range widens it."""
    limits = cost_limits()
    first = draw_cost(LayerCost(), conv2d_flops=conv2d_flops, limits=limits)
    frames, lines, legends = first.axes[:2], first.axes[2:4], first.axes[4:]
    ylims = [ax.get_ylim() for ax in frames]
    changed = []
    for ax in first.axes:
        ax.stale = False
        ax.stale_callback = lambda artist, value, ax=ax: changed.append(ax) if value else None
    second = draw_cost(LayerCost(batch=32, kernel_size=7), conv2d_flops=conv2d_flops, figure=first, limits=limits)
    assert second is first and set(changed) == set(lines)
    assert [ax.get_ylim() for ax in frames] == ylims
    assert [t.get_text() for t in legends[0].get_legend().get_texts()] == ["FlopCounterMode", "your conv2d_flops"]
    assert figure_alt_text(second).startswith("Figure with 2 panels: work; im2col memory.")
    wide = draw_cost(LayerCost(), conv2d_flops=lambda **kwargs: 10**15, figure=second, limits=limits)
    assert wide.axes[0].get_ylim()[1] > 10**15 > limits["flops"][1]
    plt.close("all")


def test_cost_widget_builds_and_redraws_headless():
    view = cost_widget(conv2d_flops, im2col_bytes)
    assert view.last_error is None
    view.controls["groups"].value = 4
    assert view.last_error is None and view.last_figure is not None
    plt.close("all")


def test_precision_measurements():
    errors = conv_errors([1, 3], channels=4, size=8)
    assert set(errors) == {torch.float16, torch.bfloat16, torch.float32}
    assert all(0 < e < 0.05 for values in errors.values() for e in values)
    precision_plot([1, 3], errors)
    plt.close("all")
    values = torch.full((4096,), 0.1, dtype=torch.float64)
    assert sum_in(values, torch.float16) < 300 < sum_in(values, torch.float32)  # float16 stagnates


def test_time_and_memory_measurements():
    x, weight = torch.randn(1, 4, 16, 16), torch.randn(4, 4, 3, 3)
    unfold_bytes = measured_im2col_bytes((1, 4, 16, 16), 3, padding=1)
    assert peak_bytes(reference_conv2d_fast, x, weight, padding=1) >= unfold_bytes
    results = race({"fast": reference_conv2d_fast, "missing": None}, [8, 12], batch=1, channels=2, repeat=1)
    assert all(t > 0 for t in results["fast"]["seconds"]) and all(math.isnan(t) for t in results["missing"]["seconds"])
    race_plot([8, 12], results)
    plt.close("all")
    threads = torch.get_num_threads()
    with pytest.raises(ValueError), one_thread():
        assert torch.get_num_threads() == 1
        raise ValueError
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("name", ["conv2d_flops", "im2col_bytes", "smallest_dtype"])
def test_suites_are_deterministic(name):
    for suite in ("visible", "hidden"):
        first, second = suite_cases(name, suite), suite_cases(name, suite)
        for a, b in itertools.zip_longest(first, second):
            assert a.keys() == b.keys()
            for key in a:
                if isinstance(a[key], torch.Tensor):
                    assert torch.equal(a[key], b[key])
                else:
                    assert a[key] == b[key]
