"""A matplotlib figure as drawing commands that the learner's browser paints: the widgets' live view (issue 16).

A widget's update used to be a PNG: Agg rasterised every path, image and glyph in the kernel, the PNG was
encoded and sent, and the browser decoded it. Most of an update was that picture (``benchmarks/lesson_speed.py``).
Here matplotlib draws the same figure onto :class:`SceneRenderer`, which paints nothing: it writes down what it
is asked to paint, in canvas pixels (y downwards):

* paths (lines, patches, polygons, hatches) with their fill, stroke, dashes and clip;
* collections (grids of lines, glyph outlines of cell labels, markers) as each distinct path once plus one
  item per copy;
* images at their data's resolution (a 7×7 grid is 49 RGBA pixels, not the panel's 300×300), as
  matplotlib's vector backends receive them;
* text lines with their font, size, colour, angle and matplotlib's own layout (position and width); math
  text as matplotlib's glyph outlines.

``convcourse/scene.js`` paints these on an HTML canvas (:class:`SceneCanvas`, an anywidget view). A redraw then
costs the kernel the widget's draw function and this walk over the artists, and the browser a few milliseconds
of canvas calls. Text is drawn in the browser's copy of the font (DejaVu Sans where installed, else a
sans-serif of about its width), centred on each line where matplotlib centred it and never wider than
matplotlib's line; everything else is matplotlib's geometry.
"""

from __future__ import annotations

import contextlib
import json
import math
import pathlib
from typing import Iterator

import anywidget
import matplotlib.pyplot as plt
import numpy as np
import traitlets
from matplotlib.backend_bases import GraphicsContextBase, RendererBase
from matplotlib.font_manager import fontManager, get_font, weight_dict
from matplotlib.path import Path
from matplotlib.transforms import Affine2D

#: Fonts the browser is asked for, per matplotlib family: the font matplotlib used, then fonts of about its width.
_FALLBACKS = {
    "monospace": '"DejaVu Sans Mono", Menlo, Consolas, monospace',
    "serif": '"DejaVu Serif", Georgia, serif',
}
_SANS = '"DejaVu Sans", "Bitstream Vera Sans", Verdana, sans-serif'
_CAPS = {"butt": "butt", "round": "round", "projecting": "square"}


def _css(rgba) -> str:
    r, g, b, a = (float(v) for v in rgba)
    return f"rgba({round(r * 255)},{round(g * 255)},{round(b * 255)},{a:.3g})"


def _path_data(path: Path) -> dict:
    """A cleaned path's vertices (flat, 2 decimals) and codes; codes None for a polyline (MOVETO, LINETO...)."""
    vertices, codes = path.vertices, path.codes
    if codes is not None and len(codes) and codes[-1] == Path.STOP:
        vertices, codes = vertices[:-1], codes[:-1]
    data = {"d": np.round(vertices, 2).ravel().tolist()}
    polyline = codes is None or (len(codes) and codes[0] == Path.MOVETO and (codes[1:] == Path.LINETO).all())
    data["c"] = None if polyline else codes.tolist()
    return data


class SceneRenderer(RendererBase):
    """A matplotlib renderer that records drawing commands (:attr:`ops`) instead of painting pixels.

    Text metrics come from ``metrics`` (the Agg renderer of the same size and dpi), so every layout decision,
    titles and tick labels included, is the one Agg would make."""

    def __init__(self, width: int, height: int, dpi: float, metrics: RendererBase):
        super().__init__()
        self.width, self.height, self.dpi = width, height, dpi
        self.metrics = metrics
        self.ops: list[dict] = []

    # What matplotlib asks of a renderer before it draws.
    def flipy(self) -> bool:  # as Agg: text positions come y downwards, everything else y upwards
        return True

    def get_canvas_width_height(self):
        return self.width, self.height

    def points_to_pixels(self, points):
        return points * self.dpi / 72

    def get_text_width_height_descent(self, s, prop, ismath):
        # Kept per dpi for every renderer: matplotlib keeps them per renderer only, and a widget that builds a
        # new figure on each redraw would measure every string again.
        key = s, hash(prop), ismath, self.dpi
        size = _text_sizes.get(key)
        if size is None:
            if len(_text_sizes) > 8192:
                _text_sizes.clear()
            size = _text_sizes[key] = self.metrics.get_text_width_height_descent(s, prop, ismath)
        return size

    def _get_font_height_metrics(self, prop):
        # matplotlib's Text layout asks a renderer for these first, and otherwise looks up the font and reads its
        # tables for every text it lays out (a tenth of a redraw of a figure with many labels). The same values,
        # by the same arithmetic (``Text._get_layout``), kept per font, size and dpi (the figure's while it draws).
        key = hash(prop), self.dpi
        metrics = _height_metrics.get(key)
        if metrics is None:
            metrics = _height_metrics[key] = _font_height_metrics(prop, self.dpi)
        return metrics

    def option_image_nocomposite(self) -> bool:  # each image on its own, at its data's resolution
        return True

    def option_scale_image(self) -> bool:
        return True

    def get_image_magnification(self) -> float:
        return 1.0

    def new_gc(self) -> GraphicsContextBase:
        return GraphicsContextBase()

    # Drawing.
    def _style(self, gc: GraphicsContextBase, rgb_face) -> dict | None:
        """Fill, stroke, dashes, hatch and clip of a path; None when it paints nothing."""
        style: dict = {}
        if rgb_face is not None:
            alpha = gc.get_alpha() if gc.get_forced_alpha() or len(rgb_face) < 4 else rgb_face[3]
            if alpha > 0:
                style["f"] = _css((*rgb_face[:3], alpha))
        width = self.points_to_pixels(gc.get_linewidth())
        stroke = gc.get_rgb()
        if width > 0 and stroke[3] > 0:
            style["s"] = _css(stroke)
            style["lw"] = round(width, 3)
            self._stroke_details(gc, style)
        self._hatch(gc, style)
        if not style:
            return None
        self._clip(gc, style)
        return style

    def _stroke_details(self, gc: GraphicsContextBase, style: dict) -> None:
        """Dashes (pixels), cap and join where they are not the canvas's defaults."""
        offset, dashes = gc.get_dashes()
        if dashes is not None and len(dashes):
            style["dash"] = [round(self.points_to_pixels(d), 3) for d in dashes]
            style["doff"] = round(self.points_to_pixels(offset or 0), 3)
        if gc.get_capstyle() != "butt":
            style["cap"] = _CAPS[gc.get_capstyle()]
        if gc.get_joinstyle() != "miter":
            style["join"] = gc.get_joinstyle()

    def _hatch(self, gc: GraphicsContextBase, style: dict) -> None:
        """The hatch pattern's tile (one inch square, as Agg repeats it), its colour and line width."""
        if not gc.get_hatch():
            return
        tile = self.points_to_pixels(72)
        unit = gc.get_hatch_path().cleaned(transform=Affine2D().scale(tile, -tile).translate(0, tile), curves=True)
        style["h"] = {
            **_path_data(unit),
            "size": round(tile, 3),
            "s": _css(gc.get_hatch_color()),
            "lw": round(self.points_to_pixels(gc.get_hatch_linewidth()), 3),
        }

    def _clip(self, gc: GraphicsContextBase, op: dict) -> None:
        box = gc.get_clip_rectangle()
        if box is not None:
            op["clip"] = [round(v, 2) for v in (box.x0, self.height - box.y1, box.width, box.height)]
        path, transform = gc.get_clip_path()
        if path is not None:
            op["cp"] = _path_data(path.cleaned(transform=transform + self._flip(), curves=True))

    def _flip(self) -> Affine2D:
        return Affine2D().scale(1, -1).translate(0, self.height)

    def draw_path(self, gc, path, transform, rgbFace=None):
        style = self._style(gc, rgbFace)
        if style is None:
            return
        clip = (0, 0, self.width, self.height) if rgbFace is None and not gc.get_hatch() else None
        cleaned = path.cleaned(
            transform=transform + self._flip(),
            remove_nans=True,
            clip=clip,
            simplify=path.should_simplify and rgbFace is None and not gc.get_hatch(),
            curves=True,
            stroke_width=style.get("lw", 0),
            snap=gc.get_snap(),
        )
        self.ops.append({"o": "p", **_path_data(cleaned), **style})

    def draw_markers(self, gc, marker_path, marker_trans, path, trans, rgbFace=None):
        style = self._style(gc, rgbFace)
        if style is None:
            return
        marker = marker_path.cleaned(transform=marker_trans + Affine2D().scale(1, -1), curves=True)
        points = [vertices[-2:] for vertices, _code in path.iter_segments(trans, simplify=False) if len(vertices)]
        if points:
            xy = np.asarray(points, dtype=float)
            self.ops.append({"o": "pc", "paths": [_path_data(marker)], "xy": self._flat_xy(xy), **style})

    def _flat_xy(self, xy: np.ndarray) -> list:
        """Display points (y upwards) as canvas points (y downwards), flat, 2 decimals."""
        return np.round(np.column_stack([xy[:, 0], self.height - xy[:, 1]]), 2).ravel().tolist()

    def draw_path_collection(
        self, gc, master_transform, paths, all_transforms, offsets, offset_trans, facecolors, edgecolors,
        linewidths, linestyles, antialiaseds, urls, offset_position, *, hatchcolors=None,
    ):  # fmt: skip
        """As matplotlib's ``_iter_collection`` draws a collection (paths, offsets, colours and widths cycled to the
        longest), in columns: each distinct path once, then one offset, path index, fill and stroke per item."""
        facecolors = np.asarray(facecolors, dtype=float).reshape(-1, 4)
        edgecolors = np.asarray(edgecolors, dtype=float).reshape(-1, 4)
        if not len(paths) or (not len(facecolors) and not len(edgecolors) and not gc.get_hatch()):
            return
        defs, known, ids = [], {}, []
        for path, transform in self._iter_collection_raw_paths(master_transform, paths, all_transforms):
            matrix = transform.get_matrix()
            key = id(path), matrix.tobytes()
            if key not in known:
                known[key] = len(defs)
                relative = Affine2D(matrix).scale(1, -1)  # placed at each item's offset
                defs.append(_path_data(path.cleaned(transform=relative, remove_nans=True, curves=True)))
            ids.append(known[key])
        count = max(len(ids), len(offsets))
        items = np.arange(count)
        xy = offset_trans.transform(offsets)[items % len(offsets)] if len(offsets) else np.zeros((count, 2))
        keep = np.isfinite(xy).all(axis=1)
        items = items[keep]
        op: dict = {"o": "pc", "paths": defs, "xy": self._flat_xy(xy[keep])}
        if len(defs) > 1:
            op["i"] = np.asarray(ids)[items % len(ids)].tolist()
        css: dict[tuple, str | None] = {}

        def column(colors: np.ndarray, visible: np.ndarray) -> list | str | None:
            values = [
                css.setdefault(tuple(color), _css(color)) if shown else None for color, shown in zip(colors, visible)
            ]
            return values[0] if len(set(values)) == 1 else values

        if len(facecolors):
            fill = facecolors[items % len(facecolors)]
            if gc.get_forced_alpha():
                fill[:, 3] = gc.get_alpha()
            op["f"] = column(fill, fill[:, 3] > 0)
        if len(edgecolors):
            stroke = edgecolors[items % len(edgecolors)]
            if gc.get_forced_alpha():
                stroke[:, 3] = gc.get_alpha()
            widths = np.asarray(linewidths if len(linewidths) else [gc.get_linewidth()], dtype=float)
            widths = self.points_to_pixels(widths[items % len(widths)])
            op["s"] = column(stroke, (stroke[:, 3] > 0) & (widths > 0))
            op["lw"] = widths[0] if len(set(widths.tolist())) == 1 else np.round(widths, 3).tolist()
            if len(linestyles):
                gc.set_dashes(*linestyles[0])  # one dash pattern for the collection (matplotlib's collections have one)
            self._stroke_details(gc, op)
        self._hatch(gc, op)
        self._clip(gc, op)
        if op.get("f") is not None or op.get("s") is not None or "h" in op:
            self.ops.append(op)

    def draw_image(self, gc, x, y, im, transform=None):
        rows, cols = im.shape[:2]
        if rows == 0 or cols == 0:
            return
        if transform is None:  # already at the canvas's pixels, bottom left corner at (x, y)
            matrix = Affine2D().translate(x, self.height - y - rows)
        else:  # the data's pixels onto the unit square, then where matplotlib puts it (as its SVG backend)
            matrix = Affine2D().scale(1 / cols, 1 / rows) + transform + Affine2D().translate(x, y) + self._flip()
        a, c, e, b, d, f = matrix.get_matrix()[:2].ravel()
        op = {
            "o": "i",
            "w": cols,
            "h": rows,
            "rgba": np.ascontiguousarray(im, dtype=np.uint8).tobytes(),
            "m": [round(float(v), 4) for v in (a, b, c, d, e, f)],
            "smooth": bool(abs(a * d - b * c) < 1),  # shrunk: smooth it; enlarged: crisp pixels
        }
        if gc.get_alpha() is not None and gc.get_alpha() != 1:
            op["alpha"] = round(float(gc.get_alpha()), 3)
        self._clip(gc, op)
        self.ops.append(op)

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if ismath:  # math text (``$...$``, log axes' tick labels): matplotlib's layout of it, as glyph outlines
            return self._draw_math(gc, x, y, s, prop, angle, ismath)
        width, _height, _descent = self.get_text_width_height_descent(s, prop, ismath)
        theta = math.radians(angle)
        family = _families.get(hash(prop))
        if family is None:
            family = _families[hash(prop)] = self.metrics._prepare_font(prop).family_name
        generic = _FALLBACKS.get(prop.get_family()[0] if prop.get_family() else "", _SANS)
        weight = prop.get_weight()
        weight = weight if isinstance(weight, int) else weight_dict.get(weight, 400)
        size = self.points_to_pixels(prop.get_size_in_points())
        op = {
            "o": "t",
            "s": s,
            # The middle of the line on its baseline: the browser's font is centred where matplotlib's was.
            "x": round(x + width / 2 * math.cos(theta), 2),
            "y": round(y - width / 2 * math.sin(theta), 2),
            "a": round(float(angle), 3),
            "font": f'{prop.get_style()} {weight} {size:.2f}px "{family}", {generic.replace(f""""{family}", """, "")}',
            "f": _css(gc.get_rgb()),
            "w": round(width, 2),
        }
        self._clip(gc, op)
        self.ops.append(op)

    def _draw_math(self, gc, x, y, s, prop, angle, ismath) -> None:
        """As matplotlib's ``_draw_text_as_path``, with the outlines of each string kept (parsing math text is
        most of drawing it)."""
        key = s, hash(prop), ismath
        path = _math_paths.get(key)
        if path is None:
            if len(_math_paths) > 1024:
                _math_paths.clear()
            path = _math_paths[key] = Path(*self._text2path.get_text_path(prop, s, ismath=ismath))
        size = self.points_to_pixels(prop.get_size_in_points())
        transform = (
            Affine2D()
            .scale(size / self._text2path.FONT_SCALE)
            .rotate_deg(angle)
            .translate(x, self.height - y)  # y comes downwards (flipy), the path's transform upwards
        )
        gc.set_linewidth(0.0)
        self.draw_path(gc, path, transform, rgbFace=gc.get_rgb())


def _font_height_metrics(prop, dpi: float) -> tuple:
    """(ascent, descent, line gap) in pixels of ``prop``'s font at ``dpi`` as ``Text._get_layout`` reads them from
    the font's OS/2 or hhea table; Nones where it has neither (matplotlib then measures "lp")."""
    font = get_font(fontManager._find_fonts_by_props(prop))
    for table_name, gap, ascent, descent in (
        ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
        ("hhea", "lineGap", "ascent", "descent"),
    ):
        table = font.get_sfnt_table(table_name)
        if table is not None:
            scale = 1 / font.get_sfnt_table("head")["unitsPerEm"] * prop.get_size_in_points() * dpi / 72
            return table[ascent] * scale, -table[descent] * scale, table[gap] * scale
    return None, None, None


_math_paths: dict[tuple, Path] = {}
_height_metrics: dict[tuple, tuple] = {}
_families: dict[int, str] = {}
_text_sizes: dict[tuple, tuple] = {}
_renderers: dict[tuple, SceneRenderer] = {}


def _renderer(width: int, height: int, dpi: float) -> SceneRenderer:
    """One renderer per canvas size and dpi, kept (matplotlib keeps text layouts per renderer), measuring text
    with an Agg renderer of the same dpi (text sizes do not depend on the canvas's size)."""
    from matplotlib.backends.backend_agg import RendererAgg

    key = width, height, dpi
    renderer = _renderers.get(key)
    if renderer is None:
        if len(_renderers) > 64:
            _renderers.clear()
        renderer = _renderers[key] = SceneRenderer(width, height, dpi, RendererAgg(1, 1, dpi))
    renderer.ops = []
    return renderer


@contextlib.contextmanager
def _unsampled_images(figure: plt.Figure) -> Iterator[None]:
    """Images handed to the renderer at their data's resolution (as to matplotlib's SVG backend with
    ``interpolation="none"``): the browser scales them, crisp when enlarged."""
    images = [image for ax in figure.axes for image in ax.images] + list(figure.images)
    for image in images:
        image._check_unsampled_image = lambda: True
    try:
        yield
    finally:
        for image in images:
            image.__dict__.pop("_check_unsampled_image", None)


def _track_changes(ax) -> None:
    """Have ``ax`` note (``_convcourse_changed``) whenever matplotlib marks it stale: a change to it or to any of
    its artists (data, style, limits, position), whoever draws the figure afterwards (a PNG resets matplotlib's own
    flag, not this one)."""
    if ax.stale_callback is not None and ax.stale_callback is getattr(ax, "_convcourse_callback", None):
        return  # tracked already (matplotlib sets a new callback when the axes is added to a figure again)
    notify = ax.stale_callback

    def callback(artist, value):
        if value:
            ax._convcourse_changed = True
        if notify is not None:
            notify(artist, value)

    ax.stale_callback = ax._convcourse_callback = callback
    ax._convcourse_changed = True


@contextlib.contextmanager
def _unchanged_axes_kept(figure: plt.Figure, renderer: SceneRenderer) -> Iterator[None]:
    """Axes that nothing changed since the last scene of ``figure`` was recorded add the commands they recorded
    then instead of being walked again: a widget that redraws some panels of its figure
    (:func:`convcourse.widgets.in_place`) pays only for those. Kept per axes with the canvas size, dpi and the
    axes' position they were recorded at."""
    key = renderer.width, renderer.height, renderer.dpi
    for ax in figure.axes:
        _track_changes(ax)
    changed = {id(ax): ax._convcourse_changed for ax in figure.axes}

    def recorder(ax):
        def draw(renderer_):
            kept = getattr(ax, "_convcourse_scene", None)
            where = tuple(ax.get_position().bounds)
            if renderer_ is renderer and not changed[id(ax)] and kept is not None and kept[0] == (key, where):
                renderer.ops.extend(kept[1])
                ax.stale = False
                return
            start = len(renderer.ops)
            type(ax).draw(ax, renderer_)
            ax._convcourse_scene = ((key, where), renderer.ops[start:])

        return draw

    for ax in figure.axes:
        ax.draw = recorder(ax)
    try:
        yield
        for ax in figure.axes:  # what the draw itself did (an image panel's aspect applied again) is recorded
            ax._convcourse_changed = False
    finally:
        for ax in figure.axes:
            ax.__dict__.pop("draw", None)


def figure_scene(figure: plt.Figure) -> dict:
    """``figure`` as drawing commands for :class:`SceneCanvas`, at the size :func:`convcourse.widgets.figure_output`
    renders its PNG (at most :data:`~convcourse.widgets.MAX_WIDTH_PX` wide), with its alt text.

    Where a title, label or legend reaches past the figure's edges, ``view`` is the part of the canvas that
    shows all of it (the PNG would be cropped to it likewise)."""
    from .glyphs import GlyphCacheCanvas
    from .plots import figure_alt_text
    from .widgets import MAX_WIDTH_PX, _dpi, _pin_titles, _sticks_out

    canvas = figure.canvas if type(figure.canvas) is GlyphCacheCanvas else GlyphCacheCanvas(figure)
    _pin_titles(figure)
    dpi = min(float(figure.dpi), MAX_WIDTH_PX / max(float(figure.get_figwidth()), 1e-3))
    with _dpi(figure, dpi):
        width, height = canvas.get_width_height(physical=True)
        renderer = _renderer(width, height, dpi)
        with _unsampled_images(figure), _unchanged_axes_kept(figure, renderer):
            figure.draw(renderer)
        view = [0, 0, width, height]
        if _sticks_out(figure, renderer=renderer):
            box = figure.get_tightbbox(renderer).padded(0.1)  # inches, as savefig(bbox_inches="tight") pads
            x0, y0, x1, y1 = (v * dpi for v in (box.x0, box.y0, box.x1, box.y1))
            view = [round(float(x0), 2), round(float(height - y1), 2), int(x1 - x0), int(y1 - y0)]  # as the PNG
    scene = {"width": width, "height": height, "view": view, "ops": renderer.ops, "alt": figure_alt_text(figure)}
    if view != [0, 0, width, height]:  # beyond the figure, its background colour (as savefig fills it)
        scene["bg"] = _css(figure.get_facecolor())
    return scene


def scene_wire(scene: dict, _widget=None) -> dict:
    """What :class:`SceneCanvas` sends for ``scene``: its JSON as UTF-8 bytes (``json``), each image's pixels
    replaced by ``{"image": k}``, the k-th of ``images``. Both travel as binary frames of the message, so the
    kernel neither has ipywidgets walk the scene for buffers (element by element, every coordinate) nor the
    message's JSON escape it; ``scene.js`` decodes it. An empty scene is sent as it is."""
    if not scene:
        return {}
    images: list = []

    def image(value):
        if isinstance(value, (bytes, memoryview)):
            images.append(value)
            return {"image": len(images) - 1}
        raise TypeError(f"{type(value).__name__} in a scene")

    try:
        text = json.dumps(scene, separators=(",", ":"), default=image, allow_nan=False)
    except ValueError:  # a NaN or infinity: null in JSON (the browser skips what it cannot place)
        images.clear()
        text = json.dumps(_finite(scene), separators=(",", ":"), default=image, allow_nan=False)
    return {"json": text.encode("utf-8"), "images": images}


def _finite(value):
    """``value`` with every NaN and infinity (in dicts and lists) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


class SceneCanvas(anywidget.AnyWidget):
    """The browser side of a widget's picture: paints :attr:`scene` (:func:`figure_scene`) on an HTML canvas,
    sharp at the screen's pixel density, with the figure's alt text as its accessible name. The scene travels
    as :func:`scene_wire` makes it."""

    _esm = pathlib.Path(__file__).with_name("scene.js").read_text(encoding="utf-8")
    scene = traitlets.Dict().tag(sync=True, to_json=scene_wire)
