"""Static HTML of the answer key, so the course can be read without running it.

Each ``solutions/<lesson>/<lesson>.ipynb`` is executed in a fresh kernel (in a temporary copy of its
folder, so the repository stays clean) with the widgets' state stored, then rendered with nbconvert's
JupyterLab template: plots are embedded as PNG with their alt text, widgets come back as live
(unconnected) views from the stored state, each figure widget followed by a static picture of it for
readers without the widgets script. ``build/html/index.html`` links every lesson.

    python -m convcourse.html                     # every lesson -> build/html/
    python -m convcourse.html 01_sliding_window   # some lessons
    make html
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import sys
import time
from pathlib import Path

import nbformat

from .build import REPO, lesson_title, lessons
from .lessonrun import LESSON_CELL_TIMEOUT, lesson_client, lesson_copy

SOLUTIONS = REPO / "solutions"
OUT = REPO / "build" / "html"

# nbconvert's lab template, with the alt text that course figures carry (convcourse.plots) on their <img>.
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block data_png scoped %}
{%- set alt = output | get_metadata('alt', 'image/png') -%}
{%- if alt -%}
{{ super() | replace('<img ', '<img alt="' ~ (alt | escape_html) ~ '" ', 1) }}
{%- else -%}
{{ super() }}
{%- endif -%}
{% endblock data_png %}
"""


def execute(notebook: Path, timeout: int = LESSON_CELL_TIMEOUT) -> nbformat.NotebookNode:
    """Run ``notebook`` top to bottom in a fresh kernel (in a temporary copy of its folder) and return it
    with outputs and widget state (``metadata.widgets``)."""
    with lesson_copy(notebook, prefix="convcourse-html-") as copy:
        nb = nbformat.read(copy, as_version=4)
        with _kernel_environment():
            lesson_client(nb, copy.parent, timeout=timeout, store_widget_state=True).execute()
    return nb


def _kernel_environment():
    """Environment the kernel inherits: matplotlib's inline backend (an inherited MPLBACKEND=Agg, as in the
    test suite, would show no plots at all), and a note for the lesson's self-check cell, which then prints
    one line instead of starting a kernel of its own; widgets show PNGs (no kernel will update them, and a
    reader without the widgets' script sees the picture)."""
    from .widgets import PICTURES_SWITCH

    return environment(
        {
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "CONVCOURSE_SELFCHECK_ACTIVE": "static HTML rendering",
            PICTURES_SWITCH: "1",
        }
    )


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """Set the environment variables ``values`` (inherited by kernels started meanwhile); restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def add_widget_snapshots(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """After each widget view that shows a figure, add its last picture as a static image in a collapsed
    <details>: the live view needs the Jupyter widgets script from the internet, the picture does not."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})

    def pictures(model_id: str, seen: set) -> list[tuple[str, str]]:
        model = state.get(model_id)
        if model is None or model_id in seen:
            return []
        seen.add(model_id)
        found = []
        for output in model.get("state", {}).get("outputs", []) if model.get("model_name") == "OutputModel" else []:
            if output.get("data", {}).get("image/png"):
                found.append(
                    (output["data"]["image/png"], output.get("metadata", {}).get("image/png", {}).get("alt", ""))
                )
        for child in model.get("state", {}).get("children", []):
            found += pictures(str(child).removeprefix("IPY_MODEL_"), seen)
        return found

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            outputs.append(output)
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            found = pictures(view["model_id"], set()) if view else []
            if found:
                png, alt = found[-1]
                outputs.append(
                    nbformat.v4.new_output(
                        "display_data",
                        data={
                            "text/html": (
                                '<details class="convcourse-widget-snapshot"><summary>The widget as saved, '
                                "as a picture (shown without the widgets script)</summary>"
                                f'<img src="data:image/png;base64,{png}" '
                                f'alt="{html.escape(alt or "widget figure")}"></details>'
                            )
                        },
                    )
                )
        cell.outputs = outputs
    return nb


def to_html(nb: nbformat.NotebookNode) -> str:
    """The executed notebook as a standalone HTML page (JupyterLab look, widget state embedded)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"convcourse.html.j2": _TEMPLATE})])
    exporter.template_file = "convcourse.html.j2"
    body, _ = exporter.from_notebook_node(nb)
    return body


def render(
    lesson_ids: list[str] | None = None,
    out: Path = OUT,
    source: Path = SOLUTIONS,
    timeout: int = LESSON_CELL_TIMEOUT,
    log=print,
) -> list[Path]:
    """Execute and render the answer key of each lesson to ``out/<lesson>.html`` and write ``out/index.html``."""
    names = lesson_ids or lessons(source)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for lesson in names:
        notebook = source / lesson / f"{lesson}.ipynb"
        if not notebook.exists():
            raise SystemExit(f"no answer key at {notebook}; run 'make build' first")
        start = time.perf_counter()
        target = out / f"{lesson}.html"
        target.write_text(to_html(add_widget_snapshots(execute(notebook, timeout))), encoding="utf-8")
        written.append(target)
        log(f"rendered {lesson} in {time.perf_counter() - start:.1f} s -> {target}")
    write_index(out, source)
    return written


def write_index(out: Path, source: Path = SOLUTIONS) -> Path:
    """index.html linking every lesson that has been rendered into ``out``."""
    rows = []
    for lesson in lessons(source):
        if (out / f"{lesson}.html").exists():
            title = lesson_title(source / lesson / f"{lesson}.ipynb")
            rows.append(f'<li><a href="{lesson}.html">{html.escape(title)}</a></li>')
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Conv2d from the ground up</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:46em;margin:3em auto;line-height:1.5}"
        "li{margin:.3em 0}</style></head><body>\n"
        "<h1>Conv2d from the ground up</h1>\n"
        "<p>The answer key of every lesson, run once with all outputs, plots and widgets. Widgets show the "
        "state they were saved in; to move their sliders, open the notebooks in JupyterLab "
        "(<code>make lab</code>).</p>\n<ol>\n" + "\n".join(rows) + "\n</ol>\n</body></html>\n"
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convcourse.html", description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson ids (default: all)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: build/html)")
    parser.add_argument(
        "--timeout", type=int, default=LESSON_CELL_TIMEOUT, help="seconds per cell (default %(default)s)"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.lessons) - set(lessons(SOLUTIONS)))
    if unknown:
        print(f"no such lesson under {SOLUTIONS}: {', '.join(unknown)}", file=sys.stderr)
        return 2
    render(args.lessons or None, args.out, timeout=args.timeout)
    print(f"open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
