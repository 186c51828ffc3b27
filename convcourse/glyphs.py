"""A matplotlib Agg canvas that keeps the bitmaps of the glyphs it has rendered, for widget redraws.

matplotlib 3.11 renders text one glyph at a time (FreeType, through Python), every draw: about 0.1 ms per
character, the largest part of a widget's redraw (its titles, captions and verdict lines are long;
``benchmarks/lesson_speed.py``). A glyph's bitmap depends only on its font, size, dpi, hinting, rotation and
where it falls within a pixel (its position in 1/64 pixel, modulo one pixel); moved by whole pixels it is the
same bitmap, moved. :class:`GlyphCacheCanvas` renders each such glyph once per process and then only blends
the kept bitmap, through the same Agg call and at the same pixel as matplotlib would: the picture is pixel for
pixel matplotlib's (``tests/test_widgets_in_place.py`` checks it against a plain Agg canvas).

It uses matplotlib's private text layout and glyph rendering (``FT2Font._layout``, ``_set_transform``,
``_render_glyph``, ``RendererAgg._renderer.draw_text_image``) as matplotlib's own Agg renderer does, so it
follows the pinned matplotlib version; math text (``$...$``) is drawn by matplotlib itself.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
from matplotlib.ft2font import RenderMode

#: The most glyph bitmaps kept (the oldest dropped first): a few MB.
MAX_GLYPHS = 50_000

#: The most text layouts kept (one per string, font and dpi).
MAX_LAYOUTS = 4_000

_glyphs: OrderedDict[tuple, tuple[np.ndarray, int, int]] = OrderedDict()
_layouts: OrderedDict[tuple, list] = OrderedDict()


class GlyphCacheRenderer(RendererAgg):
    """:class:`~matplotlib.backends.backend_agg.RendererAgg` whose plain text reuses kept glyph bitmaps."""

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if ismath:
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        flags = get_hinting_flag()
        items = self._layout(s, prop, flags, mtext)
        size = prop.get_size_in_points()
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        rotation = (0x10000 * np.array([[cos, -sin], [sin, cos]])).round().astype(int)
        mode = RenderMode.NORMAL if gc.get_antialiased() else RenderMode.MONO
        style = (size, self.dpi, flags, mode, tuple(rotation.flat), mpl.rcParams["text.hinting_factor"])
        height = int(self.height)
        for item in items:
            # FreeType positions in 1/64 pixel, y upwards (as matplotlib's Agg renderer computes them)
            px = round(0x40 * (x + item.x * cos - item.y * sin))
            py = round(0x40 * (self.height - y + item.x * sin + item.y * cos))
            key = (item.ft_object.fname, item.ft_object.face_index, item.glyph_index, px & 63, py & 63, style)
            kept = _glyphs.get(key)
            if kept is None:
                kept = _render(item.ft_object, item.glyph_index, size, self.dpi, flags, mode, rotation, px, py)
                _glyphs[key] = kept
                if len(_glyphs) > MAX_GLYPHS:
                    _glyphs.popitem(last=False)
            buffer, left, top = kept
            bottom = height - ((py >> 6) + top) + buffer.shape[0]  # Agg's y is downwards, to the bitmap's bottom
            self._renderer.draw_text_image(buffer, (px >> 6) + left, bottom, 0, gc)

    def _layout(self, s: str, prop, flags, mtext) -> list:
        """The glyphs of ``s`` and their offsets (matplotlib's text layout), kept per string and font."""
        features = mtext.get_fontfeatures() if mtext is not None else None
        language = mtext.get_language() if mtext is not None else None
        factors = mpl.rcParams["text.kerning_factor"], mpl.rcParams["text.hinting_factor"]
        key = (s, hash(prop), self.dpi, flags, features, language, factors)
        items = _layouts.get(key)
        if items is None:
            items = self._prepare_font(prop)._layout(s, flags=flags, features=features, language=language)
            _layouts[key] = items
            if len(_layouts) > MAX_LAYOUTS:
                _layouts.popitem(last=False)
        return items


def _render(font, glyph_index: int, size: float, dpi: float, flags, mode, rotation, px: int, py: int):
    """The bitmap of one glyph at (px, py) (1/64 pixel), and its left and top edges relative to that pixel."""
    font.set_size(size, dpi)
    font._set_transform(rotation, [px, py])
    bitmap = font._render_glyph(glyph_index, flags, mode)
    buffer = np.array(bitmap.buffer)
    if mode == RenderMode.MONO:
        buffer *= 0xFF
    return buffer, bitmap.left - (px >> 6), bitmap.top - (py >> 6)


class GlyphCacheCanvas(FigureCanvasAgg):
    """An Agg canvas drawing with :class:`GlyphCacheRenderer`; what it renders is what ``FigureCanvasAgg`` would."""

    def get_renderer(self) -> GlyphCacheRenderer:
        width, height = self.get_width_height(physical=True)
        key = width, height, self.figure.dpi
        if self._lastKey != key:
            self.renderer = GlyphCacheRenderer(width, height, self.figure.dpi)
            self._lastKey = key
        return self.renderer
