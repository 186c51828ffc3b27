"""`make lab` gives learners a JupyterLab without nbgrader's instructor UI; `make lab INSTRUCTOR=1` keeps it.

Each test takes the exact command the Makefile's lab target runs (`make -n`), starts that JupyterLab on
loopback, and reads what a browser would get: the page config's disabled extensions and the formgrader URL.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from course import REPO

TOKEN = "course-lab-config-test"
NBGRADER_LAB = "@jupyter/nbgrader"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_command(port: int, **make_vars: str) -> str:
    """The shell command `make lab` would run (make -n prints it without running anything)."""
    if not shutil.which("make"):
        pytest.skip("GNU make is not installed, so the Makefile's lab target cannot be read")
    args = [f"PORT={port}", f"LAB_ARGS=--no-browser --ServerApp.token={TOKEN} --ServerApp.open_browser=False"]
    args += [f"{k}={v}" for k, v in make_vars.items()]
    env = {k: v for k, v in os.environ.items() if k not in ("INSTRUCTOR", "JUPYTER_CONFIG_PATH")}
    out = subprocess.run(
        ["make", "-s", "-n", "lab", *args], cwd=REPO, env=env, text=True, capture_output=True, check=True
    ).stdout
    lines = out.replace("\\\n", " ").splitlines()
    commands = [line for line in lines if "jupyter lab" in line]
    assert len(commands) == 1, out
    return commands[0]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def _serve_and_read(command: str, port: int, tmp_path) -> tuple[dict, int]:
    """Start the lab, return (page config of /lab, HTTP status of /formgrader), then stop it."""
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "workspaces")
    log = open(tmp_path / "lab.log", "w")
    process = subprocess.Popen(
        ["bash", "-c", command], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{(tmp_path / 'lab.log').read_text()}")
            try:
                status, page = _get(f"{base}/lab?token={TOKEN}")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer in 180 s:\n{(tmp_path / 'lab.log').read_text()}")
            time.sleep(0.5)
        match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
        assert match, "the /lab page has no jupyter-config-data"
        config = json.loads(html.unescape(match.group(1)))
        formgrader_status, _ = _get(f"{base}/formgrader?token={TOKEN}")
        return config, formgrader_status
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the lab and the shell that started it (their own group)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.mark.slow
def test_learner_lab_hides_nbgraders_instructor_ui(tmp_path):
    port = _free_port()
    command = _lab_command(port)
    assert "JUPYTER_CONFIG_PATH=" in command and "jupyter_config/learner" in command
    config, formgrader = _serve_and_read(command, port, tmp_path)
    assert NBGRADER_LAB in config["disabledExtensions"], config["disabledExtensions"]
    # the server extension is off too: no formgrader page behind the hidden menu
    assert formgrader == 404, formgrader
    # what learners need is still there: the widgets extension
    names = {ext["name"] for ext in config["federated_extensions"]}
    assert "@jupyter-widgets/jupyterlab-manager" in names
    assert "@jupyter-widgets/jupyterlab-manager" not in config["disabledExtensions"]


@pytest.mark.slow
def test_instructor_switch_keeps_create_assignment_and_formgrader(tmp_path):
    port = _free_port()
    command = _lab_command(port, INSTRUCTOR="1")
    assert "jupyter_config/learner" not in command
    config, formgrader = _serve_and_read(command, port, tmp_path)
    assert NBGRADER_LAB not in config["disabledExtensions"]
    assert NBGRADER_LAB in {ext["name"] for ext in config["federated_extensions"]}
    assert formgrader == 200, formgrader
