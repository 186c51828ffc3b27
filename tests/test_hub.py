"""A class on a real JupyterHub: the hub that autograder/jupyterhub_config.py.example configures, in its local mode.

The test starts JupyterHub (with configurable-http-proxy, which `make hub-deps` installs from npm into the
environment where it is not on PATH; without it the test is skipped with the reason) on loopback, the instructors'
grading service it manages, and one single-user server per learner from this environment. As root, as in
production, every learner is a Unix account of their own (made here, removed afterwards) and the exchange is the
course's private one; otherwise every learner's server runs as this user with nbgrader's default exchange (the
config's "shared" trial, which the test then says it ran). Everything goes through the hub's REST API and each
learner's own server behind the proxy, with that learner's token: the Assignments tab's endpoints (list, fetch,
submit, fetch_feedback) and jupyter_server's contents and kernels APIs.

The class: the instructor releases lesson 01; seven learners at once fetch it, write their answers and run the
notebook in a kernel of their own server before submitting; some submit twice (the later one is graded), one after
the due date, one never. The instructor's commands are the convcourse CLI in the course root with the grading
service's environment (on a real hub, typed in that service's terminal): collect, grade (the parallel grader,
two workers), feedback. Each learner then fetches feedback and must get exactly their own, scored as in the
gradebook; with own accounts, one learner's kernel also tries to list, read and change another's submission and
feedback in the exchange, and must be refused.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest
from dask_cluster import kill_tree
from nbgrader.utils import notebook_hash

from convcourse.grading.config import COURSE_ID

from course import KERNEL_TRANSPORT, REPO, make_course, points
from unix_accounts import ATTEMPT, course_environment, runnable_python, unix_accounts, why_not_root

pytestmark = pytest.mark.slow

LESSON = "01_sliding_window"
NOTEBOOK = f"{LESSON}/{LESSON}.ipynb"
KEY = REPO / "solutions" / LESSON / f"{LESSON}.ipynb"
CONFIG = REPO / "autograder" / "jupyterhub_config.py.example"
BIN = Path(sys.executable).parent
INSTRUCTOR = "instructor1"  # the config's INSTRUCTORS
POINTS = points(LESSON)
FULL = sum(POINTS.values())
WRONG = FULL - POINTS["test_corr2d"]  # corr2d wrong, the questions right

#: Hub user names are Unix account names when learners have their own accounts: a prefix keeps them apart from
#: the machine's.
PREFIX = "cchub-"
#: learner -> the answers submitted, in order ("key": the answer key's code, "wrong": corr2d returns zeros,
#: "blank": the lesson as fetched), and when: "on time" or "late" (after the due date); () never submits.
#: Each learner runs their first answer in a kernel of their server before submitting it. One learner per way
#: through the course: servers, kernels and self-checks are most of the test's cost, so no two learners alike.
PLAN: dict[str, tuple[tuple[str, ...], str]] = {
    f"{PREFIX}{name}": plan
    for name, plan in {
        "ada": (("key",), "on time"),
        "eve": (("blank", "key"), "on time"),
        "gus": (("key", "wrong"), "on time"),
        "jo": (("blank",), "on time"),
        "kit": (("wrong",), "on time"),
        "hal": (("key",), "late"),
        "lu": ((), "never"),
    }.items()
}
#: The score each learner's last submission earns.
EXPECTED = {
    name: {"key": FULL, "wrong": WRONG, "blank": 0.0}[answers[-1]] for name, (answers, _) in PLAN.items() if answers
}
#: With own accounts: whose work another learner tries to reach from their kernel, and who tries.
VICTIM, PRYING = f"{PREFIX}ada", f"{PREFIX}kit"
INSTRUCTORS_GROUP = f"{PREFIX}instructors"
#: Run by the prying learner: each attempt on the victim's work (paths in JSON) -> "allowed" or the error.
PRY = (
    ATTEMPT
    + """
import json, os
paths = json.loads({paths!r})
def replace(path):
    with open(path, "w") as fh:
        fh.write("{{}}")
print(json.dumps({{
    "list inbound": attempt(lambda: os.listdir(paths["inbound"])),
    "list feedback": attempt(lambda: os.listdir(paths["feedback"])),
    "read submission": attempt(lambda: open(paths["submission"]).read()),
    "replace submission": attempt(lambda: replace(paths["submission"])),
    "rename submission": attempt(lambda: os.rename(os.path.dirname(paths["submission"]), paths["inbound"] + "/x")),
    "read feedback": attempt(lambda: open(paths["feedback_page"]).read()),
}}))
"""
)


def _json_part(message: str | bytes) -> str | bytes:
    """A kernel message from Jupyter's websocket: text, or (a message with binary buffers, such as a widget's
    picture) the server's binary frame, whose first part after the offsets is the message's JSON."""
    if isinstance(message, str):
        return message
    count = struct.unpack_from("!I", message)[0]
    offsets = struct.unpack_from(f"!{count}I", message, 4)
    return message[offsets[0] : offsets[1] if count > 1 else None]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proxy_command() -> str | None:
    """configurable-http-proxy from this environment (make hub-deps) or PATH."""
    return shutil.which("configurable-http-proxy", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def load_config(path: Path, env: dict[str, str]):
    """The traitlets config that ``path`` gives JupyterHub in the environment ``env``."""
    from unittest import mock

    from traitlets.config import PyFileConfigLoader

    with mock.patch.dict(os.environ, env, clear=True):
        return PyFileConfigLoader(path.name, str(path.parent)).load_config()


class Hub:
    """JupyterHub started from the course's example config in its local mode, in ``folder``."""

    def __init__(self, folder: Path, course_root: Path, accounts_env: dict[str, str]) -> None:
        import requests

        self.folder = folder
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(32)
        self.service_port = _free_port()
        shutil.copy(CONFIG, folder / "jupyterhub_config.py")
        env = dict(
            os.environ,
            CONVCOURSE_HUB_LOCAL=str(folder),
            CONVCOURSE_HUB_COURSE=str(course_root),
            CONVCOURSE_HUB_ADMIN_TOKEN=self.token,
            CONVCOURSE_HUB_SERVICE_PORT=str(self.service_port),
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            **accounts_env,
        )
        #: the instructors' grading service's environment, as the config gives it
        self.service_env = load_config(folder / "jupyterhub_config.py", env).JupyterHub.services[0]["environment"]
        self.log = course_root.parent / "hub.log"  # kept by pytest when the test fails
        command = [
            str(BIN / "jupyterhub"),
            "-f",
            str(folder / "jupyterhub_config.py"),
            f"--JupyterHub.bind_url={self.url}",
            f"--JupyterHub.hub_port={_free_port()}",
            f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{_free_port()}",
        ]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.admin = requests.Session()
        self.admin.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=len(PLAN) + 1))  # one per thread
        self.admin.headers["Authorization"] = f"token {self.token}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def api(self, method: str, path: str, **kwargs):
        response = self.admin.request(method, f"{self.url}/hub/api/{path}", timeout=60, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def wait_until_up(self, seconds: float = 90) -> None:
        import requests

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"JupyterHub exited:\n{self.log_tail()}"
            try:
                if self.admin.get(f"{self.url}/hub/api/users", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"JupyterHub did not answer in {seconds} s:\n{self.log_tail()}")

    def start_server(self, name: str, seconds: float = 180) -> None:
        """Ask the hub for ``name``'s server and wait until the hub reports it ready."""
        self.api("POST", f"users/{name}/server")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            server = self.api("GET", f"users/{name}")["servers"].get("")
            if server and server["ready"]:
                return
            assert self.process.poll() is None, f"JupyterHub exited:\n{self.log_tail()}"
            time.sleep(0.5)
        raise AssertionError(f"{name}'s server was not ready in {seconds} s:\n{self.log_tail()}")

    def session(self, name: str):
        """An HTTP session with a new token of hub user ``name``."""
        import requests

        session = requests.Session()
        token = self.api("POST", f"users/{name}/tokens", json={"note": "tests/test_hub.py"})["token"]
        session.headers["Authorization"] = f"token {token}"
        return session

    def stop(self) -> None:
        """Kill the hub, the proxy, the service and the learners' servers and kernels."""
        kill_tree(self.process)


class Learner:
    """A hub user working in their own single-user server, through the proxy, with their own token."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.name = name
        self.base = f"{hub.url}/user/{name}"
        self.http = hub.session(name)

    def call(self, method: str, path: str, **kwargs):
        response = self.http.request(method, f"{self.base}/{path}", timeout=120, **kwargs)
        assert response.status_code < 300, f"{self.name}: {method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def assignments(self) -> list[dict]:
        answer = self.call("GET", "assignments", params={"course_id": COURSE_ID})
        assert answer["success"], answer
        return answer["value"]

    def action(self, action: str) -> list[dict]:
        """POST to the Assignments tab's fetch / submit / fetch_feedback, as its buttons do."""
        answer = self.call("POST", f"assignments/{action}", json={"course_id": COURSE_ID, "assignment_id": LESSON})
        assert answer["success"], f"{self.name}: {action}: {answer}"
        return answer["value"]

    def read(self, path: str) -> dict:
        return self.call("GET", f"api/contents/{path}", params={"content": "1"})

    def write_notebook(self, nb: nbformat.NotebookNode) -> None:
        self.call("PUT", f"api/contents/{NOTEBOOK}", json={"type": "notebook", "format": "json", "content": nb})

    def submissions(self) -> list[str]:
        """Timestamps of this learner's submissions, as the Assignments tab lists them."""
        (entry,) = [a for a in self.assignments() if a["assignment_id"] == LESSON and a["status"] == "submitted"]
        return sorted(s["timestamp"] for s in entry["submissions"])

    def run(self, nb: nbformat.NotebookNode) -> dict[int, list]:
        """Run every code cell in a new kernel of this learner's server, stopping at the first error (as "Run
        All" does); store the outputs in ``nb``; return {cell index: error outputs}."""
        kernel = self.call("POST", "api/kernels", json={"name": "python3"})
        try:
            return asyncio.run(self._execute(kernel["id"], nb))
        finally:
            self.call("DELETE", f"api/kernels/{kernel['id']}")

    async def _execute(self, kernel_id: str, nb: nbformat.NotebookNode) -> dict[int, list]:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = self.base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
        socket_ = await websocket_connect(HTTPRequest(url, headers=dict(self.http.headers), request_timeout=120))
        session, errors = uuid.uuid4().hex, {}
        try:
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                msg_id = uuid.uuid4().hex
                header = {"msg_id": msg_id, "msg_type": "execute_request", "session": session, "username": self.name}
                content = {"code": cell.source, "silent": False, "store_history": True, "user_expressions": {}}
                content |= {"allow_stdin": False, "stop_on_error": True}
                request = {"header": header | {"version": "5.3", "date": datetime.now(timezone.utc).isoformat()}}
                request |= {"parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}
                await socket_.write_message(json.dumps(request))
                cell.outputs, replied, idle = [], False, False
                while not (replied and idle):
                    message = await asyncio.wait_for(socket_.read_message(), timeout=300)
                    assert message is not None, f"{self.name}: the kernel's websocket closed"
                    msg = json.loads(_json_part(message))
                    if msg.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    kind = msg["msg_type"]
                    if kind == "execute_reply":
                        replied = True
                    elif kind == "status":
                        idle = msg["content"]["execution_state"] == "idle"
                    elif kind in ("stream", "display_data", "execute_result", "error"):
                        cell.outputs.append(nbformat.v4.output_from_msg(msg))
                failed = [out for out in cell.outputs if out.output_type == "error"]
                if failed:
                    errors[index] = failed
                    break
        finally:
            socket_.close()
        return errors


def answered(fetched: nbformat.NotebookNode, answer: str, learner: str) -> nbformat.NotebookNode:
    """The fetched lesson with a learner's answers: the answer key's code ("key"), the key with a corr2d that
    returns zeros ("wrong"), or none ("blank"); each marked with the learner's name in the corr2d cell."""
    nb = nbformat.from_dict(json.loads(json.dumps(fetched)))
    key = nbformat.read(KEY, as_version=4)
    assert len(key.cells) == len(nb.cells)
    for cell, key_cell in zip(nb.cells, key.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if answer != "blank" and cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("locked"):
            cell.source = key_cell.source
        if grade_id == "corr2d":
            if answer == "wrong":
                cell.source += "\n\n\ndef corr2d(x, k):\n    return torch.zeros(1)\n"
            cell.source = f"# answer of {learner}\n{cell.source}"
    return nb


def instructor(hub: Hub, course_root: Path, *args: str) -> str:
    """A convcourse command in the course root, in the grading service's environment."""
    result = subprocess.run(
        [sys.executable, "-m", "convcourse.cli", *args],
        cwd=course_root,
        env=dict(os.environ, **hub.service_env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"convcourse {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


@dataclass
class Setup:
    hub: Hub
    course: object
    exchange: Path
    own_accounts: bool


def _own_accounts_python() -> tuple[str | None, str]:
    """The Python the learners' accounts run their servers with, or None and why they can't have accounts."""
    if why_not_root():
        return None, why_not_root()
    python = runnable_python(course_environment(), VICTIM, "jupyterhub.singleuser, ipykernel, torch, convcourse")
    return python, f"no Python {sys.version_info[:2]} that the learners' accounts may run"


@pytest.fixture
def hub(tmp_path):
    pytest.importorskip("jupyterhub", reason="jupyterhub is not installed (make test installs the '.[dev,hub]' pins)")
    if proxy_command() is None:
        pytest.skip(
            "configurable-http-proxy is neither in this environment nor on PATH, and 'make hub-deps' could not "
            "install it (it needs npm and the npm registry): the JupyterHub test cannot run here"
        )
    course = make_course(tmp_path, [LESSON], list(PLAN))  # the roster: every learner, including who never submits
    # the exchange as on a hub: from the grading service's environment (jupyter_config/hub), not the course config
    config = course.root / "nbgrader_config.py"
    config.write_text("".join(line for line in config.read_text().splitlines(True) if "Exchange.root" not in line))
    with ExitStack() as stack:
        if not why_not_root():
            stack.enter_context(unix_accounts(dict.fromkeys(PLAN, []), [INSTRUCTORS_GROUP]))
        python, why_shared = _own_accounts_python()
        if python:
            # the hub's folder: learners pass through it (0711) to the exchange, which the administrator makes
            # as the README says: install -d -m 2755 -o INSTRUCTOR -g instructors EXCHANGE
            folder = Path(tempfile.mkdtemp(prefix="cchub-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            folder.chmod(0o711)
            (folder / "exchange").mkdir()
            shutil.chown(folder / "exchange", group=INSTRUCTORS_GROUP)
            (folder / "exchange").chmod(0o2755)
            accounts_env = {"CONVCOURSE_HUB_ACCOUNTS": "own", "CONVCOURSE_HUB_PYTHON": python}
            accounts_env["PYTHONPATH"] = course_environment()["PYTHONPATH"]
        else:
            warnings.warn(f"the hub test runs the 'shared' trial (one Unix user, nbgrader's exchange): {why_shared}")
            folder = tmp_path
            (folder / "exchange").mkdir(mode=0o777)
            accounts_env = {"CONVCOURSE_HUB_ACCOUNTS": "shared"}
        started = Hub(folder, course.root, accounts_env)
        stack.callback(started.stop)
        started.wait_until_up()
        yield Setup(started, course, folder / "exchange", python is not None)


def test_a_class_on_jupyterhub(hub):
    setup, hub, course = hub, hub.hub, hub.course
    with ThreadPoolExecutor(max_workers=len(PLAN) + 1) as pool:
        # the learners' accounts and servers (all at once), while the instructor releases the lesson
        hub.api("POST", "users", json={"usernames": list(PLAN)})
        starting = [pool.submit(hub.start_server, name) for name in PLAN]
        released = instructor(hub, course.root, "release", LESSON, "--exchange")
        assert "and into the exchange" in released, released
        for future in starting:
            future.result()
        learners = {name: Learner(hub, name) for name in PLAN}

        # only instructors reach the grading service; learners' servers have no instructor UI
        service = f"{hub.url}/services/{COURSE_ID}/api/status"
        assert hub.session(INSTRUCTOR).get(service, timeout=60).status_code == 200
        assert learners[VICTIM].http.get(service, timeout=60).status_code == 403
        assert learners[VICTIM].http.get(f"{learners[VICTIM].base}/formgrader", timeout=60).status_code == 404
        # learners' kernels talk to their server over unix sockets: no TCP port two servers can race for
        transport = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(KERNEL_TRANSPORT)])
        assert learners[VICTIM].run(transport) == {}, transport.cells[0].outputs
        assert json.loads(transport.cells[0].outputs[0]["text"])["transport"] == "ipc", transport.cells[0].outputs

        def work(name: str, late: bool) -> None:
            learner = learners[name]
            answers, when = PLAN[name]
            if not late:
                listed = learner.assignments()
                assert [(a["assignment_id"], a["status"]) for a in listed] == [(LESSON, "released")], listed
                learner.action("fetch")
                assert learner.read(NOTEBOOK)["type"] == "notebook"
            if (when == "late") != late:
                return
            fetched = nbformat.from_dict(learner.read(NOTEBOOK)["content"])
            for attempt, answer in enumerate(answers):
                nb = answered(fetched, answer, name)
                if attempt == 0:
                    errors = learner.run(nb)
                    if answer == "key":
                        assert errors == {}, name
                        assert [cell for cell in nb.cells if cell.cell_type == "code"][-1].outputs  # self-check table
                    else:  # the run stops at the first test cell that fails, with the reason in its output
                        assert errors, name
                learner.write_notebook(nb)
                submitted = learner.action("submit")
                assert any(a["status"] == "submitted" for a in submitted), submitted

        for future in [pool.submit(work, name, False) for name in PLAN]:
            future.result()

        # the due date passes (instructors set it in the formgrader's Manage Assignments); then the late ones
        due = datetime.now(timezone.utc).replace(tzinfo=None)
        with course.gradebook() as gb:
            gb.update_or_create_assignment(LESSON, duedate=due)
        time.sleep(0.01)
        for future in [pool.submit(work, name, True) for name in PLAN if PLAN[name][1] == "late"]:
            future.result()
        last_submission = {name: learners[name].submissions()[-1] for name in EXPECTED}
        for name, (answers, _) in PLAN.items():
            if answers:
                assert len(learners[name].submissions()) == len(answers), name

        # the instructor collects, grades and releases feedback
        collected = instructor(hub, course.root, "collect", LESSON, "--exchange")
        assert f"{len(EXPECTED)} new or changed submission(s): {', '.join(sorted(EXPECTED))}" in collected, collected
        graded = instructor(hub, course.root, "grade", LESSON, "--workers", "2", "--no-progress")
        scores = {name: course.total(LESSON, name) for name in EXPECTED}
        assert scores == EXPECTED, graded
        instructor(hub, course.root, "feedback", LESSON, "--exchange")
        instructor(hub, course.root, "grades", "--out", str(course.root.parent / "grades.csv"))

        def feedback(name: str) -> dict[str, str]:
            """timestamp -> the feedback HTML this learner fetched through their own server."""
            learner = learners[name]
            learner.action("fetch_feedback")
            folder = learner.call("GET", f"api/contents/{LESSON}", params={"content": "1"})["content"]
            if not any(item["name"] == "feedback" for item in folder):
                return {}
            fetched = {}
            for entry in learner.read(f"{LESSON}/feedback")["content"]:
                html = learner.call("GET", f"api/contents/{entry['path']}/{LESSON}.html", params={"format": "text"})
                fetched[entry["name"]] = html["content"]
            return fetched

        fetched = dict(zip(PLAN, pool.map(feedback, PLAN)))

        if setup.own_accounts:  # a learner's own kernel, knowing every path, tries to reach another's work
            course_folder = setup.exchange / COURSE_ID
            (submission,) = (course_folder / "inbound").glob(f"{VICTIM}+{LESSON}+{last_submission[VICTIM]}+*")
            secret = (submission / "submission_secret.txt").read_text()
            page = f"{notebook_hash(secret=secret, notebook_id=LESSON)}.html"
            paths = {
                "inbound": str(course_folder / "inbound"),
                "feedback": str(course_folder / "feedback"),
                "submission": str(submission / f"{LESSON}.ipynb"),
                "feedback_page": str(course_folder / "feedback" / page),
            }
            before = (submission / f"{LESSON}.ipynb").read_bytes()
            probe = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PRY.format(paths=json.dumps(paths)))])
            assert learners[PRYING].run(probe) == {}
            tried = json.loads(probe.cells[0].outputs[0]["text"])
            assert tried == dict.fromkeys(tried, "PermissionError") and len(tried) == 6, tried
            assert (submission / f"{LESSON}.ipynb").read_bytes() == before

    assert fetched[f"{PREFIX}lu"] == {}
    for name, expected in EXPECTED.items():
        assert list(fetched[name]) == [last_submission[name]], (name, list(fetched[name]), last_submission[name])
        (html,) = fetched[name].values()
        assert f"answer of {name}" in html
        assert not [other for other in EXPECTED if other != name and re.search(rf"answer of {other}\b", html)], name
        score = re.search(r"Score: ([\d.]+) / ([\d.]+)", html)
        assert score and (float(score[1]), float(score[2])) == (expected, FULL), (name, score and score[0])

    with open(course.root.parent / "grades.csv", newline="") as table:
        rows = {row["student_id"]: row for row in csv.DictReader(table)}
    assert rows[f"{PREFIX}lu"]["status"] == "no submission"
    for name in EXPECTED:
        assert rows[name]["status"] == "graded" and float(rows[name]["score"]) == EXPECTED[name], rows[name]
        late = datetime.fromisoformat(rows[name]["timestamp"]) > datetime.fromisoformat(rows[name]["duedate"])
        assert late == (PLAN[name][1] == "late"), rows[name]
