"""Lesson 12: ``build_model()`` and ``train_model(model, x_train, y_train, ...)`` on the digits.

Graded: the model is built from the notebook's own Conv2d (no torch.nn.Conv2d anywhere, at least
one course Conv2d, and the forward pass really runs through it and computes what F.conv2d computes
with that layer's weights), and after ``train_model`` it classifies at least 97% of the held-out
digits of ``digits_split()`` correctly. Hidden checks repeat both in float64.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from ... import training
from ...data import digits_split
from .. import _guard
from ..core import Exercise, Inputs, custom, register
from ..quiz import Question, register_question

EXAMPLE_BATCH = 16


def _layer_settings(conv: nn.Module) -> tuple | None:
    """F.conv2d arguments of a course Conv2d, or None when it cannot be checked that way."""
    if getattr(conv, "padding_mode", "zeros") != "zeros":
        return None
    try:
        return (conv.stride, conv.padding, conv.dilation, conv.groups)
    except AttributeError:
        return None


def _run_through_convs(model: nn.Module, x: torch.Tensor, rtol: float, atol: float) -> tuple[str | None, Any]:
    """Forward ``x`` with hooks on every course Conv2d; check calls and outputs. (message, logits)."""
    convs = training.course_convs(model)
    calls = {name: 0 for name, _ in convs}
    problems: list[str] = []

    seen: list[tuple] = []

    def hook(module, inputs, output, name):
        # Only private copies here: F.conv2d's answer is computed after the learner's forward has returned.
        calls[name] += 1
        settings = _layer_settings(module)
        if settings is None or calls[name] > 1 or not inputs or not _guard.is_tensor(inputs[0]):
            return
        copy_of = lambda t: None if t is None else t.detach().clone()  # noqa: E731
        seen.append(
            (
                name,
                copy_of(inputs[0]),
                copy_of(module.weight),
                copy_of(module.bias),
                settings,
                copy_of(output) if _guard.is_tensor(output) else output,
            )
        )

    def compare(name, x_in, weight, bias, settings, output):
        try:
            expected = _guard.conv2d(x_in, weight, bias, *settings)
        except Exception as error:  # noqa: BLE001
            problems.append(f"layer '{name}' has settings F.conv2d rejects ({type(error).__name__}: {error})")
            return
        if not _guard.is_tensor(output) or tuple(output.shape) != tuple(expected.shape):
            problems.append(
                f"layer '{name}' returned {tuple(getattr(output, 'shape', ()))}, but F.conv2d with its "
                f"weight gives {tuple(expected.shape)}"
            )
        elif not _guard.allclose(output.detach().double(), expected.detach().double(), rtol=rtol, atol=atol):
            worst = float((output.detach().double() - expected.detach().double()).abs().max())
            problems.append(
                f"layer '{name}' does not compute a convolution: its output differs from F.conv2d "
                f"with its own weight, bias, stride, padding, dilation and groups (largest error "
                f"{worst:.3g}); check your Conv2d's forward"
            )

    handles = [m.register_forward_hook(lambda mod, i, o, name=name: hook(mod, i, o, name)) for name, m in convs]
    try:
        with torch.no_grad():
            logits = model(x)
    except Exception as error:  # noqa: BLE001
        return (
            f"the model's forward pass on a batch {tuple(x.shape)} of digits raised {type(error).__name__}: {error}",
            None,
        )
    finally:
        for handle in handles:
            handle.remove()
    for record in seen:
        compare(*record)
    seen.clear()  # the private copies are not needed any more
    if not any(calls.values()):
        return (
            "the forward pass never ran through your Conv2d layers (they exist in the model but are not "
            "called): use them in forward / in the nn.Sequential."
        ), logits
    if problems:
        return problems[0] + ".", logits
    return None, logits


def model_problem(model: Any, *, dtype: torch.dtype = torch.float32) -> str | None:
    """Why ``model`` does not qualify (torch convs, no course Conv2d, not run, wrong output), or None."""
    if not isinstance(model, nn.Module):
        return f"build_model should return an nn.Module, but it returned {type(model).__name__}."
    torch_layers = training.torch_convs(model)
    if torch_layers:
        return (
            f"the model uses torch's own convolution (layer '{torch_layers[0]}' is a "
            f"{type(dict(model.named_modules()).get(torch_layers[0], model)).__name__}). Build it from the "
            "notebook's Conv2d instead of torch.nn.Conv2d."
        )
    if not training.course_convs(model):
        return (
            "the model has no Conv2d from this notebook. Use the Conv2d class defined above (or your own "
            "from lesson 10) for the convolution layers."
        )
    probe = copy.deepcopy(model).to(dtype)
    probe.eval()
    (x_train, _), _ = digits_split()
    x = x_train[:EXAMPLE_BATCH].to(device=training.model_device(probe), dtype=dtype)
    tolerance = (1e-6, 1e-8) if dtype == torch.float64 else (1e-4, 1e-5)
    problem, logits = _run_through_convs(probe, x, *tolerance)
    if problem:
        return f"Your model: {problem}"
    if not _guard.is_tensor(logits) or tuple(logits.shape) != (EXAMPLE_BATCH, 10):
        shape = tuple(logits.shape) if _guard.is_tensor(logits) else type(logits).__name__
        return (
            f"Your model maps a batch of {EXAMPLE_BATCH} digits (N, 1, 8, 8) to {shape}; it must give "
            f"({EXAMPLE_BATCH}, 10): one score (logit) per digit class."
        )
    if logits.dtype != dtype:
        return f"Your model's output has dtype {logits.dtype} after model.to({dtype}); keep the input's dtype."
    return None


def _nothing(**_inputs):
    return None


def _verdict(got: Any, expected: Any, inputs: Inputs) -> str | None:
    return got


# The model checks run the learner's forward, so they run in collect (right after the learner's call,
# with nothing of the grader's in reach; the F.conv2d comparisons happen after each forward pass).
register(
    Exercise(
        name="build_model",
        lesson="12_capstone",
        reference=_nothing,
        comparison=custom(_verdict, collect=lambda exercise, got, inputs: model_problem(got)),
        suites={"visible": lambda: [{}]},
    )
)
register(
    Exercise(
        name="build_model_float64",
        lesson="12_capstone",
        reference=_nothing,
        comparison=custom(_verdict, collect=lambda exercise, got, inputs: model_problem(got, dtype=torch.float64)),
        suites={"hidden": lambda: [{}]},
    )
)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) so that training is repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _seed_before_training(inputs: Inputs) -> None:
    """Runs right before the learner's train_model: fix every random number generator."""
    seed_everything(0)


def _train_reference(model=None, x_train=None, y_train=None, **_options):
    seed_everything(0)
    return digits_split()[1]


def _accuracy_problem(model: nn.Module, test: tuple[torch.Tensor, torch.Tensor], dtype: torch.dtype) -> str | None:
    x_test, y_test = test
    probe = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
    try:
        score = training.accuracy(probe, x_test.to(dtype), y_test)
    except Exception as error:  # noqa: BLE001
        return f"evaluating the trained model on the test digits raised {type(error).__name__}: {error}"
    if score < training.TARGET_ACCURACY:
        where = "" if dtype == torch.float32 else " (in float64)"
        return (
            f"test accuracy{where} is {100 * score:.1f}%, below the {100 * training.TARGET_ACCURACY:.0f}% "
            "target. Train for more epochs, tune the learning rate, or make the network a little wider; "
            "look at the loss curve: is it still falling?"
        )
    return None


def _collect_training(exercise: Exercise, got: Any, inputs: Inputs) -> str | None:
    return _compare_training(got, digits_split()[1], inputs)


def _compare_training(got: Any, expected: tuple[torch.Tensor, torch.Tensor], inputs: Inputs) -> str | None:
    model = inputs["model"]
    (x_train, y_train), _ = digits_split()
    if not (
        _guard.is_tensor(inputs.get("x_train"))
        and tuple(inputs["x_train"].shape) == tuple(x_train.shape)
        and bool(torch.equal(inputs["x_train"].cpu(), x_train))
        and bool(torch.equal(inputs["y_train"].cpu(), y_train))
    ):
        return "train_model must be graded on x_train, y_train from digits_split() (the setup cell's)."
    if not isinstance(got, dict) or not isinstance(got.get("loss"), (list, tuple)) or not got["loss"]:
        return (
            "train_model should return its history: a dict with at least 'loss', a list with the mean "
            f"training loss of each epoch. It returned {type(got).__name__}."
        )
    if not all(np.isfinite(float(v)) for v in got["loss"]):
        return "the training loss became NaN or infinite: lower the learning rate."
    problem = model_problem(model)
    if problem:
        return problem
    return _accuracy_problem(model, expected, torch.float32)


register(
    Exercise(
        name="train_model",
        lesson="12_capstone",
        reference=_train_reference,
        comparison=custom(_verdict, collect=_collect_training),
        prepare=_seed_before_training,
    )
)


def _compare_trained_float64(got: Any, expected: Any, inputs: Inputs) -> str | None:
    problem = model_problem(got, dtype=torch.float64)
    if problem:
        return problem
    return _accuracy_problem(got, digits_split()[1], torch.float64)


register(
    Exercise(
        name="trained_model_float64",
        lesson="12_capstone",
        reference=_nothing,
        comparison=custom(_verdict, collect=lambda exercise, got, inputs: _compare_trained_float64(got, None, inputs)),
    )
)


# Check your understanding -------------------------------------------------------------------------


def _steps_per_epoch() -> int:
    (x_train, _), _ = digits_split()
    return math.ceil(len(x_train) / 32)


def _pooled_shape() -> tuple[int, ...]:
    return tuple(nn.MaxPool2d(2)(torch.zeros(5, 32, 8, 8)).shape)


def _two_layer_receptive_field() -> int:
    """Rows of the input that one output pixel of two stacked 3x3 convolutions depends on (via its gradient)."""
    x = torch.zeros(1, 1, 11, 11, requires_grad=True)
    ones = torch.ones(1, 1, 3, 3)
    out = _guard.conv2d(_guard.conv2d(x, ones, None, 1, 0, 1, 1), ones, None, 1, 0, 1, 1)
    out[0, 0, 3, 3].backward()
    return int((x.grad[0, 0] != 0).any(dim=1).sum())


register_question(
    Question(
        name="12_capstone.q1",
        lesson="12_capstone",
        answer=_steps_per_epoch,
        form="an int",
        explain="One step per mini-batch: the 1,347 training digits make ⌈1347 / 32⌉ = 43 batches (the last one holds "
        "the 3 digits left over).",
    )
)
register_question(
    Question(
        name="12_capstone.q2",
        lesson="12_capstone",
        answer=_pooled_shape,
        form="a tuple of four ints",
        explain="MaxPool2d(2) has kernel_size 2 and stride 2 (stride defaults to the kernel size): each 2×2 block "
        "becomes one pixel, so 8×8 becomes 4×4; batch and channels are kept.",
    )
)
register_question(
    Question(
        name="12_capstone.q3",
        lesson="12_capstone",
        answer=lambda: 13,
        form="an int",
        explain="The 1,797 digits are the test set of the UCI data set, which its description says was written by "
        "13 people (a different 30 of the 43 wrote the UCI training set).",
    )
)
register_question(
    Question(
        name="12_capstone.q4",
        lesson="12_capstone",
        answer=_two_layer_receptive_field,
        form="an int",
        explain="Each output of the second layer reads 3 outputs of the first per side, and those reach one more "
        "pixel on each side: 3 + 2 = 5 (receptive field k1 + k2 - 1, lesson 06).",
    )
)
