"""Lesson 12 helpers: find the course's Conv2d layers in a model, measure accuracy, plot training.

Plots accept ``None`` (nothing trained yet) and then draw a placeholder that says so, so that
notebook cells never crash before the learner's functions exist.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .plots import COLORS

#: The accuracy the capstone asks for on the held-out digits.
TARGET_ACCURACY = 0.97


def is_course_conv(module: nn.Module) -> bool:
    """True for a Conv2d written in a notebook (or the course): named Conv2d, not torch's, with a 4-D weight."""
    cls = type(module)
    return (
        cls.__name__ == "Conv2d"
        and not cls.__module__.startswith("torch")
        and not isinstance(module, nn.modules.conv._ConvNd)
        and isinstance(getattr(module, "weight", None), torch.Tensor)
        and module.weight.dim() == 4
    )


def course_convs(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every course Conv2d inside ``model``, in order."""
    return [(name or "(model)", m) for name, m in model.named_modules() if is_course_conv(m)]


def torch_convs(model: nn.Module) -> list[str]:
    """Names of torch's own convolution modules (nn.Conv2d and friends) inside ``model``."""
    return [name or "(model)" for name, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]


def model_device(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Fraction of ``x`` classified as ``y`` (the model is put in eval mode, on its own device)."""
    model.eval()
    device = model_device(model)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), x.dtype)
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size].to(device=device, dtype=dtype))
        correct += int((logits.argmax(1).cpu() == y[start : start + batch_size]).sum())
    return correct / max(len(x), 1)


def _placeholder(text: str, size: tuple[float, float] = (8, 2.2)) -> plt.Figure:
    fig, ax = plt.subplots(figsize=size)
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#555")
    return fig


def plot_history(history: dict | None, target: float = TARGET_ACCURACY) -> plt.Figure:
    """Loss and accuracy per epoch (train, and validation or test when the history has them)."""
    if not history or not history.get("loss"):
        return _placeholder("No training history yet: implement build_model and train_model.")
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    left.plot(epochs, history["loss"], marker="o", ms=3, color=COLORS["input"])
    left.set(xlabel="epoch", ylabel="mean cross-entropy", title="training loss", yscale="log")
    for key, label, color in (
        ("train_accuracy", "train", COLORS["input"]),
        ("val_accuracy", "validation", COLORS["output"]),
        ("test_accuracy", "test", COLORS["kernel"]),
    ):
        if history.get(key):
            right.plot(
                epochs[: len(history[key])], 100 * np.asarray(history[key]), marker="o", ms=3, label=label, color=color
            )
    right.axhline(100 * target, color=COLORS["highlight"], ls="--", lw=1, label=f"target {100 * target:.0f}%")
    right.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=(max(0, right.get_ylim()[0]), 100.5))
    right.legend(loc="lower right", fontsize=8)
    return fig


def plot_filters(model: nn.Module | None, *, columns: int = 8) -> plt.Figure:
    """The first course Conv2d's kernels (first input channel), red positive, blue negative."""
    convs = course_convs(model) if model is not None else []
    if not convs:
        return _placeholder("No model with a Conv2d yet: implement build_model.")
    name, conv = convs[0]
    weight = conv.weight.detach().float().cpu()[:, 0]
    n = weight.shape[0]
    rows = -(-n // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(1.1 * columns, 1.1 * rows + 0.4), squeeze=False, layout="constrained"
    )
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index < n:
            limit = float(weight[index].abs().max()) or 1.0
            ax.imshow(weight[index].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(str(index), fontsize=8)
    fig.suptitle(f"kernels of the first Conv2d ('{name}'), {tuple(conv.weight.shape)}", fontsize=10)
    return fig


def feature_maps(model: nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """{layer name: (C, H, W) output} of every course Conv2d for one (1, H, W) image, in order."""
    return maps_and_logits(model, image)[0]


@torch.no_grad()
def maps_and_logits(model: nn.Module, image: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """:func:`feature_maps` and the model's (classes,) output for one (1, H, W) image, from one forward pass in
    eval mode without autograd, on the CPU."""
    maps: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, name=name: maps.__setitem__(name, out[0].detach().cpu()))
        for name, m in course_convs(model)
    ]
    was_training = model.training
    try:
        model.eval()
        device = model_device(model)
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), image.dtype)
        logits = model(image[None].to(device=device, dtype=dtype))[0]
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return maps, logits.detach().cpu()


def mosaic(maps: torch.Tensor, columns: int = 8, gap: float = float("nan")) -> np.ndarray:
    """(C, H, W) maps tiled into one 2-D array, ``columns`` per row, separated by a 1-pixel gap."""
    c, h, w = maps.shape
    columns = max(1, min(columns, c))
    rows = -(-c // columns)
    out = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), gap, dtype=np.float64)
    for index in range(c):
        r, q = divmod(index, columns)
        out[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = maps[index].double().numpy()
    return out


def confusion_matrix(model: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """(classes, classes) counts: row = true label, column = prediction."""
    with torch.no_grad():
        model.eval()
        device = model_device(model)
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), x.dtype)
        predictions = model(x.to(device=device, dtype=dtype)).argmax(1).cpu()
    counts = torch.zeros(classes, classes, dtype=torch.int64)
    for truth, guess in zip(y.tolist(), predictions.tolist()):
        counts[truth, guess] += 1
    return counts


def show_mistakes(model: nn.Module | None, x: torch.Tensor, y: torch.Tensor, limit: int = 10) -> plt.Figure:
    """The first ``limit`` test digits the model gets wrong, titled 'true → predicted'."""
    if model is None:
        return _placeholder("No trained model yet.")
    with torch.no_grad():
        model.eval()
        device = model_device(model)
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), x.dtype)
        predictions = model(x.to(device=device, dtype=dtype)).argmax(1).cpu()
    wrong = (predictions != y).nonzero().flatten()[:limit].tolist()
    if not wrong:
        return _placeholder("No mistakes on these digits.")
    fig, axes = plt.subplots(1, len(wrong), figsize=(1.2 * len(wrong), 1.6), squeeze=False, layout="constrained")
    for ax, index in zip(axes[0], wrong):
        ax.imshow(x[index, 0].numpy(), cmap="gray_r")
        ax.set_axis_off()
        ax.set_title(f"{int(y[index])} → {int(predictions[index])}", fontsize=9)
    return fig


__all__: Sequence[str] = [
    "TARGET_ACCURACY",
    "is_course_conv",
    "course_convs",
    "torch_convs",
    "accuracy",
    "plot_history",
    "plot_filters",
    "feature_maps",
    "maps_and_logits",
    "mosaic",
    "confusion_matrix",
    "show_mistakes",
    "model_device",
]
