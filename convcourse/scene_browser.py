"""Scenes (:mod:`convcourse.scene`) painted by headless Chromium with the widgets' own script, ``scene.js``: how
the tests compare the browser's picture with matplotlib's, and how ``benchmarks/lesson_speed.py`` times the
browser's side of a redraw. Needs playwright (the ``dev`` extra) and Chromium (``make browser-deps``)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = Path(__file__).with_name("scene.js")

_PAGE_SCRIPT = """
import { paintScene, sceneOf } from '%s';
const canvas = document.getElementById('scene');
const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
// The whole of what a redraw costs the browser: decode the scene the kernel sent (its binary frames arrive as
// bytes: base64 here is only the way into the page, not timed), paint it, and make Chromium rasterise it now
// (reading a pixel back) instead of at the next frame.
window.paintTimed = (text) => {
  const sent = JSON.parse(text);
  const wire = { json: bytes(sent.json), images: sent.images.map(bytes) };
  const start = performance.now();
  paintScene(canvas, sceneOf(wire));
  canvas.getContext('2d').getImageData(0, 0, 1, 1);
  return performance.now() - start;
};
window.pixels = () => canvas.toDataURL('image/png');
window.sceneReady = true;
"""


def chromium_missing() -> str | None:
    """Why scenes cannot be painted here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make test installs the dev extra)"
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        return f"{CHROMIUM} is missing (make browser-deps installs it)"
    return None


def wire_text(scene: dict) -> str:
    """What the kernel sends for ``scene`` (:func:`convcourse.scene.scene_wire`), its binary frames as base64,
    in one line of JSON: a redraw's message kept for painting later (``benchmarks/lesson_speed.py``)."""
    from .scene import scene_wire

    wire = scene_wire(scene)
    encode = lambda data: base64.b64encode(bytes(data)).decode("ascii")  # noqa: E731
    return json.dumps({"json": encode(wire["json"]), "images": [encode(image) for image in wire["images"]]})


def wire_size(text: str) -> int:
    """Bytes the kernel sends for a scene kept as :func:`wire_text`: its JSON and its images, unencoded."""
    sent = json.loads(text)
    return sum(len(base64.b64decode(part)) for part in [sent["json"], *sent["images"]])


class ScenePainter:
    """A Chromium page that paints scenes with ``scene.js`` at a device pixel ratio of 1."""

    def __init__(self, page):
        self.page = page
        module = "data:text/javascript;base64," + base64.b64encode(SCRIPT.read_bytes()).decode("ascii")
        page.set_content(
            "<html><body style='margin:0'><canvas id='scene'></canvas>"
            f"<script type='module'>{_PAGE_SCRIPT % module}</script></body></html>"
        )
        page.wait_for_function("window.sceneReady === true")

    def paint(self, scene: dict | str) -> float:
        """Paint ``scene`` (a dict, or :func:`wire_text` of one) as the widget's frontend receives it
        (:func:`convcourse.scene.scene_wire`); the milliseconds the browser spent, decoding included."""
        text = scene if isinstance(scene, str) else wire_text(scene)
        return float(self.page.evaluate("(text) => window.paintTimed(text)", text))

    def pixels(self) -> np.ndarray:
        """The canvas as painted, RGB (height, width, 3)."""
        from PIL import Image

        url = self.page.evaluate("window.pixels()")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        return np.asarray(image.convert("RGB"))


@contextlib.contextmanager
def scene_painter() -> Iterator[ScenePainter]:
    """A :class:`ScenePainter` in a headless Chromium started for it (see :func:`chromium_missing` first)."""
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or CHROMIUM)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield ScenePainter(browser.new_page(device_scale_factor=1))
        finally:
            browser.close()
