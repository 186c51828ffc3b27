"""Lesson 12: training helpers, the feature-map widget, and the build_model / train_model checks."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from convcourse import training
from convcourse.checks import GradingError, check
from convcourse.data import digits_split
from convcourse.widgets.capstone import ModelViews, class_probabilities, draw, feature_map_widget


class Conv2d(nn.Module):
    """A minimal course-style Conv2d written here (loops over taps), independent of the notebook's."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=0):
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = (1, 1), (padding, padding), (1, 1), 1
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -0.1, 0.1)

    def forward(self, x):
        p = self.padding[0]
        x = F.pad(x, (p, p, p, p))
        k = self.weight.shape[-1]
        h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
        out = self.bias.view(1, -1, 1, 1).expand(x.shape[0], -1, h, w)
        for a in range(k):
            for b in range(k):
                out = out + torch.einsum("nchw,oc->nohw", x[:, :, a : a + h, b : b + w], self.weight[:, :, a, b])
        return out


class FakeConv2d(Conv2d):
    """Named Conv2d, has a weight, but its forward is not a convolution."""

    def forward(self, x):
        return super().forward(x).flip(-1)


FakeConv2d.__name__ = "Conv2d"


def small_model(conv=Conv2d):
    torch.manual_seed(0)
    return nn.Sequential(conv(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 16, 10))


def good_train(model, x_train, y_train, epochs=15, batch_size=32, lr=3e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    history = {"loss": []}
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history["loss"].append(total / len(order))
    return history


@pytest.fixture(scope="module")
def data():
    return digits_split()


def fails(exercise, fn, *texts, **inputs):
    with pytest.raises(GradingError) as info:
        check(exercise, fn, **inputs)
    for text in texts:
        assert text in str(info.value), str(info.value)


# ----------------------------------------------------------------------------- helpers and plots


def test_conv_detection_accuracy_and_mosaic(data):
    (x_train, y_train), (x_test, y_test) = data
    model = small_model()
    assert [n for n, _ in training.course_convs(model)] == ["0"] and training.torch_convs(model) == []
    torch_model = nn.Sequential(nn.Conv2d(1, 2, 3))
    assert training.torch_convs(torch_model) == ["0"] and training.course_convs(torch_model) == []
    acc = training.accuracy(model, x_test, y_test)
    logits = model(x_test)
    assert acc == pytest.approx(float((logits.argmax(1) == y_test).double().mean()))
    counts = training.confusion_matrix(model, x_test, y_test)
    assert counts.shape == (10, 10) and int(counts.sum()) == len(y_test)
    assert int(counts.trace()) == round(acc * len(y_test))
    maps = training.feature_maps(model, x_test[0])
    assert list(maps) == ["0"] and tuple(maps["0"].shape) == (16, 8, 8)
    tiles = training.mosaic(maps["0"], columns=4)
    assert tiles.shape == (4 * 9 - 1, 4 * 9 - 1) and math.isnan(tiles[8, 0])
    assert torch.allclose(torch.from_numpy(tiles[:8, 9:17]), maps["0"][1].double())
    probabilities = class_probabilities(model, x_test[0])
    assert probabilities.shape == (10,) and float(probabilities.sum()) == pytest.approx(1.0)


def test_plots_with_and_without_a_model(data):
    (_, _), (x_test, y_test) = data
    model = small_model()
    for fig in (training.plot_history(None), training.plot_filters(None), training.show_mistakes(None, x_test, y_test)):
        assert " ".join(t.get_text() for t in fig.axes[0].texts).startswith("No ")
    history = {"loss": [2.0, 1.0, 0.5], "train_accuracy": [0.5, 0.8, 0.9], "test_accuracy": [0.5, 0.7, 0.95]}
    fig = training.plot_history(history)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 3  # train, test, target line
    fig = training.plot_filters(model)
    assert sum(1 for ax in fig.axes if ax.images) == 16
    assert isinstance(training.show_mistakes(model, x_test[:40], y_test[:40]), plt.Figure)
    plt.close("all")


def test_widget_draw_and_view(data):
    (_, _), (x_test, y_test) = data
    fig = draw(None, x_test, y_test, 0)
    assert isinstance(fig, Figure) and "implement build_model" in " ".join(t.get_text() for t in fig.axes[1].texts)
    model = small_model()
    fig = draw(model, x_test, y_test, 3, "0")
    assert "'0' output: 16 maps" in fig.axes[1].get_title() and len(fig.axes[2].patches) == 10
    view = feature_map_widget(model, x_test, y_test)
    first = view.last_figure
    view.controls["index"].value = 5
    assert view.last_figure is first and "#5" in first.axes[0].get_title()  # redrawn in place
    probabilities = [p.get_width() for p in first.axes[2].patches]
    assert probabilities == pytest.approx(class_probabilities(model, x_test[5]).tolist())


def test_the_widget_runs_the_model_once_per_digit_until_the_model_changes(data):
    (_, _), (x_test, y_test) = data
    model = small_model()
    views = ModelViews(model)
    maps, probabilities = views(5, x_test[5])
    assert torch.equal(maps["0"], training.feature_maps(model, x_test[5])["0"])
    assert probabilities == pytest.approx(class_probabilities(model, x_test[5]).numpy())
    views(5, x_test[5])
    assert views.runs == 1  # kept: the same digit, the same model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    F.cross_entropy(model(x_test[:32]), y_test[:32]).backward()
    optimizer.step()  # trained further, in place
    changed, _ = views(5, x_test[5])
    assert views.runs == 2 and not torch.equal(changed["0"], maps["0"])
    empty = feature_map_widget(None, x_test, y_test)
    assert empty.controls["layer"].options == ("(none)",)
    plt.close("all")


# ----------------------------------------------------------------------------- build_model checks


def test_build_model_accepts_course_conv_models():
    assert check("build_model", small_model) and check("build_model_float64", small_model)


def test_build_model_rejects_torch_convs_and_fakes():
    fails(
        "build_model",
        lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10)),
        "uses torch's own convolution",
        "'0'",
        "Conv2d",
    )

    def mixed():
        return nn.Sequential(Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.Linear(144, 10))

    fails("build_model", mixed, "uses torch's own convolution", "'1'")
    fails("build_model", lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), "no Conv2d from this notebook")

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = Conv2d(1, 2, 3)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x):
            return self.head(x)

    fails("build_model", Unused, "never ran through your Conv2d")
    fails("build_model", lambda: small_model(FakeConv2d), "does not compute a convolution")
    fails("build_model", lambda: nn.Sequential(Conv2d(1, 2, 3), nn.Flatten()), "it must give (16, 10)")
    fails("build_model", lambda: "a model", "should return an nn.Module")


# ----------------------------------------------------------------------------- train_model checks


def test_train_model_passes_with_enough_accuracy_and_float64(data):
    (x_train, y_train), _ = data
    model = small_model()
    assert check("train_model", good_train, model=model, x_train=x_train, y_train=y_train)
    assert check("trained_model_float64", lambda: model)


def test_train_model_failures(data):
    (x_train, y_train), _ = data
    fails(
        "train_model",
        lambda model, x_train, y_train: good_train(model, x_train, y_train, epochs=1, lr=1e-5),
        "below the 97% target",
        model=small_model(),
        x_train=x_train,
        y_train=y_train,
    )
    fails(
        "train_model",
        lambda model, x_train, y_train: None,
        "should return its history",
        model=small_model(),
        x_train=x_train,
        y_train=y_train,
    )
    fails(
        "train_model",
        lambda model, x_train, y_train: {"loss": [float("nan")]},
        "NaN",
        model=small_model(),
        x_train=x_train,
        y_train=y_train,
    )
    fails(
        "train_model",
        good_train,
        "x_train, y_train from digits_split()",
        model=small_model(),
        x_train=x_train[:100],
        y_train=y_train[:100],
    )
    torch_model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10))
    fails(
        "train_model",
        lambda model, x_train, y_train: good_train(model, x_train, y_train, epochs=1),
        "uses torch's own convolution",
        model=torch_model,
        x_train=x_train,
        y_train=y_train,
    )
    fails("trained_model_float64", lambda: small_model(), "below the 97% target")  # untrained


def test_train_reference_seeds_everything(data):
    (x_train, y_train), _ = data
    draws = []

    def record(model, x_train, y_train):
        draws.append(torch.rand(3))
        return good_train(model, x_train, y_train)

    for _ in range(2):
        torch.manual_seed(len(draws) + 123)
        assert check("train_model", record, model=small_model(), x_train=x_train, y_train=y_train)
    assert torch.equal(draws[0], draws[1])
