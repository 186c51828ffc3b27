"""Where a widget redraw's wait goes in real JupyterLab: key press -> kernel -> browser paint.

``benchmarks/lesson_speed.py`` times the kernel's update and the browser's paint apart, each alone on the
machine. This one puts a widget in a notebook in JupyterLab (a loopback server, headless Chromium, as
``tests/test_browser.py`` drives them), moves its first slider with the keyboard ``--moves`` times and splits each
redraw, on one clock (epoch milliseconds: the page's ``performance.timeOrigin + now()``, the kernel's
``time.time()``):

* key -> kernel: from the key press reaching the page to the kernel starting ``FigureView.update`` (the
  frontend, the Jupyter server and the kernel's message handling);
* kernel update: ``FigureView.update`` by the wall clock, and its CPU time (``time.process_time()``, the
  kernel's threads): the gap between them is time the kernel waited for a core (the browser and the server
  share the machine);
* kernel -> paint: from the update's end to the browser starting to paint (the scene's message back);
* paint: ``scene.js`` painting it; total: key press to painted figure.

Figures are printed, never asserted. Needs Chromium (``make browser-deps``) and playwright.

    .venv/bin/python benchmarks/widget_latency.py
    .venv/bin/python benchmarks/widget_latency.py --widget "from convcourse.widgets.stride import stride_widget
    stride_widget()" --moves 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from test_browser import (  # noqa: E402 - the browser test's own way to drive JupyterLab
    CHROMIUM,
    CHROMIUM_ARGS,
    MARK_INPUT,
    OPEN,
    PAINTED_AT,
    _run_all_and_wait,
    lab_page,
    start_lab,
    stop_lab,
)

DEFAULT_WIDGET = "from convcourse.widgets.groups import groups_widget\ngroups_widget()"

# Cell 1 of the notebook: FigureView.update timed in the kernel, one line per redraw in the log file.
TIMING_CELL = """import time
from convcourse.widgets import FigureView
_update = FigureView.update
def _timed_update(self):
    wall, cpu = time.time(), time.process_time()
    result = _update(self)
    with open({log!r}, "a") as file:
        file.write(f"{{wall * 1000:.2f}} {{time.time() * 1000:.2f}} {{(time.process_time() - cpu) * 1000:.2f}}\\n")
    return result
FigureView.update = _timed_update"""


def measure(widget_code: str, moves: int, folder: Path) -> list[dict]:
    """One row per redraw: the split described in the module's docstring (milliseconds)."""
    from playwright.sync_api import sync_playwright

    log = folder / "kernel.log"
    root = folder / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(TIMING_CELL.format(log=str(log))), nbformat.v4.new_code_cell(widget_code)]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "latency.ipynb")
    with open(folder / "lab.log", "w") as lab_log:  # the server keeps writing to its own copy
        server, url, token = start_lab(root, folder / "home", lab_log)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = lab_page(browser, url, token, "latency")
            panel = page.locator(f"#{page.evaluate(OPEN, 'latency.ipynb')}")
            panel.locator(".jp-Notebook").wait_for(timeout=120_000)
            _run_all_and_wait(page, "latency.ipynb", timeout=300)
            widget = panel.locator(".jp-OutputArea-output:has(> .jupyter-widgets)").first
            widget.scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            log.write_text("")
            handle = widget.locator(".noUi-target:not([disabled]) .noUi-handle").first
            browser_side = []
            for move in range(moves):
                page.evaluate(MARK_INPUT)
                handle.focus()
                page.keyboard.press("ArrowRight" if (move // 2) % 2 == 0 else "ArrowLeft")  # stays in range
                page.wait_for_function(
                    "(el) => window.__courseInputAt > 0 && Number((el.querySelector("
                    "'canvas.convcourse-scene') || {dataset: {}}).dataset.paintedAt || 0) > window.__courseInputAt",
                    arg=widget.element_handle(),
                    timeout=30_000,
                    polling=50,
                )
                origin, pressed = page.evaluate("[performance.timeOrigin, window.__courseInputAt]")
                painted = widget.evaluate(PAINTED_AT)
                paint = widget.evaluate("el => Number(el.querySelector('canvas.convcourse-scene').dataset.paintMs)")
                browser_side.append((origin + pressed, origin + painted, paint))
                page.wait_for_timeout(300)
            browser.close()
    finally:
        stop_lab(server)
    kernel_side = [tuple(map(float, line.split())) for line in log.read_text().splitlines() if line.strip()]
    return [
        {
            "key -> kernel": start - pressed,
            "kernel update": end - start,
            "kernel update cpu": cpu,
            "kernel -> paint": painted - paint - end,
            "paint": paint,
            "total": painted - pressed,
        }
        for (pressed, painted, paint), (start, end, cpu) in zip(browser_side, kernel_side)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widget", default=DEFAULT_WIDGET, help="notebook code that shows one widget")
    parser.add_argument("--moves", type=int, default=16, help="slider moves (default %(default)s)")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing (make browser-deps): nothing measured")
        return 0
    folder = Path(tempfile.mkdtemp(prefix="widget-latency-"))
    try:
        rows = measure(args.widget, args.moves, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{len(rows)} redraws of: {args.widget!r}; load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    for name in rows[0] if rows else []:
        values = [row[name] for row in rows]
        print(
            f"{name:18s} median {statistics.median(values):6.1f} ms   min {min(values):6.1f}   max {max(values):6.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
