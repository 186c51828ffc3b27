"""Unit tests of the grading core (no nbgrader): diagnoses, the banned-operation tripwire, tampering."""

from __future__ import annotations

import builtins

import pytest
import torch
import torch.nn.functional as F

import convcourse.checks.core as core
from convcourse.checks import GradingError, _guard, check, check_suite, randn
from convcourse.checks.conv import ConvArgs, variants
from convcourse.checks.core import Exercise, run_case

X = randn(5, 6, seed=1)
K = randn(3, 2, seed=2)


def corr2d(x, k):
    kh, kw = k.shape
    out = torch.zeros(x.shape[0] - kh + 1, x.shape[1] - kw + 1, dtype=x.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (x[i : i + kh, j : j + kw] * k).sum()
    return out


def failure(exercise, fn, **inputs) -> str:
    with pytest.raises(GradingError) as info:
        if isinstance(exercise, str):
            check(exercise, fn, **inputs)
        else:
            run_case(exercise, fn, inputs)
    return str(info.value)


# A full F.conv2d-shaped exercise defined here (not registered in the package) for the conv-parameter
# diagnoses; its reference and known-wrong variants are the course's.
def _conv_args(**inputs) -> ConvArgs:
    return ConvArgs(**inputs)


CONV = Exercise(
    name="test_only_conv2d",
    lesson="tests",
    reference=lambda **inputs: _conv_args(**inputs).conv(),
    variants=lambda inputs: {k: v for k, v in variants(_conv_args(**inputs)).items() if v is not None},
)


def conv_inputs(c_in=2, c_out=2, h=7, w=8, kh=3, kw=3, *, bias=False, **params):
    groups = params.get("groups", 1)
    inputs = dict(x=randn(1, c_in, h, w, seed=3), weight=randn(c_out, c_in // groups, kh, kw, seed=4))
    if bias:
        inputs["bias"] = randn(c_out, seed=5)
    inputs.update(params)
    return inputs


# ---- correct implementations pass ---------------------------------------------------------------


def test_honest_loop_passes_every_corr2d_suite():
    assert check("corr2d", corr2d, x=X, k=K)
    assert check_suite("corr2d", corr2d, "visible") and check_suite("corr2d", corr2d, "hidden")


def test_message_names_exercise_configuration_position_and_error_size():
    message = failure(
        CONV,
        lambda x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1: (
            F.conv2d(x, weight, bias, stride, padding, dilation, groups) + 0.5
        ),
        **conv_inputs(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
    )
    assert message.startswith(
        "test_only_conv2d(x=tensor of shape (1, 2, 7, 8) (float64), "
        "weight=tensor of shape (2, 1, 3, 3) (float64), stride=(2, 1), padding=(1, 0), "
        "dilation=(1, 2), groups=2) is wrong"
    )
    assert "first difference at index (0, 0, 0, 0)" in message and "largest error 0.5" in message


# ---- each diagnosis fires on a deliberately wrong implementation ---------------------------------


def test_flipped_kernel_true_convolution():
    message = failure("corr2d", lambda x, k: corr2d(x, k.flip(0, 1)), x=X, k=K)
    assert "Likely mistake: your output is the true (flipped-kernel) convolution" in message


def test_off_by_one_output_size():
    def short(x, k):  # range(H - kH) instead of range(H - kH + 1)
        return corr2d(x, k)[:-1, :-1]

    def one_row_short(x, k):
        return corr2d(x, k)[:-1]

    def one_too_many(x, k):
        full = corr2d(x, k)
        return torch.cat([full, torch.zeros(1, full.shape[1], dtype=x.dtype)])

    assert "Likely mistake: off-by-one in the output size: your output misses the last row and column" in failure(
        "corr2d", short, x=X, k=K
    )
    assert "misses the last row." in failure("corr2d", one_row_short, x=X, k=K)
    assert "off-by-one in the output size" in failure("corr2d", one_too_many, x=X, k=K)


def test_height_and_width_swapped():
    def transposed(x, k):
        return corr2d(x.T, k.T)  # the right numbers, laid out (W, H)

    def square_swapped(x, k):
        return corr2d(x, k).T

    swapped = failure("corr2d", transposed, x=X, k=K)
    assert "returned shape (5, 3), but torch gives (3, 5)" in swapped and "height and width are swapped" in swapped
    square = failure("corr2d", square_swapped, x=randn(5, 5, seed=7), k=randn(2, 2, seed=8))
    assert "Likely mistake: height and width are swapped" in square


def test_padding_on_one_side_only():
    def one_side(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        p = padding
        return F.conv2d(F.pad(x, (2 * p, 0, 2 * p, 0)), weight, bias, stride, 0, dilation, groups)

    assert "Likely mistake: padding is added on one side only (left/top)" in failure(
        CONV, one_side, **conv_inputs(padding=1)
    )


def test_even_same_padding_on_the_wrong_side():
    def wrong_side(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        # kernel 4x4: total padding 3 per axis; torch puts 1 left/top and 2 right/bottom
        return F.conv2d(F.pad(x, (2, 1, 2, 1)), weight, bias, stride, 0, dilation, groups)

    message = failure(CONV, wrong_side, **conv_inputs(kh=4, kw=4, padding="same"))
    assert "padding='same'" in message
    assert "Likely mistake: the extra padding of an even kernel is on the wrong side" in message


def test_stride_on_the_wrong_axis():
    def swapped(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return F.conv2d(x, weight, bias, (stride[1], stride[0]), padding, dilation, groups)

    message = failure(CONV, swapped, **conv_inputs(h=9, w=9, stride=(2, 1)))
    assert "stride=(2, 1)" in message and "Likely mistake: stride is applied to the wrong axis" in message


def test_bias_missing_or_added_twice():
    def no_bias(x, weight, bias=None, **params):
        return F.conv2d(x, weight, None, **params)

    def bias_twice(x, weight, bias=None, **params):
        return F.conv2d(x, weight, bias, **params) + bias[:, None, None]

    inputs = conv_inputs(bias=True)
    assert "Likely mistake: the bias is missing" in failure(CONV, no_bias, **inputs)
    assert "Likely mistake: the bias is added twice" in failure(CONV, bias_twice, **inputs)


def test_groups_mixing_channels():
    def ignores_groups(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        # every output channel sums over all input channels
        return F.conv2d(x, weight.repeat(1, groups, 1, 1), bias, stride, padding, dilation, 1)

    def first_group_only(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        per_group = x.shape[1] // groups
        return F.conv2d(x[:, :per_group], weight, bias, stride, padding, dilation, 1)

    inputs = conv_inputs(c_in=4, c_out=4, groups=2)
    assert "Likely mistake: groups mix channels" in failure(CONV, ignores_groups, **inputs)
    assert "Likely mistake: every output channel reads the first group's input channels" in failure(
        CONV, first_group_only, **inputs
    )


def test_dilation_applied_to_the_input_instead_of_the_kernel():
    def dilated_input(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return F.conv2d(x[..., ::dilation, ::dilation], weight, bias, stride, padding, 1, groups)

    message = failure(CONV, dilated_input, **conv_inputs(h=11, w=11, dilation=2))
    assert "Likely mistake: dilation is applied to the input instead of the kernel" in message


def test_wrong_dtype_and_not_implemented():
    assert "returned dtype float32" in failure("corr2d", lambda x, k: corr2d(x, k).float(), x=X, k=K)

    def todo(x, k):
        raise NotImplementedError()

    assert "corr2d is not implemented yet" in failure("corr2d", todo, x=X, k=K)


def test_a_tuple_of_tensors_is_described_item_by_item_not_by_its_numbers():
    import numpy as np

    t = torch.zeros(1, 2, 3, dtype=torch.float64)
    assert core.describe_value((t, None)) == "(tensor of shape (1, 2, 3) (float64), None)"
    assert core.describe_value((t,)) == "(tensor of shape (1, 2, 3) (float64),)"
    assert core.describe_value([np.zeros(2), 3]) == "[array of shape (2,) (float64), 3]"
    looped = [t]
    looped.append(looped)  # an item that is the list itself: described by repr, not item by item again
    assert core.describe_value(looped) == f"[tensor of shape (1, 2, 3) (float64), {looped!r}]"
    assert core.describe_value((1, 2)) == "(1, 2)" and core.describe_value(()) == "()"

    class Sneaky(tuple):  # only plain tuples and lists are opened
        def __iter__(self):
            raise RuntimeError("not read")

    assert core.describe_value(Sneaky([t])).startswith("(tensor([[[0.")
    # In a message: conv2d_backward's three gradients for arguments torch refuses (a kernel larger than the input)
    x, w, g = torch.zeros(1, 1, 2, 2, dtype=torch.float64), torch.ones(1, 1, 3, 3, dtype=torch.float64), torch.ones(1)
    message = failure(
        "conv2d_backward",
        lambda grad_output, input, weight, **options: (torch.zeros_like(input), torch.zeros_like(weight), None),
        grad_output=g.reshape(1, 1, 1, 1).double(),
        input=x,
        weight=w,
    )
    assert "returned (tensor of shape (1, 1, 2, 2) (float64), tensor of shape (1, 1, 3, 3) (float64), None)" in (
        message
    ), message


# ---- banned operations: the tripwire ------------------------------------------------------------

_CONV = F.conv2d  # an alias made before the check, as a learner's cell would


def _via_functional(x, k):
    return F.conv2d(x[None, None], k[None, None])[0, 0]


def _via_alias(x, k):
    return _CONV(x[None, None], k[None, None])[0, 0]


def _via_module(x, k):
    layer = torch.nn.Conv2d(1, 1, tuple(k.shape), bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(k[None, None])
    return layer(x[None, None])[0, 0].detach()


def _via_unfold(x, k):
    kh, kw = k.shape
    cols = F.unfold(x[None, None], (kh, kw))
    return (k.reshape(1, -1) @ cols).reshape(x.shape[0] - kh + 1, x.shape[1] - kw + 1)


def _via_tensor_unfold(x, k):
    kh, kw = k.shape
    return (x.unfold(0, kh, 1).unfold(1, kw, 1) * k).sum((-1, -2))


def _via_aten(x, k):
    return torch.ops.aten.convolution(x[None, None], k[None, None], None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)[
        0, 0
    ]


def _swallowing(x, k):
    try:
        return _via_alias(x, k)
    except Exception:  # the tripwire's error is caught, the loops answer instead: still banned  # noqa: BLE001
        return corr2d(x, k)


@pytest.mark.parametrize(
    "fn",
    [_via_functional, _via_alias, _via_module, _via_unfold, _via_tensor_unfold, _via_aten, _swallowing],
    ids=lambda f: f.__name__,
)
def test_tripwire_catches_torch_convolution_however_it_is_called(fn):
    message = failure("corr2d", fn, x=X, k=K)
    assert message.startswith("corr2d called ")
    assert "torch's convolution" in message or "unfold/im2col" in message
    assert "compute it yourself with loops" in message


def test_tripwire_is_off_after_the_check():
    failure("corr2d", _via_functional, x=X, k=K)
    assert torch.allclose(_via_functional(X, K), corr2d(X, K))  # torch works normally again


# ---- tampering ----------------------------------------------------------------------------------


def _zeros(x, k):
    return torch.zeros(x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1, dtype=x.dtype)


def _always_true(*args, **kwargs):
    return True


_REAL_ISINSTANCE = builtins.isinstance


@pytest.mark.parametrize(
    "owner, name, label, replacement",
    [
        (torch, "allclose", "torch.allclose", _always_true),
        (torch.Tensor, "allclose", "torch.Tensor.allclose", _always_true),
        (torch.Tensor, "__eq__", "torch.Tensor.__eq__", _always_true),
        # builtins stay working replacements here, or pytest itself would break
        (builtins, "isinstance", "builtins.isinstance", lambda obj, cls: _REAL_ISINSTANCE(obj, cls)),
        (builtins, "AssertionError", "builtins.AssertionError", type("AssertionError", (AssertionError,), {})),
        (core, "run_case", "convcourse.checks.core.run_case", _always_true),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_replaced_functions_are_reported_and_grading_refuses(monkeypatch, owner, name, label, replacement):
    assert _guard.tampering() == []
    monkeypatch.setattr(owner, name, replacement)
    assert label in _guard.tampering()
    with pytest.raises(GradingError, match="cannot grade, because code in this notebook replaced"):
        run_case(core.get_exercise("corr2d"), _zeros, dict(x=X, k=K))
    monkeypatch.undo()
    assert _guard.tampering() == []


def test_numpy_replacement_is_reported(monkeypatch):
    import numpy as np

    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(np.testing, "assert_allclose", lambda *a, **k: None)
    assert {"numpy.allclose", "numpy.testing.assert_allclose"} <= set(_guard.tampering())


_LAZY_DYNAMO = """
import sys, types, torch
from convcourse.checks import _guard
assert "torch._dynamo" not in sys.modules, "importing the checks imported torch._dynamo"
original = torch.manual_seed
print("before", _guard.tampering())
lookalikes = {
    "another function wrapped": torch._disable_dynamo(lambda seed: None),
    "torch's wrapper code, other globals": types.FunctionType(
        torch._disable_dynamo(original).__code__, {}, "inner", None, torch._disable_dynamo(original).__closure__
    ),
}
for label, fake in lookalikes.items():
    torch.manual_seed = fake
    print(label, _guard.tampering())
torch.manual_seed = original
model = torch.nn.Linear(2, 1)
torch.optim.SGD(model.parameters(), lr=0.1).step()  # imports torch._dynamo, which wraps torch.manual_seed
assert "torch._dynamo" in sys.modules and torch.manual_seed is not original
print("after", _guard.tampering())
"""


def test_torchs_lazy_dynamo_import_is_not_tampering_but_a_lookalike_is():
    """torch imports torch._dynamo on first need (an optimizer's step), not with the checks (1.6 CPU-s of every
    kernel start); the import then wraps torch.manual_seed. That wrap, and only that, is torch's own."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _LAZY_DYNAMO], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" [", 1) for line in result.stdout.splitlines())
    assert lines == {
        "before": "]",
        "another function wrapped": "'torch.manual_seed']",
        "torch's wrapper code, other globals": "'torch.manual_seed']",
        "after": "]",
    }


def _in_a_sealed_fork(test):
    """Run ``test(monkeypatch)`` in a forked child of this process after ``_guard.seal()``, as a grading kernel
    seals itself once before any learner code: a seal cannot be undone in the process that made it."""
    import os
    import traceback

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report "ok" or the traceback, then leave without running pytest's teardown
        os.close(read)
        try:
            _guard.seal()
            assert _guard.tampering() == []
            with pytest.MonkeyPatch.context() as monkeypatch:
                test(monkeypatch)
            message = b"ok"
        except BaseException:  # noqa: BLE001
            message = traceback.format_exc().encode()
        os.write(write, message)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    assert message == "ok", message


def sealed(test):
    """The test, run in a sealed fork (:func:`_in_a_sealed_fork`)."""

    def run():
        _in_a_sealed_fork(test)

    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return run


@sealed
def test_sealed_private_references_code_objects_and_suites(sealed):
    judge = core.VALUES.judge
    sealed.setattr(_guard, "allclose", lambda *a, **k: True)
    sealed.setattr(core.compare_tensors, "__code__", (lambda exercise, got, expected, inputs: None).__code__)
    sealed.setitem(core.REGISTRY["corr2d"].suites, "hidden", lambda: [])
    object.__setattr__(core.VALUES, "judge", lambda *args: None)  # a frozen dataclass is not a wall
    problems = _guard.tampering()
    assert "convcourse.checks._guard.allclose" in problems
    assert "convcourse.checks.core.compare_tensors" in problems
    assert "the test suites of 'corr2d'" in problems
    assert "the exercise 'conv_output_size'" in problems  # its comparison (VALUES) was changed
    object.__setattr__(core.VALUES, "judge", judge)
    sealed.undo()
    assert _guard.tampering() == []


@sealed
def test_switching_the_check_itself_off_is_tampering_too(sealed):
    """Rebinding the guard's own names (its helpers, its seal) to switch the comparison off is found first, by the
    check's own record of its namespace, and grading refuses (this once bought a wrong corr2d full marks)."""
    sealed.setattr(_guard, "_sealed_problems", lambda: [])
    sealed.setattr(core, "_judge", lambda *args, **kwargs: None)
    assert {"convcourse.checks._guard._sealed_problems", "convcourse.checks.core._judge"} <= set(_guard.tampering())
    with pytest.raises(GradingError, match="cannot grade, because code in this notebook replaced"):
        run_case(core.get_exercise("corr2d"), _zeros, dict(x=X, k=K))
    sealed.undo()
    for name, value in (("_SEALED", None), ("_problems", lambda: []), ("_untouched", lambda exercise=None: True)):
        sealed.setattr(_guard, name, value)
        assert f"convcourse.checks._guard.{name}" in _guard.tampering(), name
        sealed.undo()
    assert _guard.tampering() == []
    with pytest.raises(RuntimeError, match="sealed once per process"):
        _guard.seal()  # a second seal would take a tampered state for the original


@sealed
def test_a_test_case_compares_its_own_exercise_and_the_probe_every_exercise(sealed):
    sealed.setitem(core.REGISTRY["conv2d_strided"].suites, "hidden", lambda: [])
    assert _guard.tampering("corr2d") == [] and _guard.tampering("conv2d_strided") == [
        "the test suites of 'conv2d_strided'"
    ]
    assert _guard.tampering() == ["the test suites of 'conv2d_strided'"]
    sealed.setattr(torch, "allclose", _always_true)  # the full comparison, which names what changed, scopes alike
    assert _guard.tampering("corr2d") == ["torch.allclose"]
    sealed.undo()
    run_case(core.get_exercise("corr2d"), corr2d, dict(x=X, k=K))  # grading corr2d goes on


@sealed
def test_every_course_module_the_checks_use_is_sealed(sealed):
    """The sealed modules are derived (what the checks and exercises use, transitively), not listed."""
    import convcourse.geometry
    import convcourse.training

    names = _guard.sealed_module_names()
    assert {"convcourse.checks.core", "convcourse.checks._guard", "convcourse.geometry"} <= set(names)
    assert {"convcourse.checks.exercises.l01_sliding_window", "convcourse.training"} <= set(names)
    assert not any(name.startswith("convcourse.widgets") for name in names)  # learner-facing, never graded
    sealed.setattr(convcourse.geometry, "output_size", lambda *a, **k: 1)
    sealed.setattr(convcourse.training.accuracy, "__defaults__", (1,))
    problems = _guard.tampering()
    assert {"convcourse.geometry.output_size", "convcourse.training.accuracy"} <= set(problems)
    sealed.undo()
    assert _guard.tampering() == []


def test_tensor_subclass_cannot_redefine_the_comparison():
    class Agreeable(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return True

    message = failure("corr2d", lambda x, k: _zeros(x, k).as_subclass(Agreeable), x=X, k=K)
    assert "returned a Agreeable, a subclass of torch.Tensor" in message


def test_value_exercise_is_not_fooled_by_an_object_equal_to_everything():
    class AlwaysEqual:
        def __eq__(self, other):
            return True

        __hash__ = object.__hash__

    size = Exercise(
        name="test_only_size",
        lesson="tests",
        comparison=core.VALUES,
        reference=lambda size, kernel_size: (size - kernel_size + 1,),
    )
    assert run_case(size, lambda size, kernel_size: (size - kernel_size + 1,), dict(size=7, kernel_size=3)) is None
    message = failure(size, lambda size, kernel_size: AlwaysEqual(), size=7, kernel_size=3)
    assert "returned <a AlwaysEqual>" in message
    message = failure(size, lambda size, kernel_size: (AlwaysEqual(),), size=7, kernel_size=3)
    assert "return plain numbers" in message


# ---- issue 11: comparisons learner code cannot see ------------------------------------------------


def _tensors_in_frames() -> list[torch.Tensor]:
    import sys

    found, frame = [], sys._getframe(1)
    while frame is not None:
        found += [v for v in frame.f_locals.values() if isinstance(v, torch.Tensor)]
        found += [
            v for d in frame.f_locals.values() if isinstance(d, dict) for v in d.values() if isinstance(v, torch.Tensor)
        ]
        frame = frame.f_back
    return found


def test_torch_answer_is_not_in_any_frame_or_gc_while_the_learner_runs():
    seen: list[torch.Tensor] = []

    def snoop(x, k):
        import gc

        right = F.conv2d(X[None, None], K[None, None])[0, 0]  # the answer, made here only to look for it
        candidates = _tensors_in_frames() + [o for o in gc.get_objects() if type(o) is torch.Tensor]
        seen.extend(t for t in candidates if t is not right and t.shape == right.shape and torch.allclose(t, right))
        raise RuntimeError("looked")

    with pytest.raises(GradingError):
        check("corr2d", lambda x, k: snoop(x, k), x=X, k=K)
    assert seen == []


def test_torch_exception_is_not_in_a_frame_while_the_learner_runs():
    found: list[BaseException] = []

    def snoop(**kwargs):
        import sys

        frame = sys._getframe(1)
        while frame is not None:
            found.extend(v for v in frame.f_locals.values() if isinstance(v, RuntimeError))
            frame = frame.f_back
        return torch.zeros(1)

    case = next(c for c in check_suite.__globals__["suite_cases"]("conv2d", "errors_hidden"))
    with pytest.raises(GradingError, match="these arguments are invalid"):
        check("conv2d", snoop, **case)
    assert found == []


def test_learner_changing_the_tests_own_inputs_is_refused():
    x, k = X.clone(), K.clone()

    def zero_the_callers_inputs(x_copy, k_copy):
        import sys

        frame = sys._getframe(1)
        while frame is not None:
            for value in list(frame.f_locals.values()):
                if isinstance(value, dict):
                    for t in value.values():
                        if isinstance(t, torch.Tensor):
                            t.zero_()
            frame = frame.f_back
        x_copy.zero_(), k_copy.zero_()
        return torch.zeros(3, 5, dtype=torch.float64)

    message = failure("corr2d", lambda x, k: zero_the_callers_inputs(x, k), x=x, k=k)
    assert "changed" in message


# ---- issue 11: bans that hold --------------------------------------------------------------------


def _conv_via(route: str):
    def corr(x, k):
        from torch.utils._python_dispatch import _disable_current_modes

        a, b = x[None, None], k[None, None]
        if route == "disable_modes":
            with _disable_current_modes():
                return F.conv2d(a, b)[0, 0]
        if route == "disable_dispatch":
            with torch._C._DisableTorchDispatch():
                return F.conv2d(a, b)[0, 0]
        if route == "aten":
            return torch.ops.aten.convolution(a, b, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)[0, 0]
        if route == "subclass":

            class Quiet(torch.Tensor):
                pass

            return F.conv2d(a.as_subclass(Quiet), b).as_subclass(torch.Tensor)[0, 0]
        if route == "swallowed":
            try:
                torch.conv2d(a, b)
            except Exception:  # noqa: BLE001
                pass
            return corr2d(x, k)
        if route == "torch_fft":
            return _fft_corr(x, k, torch.fft.rfft2, torch.fft.irfft2)
        if route == "numpy_fft":
            import numpy as np

            return torch.from_numpy(_fft_corr(x.numpy(), k.numpy(), np.fft.rfft2, np.fft.irfft2))
        if route == "numpy_correlate":
            import numpy as np

            rows = [
                sum(np.correlate(x[i + a].numpy(), k[a].numpy(), "valid") for a in range(k.shape[0]))
                for i in range(x.shape[0] - k.shape[0] + 1)
            ]
            return torch.tensor(np.array(rows))
        raise ValueError(route)

    return corr


def _fft_corr(x, k, rfft2, irfft2):
    h, w = x.shape
    kh, kw = k.shape
    spectrum = rfft2(x) * rfft2(k[::-1, ::-1].copy() if hasattr(k, "copy") else k.flip(0, 1), s=(h, w))
    return irfft2(spectrum, s=(h, w))[kh - 1 :, kw - 1 :]


@pytest.mark.parametrize("route", ["disable_modes", "disable_dispatch", "aten", "subclass", "swallowed"])
def test_torch_convolution_is_caught_by_every_route(route):
    message = failure("corr2d", _conv_via(route), x=X, k=K)
    assert "called torch's convolution" in message and "the point is to see every multiply-add happen" in message


@pytest.mark.parametrize(
    "route, text", [("torch_fft", "torch.fft"), ("numpy_fft", "numpy.fft"), ("numpy_correlate", "numpy.correlate")]
)
def test_corr2d_rejects_fft_and_library_convolutions(route, text):
    assert _conv_via(route)(X, K).shape == (3, 5)  # the route works outside grading
    message = failure("corr2d", _conv_via(route), x=X, k=K)
    assert text in message and "every multiply-add" in message


def test_a_thread_started_by_the_learner_is_refused():
    import threading

    def in_a_thread(x, k):
        box = []
        t = threading.Thread(target=lambda: box.append(F.conv2d(x[None, None], k[None, None])[0, 0]))
        t.start()
        t.join()
        return box[0]

    assert "started a thread" in failure("corr2d", in_a_thread, x=X, k=K)

    stop = threading.Event()
    waiting = threading.Thread(target=stop.wait, daemon=True)
    waiting.start()
    try:
        assert "background thread" in failure("corr2d", corr2d, x=X, k=K)
    finally:
        stop.set()
        waiting.join()
    assert check("corr2d", corr2d, x=X, k=K)


def test_modes_and_hooks_left_behind_by_learner_code_are_refused():
    from torch.overrides import TorchFunctionMode

    class Spy(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    with Spy():
        assert "torch function mode" in failure("corr2d", corr2d, x=X, k=K)
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *a: None)
    try:
        assert "global nn.Module hook" in failure("corr2d", corr2d, x=X, k=K)
    finally:
        handle.remove()


class _TorchWrapper(torch.nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.inner = torch.nn.Conv2d(*args, **kwargs)

    def forward(self, x):
        return self.inner(x)


def test_lesson10_rejects_subclassing_and_wrapping_torch_conv():
    class Conv2d(torch.nn.Conv2d):
        pass

    for cls in (Conv2d, _TorchWrapper):
        for exercise in ("Conv2d", "Conv2d_repr", "Conv2d_init"):
            message = failure(exercise, cls, in_channels=2, out_channels=4, kernel_size=3)
            assert "torch's own nn.Conv2d code" in message and "subclass nn.Module" in message, message


def test_lesson11_rejects_autograd_in_conv2d_backward():
    from convcourse.checks.exercises.l11_backward import backward_case

    def through_autograd(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
        x, w = input.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        out = (x[:, :1, : grad_output.shape[2], : grad_output.shape[3]] * 0).sum() + (w * 0).sum()
        out.backward()
        return torch.zeros_like(input), torch.zeros_like(weight), grad_output.sum((0, 2, 3))

    message = failure("conv2d_backward", through_autograd, **backward_case(1, 1, 5, 5, 1, 3, 3, seed=1))
    assert "used torch's autograd" in message


def test_same_padding_cannot_read_the_registry_reference_or_measure_with_torch():
    from convcourse.checks.core import get_exercise

    def from_registry(kernel_size, dilation=1):
        return get_exercise("same_padding").reference(kernel_size, dilation)

    assert from_registry(3) == (1, 1, 1, 1)
    assert "not to read it off torch" in failure("same_padding", from_registry, kernel_size=3)


def test_pad2d_with_f_pad_fails_the_cases_where_torch_raises_too():
    from convcourse.checks import suite_cases

    invalid = [c for c in suite_cases("pad2d", "hidden") if c.get("mode") == "reflect" and c["pad"][0] == 4][0]
    message = failure(
        "pad2d", lambda x, pad, mode="constant", value=0.0: F.pad(x, tuple(pad), mode=mode, value=value), **invalid
    )
    assert "called torch's padding" in message


# ---- issue 11: correct work in any summation order never loses points ----------------------------


def _loops_reversed(x, w, b, stride, padding, dilation, groups):
    """conv2d by loops over kernel taps, summing in reverse order, in the input's dtype."""
    two = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    (sh, sw), (dh, dw) = two(stride), two(dilation)
    ph, pw = two(padding)
    x = F.pad(x, (pw, pw, ph, ph))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    out = torch.zeros(n, o, oh, ow, dtype=x.dtype)
    per = o // groups
    for a in reversed(range(kh)):
        for bb in reversed(range(kw)):
            patch = x[:, :, a * dh : a * dh + sh * (oh - 1) + 1 : sh, bb * dw : bb * dw + sw * (ow - 1) + 1 : sw]
            for g in reversed(range(groups)):
                out[:, g * per : (g + 1) * per] += torch.einsum(
                    "nchw,oc->nohw", patch[:, g * cg : (g + 1) * cg], w[g * per : (g + 1) * per, :, a, bb]
                )
    return out if b is None else out + b[None, :, None, None]


def _unfold_matmul(x, w, b, stride, padding, dilation, groups):
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)  # (N, C*kh*kw, L)
    cols = cols.view(n, groups, cg * kh * kw, -1)
    out = torch.einsum("ngkl,gok->ngol", cols, w.view(groups, o // groups, -1)).reshape(n, o, -1)
    two = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    (sh, _), (dh, _), (ph, _) = two(stride), two(dilation), two(padding)
    oh = (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out = out.view(n, o, oh, -1)
    return out if b is None else out + b[None, :, None, None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("impl", [_loops_reversed, _unfold_matmul])
def test_correct_convolutions_in_other_summation_orders_pass(dtype, impl):
    # A wide reduction (64 channels x 5x5 taps) in float32: torch's kernel sums in another order.
    case = dict(
        input=randn(2, 64, 12, 11, seed=5).to(dtype),
        weight=randn(8, 64, 5, 5, seed=6).to(dtype),
        bias=randn(8, seed=7).to(dtype),
        stride=(2, 1),
        padding=2,
        dilation=(1, 2),
    )

    def conv2d_fast(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return impl(input, weight, bias, stride, padding, dilation, groups)

    assert check("conv2d_fast", conv2d_fast, **case)
    if impl is _loops_reversed:
        assert check("conv2d", conv2d_fast, **case)
    wrong = lambda **kw: conv2d_fast(**kw) * (1 + 1e-3)  # noqa: E731
    assert "is wrong" in failure("conv2d_fast", wrong, **case)


def test_corr2d_in_float32_with_reversed_loops_passes():
    x, k = randn(20, 24, seed=8).float(), randn(7, 6, seed=9).float()

    def corr(x, k):
        kh, kw = k.shape
        out = torch.zeros(x.shape[0] - kh + 1, x.shape[1] - kw + 1, dtype=x.dtype)
        for a in reversed(range(kh)):
            for b in reversed(range(kw)):
                out += x[a : a + out.shape[0], b : b + out.shape[1]] * k[a, b]
        return out

    assert check("corr2d", corr, x=x, k=k)
    assert check_suite("corr2d", corr) and check_suite("corr2d", corr, "visible")


def test_lesson10_unfold_einsum_forward_passes_every_suite():
    import math

    class Conv2d(torch.nn.Module):
        def __init__(
            self,
            in_channels,
            out_channels,
            kernel_size,
            stride=1,
            padding=0,
            dilation=1,
            groups=1,
            bias=True,
            padding_mode="zeros",
            device=None,
            dtype=None,
        ):
            super().__init__()
            two = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
            if groups <= 0 or in_channels % groups or out_channels % groups:
                raise ValueError("groups")
            if isinstance(padding, str) and (
                padding not in ("same", "valid") or (padding == "same" and two(stride) != (1, 1))
            ):
                raise ValueError("padding")
            if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
                raise ValueError("padding_mode")
            self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
            self.kernel_size, self.stride, self.dilation = two(kernel_size), two(stride), two(dilation)
            self.padding, self.padding_mode = (padding if isinstance(padding, str) else two(padding)), padding_mode
            self.weight = torch.nn.Parameter(
                torch.empty(out_channels, in_channels // groups, *self.kernel_size, device=device, dtype=dtype)
            )
            self.bias = torch.nn.Parameter(torch.empty(out_channels, device=device, dtype=dtype)) if bias else None
            self.reset_parameters()

        def reset_parameters(self):
            bound = 1 / math.sqrt(self.weight[0].numel())
            torch.nn.init.uniform_(self.weight, -bound, bound)
            if self.bias is not None:
                torch.nn.init.uniform_(self.bias, -bound, bound)

        def forward(self, x):
            batched = x.dim() == 4
            x = x if batched else x[None]
            if self.padding == "same":
                th, tw = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
                pads = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
            elif self.padding == "valid":
                pads = (0, 0, 0, 0)
            else:
                pads = (self.padding[1], self.padding[1], self.padding[0], self.padding[0])
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            out = _unfold_matmul(
                F.pad(x, pads, mode=mode), self.weight, self.bias, self.stride, 0, self.dilation, self.groups
            )
            return out if batched else out[0]

    for suite in ("visible", "padding", "hidden"):
        assert check_suite("Conv2d", Conv2d, suite)
