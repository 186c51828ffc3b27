"""The course as learners see it: JupyterLab in Debian's Chromium, driven by Playwright.

One JupyterLab server (on a free loopback port, over a temporary copy of notebooks/) and one browser page
serve every lesson (found at test time under notebooks/), opened one at a time. For each lesson the test runs
all cells ("Run All", resumed below each failing test cell, as a learner would) and checks: every cell ran;
the only errors are the unimplemented exercises (NotImplementedError / "not implemented yet"); no warnings or
tracebacks on stderr; plots appear and load; every widget renders (its figure painted on a canvas by the
widgets' script, named by its alt text) and what it shows changes when its slider (keyboard) or dropdown
moves; the self-check cell prints its table (in :data:`SELFCHECK_LESSONS`; elsewhere the kernel is told to skip
it, as ``make html`` tells its kernels, and the cell must say so). Screenshots:
artifacts/browser/<lesson>.png (at the last widget) and <lesson>-end.png (the end of the lesson); per-lesson
seconds: artifacts/browser/timings[-gwN].tsv; from each control moved to the end of the browser's paint of the new
figure: artifacts/browser/widget-latency[-gwN].tsv.
If /usr/bin/chromium is missing (`make browser-deps` installs it as root on Debian) the test is skipped
with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from convcourse.selfcheck import ACTIVE_FLAG

from course import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts" / "browser"
LESSONS = sorted(p.name for p in (REPO / "notebooks").iterdir() if (p / f"{p.name}.ipynb").exists())
ALLOWED_ERRORS = ("NotImplementedError", "not implemented yet", "not answered yet")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Lessons whose self-check cell really runs here: it grades the saved notebook again in a second kernel, the same
#: code for every lesson, so two (one per server) show it works from JupyterLab; every lesson's learner copy is
#: graded by the grader itself in tests/test_pipeline.py, and the self-check is tested in tests/test_selfcheck.py.
SELFCHECK_LESSONS = ("03_channels", "12_capstone")
assert set(SELFCHECK_LESSONS) <= set(LESSONS), set(SELFCHECK_LESSONS) - set(LESSONS)
SKIP_SELFCHECK = f"the browser test runs the self-check in {' and '.join(SELFCHECK_LESSONS)} only"

pytestmark = [pytest.mark.browser, pytest.mark.slow]
#: Under pytest-xdist the lessons are split between two JupyterLab servers (tests/conftest.py), which can run on
#: two workers at once: starting a second server costs seconds, the lessons minutes.
XDIST_COPIES = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_lab(root: Path, home: Path, log) -> tuple[subprocess.Popen, str, str]:
    """JupyterLab serving ``root`` on a free loopback port, its config and runtime in ``home``, its output to
    ``log`` (an open file); returns (process, url, token) once it answers."""
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )
    # No "get notified about Jupyter news?" toast over the screenshots (a setting of this server's own config dir).
    (home / "config" / "labconfig").mkdir(parents=True, exist_ok=True)
    (home / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            return server, url, token
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError("JupyterLab did not start; see " + log.name) from None
            time.sleep(0.5)


def lab_page(browser, url: str, token: str, workspace: str):
    """A page of ``browser`` with JupyterLab loaded and restored (in a fresh workspace of that name)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/lab/workspaces/{workspace}?reset&token={token}", wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=120_000)
    page.evaluate("() => window.jupyterapp.restored.then(() => 1)")
    return page


def stop_lab(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is not installed and 'make browser-deps' could not install it "
            "(needs root and Debian's apt); the browser test cannot run here"
        )
    root = tmp_path_factory.mktemp("lab") / "notebooks"
    shutil.copytree(REPO / "notebooks", root)
    log = open(tmp_path_factory.mktemp("log") / "lab.log", "w")
    server, url, token = start_lab(root, tmp_path_factory.mktemp("home"), log)

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # One page, loaded once, opens every lesson in turn: loading JupyterLab costs the browser about 7
            # CPU-seconds, opening a notebook in a loaded JupyterLab about 2 (measured 2026-12-01).
            page = lab_page(browser, url, token, "course-test")
            yield {"url": url, "token": token, "browser": browser, "page": page}
        finally:
            browser.close()
            stop_lab(server)
            log.close()


# The notebook panel for a path (found by path: JupyterLab may restore other tabs).
PANEL = """(path) => Array.from(window.jupyterapp.shell.widgets('main'))
  .find(w => w.context && w.context.path === path && w.content && w.content.model)"""

NOTEBOOK_STATE = f"""(path) => {{
  const widget = ({PANEL})(path);
  if (!widget) {{ return null; }}
  const cells = widget.content.model.cells;
  const state = {{errors: [], stderr: [], streams: [], unexecuted: [], code: 0}};
  for (let i = 0; i < cells.length; i++) {{
    const cell = cells.get(i);
    if (cell.type !== 'code') {{ continue; }}
    state.code += 1;
    if (!cell.executionCount) {{ state.unexecuted.push(i); }}
    for (const out of cell.outputs.toJSON()) {{
      if (out.output_type === 'error') {{ state.errors.push([i, out.ename, String(out.evalue).slice(0, 300)]); }}
      if (out.output_type === 'stream') {{
        const text = [].concat(out.text).join('');
        // head and tail of long outputs (a self-check table's header and its closing line)
        state.streams.push(text.length > 3000 ? text.slice(0, 1500) + '\\n...\\n' + text.slice(-1500) : text);
        if (out.name === 'stderr') {{ state.stderr.push([i, text.slice(0, 500)]); }}
      }}
    }}
  }}
  return state;
}}"""

# Close every open document after shutting down its kernel (no "save changes?" dialog: the copy is a scratch
# one), so that the next lesson opens alone, as in a fresh JupyterLab, and no kernel is left running.
CLOSE_ALL = """async () => {
  for (const w of Array.from(window.jupyterapp.shell.widgets('main'))) {
    if (w.sessionContext && w.sessionContext.session) { await w.sessionContext.shutdown(); }
    if (w.context && w.context.model) { w.context.model.dirty = false; }
    w.dispose();
  }
  return 1;
}"""

OPEN = f"""async (path) => {{
  await window.jupyterapp.commands.execute('docmanager:open', {{path, factory: 'Notebook'}});
  const widget = ({PANEL})(path);
  await widget.context.ready;
  window.jupyterapp.shell.activateById(widget.id);
  return widget.id;
}}"""

# "Run All", as a learner would. JupyterLab stops a run at the first cell that raises (here: the test cells
# of exercises not done yet), so after each stop the run resumes below the failing cell, as a learner
# who reads the message and carries on would. Resolves to the indices of the cells that stopped the run.
RUN_ALL = f"""async (path) => {{
  const app = window.jupyterapp;
  const panel = ({PANEL})(path);
  app.shell.activateById(panel.id);
  const notebook = panel.content;
  const cells = notebook.model.cells;
  const stops = [];
  let start = 0;
  let ok = await app.commands.execute('notebook:run-all-cells');
  let retries = 0;
  while (!ok) {{
    let failed = -1, skipped = -1;
    for (let i = start; i < cells.length; i++) {{
      const cell = cells.get(i);
      if (cell.type !== 'code') {{ continue; }}
      if (cell.outputs.toJSON().some(o => o.output_type === 'error')) {{ failed = i; break; }}
      if (skipped < 0 && !cell.executionCount) {{ skipped = i; }}
    }}
    if (skipped >= 0 && (failed < 0 || skipped < failed) && retries < 5) {{
      // A cell before the next error did not run: the kernel aborted a request that arrived just after the
      // error it stopped on (a race on a busy machine). Run on from that cell, as a learner would click again.
      retries += 1;
      await new Promise(resolve => setTimeout(resolve, 500));
      start = skipped;
    }} else if (failed >= 0) {{
      stops.push(failed);
      start = failed + 1;
    }} else {{ break; }}
    if (start >= cells.length) {{ break; }}
    notebook.activeCellIndex = start;
    ok = await app.commands.execute('notebook:run-all-below');
  }}
  return stops;
}}"""

# What a widget shows, without its own controls (a slider's readout changes with the slider itself): its HTML and
# the pixels of the figure the browser painted (convcourse/scene.js).
WIDGET_CONTENT = """(el) => {
  const copy = el.cloneNode(true);
  copy.querySelectorAll('.widget-slider, .widget-dropdown, .widget-play, .widget-toggle-buttons, .widget-readout')
      .forEach(node => node.remove());
  const pictures = Array.from(el.querySelectorAll('canvas.convcourse-scene')).map(canvas => canvas.toDataURL());
  return copy.innerHTML + pictures.join('');
}"""
# When the next key press or dropdown choice reaches the page (performance.now()), as the control sees it.
MARK_INPUT = """() => {
  window.__courseInputAt = 0;
  const mark = () => { if (!window.__courseInputAt) { window.__courseInputAt = performance.now(); } };
  document.addEventListener('keydown', mark, {capture: true, once: true});
  document.addEventListener('input', mark, {capture: true, once: true});
}"""
# When the widget's figures were last painted (performance.now() of the page; 0 if never).
PAINTED_AT = """(el) => Math.max(0, ...Array.from(el.querySelectorAll('canvas.convcourse-scene'))
  .map(canvas => Number(canvas.dataset.paintedAt || 0)))"""
# Every figure a widget painted: its size and how long its last paint took.
SCENES = """(el) => Array.from(el.querySelectorAll('canvas.convcourse-scene'))
  .filter(canvas => canvas.style.display !== 'none')
  .map(canvas => ({width: canvas.width, height: canvas.height, paints: Number(canvas.dataset.paints || 0),
                   paintMs: Number(canvas.dataset.paintMs), label: canvas.getAttribute('aria-label') || ''}))"""


# Code run silently in the notebook's kernel before "Run All" (no cell, no output, no history).
SILENT = f"""async ([path, code]) => {{
  const reply = await ({PANEL})(path).sessionContext.session.kernel
      .requestExecute({{code, silent: true, store_history: false}}).done;
  return reply.content.status;
}}"""


def _run_all_and_wait(page, path: str, timeout: float, setup: str | None = None) -> dict:
    page.wait_for_function(
        f"(path) => {{ const w = window.jupyterapp && ({PANEL})(path); "
        "const k = w && w.sessionContext && w.sessionContext.session "
        "&& w.sessionContext.session.kernel; return k && k.status === 'idle'; }",
        arg=path,
        timeout=120_000,
    )
    if setup:
        assert page.evaluate(SILENT, [path, setup]) == "ok", setup
    page.evaluate(
        f"(path) => {{ window.__courseRun = null; ({RUN_ALL})(path).then("
        "stops => { window.__courseRun = {stops}; }, "
        "error => { window.__courseRun = {failed: String(error)}; }); }",
        path,
    )
    try:
        page.wait_for_function("() => window.__courseRun !== null", timeout=timeout * 1000, polling=500)
    except Exception:  # noqa: BLE001
        state = page.evaluate(NOTEBOOK_STATE, path) or {}
        raise AssertionError(
            f"the notebook did not finish running within {timeout:.0f} s: {json.dumps(state)[:800]}"
        ) from None
    run = page.evaluate("window.__courseRun")
    assert "failed" not in run, f"Run All failed in the page: {run['failed']}"
    page.wait_for_timeout(1000)  # let the last outputs and widget views render
    return page.evaluate(NOTEBOOK_STATE, path)


def _move_control(page, widget) -> str | None:
    """Move the widget's first enabled slider one step with the keyboard, or pick another dropdown option."""
    handle = widget.locator(".noUi-target:not([disabled]) .noUi-handle")  # a greyed-out slider cannot move
    if handle.count():
        handle.first.focus()
        page.keyboard.press("ArrowRight")
        return "slider"
    select = widget.locator("select")
    if select.count() and select.first.locator("option").count() > 1:
        select.first.select_option(index=1)
        return "dropdown"
    return None


@pytest.fixture(scope="module")
def timings():
    times: dict[str, float] = {}
    yield times
    if times:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        lines = [f"{lesson}\t{seconds:.1f}" for lesson, seconds in times.items()]
        lines.append(f"total\t{sum(times.values()):.1f}")
        worker = os.environ.get("PYTEST_XDIST_WORKER")  # one file per server when the lessons are split
        (ARTIFACTS / f"timings{'-' + worker if worker else ''}.tsv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def latencies():
    """Per widget moved: milliseconds from the key press to the end of the browser's paint of the new figure (the
    kernel's redraw, the messages both ways and the paint; one sample each, on a machine busy with the tests)."""
    found: dict[str, float] = {}
    yield found
    if found:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        lines = [f"{widget}\t{ms:.1f}" for widget, ms in found.items()]
        (ARTIFACTS / f"widget-latency{'-' + worker if worker else ''}.tsv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_in_jupyterlab(lab, timings, latencies, lesson):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    page = lab["page"]
    path = f"{lesson}/{lesson}.ipynb"
    try:
        page.evaluate(CLOSE_ALL)  # whatever an earlier lesson left open
        notebook = page.locator(f"#{page.evaluate(OPEN, path)}")  # this lesson's panel: every query below
        notebook.locator(".jp-Notebook").wait_for(timeout=120_000)
        skip = None if lesson in SELFCHECK_LESSONS else f"import os; os.environ[{ACTIVE_FLAG!r}] = {SKIP_SELFCHECK!r}"
        state = _run_all_and_wait(page, path, timeout=420, setup=skip)

        assert not state["unexecuted"], f"{lesson}: cells {state['unexecuted']} did not run"
        unexpected = [e for e in state["errors"] if not any(a in f"{e[1]} {e[2]}" for a in ALLOWED_ERRORS)]
        assert not unexpected, f"{lesson}: unexpected errors {unexpected}"
        noisy = [s for s in state["stderr"] if any(w in s[1] for w in ("Traceback", "Error", "Warning"))]
        assert not noisy, f"{lesson}: errors or warnings on stderr {noisy}"
        # The DOM agrees: every error output on the page is an expected one.
        for text in notebook.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        ).all_inner_texts():
            assert "Traceback" not in text or any(a in text for a in ALLOWED_ERRORS), f"{lesson}: {text[:500]}"

        source = (REPO / "notebooks" / lesson / f"{lesson}.ipynb").read_text()
        if any(marker in source for marker in ("plt.", "show_images", "_widget(", "gallery", "plot_")):
            # A plot is an image; a widget's figure is painted on a canvas by the widget's script.
            notebook.locator(".jp-OutputArea-output img, canvas.convcourse-scene").first.wait_for(
                state="attached", timeout=30_000
            )
            images = notebook.locator(".jp-OutputArea-output img")
            assert images.count() + notebook.locator("canvas.convcourse-scene").count() > 0, f"{lesson}: no plot"
            assert all(
                images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0") for i in range(images.count())
            ), f"{lesson}: an image did not load"

        widgets = notebook.locator(".jp-OutputArea-output:has(> .jupyter-widgets)")
        if "_widget(" in source or "ipywidgets" in source:
            assert widgets.count() > 0, f"{lesson}: the lesson creates widgets but none rendered (text repr only?)"
        moved = 0
        for index in range(widgets.count()):
            widget = widgets.nth(index)
            widget.scroll_into_view_if_needed()
            for scene in widget.evaluate(SCENES):  # each figure painted, with its alt text as its name
                assert scene["paints"] > 0 and scene["width"] > 100 and scene["height"] > 50, (lesson, index, scene)
                assert len(scene["label"]) > 10, (lesson, index, scene)  # the figure's alt text
            before = widget.evaluate(WIDGET_CONTENT)
            page.evaluate(MARK_INPUT)
            if _move_control(page, widget):
                moved += 1
                try:
                    page.wait_for_function(
                        f"([el, before]) => ({WIDGET_CONTENT})(el) !== before",
                        arg=[widget.element_handle(), before],
                        timeout=30_000,
                        polling=250,
                    )
                except Exception:  # noqa: BLE001
                    raise AssertionError(f"{lesson}: widget {index} did not change when its control moved") from None
                painted, pressed = widget.evaluate(PAINTED_AT), page.evaluate("window.__courseInputAt")
                if pressed and painted > pressed:
                    latencies[f"{lesson} widget {index}"] = painted - pressed
        if widgets.count():
            assert moved > 0, f"{lesson}: no widget has a slider or dropdown the test could move"

        if "selfcheck()" in source:
            text = "\n".join(state["streams"])
            if lesson in SELFCHECK_LESSONS:
                assert "points" in text and "visible tests passed" in text, (
                    f"{lesson}: the self-check cell printed no table:\n{text[-1500:]}"
                )
            else:
                assert f"(self-check skipped: {SKIP_SELFCHECK})" in text, text[-1500:]
        page.screenshot(path=str(ARTIFACTS / f"{lesson}.png"), full_page=True)
        notebook.locator(".jp-Notebook .jp-Cell").last.scroll_into_view_if_needed()  # the summary and the self-check
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / f"{lesson}-end.png"), full_page=True)
    except BaseException:
        with contextlib.suppress(Exception):  # the page as the failure left it
            page.screenshot(path=str(ARTIFACTS / f"{lesson}.png"), full_page=True)
        raise
    finally:
        with contextlib.suppress(Exception):  # the next lesson closes what is left; this test's own error stands
            page.evaluate(CLOSE_ALL)
        timings[lesson] = time.monotonic() - started
