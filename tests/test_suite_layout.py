"""The test suite's own machinery: pytest-xdist keeps a group on one worker, and tests/conftest.py groups
the slow tests so that each expensive fixture is built once (and the rest spread over the workers)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from adversarial.lessons import LESSONS
from course import REPO

GROUPED = """
import pytest

@pytest.fixture(scope="module")
def shared():
    return 1

@pytest.mark.xdist_group("together")
@pytest.mark.parametrize("i", range(6))
def test_grouped(shared, i):
    pass
"""

RECORDER = """
import json, os
import pytest

@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    groups = {item.nodeid: [m.args[0] for m in item.iter_markers("xdist_group")] for item in session.items}
    with open(os.environ["GROUPS_OUT"], "w") as out:
        json.dump(groups, out)
"""


def test_pytest_xdist_runs_a_group_on_one_worker(tmp_path):
    """Guards the pins: with pytest 9.2 and pytest-xdist 3.8, --dist loadgroup silently spread a group."""
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    workers = set(re.findall(r"\[(gw\d+)\].*PASSED", result.stdout))
    assert len(workers) == 1, result.stdout[-3000:]


def test_slow_tests_that_share_a_module_fixture_are_grouped_by_fixture_and_parameter(tmp_path):
    (tmp_path / "recorder.py").write_text(RECORDER)
    out = tmp_path / "groups.json"
    env = dict(os.environ, GROUPS_OUT=str(out), PYTHONPATH=str(tmp_path))
    files = ["tests/test_adversarial.py", "tests/test_browser.py", "tests/test_formgrader.py", "tests/test_geometry.py"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "recorder", "-p", "no:cacheprovider", *files],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    groups = {node: marks[-1] if marks else None for node, marks in json.loads(out.read_text()).items()}
    corpus = {g for n, g in groups.items() if "test_each_submission_gets_its_expected_score" in n}
    # the lesson-01 corpus: one run of each grader, each on one worker
    assert corpus == {"test_adversarial:course", "test_adversarial:plain"}
    lessons = {g for n, g in groups.items() if "test_lesson_submissions_get_their_expected_scores" in n}
    assert len(lessons) == len(LESSONS) and all(g.startswith("test_adversarial:lesson_graded[") for g in lessons)
    browser = {g for n, g in groups.items() if "test_lesson_runs_in_jupyterlab" in n}
    assert browser == {"test_browser:lab+latencies+timings#0", "test_browser:lab+latencies+timings#1"}  # two servers
    # a test using fixtures A and B joins those using A alone: the formgrader's graded class is built once
    formgrader = {g for n, g in groups.items() if "test_formgrader" in n and g}
    assert formgrader == {"test_formgrader:browser+formgrader"}, formgrader
    assert not {g for n, g in groups.items() if "test_geometry" in n} - {None}  # unit tests spread freely
