"""`convcourse formgrader` / `make formgrader`: nbgrader's instructor UI on the course root.

Without a browser: the server's PATH and exchange default, and a real server (started the way an instructor
would, by the CLI, with the environment's bin/ *not* on PATH) whose formgrader lists the lessons and whose
assignment list works without "Unwritable directory". With Debian's Chromium (Playwright): the formgrader
shows a graded submission with its scores and the learner's diagnostic message; a manual grade and a
comment entered there survive `convcourse grade --force` and show in the feedback and `convcourse grades`. The
screenshot of that page is artifacts/browser/formgrader.png (docs/formgrader.png in the README is one of them).
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from convcourse.instructor.course import CourseRoot
from convcourse.instructor.formgrader import LAB_PLUGINS, configured_exchange, lab_command, server_environment

from course import REPO, make_course, points, question_points

LESSON = "01_sliding_window"
KEY = REPO / "solutions" / LESSON / f"{LESSON}.ipynb"
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
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
FLIPPED = "your output is the true (flipped-kernel) convolution"  # the check's diagnosis of bob's bug


def course_without_exchange(tmp: Path, lessons: list[str]) -> CourseRoot:
    """A course root whose nbgrader_config.py configures no Exchange.root (as the repository's)."""
    course = make_course(tmp, lessons)
    config = course.root / "nbgrader_config.py"
    config.write_text(
        "".join(line + "\n" for line in config.read_text().splitlines() if not line.startswith("c.Exchange.root"))
    )
    return CourseRoot(course.root)


def cli(root: Path, *args: str, check: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "convcourse.cli", "--course", str(root), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check is not None:
        assert result.returncode == check, result.stdout[-3000:] + result.stderr[-3000:]
    return result


# ------------------------------------------------------------------------------ no server, no browser


def test_server_gets_the_environments_tools_first_on_path(tmp_path):
    course = course_without_exchange(tmp_path, [LESSON])
    env, _ = server_environment(course, {"PATH": "/usr/bin:/bin"})
    bindir = str(Path(sys.executable).parent)
    assert env["PATH"].split(os.pathsep) == [bindir, "/usr/bin", "/bin"]
    assert (Path(bindir) / "alembic").exists()  # what plain nbgrader runs from PATH for a gradebook
    command = lab_command(course, port=8765, open_browser=False)
    assert command[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert f"--ServerApp.root_dir={course.root}" in command and "--no-browser" in command


def test_exchange_defaults_to_the_course_unless_configured(tmp_path):
    course = course_without_exchange(tmp_path, [LESSON])
    assert configured_exchange(course, config_paths=[]) is None
    env, exchange = server_environment(course, {"PATH": "/usr/bin", "JUPYTER_CONFIG_PATH": "/elsewhere"})
    assert exchange == str(course.root / "exchange") and os.access(exchange, os.W_OK | os.X_OK)
    folder = Path(env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0])
    assert env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[1:] == ["/elsewhere"]
    from traitlets.config.loader import PyFileConfigLoader

    written = PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config()
    assert written.Exchange.root == exchange
    page = json.loads((folder / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"] == {plugin: False for plugin in LAB_PLUGINS}  # shown even if make lab hides
    server = json.loads((folder / "jupyter_server_config.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"]["nbgrader.server_extensions.formgrader"] is True

    # A configured exchange wins: in the course's config, or in any Jupyter config directory (a hub's /etc/jupyter).
    site = tmp_path / "etc-jupyter"
    site.mkdir()
    (site / "nbgrader_config.py").write_text("c = get_config()\nc.Exchange.root = '/srv/nbgrader/exchange'\n")
    assert configured_exchange(course, config_paths=[str(site)]) == "/srv/nbgrader/exchange"
    with open(course.root / "nbgrader_config.py", "a") as config:
        config.write(f"c.Exchange.root = {str(tmp_path / 'shared')!r}\n")
    env, exchange = server_environment(course, {"PATH": "/usr/bin"})
    assert exchange == str(tmp_path / "shared")
    assert not (folder / "nbgrader_config.py").exists()  # no course-local default left behind to override it


# ------------------------------------------------------------------------------------ a real server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _flipped_submission() -> nbformat.NotebookNode:
    """The answer key with the kernel flipped in corr2d: the true convolution, a common bug."""
    nb = nbformat.read(KEY, as_version=4)
    cell = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "corr2d")
    cell.source = cell.source.replace('"""\n', '"""\n    k = torch.flip(torch.as_tensor(k), (0, 1))\n', 1)
    assert "torch.flip" in cell.source
    return nb


class Server:
    """A Jupyter server started by ``command`` (a real subprocess on a free loopback port), PATH holding
    only /usr/bin and /bin (the environment not activated), in a home of its own."""

    def __init__(self, tmp: Path, command: list[str], cwd: Path | None = None):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        home = tmp / "home"
        (home / "config" / "labconfig").mkdir(parents=True, exist_ok=True)
        (home / "config" / "labconfig" / "page_config.json").write_text(  # no news toast over the screenshot
            json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
        )
        env = {key: value for key, value in os.environ.items() if not key.startswith("JUPYTER")}
        env.update(
            PATH="/usr/bin:/bin",
            HOME=str(home),
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_DATA_DIR=str(home / "data"),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        )
        self.log_path = tmp / "server.log"
        self.log = open(self.log_path, "w")
        options = [
            f"--port={self.port}",
            "--no-browser",
            f"--IdentityProvider.token={self.token}",
            "--LabApp.news_url=",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        self.process = subprocess.Popen(
            command(options) if callable(command) else command + options,
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2)
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("the server did not start:\n" + self.log_path.read_text()[-3000:])
                time.sleep(0.5)

    def get(self, path: str):
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        import signal

        os.killpg(self.process.pid, signal.SIGTERM)  # its whole session: nothing it started outlives the test
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def test_a_new_gradebook_is_stamped_with_the_revision_alembic_heads_prints(tmp_path):
    """The course looks up nbgrader's schema head in-process (convcourse.grading.stamp_gradebooks_in_process);
    it must be the revision nbgrader itself would get from ``alembic heads``, and what a new gradebook records."""
    import sqlite3

    import nbgrader.api
    from nbgrader.dbutil import _temp_alembic_ini

    with _temp_alembic_ini("sqlite:///gradebook.db") as ini:
        printed = subprocess.run(
            [str(Path(sys.executable).parent / "alembic"), "-c", ini, "heads"], capture_output=True, text=True
        )
    assert printed.returncode == 0, printed.stderr
    head = printed.stdout.split()[0]
    assert nbgrader.api.get_alembic_version() == head  # the tests' process uses the in-process lookup too
    db = tmp_path / "gradebook.db"
    nbgrader.api.Gradebook(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]


@pytest.mark.slow
def test_plain_jupyter_lab_in_the_course_root_creates_the_gradebook_without_the_environment_activated(tmp_path):
    """The repository's nbgrader_config.py puts the environment's tools on PATH (and stamps new gradebooks
    in-process), so even a JupyterLab started by hand (not by `make formgrader`) creates the gradebook when
    the formgrader first lists."""
    root = tmp_path / "course"
    (root / "source").mkdir(parents=True)
    (root / "source" / LESSON).symlink_to(REPO / "autograder" / "source" / LESSON)
    (root / "nbgrader_config.py").write_text((REPO / "autograder" / "nbgrader_config.py").read_text())
    server = Server(
        tmp_path,
        [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root}"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=root,
    )
    try:
        assert [a["name"] for a in server.get("/formgrader/api/assignments")] == [LESSON]
    finally:
        server.stop()
    assert (root / "gradebook.db").exists()
    log = server.log_path.read_text()
    assert "FileNotFoundError" not in log and "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def formgrader(tmp_path_factory):
    """A course with two graded learners (ada: the answer key; bob: a flipped kernel), and
    `convcourse formgrader` serving it, started without the environment on PATH."""
    tmp = tmp_path_factory.mktemp("formgrader")
    course = course_without_exchange(tmp, [LESSON])
    server = Server(
        tmp,
        lambda options: [
            sys.executable,
            "-m",
            "convcourse.cli",
            "--course",
            str(course.root),
            "formgrader",
            "--no-browser",
            "--port",
            options[0].split("=")[1],
            "--",
            *options[2:],
        ],
    )
    try:
        yield from _graded_behind(server, course, tmp)
    finally:
        server.stop()


def _graded_behind(server: Server, course: CourseRoot, tmp: Path):
    # First use: no gradebook yet, so listing the lessons creates it.
    first = server.get("/formgrader/api/assignments")
    (tmp / "roster.csv").write_text("id,first_name,last_name\nada,Ada,Lovelace\nbob,Bob,Builder\n")
    cli(course.root, "roster", str(tmp / "roster.csv"))
    cli(course.root, "release", LESSON)
    for student, nb in (("ada", nbformat.read(KEY, as_version=4)), ("bob", _flipped_submission())):
        target = course.root / "submitted" / student / LESSON / f"{LESSON}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    cli(course.root, "grade", LESSON, "--workers", "1", "--no-progress")
    yield {
        "course": course,
        "url": server.url,
        "token": server.token,
        "log": server.log_path,
        "tmp": tmp,
        "server": server,
        "first": first,
    }


def _get(formgrader, path: str):
    request = urllib.request.Request(
        formgrader["url"] + path, headers={"Authorization": f"token {formgrader['token']}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_formgrader_lists_the_lessons_without_path_or_exchange_errors(formgrader):
    assert [(a["name"], a["num_submissions"]) for a in formgrader["first"]] == [(LESSON, 0)]  # before grading
    assignments = _get(formgrader, "/formgrader/api/assignments")
    assert [a["name"] for a in assignments] == [LESSON]
    assert assignments[0]["num_submissions"] == 2
    submissions = _get(formgrader, f"/formgrader/api/submissions/{LESSON}")
    full, questions = sum(points(LESSON).values()), sum(question_points(LESSON).values())
    assert sorted((s["student"], s["score"]) for s in submissions) == [("ada", full), ("bob", questions)]
    courses = _get(formgrader, "/courses")  # the learners' course list reads the exchange
    assert courses["success"], courses
    _get(formgrader, "/assignments?course_id=conv2d-from-the-ground-up")
    log = formgrader["log"].read_text()
    assert "Unwritable directory" not in log and "FileNotFoundError" not in log, log[-3000:]
    assert f"nbgrader exchange: {formgrader['course'].root / 'exchange'}" in log


# ------------------------------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is not installed and 'make browser-deps' could not install it "
            "(needs root and Debian's apt); the browser test cannot run here"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(1800)  # grades the class twice and renders feedback: slow on a loaded machine
def test_manual_grade_and_comment_from_the_formgrader_survive_regrading(formgrader, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url, token, course = formgrader["url"], formgrader["token"], formgrader["course"]
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    try:
        # JupyterLab on the course root, with the nbgrader menu and the formgrader in it.
        page.goto(f"{url}/lab?token={token}", wait_until="domcontentloaded")
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.commands.hasCommand('nbgrader:open-formgrader')",
            timeout=120_000,
        )
        page.evaluate("() => window.jupyterapp.commands.execute('nbgrader:open-formgrader')")
        frame = page.frame_locator("iframe[src*='formgrader']")
        frame.locator(f"text={LESSON}").first.wait_for(timeout=60_000)  # Manage Assignments lists the lesson

        # The submissions of the lesson, then bob's notebook: scores and the check's message for his bug.
        page.goto(f"{url}/formgrader/manage_submissions/{LESSON}?token={token}", wait_until="domcontentloaded")
        page.locator("text=bob").first.wait_for(timeout=60_000)
        submission = next(
            s
            for s in _get(formgrader, f"/formgrader/api/submitted_notebooks/{LESSON}/{LESSON}")
            if s["student"] == "bob"
        )
        page.goto(f"{url}/formgrader/submissions/{submission['id']}/?token={token}", wait_until="domcontentloaded")
        page.locator(".nbgrader_cell").first.wait_for(timeout=60_000)
        text = page.locator("body").inner_text()
        assert FLIPPED in text, text[:3000]
        page.locator("input.score[placeholder]").first.wait_for(timeout=60_000)  # the grades have loaded
        score = page.locator("input.score").first
        assert score.get_attribute("placeholder") in ("0", "0.0") and score.input_value() == ""  # autograder's 0
        assert "/ 5" in text

        # A manual grade (partial credit) and a comment, as an instructor types them (each saves on blur).
        score.fill("2")
        score.press("Tab")
        comment = page.locator("textarea.comment").first
        comment.fill("Right idea; flip the kernel back (see lesson 01, cross-correlation).")
        comment.press("Tab")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            grades = _get(formgrader, f"/formgrader/api/grades?submission_id={submission['id']}")
            comments = _get(formgrader, f"/formgrader/api/comments?submission_id={submission['id']}")
            if any(g["manual_score"] == 2 for g in grades) and any(c["manual_comment"] for c in comments):
                break
            page.wait_for_timeout(500)
        else:
            raise AssertionError(f"the formgrader did not save the grade and comment: {grades} {comments}")
        page.reload(wait_until="domcontentloaded")
        page.locator("input.score[placeholder]").first.wait_for(timeout=60_000)
        # The picture for the README: the graded test cell, its manual score, the check's message above the fold.
        page.locator("input.score").first.evaluate(
            "el => { el.closest('.nbgrader_cell').scrollIntoView({block: 'start'}); window.scrollBy(0, -60); }"
        )
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "formgrader.png"))
        assert page.locator("input.score").first.input_value() == "2"
    finally:
        page.close()

    # Regrading everything keeps the instructor's grade and comment; the export shows the manual grade.
    cli(course.root, "grade", LESSON, "--force", "--workers", "1", "--no-progress")
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gb:
        notebook = gb.find_submission_notebook(LESSON, LESSON, "bob")
        assert [(g.auto_score, g.manual_score, g.score) for g in notebook.grades if g.name == "test_corr2d"] == [
            (0.0, 2.0, 2.0)
        ]
        assert [c.manual_comment for c in notebook.comments if c.manual_comment] == [
            "Right idea; flip the kernel back (see lesson 01, cross-correlation)."
        ]
    cli(course.root, "feedback", LESSON, "--student", "bob")
    html = (course.root / "feedback" / "bob" / LESSON / f"{LESSON}.html").read_text()
    assert "Right idea; flip the kernel back" in html and FLIPPED in html
    out = formgrader["tmp"] / "grades.csv"
    cli(course.root, "grades", "--out", str(out))
    rows = {row["student_id"]: row for row in csv.DictReader(out.open())}
    full, questions = sum(points(LESSON).values()), sum(question_points(LESSON).values())
    assert float(rows["bob"]["score"]) == 2.0 + questions and float(rows["ada"]["score"]) == full
