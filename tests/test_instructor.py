"""The instructor workflow (convcourse CLI) with real nbgrader on real lesson notebooks in temp courses."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from convcourse.instructor.collect import default_pattern
from convcourse.instructor.course import CourseError, CourseRoot
from convcourse.instructor.roster import import_roster

from course import REPO, make_course, points, question_points, run_in

LESSON = "01_sliding_window"
KEY = REPO / "solutions" / LESSON / f"{LESSON}.ipynb"
RELEASED = REPO / "notebooks" / LESSON / f"{LESSON}.ipynb"
POINTS = points(LESSON)  # test_corr2d and the check-your-understanding questions
QUESTIONS = question_points(LESSON)
FULL = sum(POINTS.values())


def solution_edited(prefix: str) -> nbformat.NotebookNode:
    """The answer key with ``prefix`` run at the top of the corr2d solution cell."""
    nb = nbformat.read(KEY, as_version=4)
    cell = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "corr2d")
    cell.source = prefix + cell.source
    return nb


def learners() -> dict[str, bytes]:
    """Submission bytes per learner: full marks, zero (released copy), wrong (crashes), kernel dies, broken JSON."""
    return {
        "full": KEY.read_bytes(),
        "zero": RELEASED.read_bytes(),
        "wrong": nbformat.writes(solution_edited("raise ValueError('wrong on purpose')\n")).encode(),
        "died": nbformat.writes(solution_edited("import os\nos._exit(3)\n")).encode(),
        "broken": b'{"cells": [ this is not json',
    }


def cli(root: Path, *args: str, check: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "convcourse.cli", "--course", str(root), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check is not None:
        assert result.returncode == check, result.stdout + result.stderr
    return result


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "submitted").rglob("*"))
        if p.is_file()
    }


def all_scores(course) -> dict[str, dict[str, float | None]]:
    with course.gradebook() as gb:
        return {
            s.student.id: {g.name: g.auto_score for n in s.notebooks for g in n.grades}
            for s in gb.find_assignment(LESSON).submissions
        }


def lms_zip(path: Path, submissions: dict[str, bytes]) -> Path:
    """An LMS download: notebooks named <learner>_<lesson>.ipynb inside a folder, plus files to skip."""
    with zipfile.ZipFile(path, "w") as archive:
        for student, data in submissions.items():
            archive.writestr(f"course download/{student}_{LESSON}.ipynb", data)
        archive.writestr("course download/readme.txt", "not a submission")
        archive.writestr("course download/somebody_homework.ipynb", RELEASED.read_bytes())
    return path


# ------------------------------------------------------------------------------------------ roster


def test_roster_import_adds_updates_and_rejects_bad_rows(course_factory, tmp_path):
    course = course_factory([LESSON])
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "Username,First_Name,Last_Name,Email,section\nada,Ada,Lovelace,ada@example.org,A\nalan.t,Alan,Turing,,B\n\n"
    )
    root = CourseRoot(course.root)
    first = import_roster(root, roster)
    assert (sorted(first.added), first.updated) == (["ada", "alan.t"], [])
    assert import_roster(root, roster).unchanged == ["ada", "alan.t"]
    roster.write_text("id,first_name,last_name,email\nada,Ada,King,ada@example.org\ngrace,Grace,Hopper,g@x.org\n")
    again = import_roster(root, roster)
    assert (again.added, again.updated, again.unchanged) == (["grace"], ["ada"], [])
    with course.gradebook() as gb:
        ada = gb.find_student("ada")
        assert (ada.first_name, ada.last_name, ada.email) == ("Ada", "King", "ada@example.org")
        assert gb.find_student("alan.t").email is None
        assert sorted(s.id for s in gb.students) == ["ada", "alan.t", "grace"]
    for bad, message in (
        ("name\nada\n", "no id column"),
        ("id\nada\nada\n", "appears twice"),
        ("id\nbad/../id\n", "invalid learner id"),
    ):
        roster.write_text(bad)
        with pytest.raises(CourseError, match=message):
            import_roster(root, roster)
    result = cli(course.root, "roster", str(roster), check=2)
    assert "invalid learner id" in result.stderr


def test_default_zip_pattern_names_learner_and_lesson():
    import re

    pattern = re.compile(default_pattern(LESSON))
    match = pattern.match(f"/x/extracted/dl/ada.lovelace_{LESSON}.ipynb")
    assert match and match["student_id"] == "ada.lovelace" and match["file_id"] == LESSON
    assert pattern.match(f"/x/a_b_{LESSON}.ipynb")["student_id"] == "a_b"
    assert not pattern.match("/x/ada_02_kernel_size.ipynb")
    assert not pattern.match(f"/x/{LESSON}.ipynb")


# ------------------------------------------------------------- one class, graded both ways (slow)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A course whose submissions came in through an LMS zip, graded by convcourse (2 workers), and the
    same submissions graded by plain sequential nbgrader in a twin course."""
    tmp = tmp_path_factory.mktemp("instructor")
    subs = learners()
    course = make_course(tmp / "ours", [LESSON])
    roster = tmp / "roster.csv"
    roster.write_text("id,first_name,last_name\n" + "".join(f"{s},{s.title()},Learner\n" for s in subs))
    cli(course.root, "roster", str(roster))
    released = cli(course.root, "release", LESSON)
    archive = lms_zip(tmp / "download.zip", subs)
    zip_digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    collected = cli(course.root, "collect", LESSON, "--zip", str(archive))

    before = digests(course.root)
    result = cli(course.root, "grade", LESSON, "--workers", "2", "--json", str(tmp / "first.json"), check=1)
    after = digests(course.root)

    twin = make_course(tmp / "plain", [LESSON], students=list(subs))
    run_in(twin, ["generate_assignment", LESSON, "--force"])
    for student, data in subs.items():
        twin.submit(LESSON, student, data)
    run_in(twin, ["autograde", LESSON], retcode=None)  # exits 1: the broken notebook
    return dict(
        course=course,
        twin=twin,
        subs=subs,
        released=released,
        collected=collected,
        result=result,
        before=before,
        after=after,
        first=json.loads((tmp / "first.json").read_text()),
        tmp=tmp,
        archive=archive,
        zip_digest=zip_digest,
    )


@pytest.mark.slow
def test_release_writes_lms_zip_and_zip_collect_imports_by_file_name(graded):
    course = graded["course"]
    release_zip = course.root / "release" / f"{LESSON}.zip"
    assert release_zip.exists() and f"{LESSON}/{LESSON}.ipynb" in zipfile.ZipFile(release_zip).namelist()
    assert "5 new or changed submission(s)" in graded["collected"].stdout, graded["collected"].stdout
    assert "1 notebook(s) in the zip did not match" in graded["collected"].stdout  # somebody_homework.ipynb
    for student, data in graded["subs"].items():
        assert (course.root / "submitted" / student / LESSON / f"{LESSON}.ipynb").read_bytes() == data
    assert sorted(p.name for p in (course.root / "submitted").iterdir()) == sorted(graded["subs"])
    assert hashlib.sha256(graded["archive"].read_bytes()).hexdigest() == graded["zip_digest"]


@pytest.mark.slow
def test_parallel_grades_equal_sequential_nbgrader(graded):
    ours, plain = all_scores(graded["course"]), all_scores(graded["twin"])
    graded_ok = {"full", "zero", "wrong", "died"}
    assert {s: ours[s] for s in graded_ok} == {s: plain[s] for s in graded_ok}
    assert ours["full"] == POINTS
    assert ours["zero"] == ours["died"] == dict.fromkeys(POINTS, 0.0)  # released copy; kernel dies in corr2d's cell
    assert ours["wrong"] == {**QUESTIONS, "test_corr2d": 0.0}  # corr2d raises; the questions are answered
    assert "broken" not in ours  # not graded, reported (below)
    course = graded["course"]
    assert course.total(LESSON, "full") == FULL
    executed = course.autograded(LESSON, "full")
    assert any(o.get("output_type") for c in executed.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_broken_notebook_and_dead_kernel_are_reported_with_id_and_reason(graded):
    out = graded["result"].stdout
    assert "broken: NOT graded: 01_sliding_window.ipynb is not a readable notebook" in out, out
    assert "died: graded, kernel died:" in out and "the kernel died in cell" in out, out
    outcomes = {o["student"]: o for o in graded["first"]["graded"]}
    assert outcomes["broken"]["status"] == "error" and "NotJSONError" in outcomes["broken"]["reason"]
    assert outcomes["died"]["status"] == "kernel-died"
    assert {s: outcomes[s]["status"] for s in ("full", "zero", "wrong")} == dict.fromkeys(
        ("full", "zero", "wrong"), "ok"
    )


@pytest.mark.slow
def test_submission_files_are_never_modified(graded):
    assert graded["before"] == graded["after"]
    assert len(graded["before"]) == 5


@pytest.mark.slow
def test_export_and_summary(graded):
    course, tmp = graded["course"], graded["tmp"]
    cli(course.root, "feedback", LESSON)
    html = (course.root / "feedback" / "wrong" / LESSON / f"{LESSON}.html").read_text()
    assert "wrong on purpose" in html and "BEGIN HIDDEN TESTS" not in html
    cli(course.root, "grades", "--out", str(tmp / "grades.csv"))
    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp / "grades.csv"))}
    assert set(rows) == set(graded["subs"])
    assert float(rows["full"]["score"]) == FULL and float(rows["full"]["max_score"]) == FULL
    assert float(rows["wrong"]["score"]) == sum(QUESTIONS.values()) and rows["wrong"]["first_name"] == "Wrong"
    assert rows["broken"]["timestamp"] in ("", "None")  # never graded: no submission record
    assert rows["broken"]["status"] == "submitted, not graded" and rows["zero"]["status"] == "graded"

    result = cli(course.root, "summary", LESSON, "--plot", str(tmp / "summary.png"))
    line = next(t for t in result.stdout.splitlines() if t.startswith("test_corr2d"))
    # graded submissions: full (5), zero, wrong, died (0 each) -> mean 1.25, 3 of 4 below full points
    assert line.split() == ["test_corr2d", "5", "4", "1.25", "25.0%", "75.0%", "75%"], line
    assert (tmp / "summary.png").stat().st_size > 1000


@pytest.mark.slow
def test_rerun_grades_only_changed_or_failed(graded):
    course, tmp = graded["course"], graded["tmp"]
    shutil.copy(KEY, course.root / "submitted" / "zero" / LESSON / f"{LESSON}.ipynb")  # a resubmission
    cli(course.root, "grade", LESSON, "--json", str(tmp / "rerun.json"), check=1)
    rerun = json.loads((tmp / "rerun.json").read_text())
    assert sorted(o["student"] for o in rerun["graded"]) == ["broken", "died", "zero"]
    assert sorted(rerun["up_to_date"]) == ["full", "wrong"]
    assert course.total(LESSON, "zero") == FULL
    (course.root / "submitted" / "broken" / LESSON / f"{LESSON}.ipynb").write_bytes(RELEASED.read_bytes())
    (course.root / "submitted" / "died" / LESSON / f"{LESSON}.ipynb").write_bytes(KEY.read_bytes())
    ok = cli(course.root, "grade", LESSON, "--student", "broken", "--student", "died", "--json", str(tmp / "r2.json"))
    assert sorted(o["student"] for o in json.loads((tmp / "r2.json").read_text())["graded"]) == ["broken", "died"]
    assert "needing attention" not in ok.stdout
    assert (course.total(LESSON, "broken"), course.total(LESSON, "died")) == (0.0, FULL)
    again = cli(course.root, "grade", LESSON)
    assert "graded 0 submission(s)" in again.stdout and "5 unchanged" in again.stdout, again.stdout


# --------------------------------------------------------------------- kill midway, timeouts (slow)


@pytest.mark.slow
def test_killing_grading_midway_and_rerunning_gives_the_same_grades(course_factory):
    course = course_factory([LESSON])
    run_in(course, ["generate_assignment", LESSON, "--force"])
    subs = {"a_full": KEY.read_bytes(), "b_zero": RELEASED.read_bytes(), "c_full": KEY.read_bytes()}
    for student, data in subs.items():
        course.submit(LESSON, student, data)
    state = course.root / ".convcourse" / "state.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "convcourse.cli",
            "--course",
            str(course.root),
            "grade",
            LESSON,
            "--workers",
            "1",
            "--no-progress",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text()).get(LESSON):
            break
        time.sleep(0.1)
    assert proc.poll() is None, "grading finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())[LESSON]
    assert len(done) == 1, done

    rerun = cli(course.root, "grade", LESSON, "--json", str(course.root.parent / "rerun.json"))
    graded_now = sorted(o["student"] for o in json.loads((course.root.parent / "rerun.json").read_text())["graded"])
    assert graded_now == sorted(set(subs) - set(done)), rerun.stdout
    assert all_scores(course) == {"a_full": POINTS, "b_zero": dict.fromkeys(POINTS, 0.0), "c_full": POINTS}
    assert not list((course.root / "autograded").rglob(".*.incoming"))


@pytest.mark.slow
def test_a_learner_past_the_timeout_is_killed_and_reported(course_factory):
    course = course_factory([LESSON])
    run_in(course, ["generate_assignment", LESSON, "--force"])
    course.submit(LESSON, "sleepy", solution_edited("import time\ntime.sleep(120)\n"))
    start = time.monotonic()
    result = cli(course.root, "grade", LESSON, "--timeout", "10", check=1)
    assert time.monotonic() - start < 60
    assert "sleepy: NOT graded (timeout): grading took longer than 10 s" in result.stdout, result.stdout
    state = json.loads((course.root / ".convcourse" / "state.json").read_text())
    assert state[LESSON]["sleepy"]["status"] == "timeout"


# ------------------------------------------------- exchange (the JupyterHub flow, file-system part)


@pytest.mark.slow
def test_exchange_release_fetch_submit_collect_grade(course_factory, tmp_path):
    """What a hub does, minus the hub: release to nbgrader's exchange, a learner fetches and submits,
    the instructor collects from the exchange and grades."""
    import getpass

    course = course_factory([LESSON])
    exchange = tmp_path / "exchange"
    exchange.mkdir(mode=0o777)
    cli(course.root, "release", LESSON, "--exchange")
    home = tmp_path / "learner"
    home.mkdir()
    (home / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'conv2d-from-the-ground-up'\n"
        f"c.Exchange.root = {str(exchange)!r}\n"
    )
    env = dict(os.environ, HOME=str(home))
    for args in (["fetch_assignment", LESSON], None, ["submit", LESSON]):
        if args is None:  # the learner solves the exercise
            shutil.copy(KEY, home / LESSON / f"{LESSON}.ipynb")
            continue
        done = subprocess.run(
            [sys.executable, "-m", "nbgrader", *args], cwd=home, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    collected = cli(course.root, "collect", LESSON, "--exchange")
    student = getpass.getuser()
    assert f"1 new or changed submission(s): {student}" in collected.stdout, collected.stdout
    cli(course.root, "grade", LESSON)
    assert course.total(LESSON, student) == FULL
    cli(course.root, "feedback", LESSON, "--exchange")
    assert list((exchange / "conv2d-from-the-ground-up" / "feedback").glob("*.html"))


def _hub_config(env: dict[str, str]):
    from unittest import mock

    from traitlets.config import Config

    config = Config()
    source = (REPO / "autograder" / "jupyterhub_config.py.example").read_text()
    with mock.patch.dict(os.environ, env):
        exec(compile(source, "jupyterhub_config.py", "exec"), {"get_config": lambda: config})  # noqa: S102
    return config


def test_jupyterhub_config_example_runs_production_with_own_accounts_and_the_private_exchange(monkeypatch):
    from traitlets.config import PyFileConfigLoader

    from convcourse.exchange import FACTORY
    from convcourse.grading.config import COURSE_ID

    monkeypatch.delenv("CONVCOURSE_HUB_LOCAL", raising=False)
    monkeypatch.delenv("CONVCOURSE_HUB_ACCOUNTS", raising=False)
    config = _hub_config({})
    service = config.JupyterHub.services[0]
    assert service["name"] == COURSE_ID and service["cwd"].endswith("/autograder")
    assert config.JupyterHub.spawner_class == "localprocess"
    assert config.Spawner.environment["CONVCOURSE_PRIVATE_EXCHANGE"] == "1"
    assert service["environment"]["CONVCOURSE_PRIVATE_EXCHANGE"] == "1"
    with pytest.raises(SystemExit, match="only for a local trial"):
        _hub_config({"CONVCOURSE_HUB_ACCOUNTS": "shared"})

    def nbgrader_config(private: str):
        monkeypatch.setenv("CONVCOURSE_PRIVATE_EXCHANGE", private)
        return PyFileConfigLoader("nbgrader_config.py", str(REPO / "jupyter_config" / "hub")).load_config()

    assert dict(nbgrader_config("1").ExchangeFactory) == FACTORY
    assert "ExchangeFactory" not in nbgrader_config("0")


def test_the_grading_worker_keeps_nbgrader_messages_as_text_when_logged():
    """nbgrader's warning about a late submission names its gradebook row, which cannot be read after nbgrader
    closes the gradebook: the worker formats each message when it is logged (else late submissions crash)."""
    import logging

    from convcourse.instructor.worker import _Collect

    class Row:
        open = True

        def __str__(self) -> str:
            assert self.open, "the gradebook is closed"
            return "SubmittedAssignment<01 for ana>"

    row, collect, log = Row(), _Collect(), logging.getLogger("test-collect")
    log.setLevel(logging.DEBUG)  # whatever earlier tests in this process set the root logger's level to
    disabled = logging.root.manager.disable  # or passed to logging.disable
    logging.disable(logging.NOTSET)
    log.addHandler(collect)
    try:
        log.warning("%s is %s seconds late", row, 60.0)
        log.info("%s submitted", row)  # below WARNING: not kept
    finally:
        log.removeHandler(collect)
        logging.disable(disabled)
    row.open = False
    assert collect.records == [(logging.WARNING, "SubmittedAssignment<01 for ana> is 60.0 seconds late")]


def test_grading_statuses_are_one_type_read_from_json_and_worded_for_the_report():
    from convcourse.instructor.autograde import GradeReport, Outcome, _status, format_report
    from convcourse.instructor.status import Status

    assert [_status(s) for s in ("ok", "kernel-died", "error", "timeout", "nonsense", None)] == [
        Status.OK,
        Status.KERNEL_DIED,
        Status.ERROR,
        Status.TIMEOUT,
        Status.ERROR,
        Status.ERROR,
    ]
    assert json.loads(json.dumps({"status": Status.KERNEL_DIED})) == {"status": "kernel-died"}
    report = GradeReport(
        "01_sliding_window",
        graded=[Outcome("ana", Status.OK), Outcome("bo", Status.KERNEL_DIED, "the kernel died in cell 3")]
        + [Outcome("cy", Status.ERROR, "unreadable"), Outcome("di", Status.TIMEOUT, "took too long")],
        seconds=4.0,
    )
    assert [o.student for o in report.problems] == ["bo", "cy", "di"]
    assert [o.student for o in report.failed] == ["cy", "di"]  # kernel deaths are graded
    text = format_report(report)
    assert "bo: graded, kernel died: the kernel died in cell 3" in text
    assert "cy: NOT graded: unreadable" in text and "di: NOT graded (timeout): took too long" in text
    assert "only they are graded again" in text
