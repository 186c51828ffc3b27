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
            out[i, j] = (x[i:i + kh, j:j + kw] * k).sum()
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
    name="test_only_conv2d", lesson="tests", reference=lambda **inputs: _conv_args(**inputs).conv(),
    variants=lambda inputs: {k: v for k, v in variants(_conv_args(**inputs)).items() if v is not None})


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
    message = failure(CONV, lambda x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1:
                      F.conv2d(x, weight, bias, stride, padding, dilation, groups) + 0.5,
                      **conv_inputs(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2))
    assert message.startswith("test_only_conv2d(x=tensor of shape (1, 2, 7, 8) (float64), "
                              "weight=tensor of shape (2, 1, 3, 3) (float64), stride=(2, 1), padding=(1, 0), "
                              "dilation=(1, 2), groups=2) is wrong")
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

    assert "Likely mistake: off-by-one in the output size: your output misses the last row and column" in \
        failure("corr2d", short, x=X, k=K)
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

    assert "Likely mistake: padding is added on one side only (left/top)" in \
        failure(CONV, one_side, **conv_inputs(padding=1))


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
    assert "Likely mistake: every output channel reads the first group's input channels" in \
        failure(CONV, first_group_only, **inputs)


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
    return torch.ops.aten.convolution(x[None, None], k[None, None], None, [1, 1], [0, 0], [1, 1], False,
                                      [0, 0], 1)[0, 0]


def _swallowing(x, k):
    try:
        return _via_alias(x, k)
    except Exception:  # the tripwire's error is caught, the loops answer instead: still banned
        return corr2d(x, k)


@pytest.mark.parametrize("fn", [_via_functional, _via_alias, _via_module, _via_unfold, _via_tensor_unfold,
                                _via_aten, _swallowing], ids=lambda f: f.__name__)
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


@pytest.mark.parametrize("owner, name, label, replacement", [
    (torch, "allclose", "torch.allclose", _always_true),
    (torch.Tensor, "allclose", "torch.Tensor.allclose", _always_true),
    (torch.Tensor, "__eq__", "torch.Tensor.__eq__", _always_true),
    # builtins stay working replacements here, or pytest itself would break
    (builtins, "isinstance", "builtins.isinstance", lambda obj, cls: _REAL_ISINSTANCE(obj, cls)),
    (builtins, "AssertionError", "builtins.AssertionError", type("AssertionError", (AssertionError,), {})),
    (core, "run_case", "convcourse.checks.core.run_case", _always_true),
], ids=lambda v: v if isinstance(v, str) else "")
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


@pytest.fixture
def sealed(monkeypatch):
    monkeypatch.setattr(_guard, "_SEALED", None)
    _guard.seal()
    assert _guard.tampering() == []
    return monkeypatch


def test_sealed_private_references_code_objects_and_suites(sealed):
    sealed.setattr(_guard, "allclose", lambda *a, **k: True)
    sealed.setattr(core.compare_tensors, "__code__", (lambda exercise, got, expected, inputs: None).__code__)
    sealed.setitem(core.REGISTRY["corr2d"].suites, "hidden", lambda: [])
    problems = _guard.tampering()
    assert "convcourse.checks._guard.allclose" in problems
    assert "convcourse.checks.core.compare_tensors" in problems
    assert "the test suites of 'corr2d'" in problems
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

    size = Exercise(name="test_only_size", lesson="tests", kind="value",
                    reference=lambda size, kernel_size: (size - kernel_size + 1,))
    assert run_case(size, lambda size, kernel_size: (size - kernel_size + 1,), dict(size=7, kernel_size=3)) is None
    message = failure(size, lambda size, kernel_size: AlwaysEqual(), size=7, kernel_size=3)
    assert "returned <a AlwaysEqual>" in message
    message = failure(size, lambda size, kernel_size: (AlwaysEqual(),), size=7, kernel_size=3)
    assert "return plain numbers" in message
