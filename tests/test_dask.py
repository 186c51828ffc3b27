"""``convcourse grade --scheduler``: grading on a real Dask cluster started here on 127.0.0.1.

One ``dask scheduler`` and three ``dask worker`` processes (one process, one thread each): two in this
environment, and a stale one whose Python cannot import ``convcourse`` (a package of that name that fails to
import comes first on its PYTHONPATH, as on a machine where the course was never installed). The grades
must equal local grading of the same class, the stale worker must be named with its address and never get
a learner, and killing a worker in the middle of a run must lose and double nobody.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from course import REPO, make_course, points, run_in

try:
    import distributed
except ImportError as error:  # pragma: no cover - the pinned environment has it
    distributed = None
    MISSING = f"Dask's distributed package cannot be imported ({error}): grading on Dask is not tested"

LESSON = "01_sliding_window"
KEY = REPO / "solutions" / LESSON / f"{LESSON}.ipynb"
RELEASED = REPO / "notebooks" / LESSON / f"{LESSON}.ipynb"
POINTS = points(LESSON)


def solution_edited(prefix: str) -> bytes:
    nb = nbformat.read(KEY, as_version=4)
    cell = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "corr2d")
    cell.source = prefix + cell.source
    return nbformat.writes(nb).encode()


def class_of_five() -> dict[str, bytes]:
    """Full marks, zero, a crash in the solution, a kernel that dies, a file that is not a notebook."""
    return {
        "full": KEY.read_bytes(),
        "zero": RELEASED.read_bytes(),
        "wrong": solution_edited("raise ValueError('wrong on purpose')\n"),
        "died": solution_edited("import os\nos._exit(3)\n"),
        "broken": b'{"cells": [ this is not json',
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A course where ``nbgrader generate_assignment`` ran once; :func:`course_with` copies its gradebook."""
    course = make_course(tmp_path_factory.mktemp("generated"), [LESSON])
    run_in(course, ["generate_assignment", LESSON, "--force"])
    return course


def course_with(generated, tmp: Path, submissions: dict[str, bytes]):
    """A course with the lesson generated (the gradebook of ``generated``) and these submissions."""
    course = make_course(tmp, [LESSON])
    shutil.copy(generated.root / "gradebook.db", course.root / "gradebook.db")
    for student, data in submissions.items():
        course.submit(LESSON, student, data)
    return course


def grade_command(course, scheduler: str, report: Path) -> list[str]:
    cli = [sys.executable, "-m", "convcourse.cli", "--course", str(course.root), "grade", LESSON]
    return cli + ["--scheduler", scheduler, "--no-progress", "--json", str(report)]


def all_scores(course) -> dict[str, dict[str, float | None]]:
    with course.gradebook() as gb:
        return {
            s.student.id: {g.name: g.auto_score for n in s.notebooks for g in n.grades}
            for s in gb.find_assignment(LESSON).submissions
        }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if distributed is None:
        pytest.skip(MISSING)
    from dask_cluster import LocalDaskCluster

    tmp = tmp_path_factory.mktemp("dask")
    shadow = tmp / "no-course" / "convcourse"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'convcourse'\")\n")
    local = LocalDaskCluster(tmp / "cluster")
    try:
        good = {name: local.add_worker(name) for name in ("one", "two")}
        stale = local.add_worker("stale", env=dict(os.environ, PYTHONPATH=str(shadow.parent)))
        local.wait_for([*good.values(), stale])
        yield SimpleNamespace(local=local, address=local.address, good=good, stale=stale)
    finally:
        local.stop()


@pytest.mark.slow
def test_dask_grades_equal_local_grades_and_a_worker_without_the_course_is_named_and_unused(
    cluster, generated, tmp_path, grading_pool
):
    subs = class_of_five()
    on_dask = course_with(generated, tmp_path / "dask", subs)
    done = subprocess.run(
        grade_command(on_dask, cluster.address, tmp_path / "dask.json"), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 1, done.stdout + done.stderr  # the broken notebook is not graded
    report = json.loads((tmp_path / "dask.json").read_text())

    local = course_with(generated, tmp_path / "local", subs)
    local_report = local.grade(LESSON, grading_pool[:1])  # one worker: one fork server to start, not two

    assert all_scores(on_dask) == all_scores(local)
    assert all_scores(on_dask)["full"] == POINTS and all_scores(on_dask)["died"] == dict.fromkeys(POINTS, 0.0)
    statuses = {o["student"]: o["status"] for o in report["graded"]}
    assert statuses == {o.student: o.status for o in local_report.graded}
    assert statuses == {"full": "ok", "zero": "ok", "wrong": "ok", "died": "kernel-died", "broken": "error"}
    assert all(o["worker"] in cluster.good.values() for o in report["graded"]), report["graded"]
    for student in ("full", "zero", "wrong", "died"):
        assert local.autograded(LESSON, student).cells
        assert [c.source for c in on_dask.autograded(LESSON, student).cells] == [
            c.source for c in local.autograded(LESSON, student).cells
        ]
    assert report["sandbox"] == local_report.sandbox

    out = done.stdout + done.stderr
    assert f"Dask worker {cluster.stale} NOT used" in out and "convcourse cannot be imported" in out, out
    assert "No module named 'convcourse'" in report["unused_workers"][cluster.stale]
    assert "broken: NOT graded: 01_sliding_window.ipynb is not a readable notebook" in done.stdout, done.stdout


@pytest.mark.slow
def test_killing_a_dask_worker_mid_run_loses_and_doubles_nobody(cluster, generated, tmp_path):
    """Runs last among the cluster's users: it kills the worker with a learner in flight; Dask sends what
    that worker had not finished to the other one."""
    from distributed import Client

    subs = {f"learner{i}": (KEY if i % 2 == 0 else RELEASED).read_bytes() for i in range(4)}
    course = course_with(generated, tmp_path, subs)
    state = course.root / ".convcourse" / "state.json"
    run = subprocess.Popen(
        grade_command(course, cluster.address, tmp_path / "run.json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    prefix = f"convcourse-grade-{LESSON}-"
    with Client(cluster.address, set_as_default=False) as client:
        deadline = time.monotonic() + 300
        while True:  # once a first learner is recorded (workers warm), find a worker with learners in flight
            assert run.poll() is None and time.monotonic() < deadline, "the run ended before a worker was killed"
            recorded = json.loads(state.read_text()).get(LESSON, {}) if state.exists() else {}
            processing = client.processing(list(cluster.good.values()))
            busy = {
                name: [k for k in processing.get(address, ()) if k.startswith(prefix)]
                for name, address in cluster.good.items()
            }
            victim = next((name for name, keys in busy.items() if keys), None)
            if recorded and victim:
                break
            time.sleep(0.1)
    cluster.local.kill_worker(victim)
    in_flight = busy[victim]
    survivor = cluster.good["two" if victim == "one" else "one"]
    lost = {key[len(prefix) :].rsplit("-", 1)[0] for key in in_flight}
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output

    report = json.loads((tmp_path / "run.json").read_text())
    graded = [o["student"] for o in report["graded"]]
    assert sorted(graded) == sorted(subs), output  # each learner exactly once
    assert {o["status"] for o in report["graded"]} == {"ok"}
    # what the victim had not finished went to the survivor (one it finished just before it died stays its own)
    assert any(o["worker"] == survivor for o in report["graded"] if o["student"] in lost), (
        lost,
        report["graded"],
    )
    expected = {s: POINTS if i % 2 == 0 else dict.fromkeys(POINTS, 0.0) for i, s in enumerate(subs)}
    assert all_scores(course) == expected
    assert sorted(p.name for p in (course.root / "autograded").iterdir()) == sorted(subs)
    assert not list((course.root / "autograded").rglob(".*"))  # no half-installed folder
    assert {s: e["status"] for s, e in json.loads(state.read_text())[LESSON].items()} == dict.fromkeys(subs, "ok")

    again = subprocess.run(
        grade_command(course, cluster.address, tmp_path / "again.json"), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "graded 0 submission(s)" in again.stdout and "4 unchanged" in again.stdout


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch):
    if distributed is None:
        pytest.skip(MISSING)
    from dask_cluster import free_port

    from convcourse.instructor import cluster
    from convcourse.instructor.course import CourseError

    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 2)
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(CourseError, match=f"cannot reach the Dask scheduler at {address}"):
        cluster.DaskGrading(address)


def test_local_grading_never_imports_dask_and_the_two_modes_exclude_each_other(tmp_path):
    """Without --scheduler nothing of Dask is loaded (so nothing of it can start or fail)."""
    from convcourse.cli import main

    assert main(["--course", str(tmp_path), "grade", LESSON, "--workers", "2", "--scheduler", "tcp://x:1"]) == 2
    probe = (
        "import sys; import convcourse.cli, convcourse.instructor.autograde; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n", done.stdout + done.stderr


def test_the_environment_probe_names_what_differs():
    from convcourse.instructor.cluster_probe import differences, fingerprint

    here = fingerprint()
    assert here["python"] == "3.11" and len(here["convcourse code"]) == 16 and "convcourse" not in here
    assert differences(dict(here, host="elsewhere", executable="/other/python", sandbox="UNSANDBOXED"), here) == []
    assert differences(dict(here, torch="2.9.1"), here) == [f"torch 2.9.1 (here {here['torch']})"]
    missing = {k: v for k, v in here.items() if k not in ("convcourse code", "course data")}
    missing["convcourse"] = "cannot be imported (ModuleNotFoundError: No module named 'convcourse')"
    assert differences(missing, here) == [f"convcourse {missing['convcourse']}"]
