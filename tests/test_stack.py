"""Lesson 12's stack: references equal to torch, the learner's pieces used when correct, fallbacks, grading."""

from __future__ import annotations

import copy

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convcourse import grading_mode
from convcourse.data import digits_split
from convcourse.stack import (
    ReferenceConv2d,
    assemble_stack,
    reference_conv2d_backward,
    reference_conv2d_fast,
    torch_twin,
    validation_split,
)

from course import REPO, run_in

LAYER_ARGUMENTS = [
    dict(),
    dict(stride=(2,)),
    dict(padding="valid"),
    dict(padding="same"),
    dict(padding=(1,)),
    dict(padding=1, padding_mode="reflect"),
    dict(padding="same", padding_mode="circular"),
    dict(dilation=(2, 1)),
    dict(padding=[1, 2]),
    dict(padding=(0,)),
    dict(dilation=(1,)),
    dict(groups=2, bias=False),
    dict(kernel_size=(3, 5), padding=(1, 2), stride=(1, 2), dilation=2, padding_mode="replicate"),
    dict(dilation=[2, 2], stride=[1, 2]),
    dict(kernel_size=(2, 4), padding="same", dilation=(2, 1)),
]


def learner_code() -> dict:
    """The answer keys of lessons 09, 10 and 11, run as a learner would paste them."""
    namespace: dict = {}
    exec("import math\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n", namespace)  # noqa: S102
    for lesson in ("09_vectorized", "10_conv2d_module", "11_backward"):
        notebook = nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
                exec(cell.source, namespace)  # noqa: S102
    return {name: namespace[name] for name in ("conv2d_fast", "Conv2d", "conv2d_backward", "Conv2dFunction")}


def gradients(layer, x, grad_output):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    leaves = [x, layer.weight] + ([layer.bias] if layer.bias is not None else [])
    return out, torch.autograd.grad(out, leaves, grad_output)


@pytest.mark.parametrize("arguments", LAYER_ARGUMENTS, ids=str)
def test_reference_layer_matches_nn_conv2d_in_repr_output_and_gradients(arguments):
    arguments = dict(arguments)
    kernel = arguments.pop("kernel_size", 3)
    torch.manual_seed(0)
    ours, theirs = ReferenceConv2d(4, 6, kernel, **arguments), nn.Conv2d(4, 6, kernel, **arguments)
    assert ours.extra_repr() == theirs.extra_repr()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, 11, 10, dtype=torch.float64)
    ours, theirs = ours.double(), theirs.double()
    assembled = assemble_stack({}).Conv2d(4, 6, kernel, **arguments).double()
    assembled.load_state_dict(ours.state_dict())
    assert repr(assembled) == repr(theirs)
    expected, expected_grads = gradients(theirs, x, torch.ones_like(theirs(x)))
    for layer in (ours, assembled):
        out, grads = gradients(layer, x, torch.ones_like(expected))
        torch.testing.assert_close(out, expected)
        for mine, right in zip(grads, expected_grads):
            torch.testing.assert_close(mine, right)
    torch.testing.assert_close(assembled(x[0]), theirs(x[0]))  # unbatched


def test_reference_functions_match_torch_with_groups_and_uneven_stride():
    torch.manual_seed(1)
    x = torch.randn(2, 6, 9, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    settings = ((2, 3), (1, 2), (1, 2), 2)
    out = F.conv2d(x, w, None, *settings)
    torch.testing.assert_close(reference_conv2d_fast(x.detach(), w.detach(), None, *settings), out.detach())
    grad_output = torch.randn_like(out)
    expected = torch.autograd.grad(out, (x, w), grad_output)
    grad_input, grad_weight, grad_bias = reference_conv2d_backward(grad_output, x.detach(), w.detach(), *settings)
    torch.testing.assert_close(grad_input, expected[0])
    torch.testing.assert_close(grad_weight, expected[1])
    torch.testing.assert_close(grad_bias, grad_output.sum((0, 2, 3)))


def test_the_learners_pieces_run_when_correct_and_are_counted():
    stack = assemble_stack(learner_code())
    assert [p.yours for p in stack.parts()] == [True, True, True], stack.report()
    assert stack.Conv2d.__name__ == "Conv2d" and stack.Conv2d._course_stack_base.__module__ != "convcourse.stack"
    torch.manual_seed(0)
    layer = stack.Conv2d(3, 5, 3, padding=1, stride=2)
    twin = torch_twin(nn.Sequential(layer))[0]
    assert isinstance(twin, nn.Conv2d)
    x = torch.randn(2, 3, 8, 8)
    out, grads = gradients(layer, x, torch.ones(2, 5, 4, 4))
    expected, expected_grads = gradients(twin, x, torch.ones(2, 5, 4, 4))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for mine, right in zip(grads, expected_grads):
        torch.testing.assert_close(mine, right, rtol=1e-5, atol=1e-5)
    assert stack.forward_part.calls == 1 and stack.backward_part.calls == 1
    report = stack.report()
    assert report.count("yours") == 3 and "passes the checks against torch" in report


def test_broken_pieces_fall_back_with_a_reason():
    pieces = learner_code()

    def raising(*args):
        raise NotImplementedError

    def wrong(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups) * 1.01

    class Conv2d(nn.Conv2d):
        pass

    class Conv2dFunction(pieces["Conv2dFunction"]):
        @staticmethod
        def backward(ctx, grad_output):
            grads = list(pieces["Conv2dFunction"].backward(ctx, grad_output))
            grads[1] = grads[1] * 2
            return tuple(grads)

    for namespace, part, reason in [
        ({"conv2d_fast": raising}, "forward_part", "raised NotImplementedError"),
        ({"conv2d_fast": wrong}, "forward_part", "differs from torch's"),
        ({"Conv2d": Conv2d}, "module_part", "subclasses torch's nn.Conv2d"),
        ({"Conv2d": 42}, "module_part", "not an nn.Module class"),
        ({"Conv2dFunction": Conv2dFunction}, "backward_part", "its grad_weight differs"),
    ]:
        stack = assemble_stack(namespace)
        chosen = getattr(stack, part)
        assert not chosen.yours and reason in chosen.why, (reason, stack.report())
        layer = stack.Conv2d(2, 3, 3)
        assert not isinstance(layer, nn.modules.conv._ConvNd)
        layer(torch.randn(1, 2, 5, 5)).sum().backward()
    nothing = assemble_stack({})
    assert all(not p.yours and p.why == "not pasted" for p in nothing.parts())


def test_reassembling_uses_the_learners_class_again():
    pieces = learner_code()
    first = assemble_stack(dict(pieces))
    second = assemble_stack({**pieces, "Conv2d": first.Conv2d})
    assert second.module_part.yours and second.Conv2d._course_stack_base is pieces["Conv2d"]


def test_validation_split_is_stratified_disjoint_and_complete():
    (x_train, y_train), _ = digits_split()
    (x_fit, y_fit), (x_val, y_val) = validation_split(x_train, y_train)
    assert len(x_fit) + len(x_val) == len(x_train) and len(y_val) == len(x_val)
    assert sorted((x_fit.flatten(1).sum(1)).tolist() + (x_val.flatten(1).sum(1)).tolist()) == sorted(
        x_train.flatten(1).sum(1).tolist()
    )
    for label in range(10):
        share = float((y_val == label).sum()) / float((y_train == label).sum())
        assert abs(share - 0.2) < 0.02
    with pytest.raises(ValueError):
        validation_split(x_train, y_train, fraction=1.0)


def test_grading_mode_reads_nbgraders_variable(monkeypatch):
    from convcourse import selfcheck

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv(selfcheck.ACTIVE_FLAG, raising=False)
    assert grading_mode() is False
    monkeypatch.setenv(selfcheck.ACTIVE_FLAG, "static HTML rendering")  # HTML pages show the demos
    assert grading_mode() is False
    monkeypatch.setenv(selfcheck.ACTIVE_FLAG, "1")  # a self-check runs the notebook as the grader does
    assert grading_mode() is True
    monkeypatch.delenv(selfcheck.ACTIVE_FLAG)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert grading_mode() is True


def test_torch_twin_copies_weights_and_arguments():
    stack = assemble_stack({})
    torch.manual_seed(0)
    model = nn.Sequential(
        stack.Conv2d(1, 4, 3, padding="same", padding_mode="reflect"),
        nn.ReLU(),
        stack.Conv2d(4, 2, 3, stride=2, bias=False),
    )
    twin = torch_twin(model)
    assert all(isinstance(twin[i], nn.Conv2d) for i in (0, 2)) and repr(twin[0]) == repr(model[0])
    x = torch.randn(3, 1, 9, 9)
    torch.testing.assert_close(twin(x), model(x), rtol=1e-5, atol=1e-6)
    assert copy.deepcopy(model)(x).shape == (3, 2, 4, 4)


def _pasted_capstone() -> nbformat.NotebookNode:
    """The capstone's answer key with the lessons 09-11 answer keys pasted into its three paste cells."""
    notebook = nbformat.read(REPO / "solutions" / "12_capstone" / "12_capstone.ipynb", as_version=4)
    sources = {}
    for lesson in ("09_vectorized", "10_conv2d_module", "11_backward"):
        key = nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
        sources[lesson[:2]] = "\n\n".join(
            c.source for c in key.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
        )
    for cell in notebook.cells:
        for number, source in sources.items():
            if cell.cell_type == "code" and cell.source.startswith(f"# Lesson {number}: paste your"):
                cell.source += "\n" + source
    return notebook


def test_capstone_grades_the_pasted_stack_and_trains_once(course_factory):
    """Real nbgrader: the learner's own stack gets full marks, the report says 'yours', demos are skipped."""
    lesson = "12_capstone"
    course = course_factory([lesson], students=["pasted"])
    run_in(course, ["generate_assignment", lesson, "--force"])
    course.submit(lesson, "pasted", _pasted_capstone())
    run_in(course, ["autograde", lesson, "--force"])
    assert course.total(lesson, "pasted") == course.max_score(lesson), course.scores(lesson, "pasted")
    executed = course.autograded(lesson, "pasted")

    def output_of(prefix: str) -> str:
        cell = next(c for c in executed.cells if c.cell_type == "code" and c.source.startswith(prefix))
        return "".join(o.get("text", "") for o in cell.outputs)

    report = output_of("stack = assemble_stack(globals())")
    assert report.count("yours") == 3, report
    assert "skipped while grading" in output_of("explore_history = None")
    assert "skipped while grading" in output_of("if grading_mode() or model is None")
    after = output_of('model = globals().get("graded_model")')
    assert "test accuracy of the graded model" in after
    # One training run: 15 epochs x 43 mini-batches x 3 layers backward calls, no more.
    backward_line = next(line for line in after.splitlines() if line.startswith("Conv2dFunction"))
    assert f"{15 * 43 * 3:,}" in backward_line.split(), after
