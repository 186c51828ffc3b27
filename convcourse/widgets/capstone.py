"""Lesson 12 widget: a test digit, what each of the model's Conv2d layers makes of it, and the prediction.

The model side is :func:`convcourse.training.maps_and_logits` (pure, headless); :func:`draw` renders one
digit; :func:`feature_map_widget` adds the controls.
"""

from __future__ import annotations

import ipywidgets as w
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..plots import COLORS
from ..training import course_convs, maps_and_logits, mosaic
from . import FigureView, in_place, reused_axes


def class_probabilities(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Softmax of the model's 10 logits for one (1, H, W) image, on the CPU."""
    return torch.softmax(maps_and_logits(model, image)[1].double(), 0)


class ModelViews:
    """What the widget shows of ``model`` for a digit, the feature maps and the class probabilities, from one
    forward pass, kept per digit: moving back to a digit, or picking another layer, runs no model. Kept while
    the model's parameters and buffers are the same tensors at the same version (torch counts every in-place
    change, an optimizer's step included), so a model trained further is run again."""

    def __init__(self, model: nn.Module, limit: int = 256):
        self.model, self.limit = model, limit
        self.runs = 0
        self._kept: dict[tuple, tuple[dict[str, torch.Tensor], np.ndarray]] = {}

    def __call__(self, index: int, image: torch.Tensor) -> tuple[dict[str, torch.Tensor], np.ndarray]:
        state = tuple((id(t), t._version) for t in (*self.model.parameters(), *self.model.buffers()))
        key = (index, state)
        if key not in self._kept:
            self.runs += 1
            maps, logits = maps_and_logits(self.model, image)
            if len(self._kept) >= self.limit:
                self._kept.clear()
            self._kept[key] = maps, torch.softmax(logits.double(), 0).numpy()
        return self._kept[key]


def draw(
    model: nn.Module | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    index: int,
    layer: str | None = None,
    figure: Figure | None = None,
    views: ModelViews | None = None,
) -> Figure:
    """Digit ``index``, the feature maps of ``layer`` (default: the first Conv2d) and the class probabilities.
    ``figure``: the figure of the last redraw, whose axes are reused (:func:`convcourse.widgets.in_place`).
    ``views``: the model's results kept across redraws (without it the model runs on this call)."""
    convs = course_convs(model) if model is not None else []
    layout = ("capstone", bool(convs))
    axes = reused_axes(figure, layout)
    if axes is None:
        # Fixed margins, not a layout engine: constrained layout would lay the figure out again on every redraw.
        fig = Figure(figsize=(11, 3.3))
        fig._convcourse_layout = layout
        axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 2.6, 1.4]})
        fig.subplots_adjust(left=0.015, right=0.975, top=0.88, bottom=0.16, wspace=0.12)
    else:
        fig = figure
    image, label = images[index], int(labels[index])
    axes[0].imshow(image[0].numpy(), cmap="gray_r")
    axes[0].set_title(f"test digit #{index} (label {label})")
    axes[0].set_axis_off()
    if not convs:
        for ax in axes[1:]:
            ax.set_axis_off()
        axes[1].text(
            0.5,
            0.5,
            "no model with a Conv2d yet:\nimplement build_model and train_model",
            ha="center",
            va="center",
            color="#555",
        )
        return fig
    maps, probabilities = (views or ModelViews(model))(index, image)
    name = layer if layer in maps else next(iter(maps))
    tiles = mosaic(maps[name])
    limit = float(np.nanmax(np.abs(tiles))) or 1.0
    axes[1].imshow(np.ma.masked_invalid(tiles), cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[1].set_title(f"'{name}' output: {maps[name].shape[0]} maps of {tuple(maps[name].shape[1:])}")
    axes[1].set_axis_off()
    guess = int(probabilities.argmax())
    colors = [COLORS["output"] if d == label else (COLORS["highlight"] if d == guess else "#bbb") for d in range(10)]
    axes[2].barh(range(10), probabilities, color=colors)
    if not axes[2].yaxis_inverted():  # a new axes (a reused one keeps its ticks and orientation)
        axes[2].set_yticks(range(10))
        axes[2].invert_yaxis()
    axes[2].set_xlim(0, 1)
    axes[2].set_title(f"prediction: {guess} {'✓' if guess == label else '✗'}")
    axes[2].set_xlabel("probability")
    return fig


def feature_map_widget(model: nn.Module | None, images: torch.Tensor, labels: torch.Tensor) -> FigureView:
    """Browse test digits and the feature maps each Conv2d layer of ``model`` computes for them."""
    names = [name for name, _ in course_convs(model)] if model is not None else []
    views = ModelViews(model) if model is not None else None
    controls = {
        "index": w.IntSlider(value=0, min=0, max=len(images) - 1, description="digit"),
        "layer": w.Dropdown(options=names or ["(none)"], description="layer"),
    }
    return FigureView(
        in_place(lambda index, layer, figure: draw(model, images, labels, index, layer, figure, views)),
        controls,
        title="Inside the network",
        description="Red: positive responses, blue: negative. Green bar: the true label; red bar: a wrong prediction.",
    )
