"""The gradebook on a real PostgreSQL server (started by the test on loopback): release, parallel autograde,
rerun and export all go through nbgrader's Gradebook on ``postgresql://``.

Needs Debian's ``postgresql`` package (installed with apt-get when missing and we are root) and the
``psycopg2`` driver; skipped, with the reason printed, only when either cannot be had.
"""

from __future__ import annotations

import csv
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from convcourse.instructor.course import CourseRoot

from course import REPO, make_course, points

LESSON = "01_sliding_window"


def _skip(reason: str):
    print(f"SKIPPED test_postgres: {reason}", file=sys.stderr)
    pytest.skip(reason)


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="module")
def postgres():
    # SQLAlchemy 2.x reads postgresql:// with psycopg (3); postgresql+psycopg2:// with psycopg2.
    scheme = None
    for module, candidate in (("psycopg", "postgresql"), ("psycopg2", "postgresql+psycopg2")):
        try:
            __import__(module)
        except ImportError:
            continue
        scheme = candidate
        break
    if scheme is None:
        _skip("no PostgreSQL driver installed (pip install 'psycopg[binary]' or psycopg2-binary)")
    bindir = _pg_bin()
    if bindir is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "postgresql"],
            capture_output=True,
            timeout=600,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
        )
        bindir = _pg_bin()
    if bindir is None:
        _skip("PostgreSQL is not installed and 'apt-get install postgresql' was not possible here")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
    data = Path(tempfile.mkdtemp(prefix="convcourse-pg-"))
    os.chmod(data, 0o700)
    if as_user:
        shutil.chown(data, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            str(bindir / "pg_ctl"),
            "-D",
            str(data / "db"),
            "-l",
            str(data / "log"),
            "-w",
            "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        subprocess.run(
            [
                str(bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "-c",
                "CREATE DATABASE conv2d",
            ],
            check=True,
            capture_output=True,
        )
        yield f"{scheme}://postgres@127.0.0.1:{port}/conv2d"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(data, ignore_errors=True)


def cli(root: Path, *args: str, check: int = 0) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "convcourse.cli", "--course", str(root), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == check, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_release_grade_and_export_on_postgresql(postgres, tmp_path):
    course = make_course(tmp_path, [LESSON])
    config = course.root / "nbgrader_config.py"
    config.write_text(config.read_text().replace(course.db_url, postgres))
    root = CourseRoot(course.root)
    assert root.db_url == postgres
    roster = tmp_path / "roster.csv"
    roster.write_text("id,first_name\nfull,Full\nzero,Zero\n")
    cli(course.root, "roster", str(roster))
    cli(course.root, "release", LESSON)
    course.submit(LESSON, "full", REPO / "solutions" / LESSON / f"{LESSON}.ipynb")
    course.submit(LESSON, "zero", REPO / "notebooks" / LESSON / f"{LESSON}.ipynb")
    cli(course.root, "grade", LESSON, "--workers", "2", "--no-progress")
    assert not (course.root / "gradebook.db").exists()  # everything went to PostgreSQL

    with root.gradebook() as gb:
        assert gb.db.bind.dialect.name == "postgresql"
        totals = {s.student.id: (s.score, s.max_score) for s in gb.find_assignment(LESSON).submissions}
    full = sum(points(LESSON).values())
    assert totals == {"full": (full, full), "zero": (0.0, full)}
    assert "graded 0 submission(s)" in cli(course.root, "grade", LESSON, "--no-progress")

    cli(course.root, "grades", "--out", str(tmp_path / "grades.csv"))
    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert (float(rows["full"]["score"]), float(rows["zero"]["score"])) == (full, 0.0)
    assert rows["full"]["first_name"] == "Full"
    assert "test_corr2d" in cli(course.root, "summary", LESSON, "--plot", str(tmp_path / "s.png"))
