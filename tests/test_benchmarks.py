"""The benchmark scripts run and report what they promise. Behaviour only: no figure is judged here."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import pytest

from course import REPO

LESSON_SPEED = REPO / "benchmarks" / "lesson_speed.py"


def _lesson_speed_module():
    spec = importlib.util.spec_from_file_location("lesson_speed", LESSON_SPEED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_lesson_speed_times_the_lesson_and_every_widget_it_shows(tmp_path):
    from convcourse.scene_browser import chromium_missing
    from convcourse.widgets.sliding_window import sliding_window_widget

    missing = chromium_missing()

    lesson = "01_sliding_window"
    out = tmp_path / "speed.json"
    result = subprocess.run(
        [sys.executable, str(LESSON_SPEED), "--lessons", lesson, "--repeats", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["repeats"] == 2
    assert report["baseline"]["kernel_start_s"] > 0 and report["baseline"]["cells_s"] > 0
    [run] = report["lessons"]
    assert (run["lesson"], run["kind"], run["errors"]) == (lesson, "solutions", [])
    assert run["kernel_start_s"] > 0 and run["cells_s"] > 0 and run["cells_kernel_s"] > 0
    assert "self-check skipped" in run["selfcheck_output"]  # its cell did not start a second kernel

    # One entry per cell of the answer key that shows a widget, in order, each named by the widget's title.
    cells = json.loads((REPO / "solutions" / lesson / f"{lesson}.ipynb").read_text())["cells"]
    widget_cells = [
        i
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "code" and re.search(r"\b\w+_widget\(", "".join(cell["source"]))
    ]
    assert widget_cells and [widget["cell"] for widget in run["widgets"]] == widget_cells
    title = sliding_window_widget().title
    for widget in run["widgets"]:
        assert widget["title"] == title and widget["error"] is None and widget["redraws"] == 2
        assert widget["update_ms"] >= widget["draw_ms"] > 0 and widget["bare_ms"] > 0
        assert widget["update_ms_max"] >= widget["update_ms_p95"] >= widget["update_ms"]  # p95 printed too
        assert widget["update_cpu_ms"] > 0 and widget["load_average"] >= 0
        # The update sends a scene for the browser to paint: no PNG, no Agg rendering in the kernel.
        assert widget["draw_cpu_ms"] >= 0 and widget["picture_cpu_ms"] > 0 and widget["pngs_per_update"] == 0
        assert widget["png_rendered_by_update"] is True  # nothing added in its place: the scene is the picture
        assert len(set(widget["controls_moved"])) == 2  # each redraw showed another window position
        if missing is None:  # the browser's side: each scene painted by Chromium, added redraw by redraw
            assert widget["paint_ms"] > 0 and widget["scene_kb"] > 1 and "scenes" not in widget
            assert widget["total_ms"] > widget["paint_ms"] and widget["total_ms_p95"] >= widget["total_ms"]
    if missing is not None:
        assert missing in result.stdout  # said, not skipped silently
    assert lesson in result.stdout and title in result.stdout
    assert "total p95" in result.stdout and "paint ms" in result.stdout


def test_lesson_speed_refuses_unknown_lessons(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _lesson_speed_module().main(["--lessons", "99_no_such_lesson"])
    assert exit_info.value.code == 2
    assert "99_no_such_lesson" in capsys.readouterr().err
