"""Widgets that update their figure in place (convcourse.widgets.in_place) show, after any sequence of control
moves, the same picture and alt text as a figure drawn from scratch for the same values (the scene the browser
paints, convcourse.scene, and the PNG of make html); the PNG,
rendered with kept glyph bitmaps (convcourse.glyphs) and written by convcourse.png, is pixel for
pixel what matplotlib's Agg canvas and Pillow make of it."""

import base64
import io

import ipywidgets
import numpy as np
import pytest
import torch
from IPython.core.interactiveshell import InteractiveShell
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from convcourse import glyphs, png
from convcourse.plots import figure_alt_text
from convcourse.scene import figure_scene
from convcourse.widgets import (
    MAX_WIDTH_PX,
    PICTURES_SWITCH,
    FigureView,
    KeptChecks,
    _value_key,
    checked_call,
    figure_output,
)
from convcourse.widgets.backward import OUTPUT_TO_INPUTS, backward_widget
from convcourse.widgets.capstone import feature_map_widget
from convcourse.widgets.channels import channels_widget
from convcourse.widgets.conv2d_module import layer_widget
from convcourse.widgets.device_dtype import cost_widget
from convcourse.widgets.dilation import dilation_widget
from convcourse.widgets.full_conv2d import conv2d_widget
from convcourse.widgets.groups import groups_widget
from convcourse.widgets.kernel_size import kernel_size_widget
from convcourse.widgets.padding import padding_widget
from convcourse.widgets.pooling import pooling_widget
from convcourse.widgets.sliding_window import sliding_window_widget
from convcourse.widgets.stride import stride_widget
from convcourse.widgets.transposed import transposed_widget
from convcourse.widgets.vectorized import im2col_widget


def pixels(figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def png_pixels(output: dict) -> np.ndarray:
    """The pixels of the PNG in a display_data output."""
    png = base64.b64decode(output["data"]["image/png"])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def pillow_png(rgba: np.ndarray) -> bytes:
    """What matplotlib's savefig writes: Pillow's PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(rgba)).save(buffer, format="png")
    return buffer.getvalue()


def matplotlib_png_pixels(figure, monkeypatch) -> np.ndarray:
    """The PNG a view would send for ``figure``, rendered by matplotlib's own Agg canvas (no kept glyphs) and
    written by Pillow."""
    with monkeypatch.context() as patch:
        patch.setattr(glyphs, "GlyphCacheCanvas", FigureCanvasAgg)
        patch.setattr(png, "png_bytes", pillow_png)
        return png_pixels(figure_output(figure))


def broken_backward(*args, **kwargs):
    raise IndexError("oops")


class Conv2d(torch.nn.Module):
    """A learner's Conv2d as lesson 12's widget finds them (named Conv2d, not torch's)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.weight = torch.nn.Parameter(0.3 * torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = torch.nn.Parameter(torch.zeros(out_channels))

    def forward(self, x):
        return torch.nn.functional.conv2d(x, self.weight, self.bias)


def capstone_widget():
    """Lesson 12's widget on a small untrained network of two Conv2d layers and three random digits."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        Conv2d(1, 4, 3), torch.nn.ReLU(), Conv2d(4, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 24 * 24, 10)
    )
    return feature_map_widget(model, torch.rand(3, 1, 28, 28), torch.tensor([1, 2, 3]))


WIDGETS = {
    "cost": (
        lambda: cost_widget(conv2d_flops=lambda **kw: 1000),
        [("kernel_size", 5), ("dtype", torch.float64), ("groups", 4), ("batch", 8)],
    ),
    "feature maps": (capstone_widget, [("index", 1), ("layer", "2"), ("index", 2), ("layer", "0")]),
    "channels": (
        lambda: channels_widget(torch.rand(3, 12, 14, dtype=torch.float64), conv2d_channels=lambda x, weight: x),
        [("o", 2), ("o", 3), ("o", 0)],
    ),
    "layer": (
        lambda: layer_widget(image=torch.rand(3, 20, 24)),
        [("out_channels", 2), ("kernel_size", 5), ("groups", 3), ("out_channels", 6), ("stride", 2), ("bias", False)],
    ),
    "backward": (
        lambda: backward_widget(conv2d_backward=broken_backward),
        [("mode", OUTPUT_TO_INPUTS), ("kernel_size", 2), ("padding", 0), ("dilation", 3), ("dilation", 1), ("row", 0)],
    ),
    "transposed": (
        transposed_widget,
        [("size", 4), ("stride", 2), ("output_padding", 2), ("output_padding", 1), ("kernel", 1), ("padding", 2)],
    ),
    "conv2d": (
        conv2d_widget,
        [("sh", 0), ("sh", 2), ("pixel", 3), ("kh", 5), ("h", 2), ("h", 7), ("groups", 2), ("bias", False)],
    ),
    "pooling": (
        pooling_widget,
        [("kind", "avg"), ("ph", 3), ("ph", 1), ("ceil_mode", True), ("pixel", 5), ("kind", "max")],
    ),
    "im2col": (
        im2col_widget,
        [("padding", 2), ("position", 7), ("kernel_size", 4), ("stride", 3), ("padding", 0)],
    ),
    "groups": (groups_widget, [("groups", 2), ("c_out", 6), ("groups", 2), ("c_in", 5), ("c_in", 4)]),
    "stride": (stride_widget, [("sw", 3), ("step", 4), ("w", 12), ("kh", 6), ("h", 3), ("h", 8)]),
    "sliding window": (
        lambda: sliding_window_widget(corr2d=lambda x, k: x[: len(x) - len(k) + 1, : x.shape[1] - k.shape[1] + 1]),
        [("step", 3), ("step", 11)],
    ),
    "kernel size": (
        lambda: kernel_size_widget(conv_output_size=lambda size, k: size - k + 1),
        [("kw", 10), ("kw", 2), ("h", 9), ("kh", 12)],
    ),
    "dilation": (
        lambda: dilation_widget(receptive_field=lambda kernel_size, dilations: 1 + sum(dilations)),
        [("layers", 4), ("kernel", 5), ("dilation", 4), ("layers", 1)],
    ),
    "padding": (
        lambda: padding_widget(pad2d=lambda x, pad, mode, value=0.0: x[..., :2, :2]),
        [("left", 5), ("mode", "circular"), ("left", 0), ("source", "'same'"), ("kernel_w", 5), ("mode", "constant")],
    ),
}


@pytest.fixture
def ipython():
    """The views render their PNG only inside IPython: a shell for this test, removed after it unless one was
    there before (tests of what happens outside IPython run in the same process)."""
    existed = InteractiveShell.initialized()
    yield InteractiveShell.instance()
    if not existed:
        InteractiveShell.clear_instance()


@pytest.mark.parametrize("name", WIDGETS)
def test_a_figure_updated_in_place_is_the_figure_drawn_afresh(name, ipython, monkeypatch):
    make, moves = WIDGETS[name]
    view = make()
    for control, value in moves:
        view.controls[control].value = value
        assert view.last_error is None
        fresh = view.draw.__wrapped__(figure=None, **view.values())
        # What the browser is sent to paint: the same drawing commands, alt text included.
        assert view.canvas.scene == figure_scene(fresh), (control, value)
        assert view.canvas.scene["alt"] == figure_alt_text(fresh)
        assert view.output.outputs == ()  # the Output holds errors only
    # And the picture make html shows, after the last move: the same pixels as matplotlib's own Agg and PNG writer
    # (four renderings, so once per widget; the scene, compared after every move, is what the redraws change).
    shown = figure_output(view.last_figure)
    assert np.array_equal(png_pixels(shown), matplotlib_png_pixels(fresh, monkeypatch))
    assert np.array_equal(pixels(view.last_figure), pixels(fresh))
    assert shown["metadata"]["image/png"]["alt"] == figure_alt_text(fresh)


@pytest.mark.parametrize("switch", [("NBGRADER_EXECUTION", "autograde"), ("CONVCOURSE_SELFCHECK_ACTIVE", "1")])
def test_a_widget_draws_nothing_while_its_notebook_is_graded(switch, ipython, monkeypatch):
    """Grading runs every cell, but nobody sees the widgets: they draw when a control first moves, not before."""
    for name in ("NBGRADER_EXECUTION", "CONVCOURSE_SELFCHECK_ACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(*switch)
    calls = []

    def draw(step):
        calls.append(step)
        return Figure()

    view = FigureView(draw, {"step": ipywidgets.IntSlider(value=1, min=0, max=3)})
    assert calls == [] and view.last_figure is None and view.canvas.scene == {}
    assert "not drawn while the notebook is graded" in view.status.value
    view.controls["step"].value = 2
    assert calls == [2] and view.last_figure is not None and view.status.value == ""
    monkeypatch.delenv(switch[0])
    FigureView(draw, {"step": ipywidgets.IntSlider(value=3)})
    assert calls == [2, 3]  # not graded: drawn at once


def test_a_widget_png_is_what_savefig_renders(ipython, monkeypatch):
    """In ``make html``'s kernel (:data:`PICTURES_SWITCH`) a view shows PNGs: its own rendering (dpi capped to the
    output area's width, kept glyphs, its PNG writer) against ``savefig`` at the same dpi, decoded by Pillow."""
    monkeypatch.setenv(PICTURES_SWITCH, "1")
    view = sliding_window_widget()
    assert view.canvas is None and view.canvas not in view.widget.children  # the Output has the picture
    view.controls["step"].value = 7
    fresh = view.draw.__wrapped__(figure=None, **view.values())
    dpi = min(fresh.dpi, MAX_WIDTH_PX / fresh.get_figwidth())
    buffer = io.BytesIO()
    fresh.savefig(buffer, format="png", dpi=dpi)
    expected = np.asarray(Image.open(buffer).convert("RGBA"))
    assert expected.shape[1] <= MAX_WIDTH_PX
    assert np.array_equal(png_pixels(view.output.outputs[0]), expected)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (37, 211)])
def test_png_bytes_round_trips_every_pixel(shape):
    rgba = np.random.default_rng(0).integers(0, 256, size=(*shape, 4), dtype=np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.png_bytes(rgba)))), rgba)


def test_png_bytes_refuses_what_is_not_rgba():
    with pytest.raises(ValueError, match="uint8"):
        png.png_bytes(np.zeros((4, 4, 3), dtype=np.uint8))


def test_kept_checks_answer_a_call_seen_before_by_the_values_of_its_inputs():
    from test_checks import corr2d

    calls = []

    def counted(x, k):
        calls.append(1)
        return corr2d(x, k)

    kept = KeptChecks(counted)
    x, k = torch.arange(12.0).reshape(3, 4), torch.ones(2, 2)
    first = checked_call("corr2d", kept, x=x, k=k)
    assert first[0] is True and len(calls) == 1
    assert checked_call("corr2d", kept, x=x.clone(), k=k.clone()) is first and len(calls) == 1  # equal values
    assert checked_call("corr2d", kept, x=x + 1, k=k)[0] is True and len(calls) == 2  # other values: called
    checked_call("corr2d", kept, x=x.to(torch.bfloat16), k=k.to(torch.bfloat16))  # any dtype is a key
    assert len(calls) == 3 and kept.calls == 3
    big = np.zeros(2000)
    changed = big.copy()
    changed[1000] = 1  # the same repr (numpy elides the middle), other contents
    assert repr(big) == repr(changed) and _value_key(big) != _value_key(changed)
