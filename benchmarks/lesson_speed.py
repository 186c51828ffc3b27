"""How long each lesson takes to run headless, and how long its widgets take to redraw.

Targets (issues 3 and 16): every lesson runs in <= 20 s on a 2-core machine; every widget's redraw (what a
learner waits for: the kernel's update, calling the update path directly, plus the browser's paint of the
figure) takes <= 50 ms median and <= 100 ms at the 95th percentile. The 1-minute load average is printed
with each widget (the machine is shared: compare figures taken under similar load).

For each lesson (``convcourse.build.lessons()``, so a new lesson is picked up as soon as its source
exists) the answer key ``solutions/<lesson>/<lesson>.ipynb`` is executed in a fresh kernel, in a
temporary copy of its folder (the repository is not touched), with the kernel name and arguments of
``convcourse.lessonrun`` (as ``make html``) and the inline matplotlib backend a learner's JupyterLab uses. Timed apart:

* kernel start (launch until the kernel answers), and
* the notebook's cells, by the wall clock and by the kernel's own (input received to reply sent; a big
  gap means the client waited on its messages, not the lesson). The last cell's ``selfcheck()`` would
  re-run the saved notebook in a second kernel; as in ``make html`` it is told to skip
  (``CONVCOURSE_SELFCHECK_ACTIVE``), and its cell is timed apart, not counted in "cells".

The baseline, measured first in the same run: a fresh kernel that imports torch, matplotlib, ipywidgets
and the course's plots and widgets; "x base" = a lesson's kernel start + cells over the baseline's.

Then, in the same kernel, every ``convcourse.widgets.FigureView`` the lesson created is redrawn
``--repeats`` times, each time after one of its controls was moved to another valid value (the controls a
learner can move, not those greyed out, take turns, so the figure really changes). Per widget:

* ``draw``: the lesson's draw function alone (model + matplotlib figure, no pixels);
* ``update``: ``FigureView.update()`` as a control change calls it: the draw function, the figure recorded
  as drawing commands (``convcourse/scene.py``) and sent to the frontend, so this is the whole wait in the
  kernel. Should an update show no picture (neither a scene nor a PNG), a PNG is rendered after it as the
  inline backend would (``bbox_inches="tight"``) and counted in, so ``update`` always includes the picture;
* ``paint``: each timed update's scene painted by headless Chromium with the widgets' own script
  (``convcourse/scene_browser.py``: the bytes the kernel sends decoded, painted and rasterised), after the lessons ran;
  ``total`` = update + paint, redraw by redraw: the figures the targets are about. The messages between
  kernel and browser (loopback) are not in it; ``tests/test_browser.py`` records, per widget, one move from
  key press to painted figure in real JupyterLab (artifacts/browser/widget-latency*.tsv);
* ``cpu``: the kernel's CPU time for the update, split into ``draw cpu`` (the draw function), ``agg cpu``
  (matplotlib's Agg rendering into pixels, for a PNG) and ``pic cpu`` (the rest: recording the scene and
  sending it, or encoding a PNG; alt text); medians of each;
* ``bare``: an empty figure of the same size and dpi created and rendered to PNG (the whole canvas): the
  floor set by this machine, measured in the same run, so ``update / bare`` can be compared across machines;
* ``new figs`` and ``pngs``: Figures made and pictures rendered into pixels (``FigureCanvasAgg.draw``, under
  every PNG however it is encoded) per update (0 new figures: the widget updates its figure in place; 2 renders:
  the picture had to be cropped to its contents).

The median and the 95th percentile (nearest rank) of ``total`` are the figures the targets are about (of
``update`` where Chromium is missing: the report says so).

Figures are printed, never asserted: the exit status is 0 whatever the numbers (2 only for bad arguments).

    .venv/bin/python benchmarks/lesson_speed.py                            # every lesson
    .venv/bin/python benchmarks/lesson_speed.py --lessons 02_kernel_size 04_stride --repeats 25
    .venv/bin/python benchmarks/lesson_speed.py --released --json build/lesson_speed.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from convcourse.build import lessons as course_lessons  # noqa: E402
from convcourse.html import environment  # noqa: E402
from convcourse.lessonrun import lesson_client, lesson_copy  # noqa: E402
from convcourse.selfcheck import ACTIVE_FLAG  # noqa: E402

LESSON_LIMIT_S = 20.0
WIDGET_MEDIAN_LIMIT_MS = 50.0  # issue 16: median <= 50 ms and 95th percentile <= 100 ms per widget
WIDGET_P95_LIMIT_MS = 100.0
CELL_TIMEOUT = 240  # per cell (make html allows convcourse.lessonrun.LESSON_CELL_TIMEOUT)
KERNEL_ENV = {
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    ACTIVE_FLAG: "timed by benchmarks/lesson_speed.py",
}
BASELINE_CODE = "import torch, matplotlib.pyplot, ipywidgets, convcourse.plots, convcourse.widgets"


def measure_widgets(repeats: int, out_path: str, scenes_path: str | None = None) -> None:
    """Kernel side (its source is sent to the lesson's kernel): redraw every FigureView, write JSON; with
    ``scenes_path``, also each timed update's scene (one JSON line each, ``<scenes_path>.<widget index>``)."""
    import gc
    import io
    import json
    import os
    import statistics
    import time

    import matplotlib.figure
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import print_figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from convcourse.scene_browser import wire_text  # what the frontend receives, its binary frames as base64
    from convcourse.widgets import FigureView

    # One entry per rendering into pixels (FigureCanvasAgg.draw, which every PNG of a figure goes through, however
    # it is encoded) while a redraw is timed: its CPU seconds
    renders = []
    created = []  # one entry per Figure made while a redraw is timed (none: the widget updates its figure in place)
    original_figure_init = matplotlib.figure.Figure.__init__
    original_agg_draw = FigureCanvasAgg.draw

    def timed_agg_draw(self):
        start = time.process_time()
        try:
            return original_agg_draw(self)
        finally:
            renders.append(time.process_time() - start)

    def counting_figure_init(self, *args, **kwargs):
        created.append(1)
        return original_figure_init(self, *args, **kwargs)

    def title_of(view) -> str:
        if getattr(view, "title", ""):
            return view.title
        for child in view.widget.children:  # the header FigureView builds: <b>title</b>
            value = getattr(child, "value", "")
            if isinstance(value, str) and value.startswith("<b>") and value.endswith("</b>"):
                return value[3:-4]
        return type(view.draw).__qualname__

    def candidates(control) -> list:
        """Valid values of a control, a few of them (options in order; ends and thirds of a range)."""
        if hasattr(control, "_options_values"):
            return list(control._options_values)
        value = control.value
        if isinstance(value, bool):
            return [not value, value]
        low, high = getattr(control, "min", None), getattr(control, "max", None)
        if isinstance(value, (int, float)) and low is not None and high is not None and high > low:
            if isinstance(value, int):
                picks = {round(low + (high - low) * i / 3) for i in range(4)}
            else:
                step = getattr(control, "step", None) or (high - low) / 3
                picks = {min(high, low + round((high - low) * i / 3 / step) * step) for i in range(4)}
            return sorted(picks)
        return []

    def median_max(seconds: list[float]) -> tuple[float, float]:
        return round(1000 * statistics.median(seconds), 2), round(1000 * max(seconds), 2)

    def p95(seconds: list[float]) -> float:
        """95th percentile (nearest rank: with 20 redraws, the 19th fastest)."""
        ordered = sorted(seconds)
        return round(1000 * ordered[max(0, -(-95 * len(ordered) // 100) - 1)], 2)

    def is_view(obj) -> bool:
        try:
            return isinstance(obj, FigureView)
        except ReferenceError:  # a weak proxy whose object is gone
            return False

    views = list({id(o): o for o in gc.get_objects() if is_view(o)}.values())  # sorted by cell later
    results = []
    for index, view in enumerate(views):
        entry = {"title": title_of(view), "model_id": view.widget.model_id, "error": None}
        results.append(entry)
        scenes: list[str] = []
        movable = [name for name, control in view.controls.items() if len(candidates(control)) > 1]
        turn = {name: 0 for name in movable}
        draw_s, update_s, bare_s, moved, cpu_s = [], [], [], [], []
        draw_cpu_s, render_cpu_s = [], []
        renders.clear()
        created.clear()
        explicit = 0
        original_draw = view.draw

        def timed_draw(**values):
            start, cpu_start = time.perf_counter(), time.process_time()
            figure = original_draw(**values)
            draw_s.append(time.perf_counter() - start)
            draw_cpu_s.append(time.process_time() - cpu_start)
            return figure

        try:
            type(view).update(view)  # warm-up: first redraw of this widget in this cell
            for r in range(repeats):
                enabled = [name for name in movable if not getattr(view.controls[name], "disabled", False)]
                if enabled:  # a learner cannot move a greyed-out control
                    name = enabled[r % len(enabled)]
                    control, options = view.controls[name], candidates(view.controls[name])
                    for _ in range(len(options)):  # next valid value that differs from the current one
                        value = options[turn[name] % len(options)]
                        turn[name] += 1
                        if value != control.value:
                            break
                    view.update = lambda: None  # the control's observer redraws through this: not yet
                    try:
                        control.value = value
                    finally:
                        del view.update
                    moved.append(f"{name}={value!r}")
                view.draw = timed_draw
                matplotlib.figure.Figure.__init__ = counting_figure_init
                FigureCanvasAgg.draw = timed_agg_draw
                try:
                    before = len(renders)
                    cpu_start = time.process_time()
                    start = time.perf_counter()
                    figure = type(view).update(view)
                    shown = getattr(view, "canvas", None) is not None and bool(view.canvas.scene)
                    if len(renders) == before and not shown:  # no PNG, no scene: render it as inline would
                        print_figure(figure, "png", bbox_inches="tight")
                        explicit += 1
                    update_s.append(time.perf_counter() - start)
                    cpu_s.append(time.process_time() - cpu_start)
                    render_cpu_s.append(sum(renders[before:]))
                    if shown and scenes_path:  # for the browser's side: painted in Chromium afterwards
                        scenes.append(wire_text(view.canvas.scene))
                finally:
                    view.draw = original_draw
                    matplotlib.figure.Figure.__init__ = original_figure_init
                    FigureCanvasAgg.draw = original_agg_draw
                width, height = figure.get_size_inches()
                start = time.perf_counter()
                bare = plt.figure(figsize=(width, height), dpi=figure.dpi)
                bare.savefig(io.BytesIO(), format="png", dpi=figure.dpi)  # IPython's print_figure skips empty figures
                plt.close(bare)
                bare_s.append(time.perf_counter() - start)
        except Exception as error:  # a widget that fails to redraw is reported, not fatal  # noqa: BLE001
            entry["error"] = f"{type(error).__name__}: {error}"
        if scenes:
            entry["scenes_file"] = f"{scenes_path}.{index}"
            with open(entry["scenes_file"], "w") as file:
                file.write("\n".join(scenes) + "\n")
        if update_s:
            entry["draw_ms"], entry["draw_ms_max"] = median_max(draw_s)
            entry["update_ms"], entry["update_ms_max"] = median_max(update_s)
            entry["update_ms_p95"] = p95(update_s)
            # The kernel's CPU time for the same updates: what the wall clock would read on an idle machine
            # (on a shared one, update_ms ~ cpu_ms x load / cores).
            entry["update_cpu_ms"], _ = median_max(cpu_s)
            entry["update_cpu_ms_p95"] = p95(cpu_s)
            # Where that CPU time goes: the draw function, Agg's rendering, the rest (the scene recorded and sent,
            # or the PNG encoded; alt text)
            entry["draw_cpu_ms"], _ = median_max(draw_cpu_s)
            entry["render_cpu_ms"], _ = median_max(render_cpu_s)
            rest = [total - drawn - rendered for total, drawn, rendered in zip(cpu_s, draw_cpu_s, render_cpu_s)]
            entry["picture_cpu_ms"], _ = median_max(rest)
            entry["update_ms_each"] = [round(1000 * seconds, 1) for seconds in update_s]
            entry["bare_ms"], _ = median_max(bare_s)
            entry["redraws"] = len(update_s)
            entry["png_rendered_by_update"] = explicit == 0  # else added explicitly, inline-backend style
            # Per update: PNGs rendered (2 when the picture had to be cropped) and Figures made (0: updated in place)
            entry["pngs_per_update"] = round(len(renders) / len(update_s), 2)
            entry["figures_per_update"] = round(len(created) / len(update_s), 2)
            entry["figure_inches"] = [round(float(width), 2), round(float(height), 2)]  # of the last redraw
            entry["figure_dpi"] = float(figure.dpi)
            entry["controls_moved"] = sorted(set(moved))
            entry["load_average"] = round(os.getloadavg()[0], 2)  # the 1-minute load just after this widget
    with open(out_path, "w") as file:
        json.dump(results, file)


def is_selfcheck_cell(cell) -> bool:
    return cell.cell_type == "code" and "selfcheck(" in cell.source


def widget_cells(nb) -> dict[str, int]:
    """model id of each displayed widget -> index of the cell that displayed it."""
    found = {}
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view:
                found.setdefault(view["model_id"], index)
    return found


def _kernel_seconds(cell) -> float | None:
    """Seconds between the kernel receiving the cell and sending its reply, by the kernel's own clock."""
    from datetime import datetime

    stamps = cell.get("metadata", {}).get("execution", {})
    if "iopub.execute_input" not in stamps or "shell.execute_reply" not in stamps:
        return None
    return (
        datetime.fromisoformat(stamps["shell.execute_reply"]) - datetime.fromisoformat(stamps["iopub.execute_input"])
    ).total_seconds()


async def _execute(client, nb, probe_source: str | None, result: dict, cells: list[dict]) -> None:
    """Start the kernel, run every cell (timing each), then the widget probe; all in one event loop."""
    from nbclient.util import ensure_async

    start = time.perf_counter()
    async with client.async_setup_kernel():
        await client.async_wait_for_reply(await ensure_async(client.kc.kernel_info()))
        result["kernel_start_s"] = round(time.perf_counter() - start, 3)
        try:
            for index, cell in enumerate(list(nb.cells)):
                if cell.cell_type != "code":
                    continue
                start = time.perf_counter()
                await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                cells.append(
                    {
                        "cell": index,
                        "seconds": time.perf_counter() - start,
                        "selfcheck": is_selfcheck_cell(cell),
                        "kernel_seconds": _kernel_seconds(cell),
                    }
                )
                if cells[-1]["selfcheck"]:
                    result["selfcheck_output"] = "".join(o.get("text", "") for o in cell.get("outputs", []))[:200]
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "error":
                        result["errors"].append(
                            f"cell {index}: {output.get('ename')}: {output.get('evalue', '')[:200]}"
                        )
            if probe_source is not None:
                probe = nbformat.v4.new_code_cell(probe_source)
                nb.cells.append(probe)  # nbclient stores the executed cell back into nb.cells by index
                await client.async_execute_cell(probe, len(nb.cells) - 1, store_history=False)
                for output in probe.outputs:
                    if output.get("output_type") == "error":
                        result["errors"].append(f"widget timing: {output.get('ename')}: {output.get('evalue')}")
        except Exception as error:  # a cell past its timeout, a dead kernel: keep what was measured  # noqa: BLE001
            result["errors"].append(f"{type(error).__name__}: {str(error)[:300]}")


def paint_in_browser(report: dict) -> None:
    """The browser's side of each timed update: its scene painted by Chromium with the widgets' script
    (``convcourse/scene_browser.py``: the message parsed, painted and rasterised), and the update's total, the
    kernel's update plus the browser's paint, redraw by redraw. Without Chromium the reason is noted."""
    import statistics

    from convcourse.scene_browser import chromium_missing, scene_painter, wire_size

    widgets = [w for run in report["lessons"] for w in run.get("widgets", []) if w.get("scenes")]
    if not widgets:
        return
    missing = chromium_missing()
    if missing:
        report["paint_note"] = f"not painted in a browser: {missing}"
        for widget in widgets:
            widget.pop("scenes")
        return
    print("painting the widgets' scenes in Chromium ...", flush=True)
    with scene_painter() as painter:
        for widget in widgets:
            scenes = widget.pop("scenes")
            painter.paint(scenes[0])  # warm-up: the page's first paint of this size
            paint_ms = [painter.paint(scene) for scene in scenes]
            totals = [update + paint for update, paint in zip(widget["update_ms_each"], paint_ms)]
            widget["paint_ms"] = round(statistics.median(paint_ms), 2)
            widget["paint_ms_max"] = round(max(paint_ms), 2)
            widget["total_ms"] = round(statistics.median(totals), 2)
            widget["total_ms_p95"] = round(sorted(totals)[max(0, -(-95 * len(totals) // 100) - 1)], 2)
            widget["scene_kb"] = round(statistics.median(wire_size(scene) for scene in scenes) / 1024, 1)


def run_notebook(notebook: Path, repeats: int, timeout: int = CELL_TIMEOUT, measure: bool = True) -> dict:
    """Execute ``notebook`` (a temporary copy of its folder) and time kernel start, cells and widgets."""
    from jupyter_core.utils import run_sync

    result: dict = {
        "notebook": str(notebook.relative_to(REPO)) if notebook.is_relative_to(REPO) else str(notebook),
        "errors": [],
        "widgets": [],
    }
    load_before = os.getloadavg()[0]
    cells: list[dict] = []
    with lesson_copy(notebook, prefix="lesson-speed-") as copy:
        nb = nbformat.read(copy, as_version=4)
        client = lesson_client(nb, copy.parent, timeout=timeout, allow_errors=True, record_timing=True)
        out_path = copy.parent.parent / "widgets.json"
        probe = (
            inspect.getsource(measure_widgets)
            + f"\nmeasure_widgets({repeats}, {str(out_path)!r}, {str(out_path.with_suffix('.scenes'))!r})\n"
            if measure
            else None
        )
        with environment(KERNEL_ENV):
            # nbclient's own way (one event loop per thread, kept): asyncio.run's fresh loop per notebook
            # left a later notebook waiting out the cell timeout for a reply that had arrived.
            run_sync(_execute)(client, nb, probe, result, cells)
        if out_path.exists():
            result["widgets"] = json.loads(out_path.read_text())
        for widget in result["widgets"]:  # read before the temporary folder goes
            scenes_file = widget.pop("scenes_file", None)
            if scenes_file:
                widget["scenes"] = Path(scenes_file).read_text().splitlines()
        displayed = widget_cells(nb)
    for widget in result["widgets"]:
        widget["cell"] = displayed.get(widget.pop("model_id"))
    result["widgets"].sort(key=lambda widget: (widget["cell"] is None, widget["cell"] or 0))
    timed = [c for c in cells if not c["selfcheck"]]
    result["cells_s"] = round(sum(c["seconds"] for c in timed), 3)
    # The same cells by the kernel's clock: far less than cells_s means the client waited, not the lesson.
    result["cells_kernel_s"] = round(sum(c["kernel_seconds"] or 0 for c in timed), 3)
    result["selfcheck_cell_s"] = round(sum(c["seconds"] for c in cells if c["selfcheck"]), 3)
    result["slowest_cells"] = [
        {
            "cell": c["cell"],
            "seconds": round(c["seconds"], 3),
            "kernel_seconds": c["kernel_seconds"] and round(c["kernel_seconds"], 3),
        }
        for c in sorted(timed, key=lambda c: -c["seconds"])[:3]
    ]
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def baseline(timeout: int = CELL_TIMEOUT) -> dict:
    """A fresh kernel that only imports the course's stack: the floor under every lesson, this run."""
    with tempfile.TemporaryDirectory(prefix="lesson-speed-baseline-") as tmp:
        folder = Path(tmp) / "baseline"
        folder.mkdir()
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(BASELINE_CODE)])
        nbformat.write(nb, folder / "baseline.ipynb")
        run = run_notebook(folder / "baseline.ipynb", repeats=0, timeout=timeout, measure=False)
    return {
        "code": BASELINE_CODE,
        "kernel_start_s": run.get("kernel_start_s"),
        "cells_s": run["cells_s"],
        "errors": run["errors"],
    }


def lesson_notebook(lesson: str, kind: str) -> tuple[Path | None, str]:
    """The notebook to time: solutions/ (or notebooks/ with --released); the source when not built yet."""
    built = REPO / kind / lesson / f"{lesson}.ipynb"
    if built.exists():
        return built, ""
    source = REPO / "autograder" / "source" / lesson / f"{lesson}.ipynb"
    if kind == "solutions" and source.exists():
        return source, f"{kind}/{lesson} not built yet: timed the source notebook"
    return None, f"{kind}/{lesson} not built yet: skipped"


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "n/a"
    return "ok" if value <= limit else f"OVER ({value / limit:.1f}x)"


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(report: dict) -> None:
    base, machine = report["baseline"], report["machine"]
    print(
        f"\nmachine: {machine['cpu_count']} CPU cores, load average {machine['load_average_start']} at start, "
        f"{machine['load_average_end']} at end (other processes share the cores: figures are noisy)"
    )
    print(
        f"baseline kernel ({base['code']}): kernel start {fmt(base['kernel_start_s'], 2)} s, "
        f"imports {fmt(base['cells_s'], 2)} s"
    )
    floor = (base["kernel_start_s"] or 0) + base["cells_s"]

    print(f"\nLessons (limit {LESSON_LIMIT_S:.0f} s for kernel start + cells; the self-check cell is timed apart)")
    header = (
        f"{'lesson':<20} {'notebook':<9} {'kernel s':>8} {'cells s':>8} {'(in kernel)':>11} {'total s':>8} "
        f"{'x base':>6} {'selfcheck s':>11}  {'slowest cells (index: s)':<26} verdict"
    )
    print(header + "\n" + "-" * len(header))
    for run in report["lessons"]:
        total = None if run.get("kernel_start_s") is None else run["kernel_start_s"] + run["cells_s"]
        slowest = ", ".join(f"{c['cell']}: {c['seconds']:.1f}" for c in run.get("slowest_cells", []))
        print(
            f"{run['lesson']:<20} {run['kind']:<9} {fmt(run.get('kernel_start_s'), 2):>8} "
            f"{fmt(run.get('cells_s'), 2):>8} {fmt(run.get('cells_kernel_s'), 2):>11} {fmt(total, 2):>8} "
            f"{fmt(total / floor if total and floor else None):>6} {fmt(run.get('selfcheck_cell_s'), 2):>11}  "
            f"{slowest:<26} {verdict(total, LESSON_LIMIT_S)}"
        )
        notes = ([run["note"]] if run.get("note") else []) + run.get("errors", [])[:5]
        waited = (run.get("cells_s") or 0) - (run.get("cells_kernel_s") or 0)
        if run.get("cells_kernel_s") and waited > 5:
            notes.append(
                f"the client waited {waited:.0f} s longer than the kernel worked: a stalled message, "
                "not the lesson (run it again)"
            )
        for note in notes:
            print(f"    {note}")

    print(
        f"\nWidgets ({report['repeats']} redraws each; limits: median <= {WIDGET_MEDIAN_LIMIT_MS:.0f} ms and p95 <= "
        f"{WIDGET_P95_LIMIT_MS:.0f} ms for what the learner waits for: total = the kernel's update (draw + the "
        "picture: a scene sent to the browser, or a PNG) + the browser's paint of the scene, redraw by redraw. "
        "cpu = the kernel's CPU time for the update, split into draw cpu (the draw function), agg cpu (Agg "
        "rendering, PNGs only) and pic cpu (the rest: recording the scene and sending it, or encoding the PNG), "
        "medians; paint = Chromium decoding, painting and rasterising the scene (scene.js); scene KB = what the "
        "kernel sends (the scene's JSON and its images' bytes); bare = an empty figure of the same size rendered "
        "to PNG; figure = the last redraw's size; new figs = "
        "Figures made per update (0: updated in place); pngs = Agg renders per update; load = 1-minute load "
        "average after the widget)"
    )
    if report.get("paint_note"):
        print(f"  {report['paint_note']}: total = update")
    header = (
        f"{'lesson':<20} {'cell':>4}  {'widget':<32} {'draw ms':>7} {'update ms':>9} {'p95 ms':>6} "
        f"{'cpu ms':>6} {'draw cpu':>8} {'agg cpu':>7} {'pic cpu':>7} {'paint ms':>8} {'total ms':>8} "
        f"{'total p95':>9} {'max ms':>6} {'scene KB':>8} {'bare ms':>7} {'figure':>15} {'new figs':>8} {'pngs':>4} "
        f"{'load':>5}  verdict"
    )
    print(header + "\n" + "-" * len(header))
    for run in report["lessons"]:
        for widget in run.get("widgets", []):
            size = widget.get("figure_inches")
            figure = f"{size[0]:g}x{size[1]:g}in@{widget['figure_dpi']:g}" if size else "-"
            cell = "?" if widget.get("cell") is None else str(widget["cell"])
            total = widget.get("total_ms", widget.get("update_ms"))
            p95 = widget.get("total_ms_p95", widget.get("update_ms_p95"))
            median_ok, p95_ok = verdict(total, WIDGET_MEDIAN_LIMIT_MS), verdict(p95, WIDGET_P95_LIMIT_MS)
            verdicts = "ok" if median_ok == p95_ok == "ok" else f"median {median_ok}, p95 {p95_ok}"
            print(
                f"{run['lesson'] + ('' if run['kind'] == 'solutions' else ' (released)'):<20} {cell:>4}  "
                f"{widget['title'][:32]:<32} {fmt(widget.get('draw_ms')):>7} {fmt(widget.get('update_ms')):>9} "
                f"{fmt(widget.get('update_ms_p95'), 0):>6} {fmt(widget.get('update_cpu_ms')):>6} "
                f"{fmt(widget.get('draw_cpu_ms')):>8} {fmt(widget.get('render_cpu_ms')):>7} "
                f"{fmt(widget.get('picture_cpu_ms')):>7} {fmt(widget.get('paint_ms')):>8} {fmt(total):>8} "
                f"{fmt(p95, 0):>9} {fmt(widget.get('update_ms_max'), 0):>6} {fmt(widget.get('scene_kb')):>8} "
                f"{fmt(widget.get('bare_ms')):>7} {figure:>15} {fmt(widget.get('figures_per_update'), 2):>8} "
                f"{fmt(widget.get('pngs_per_update'), 1):>4} {fmt(widget.get('load_average'), 2):>5}  {verdicts}"
            )
            if widget.get("error"):
                print(f"    {widget['error']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", nargs="+", metavar="LESSON", help="lesson ids (default: every lesson)")
    parser.add_argument("--repeats", type=int, default=15, help="redraws per widget (default %(default)s)")
    parser.add_argument("--released", action="store_true", help="also time the learner copies in notebooks/")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to this JSON file")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell (default %(default)s)")
    args = parser.parse_args(argv)
    known = course_lessons()
    names = args.lessons or known
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"no such lesson under autograder/source: {', '.join(unknown)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    report = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_start": round(os.getloadavg()[0], 2),
        },
        "limits": {
            "lesson_s": LESSON_LIMIT_S,
            "widget_update_median_ms": WIDGET_MEDIAN_LIMIT_MS,
            "widget_update_p95_ms": WIDGET_P95_LIMIT_MS,
        },
        "repeats": args.repeats,
        "lessons": [],
    }
    print("baseline kernel ...", flush=True)
    report["baseline"] = baseline(args.timeout)
    kinds = ["solutions"] + (["notebooks"] if args.released else [])
    for lesson in names:
        for kind in kinds:
            notebook, note = lesson_notebook(lesson, kind)
            print(f"{lesson} ({kind}) ...", flush=True)
            run = {"lesson": lesson, "kind": kind, "note": note}
            if notebook is not None:
                run.update(run_notebook(notebook, args.repeats, args.timeout))
            report["lessons"].append(run)
    report["machine"]["load_average_end"] = round(os.getloadavg()[0], 2)
    paint_in_browser(report)
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
