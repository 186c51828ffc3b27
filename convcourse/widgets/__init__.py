"""Interactive widgets. Each lesson's widget is a pure model (testable headless) plus a thin view.

The view side is always :func:`interactive_figure`: ipywidgets controls whose values are passed to
a ``draw(**values) -> Figure`` function, redrawn into an Output on every change.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping

import ipywidgets as w
import matplotlib.pyplot as plt


class FigureView:
    """Controls + an Output showing ``draw(**control_values)``; ``update()`` is the redraw path."""

    def __init__(self, draw: Callable[..., plt.Figure], controls: Mapping[str, w.ValueWidget],
                 *, title: str = "", description: str = ""):
        self.draw = draw
        self.controls = dict(controls)
        self.output = w.Output()
        self.status = w.HTML()
        self.last_figure: plt.Figure | None = None
        self.last_seconds: float = 0.0
        header = [w.HTML(f"<b>{title}</b>")] if title else []
        if description:
            header.append(w.HTML(f"<span style='color:#555'>{description}</span>"))
        self.widget = w.VBox(header + [w.HBox(list(self.controls.values()), layout=w.Layout(flex_flow="row wrap")),
                                       self.output, self.status])
        self.widget.add_class("convcourse-widget")
        for control in self.controls.values():
            control.observe(lambda _change: self.update(), names="value")
        self.update()

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def update(self) -> plt.Figure:
        from IPython.display import display

        start = time.perf_counter()
        figure = self.draw(**self.values())
        self.output.clear_output(wait=True)
        with self.output:
            display(figure)
        # Closed at once: the Output already holds the rendered image, and an open figure would be shown
        # again by the inline backend at the end of whatever cell runs next.
        plt.close(figure)
        self.last_figure = figure
        self.last_seconds = time.perf_counter() - start
        return figure

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)


def interactive_figure(draw: Callable[..., plt.Figure], controls: Mapping[str, w.ValueWidget], **kwargs) -> FigureView:
    """Build a :class:`FigureView` (display it as the last expression of a cell)."""
    return FigureView(draw, controls, **kwargs)
