"""PNG encoding for widget redraws: rows stored unfiltered, zlib level 1.

Pillow (what matplotlib's ``savefig`` uses) tries PNG's five row filters on every row and keeps the best; for
a widget's picture (flat colours, lines and text) that is most of the encoding time and gains little: an
unfiltered RGBA PNG at zlib level 1 is 1.0-1.35x the size (20-50 KB) and takes a third to a half of the time
(``benchmarks/lesson_speed.py``). Lossless: the browser shows exactly the rendered pixels.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGBA_8BIT = (8, 6, 0, 0, 0)  # bit depth, colour type (RGBA), compression, filter method, no interlace


def png_bytes(rgba: np.ndarray, level: int = 1) -> bytes:
    """``rgba`` (height, width, 4) uint8, such as an Agg canvas's ``buffer_rgba()``, as a PNG file."""
    pixels = np.asarray(rgba)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 4:
        raise ValueError(f"expected a (height, width, 4) uint8 array, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    rows = np.zeros((height, 1 + 4 * width), dtype=np.uint8)  # each row: filter type 0 (none), then its pixels
    rows[:, 1:] = pixels.reshape(height, 4 * width)
    header = struct.pack(">II5B", width, height, *_RGBA_8BIT)
    return b"".join(
        [_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)), _chunk(b"IEND")]
    )


def _chunk(kind: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
