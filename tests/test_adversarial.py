"""Adversarial corpus: every learner submission in tests/adversarial, graded twice in real courses.

* By the course's grader (``convcourse grade``: two workers, fork-server kernels, what instructors run): all
  of them, then ``convcourse feedback``.
* By plain ``nbgrader autograde`` (ordinary kernels, one process: the formgrader's "autograde" button), the
  submissions whose outcome hangs on how a kernel is started, interrupted, dies or prints
  (:data:`PLAIN`), plus the honest and wrong controls and those the feedback assertions read. The tampering
  submissions run the same Python in either kernel and are graded once, by the course's grader.

What is asserted, per grader: each learner's score (and the message the learner sees), the controls exactly,
that submitted files are byte-identical afterwards, one gradebook submission per gradable learner with totals
equal to the sum of its grades, that the corrupted notebook is named with the reason (nbgrader exits with
status 1, ``convcourse grade`` reports it not graded), that no kernel outlives grading, and that feedback HTML
shows failure messages but never hidden-test source.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import time

import pytest

from adversarial.submissions import LESSON, POINTS, QUIZ_IDS, QUIZ_POINTS, SUBMISSIONS, TEST_ID
from course import make_course, run_in

pytestmark = pytest.mark.slow

#: Per-cell timeout for this course: the answer key's test cell takes well under a second; the two
#: infinite loops cost this plus interrupt handling (and 15 s unresponsive wait for the one that
#: swallows KeyboardInterrupt).
CELL_TIMEOUT = 8
#: The wall-clock backstop is 5x that plus this (60 s by default): the learner whose loop sleeps waits it out.
WALL_EXTRA = 10
GRADED = [s for s in SUBMISSIONS if s.expected is not None]
CORRUPTED = [s for s in SUBMISSIONS if s.expected is None]
HIDDEN_TEXT = ['check_suite("corr2d", corr2d, "hidden")', "HIDDEN TESTS"]
#: Graded by plain nbgrader as well: the controls, what depends on the kernel itself (time limits, interrupts,
#: exits, memory, output size, looking for the grader from inside the kernel) and what the feedback test reads.
PLAIN = {
    "honest",
    "wrong",
    "infinite_loop",
    "loop_ignores_interrupt",
    "memory_bomb",
    "sys_exit",
    "os_exit",
    "corrupted_json",
    "enormous_output",
    "grader_aware",
    "hidden_only_fail",
    "conv2d_in_loops",
}
assert PLAIN <= {s.student for s in SUBMISSIONS}, PLAIN - {s.student for s in SUBMISSIONS}
GRADERS = ("course", "plain")


def _corpus_course(tmp_path_factory, name: str, submissions: list) -> dict:
    """A course with ``submissions`` submitted: {course, submitted (learner -> file), before (their bytes)}."""
    course = make_course(tmp_path_factory.mktemp(name), [LESSON], students=[s.student for s in submissions])
    with open(course.root / "nbgrader_config.py", "a") as config:
        config.write(f"c.Execute.timeout = {CELL_TIMEOUT}\n")
        config.write(f"c.GuardedExecute.wall_extra_seconds = {WALL_EXTRA}\n")
    run_in(course, ["generate_assignment", LESSON, "--force"])
    submitted = {s.student: course.submit(LESSON, s.student, s.build()) for s in submissions}
    before = {student: path.read_bytes() for student, path in submitted.items()}
    return dict(course=course, submitted=submitted, before=before)


def _convcourse(course, *args: str, check: int | None = 0) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "convcourse.cli", "--course", str(course.root), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={k: v for k, v in os.environ.items() if k != "CONVCOURSE_FORK_KERNELS"},
    )
    assert check is None or result.returncode == check, result.stdout + result.stderr
    return result.stdout + result.stderr


def _grade_with_the_course(tmp_path_factory) -> dict:
    """Every submission graded by ``convcourse grade`` (2 workers, fork-server kernels), then its feedback."""
    corpus = _corpus_course(tmp_path_factory, "adversarial-course", SUBMISSIONS)
    out = corpus["course"].root.parent / "out.json"
    start = time.monotonic()
    log = _convcourse(corpus["course"], "grade", LESSON, "--workers", "2", "--json", str(out), check=1)
    seconds = time.monotonic() - start
    outcomes = {o["student"]: o for o in json.loads(out.read_text())["graded"]}
    feedback_log = _convcourse(corpus["course"], "feedback", LESSON)
    return corpus | dict(log=log, seconds=seconds, outcomes=outcomes, feedback_log=feedback_log, graded=GRADED)


def _grade_with_plain_nbgrader(tmp_path_factory) -> dict:
    """The submissions in :data:`PLAIN`, graded by one plain ``nbgrader autograde`` run, then its feedback."""
    corpus = _corpus_course(tmp_path_factory, "adversarial-plain", [s for s in SUBMISSIONS if s.student in PLAIN])
    start = time.monotonic()
    # Exit status 1: nbgrader finishes every other submission, then fails because of the corrupted one.
    log = run_in(corpus["course"], ["autograde", LESSON, "--force"], retcode=1)
    seconds = time.monotonic() - start
    feedback_log = run_in(corpus["course"], ["generate_feedback", LESSON, "--force"], retcode=None)
    graded = [s for s in GRADED if s.student in PLAIN]
    return corpus | dict(log=log, seconds=seconds, outcomes=None, feedback_log=feedback_log, graded=graded)


@pytest.fixture(scope="module")
def graded_by_course(tmp_path_factory):
    return dict(_grade_with_the_course(tmp_path_factory), grader="course")


@pytest.fixture(scope="module")
def graded_by_plain_nbgrader(tmp_path_factory):
    return dict(_grade_with_plain_nbgrader(tmp_path_factory), grader="plain")


@pytest.fixture(
    params=[pytest.param(grader, marks=pytest.mark.xdist_group(f"test_adversarial:{grader}")) for grader in GRADERS]
)
def graded(request):
    """The corpus as one of the two graders left it. Two module fixtures, not one parametrized one: each is built
    once per worker whatever order the tests run in, and the xdist group keeps each grader's tests on one worker."""
    return request.getfixturevalue("graded_by_course" if request.param == "course" else "graded_by_plain_nbgrader")


def _outputs_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts += [output.get("ename", ""), output.get("evalue", ""), output.get("text", "")]
        parts += output.get("traceback", [])
    return "\n".join(str(p) for p in parts)


def _test_cell(nb):
    return next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == TEST_ID)


def test_each_submission_gets_its_expected_score(graded):
    """Every gradable submission of this grader: its score, its questions' score, its total, its message."""
    course, problems = graded["course"], []
    for submission in graded["graded"]:
        scores = course.scores(LESSON, submission.student)
        quiz = sum(scores.get(q, 0) for q in QUIZ_IDS)
        if set(scores) != {TEST_ID, *QUIZ_IDS} or (scores[TEST_ID], quiz) != (submission.expected, submission.quiz):
            problems.append((submission.student, submission.what, scores))
        elif course.total(LESSON, submission.student) != submission.expected + submission.quiz:
            problems.append((submission.student, "total", course.total(LESSON, submission.student)))
        elif submission.message:
            text = _outputs_text(_test_cell(course.autograded(LESSON, submission.student)))
            if submission.message not in text:
                problems.append((submission.student, f"message {submission.message!r} missing", text[-2000:]))
    assert not problems, problems


def test_controls_are_exactly_right(graded):
    course = graded["course"]
    assert course.max_score(LESSON) == POINTS + QUIZ_POINTS
    assert course.total(LESSON, "honest") == POINTS + QUIZ_POINTS
    honest = course.autograded(LESSON, "honest")
    assert not [o for c in honest.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert course.total(LESSON, "wrong") == QUIZ_POINTS  # the questions answered, corr2d wrong
    text = _outputs_text(_test_cell(course.autograded(LESSON, "wrong")))
    assert "corr2d(x=tensor of shape (4, 4) (float64), k=tensor of shape (2, 2) (float64)) is wrong" in text
    assert "first difference at index (0, 0)" in text and "largest error" in text


def test_submitted_files_are_byte_identical_afterwards(graded):
    for student, path in graded["submitted"].items():
        assert path.read_bytes() == graded["before"][student], student


def test_gradebook_is_consistent(graded):
    course = graded["course"]
    with course.gradebook() as gb:
        for submission in graded["graded"]:
            rows = [s for s in gb.student_submissions(submission.student) if s.assignment.name == LESSON]
            assert len(rows) == 1, submission.student
            notebook = gb.find_submission_notebook(LESSON, LESSON, submission.student)
            assert rows[0].score == sum(g.score for g in notebook.grades) == submission.expected + submission.quiz
            assert rows[0].max_score == POINTS + QUIZ_POINTS
        for submission in CORRUPTED:  # no half-graded row: either none, or one without grades
            rows = [s for s in gb.student_submissions(submission.student) if s.assignment.name == LESSON]
            assert len(rows) <= 1 and all(r.score == 0 for r in rows), submission.student
    for submission in CORRUPTED:
        assert not (course.root / "autograded" / submission.student / LESSON).exists()


def test_the_corrupted_submission_is_named_with_the_reason_and_the_rest_graded(graded):
    log = graded["log"]
    for submission in CORRUPTED:
        assert submission.student in log
        if graded["grader"] == "plain":
            assert re.search(r"NotJSONError|not appear to be JSON|JSONDecodeError", log), log[-3000:]
        else:
            outcome = graded["outcomes"][submission.student]
            assert outcome["status"] == "error" and "not a readable notebook" in outcome["reason"], outcome
    if graded["grader"] == "course":
        assert graded["outcomes"]["os_exit"]["status"] == "kernel-died"
        assert all(graded["outcomes"][s.student]["status"] != "error" for s in GRADED), graded["outcomes"]
        log_files = (graded["course"].root / ".convcourse" / "logs").glob("*.log")
        logs = "\n".join(p.read_text(errors="replace") for p in log_files)
        assert "fork server: ready" in logs and "starting an ordinary kernel" not in logs, logs[-3000:]
    print(f"\n{graded['grader']}: grading {len(graded['submitted'])} submissions took {graded['seconds']:.0f} s")


def _orphaned_kernels() -> set[str]:
    """Sandboxed kernels whose grader (the pid in their /tmp/ccsb<pid>- folder) is gone."""
    orphans = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        owner = re.search(r"/ccsb(\d+)-", cmdline)
        if "ipykernel" in cmdline and owner and not os.path.exists(f"/proc/{owner[1]}"):
            orphans.add(pid)
    return orphans


def test_no_kernel_outlives_the_grading_run(graded):
    """Kernels are killed, not asked to stop, once their notebook is done (config: shutdown_kernel
    "immediate"); infinite loops and swallowed interrupts included, none outlives nbgrader."""
    orphans = _orphaned_kernels()
    if orphans:
        time.sleep(2)  # one that was dying as we looked is gone by now
    assert {pid for pid in orphans if os.path.exists(f"/proc/{pid}")} == set()


def _feedback_text(course, student: str) -> str:
    path = course.root / "feedback" / student / LESSON / f"{LESSON}.html"
    raw = path.read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def test_feedback_shows_messages_but_no_hidden_test_source(graded):
    course = graded["course"]
    # The autograded notebooks do contain the hidden tests, so the search below can fail.
    assert HIDDEN_TEXT[0] in _test_cell(course.autograded(LESSON, "hidden_only_fail")).source
    for submission in graded["graded"]:
        text = _feedback_text(course, submission.student)
        for hidden in HIDDEN_TEXT:
            assert hidden not in text, (submission.student, hidden)
    hidden_fail = _feedback_text(course, "hidden_only_fail")
    assert "1 of 8 hidden test cases of corr2d fail" in hidden_fail
    assert "k=tensor of shape (1, 1) (float64)" in hidden_fail
    assert "Likely mistake: your output is the true (flipped-kernel) convolution" in _feedback_text(course, "wrong")
    assert "called torch's convolution" in _feedback_text(course, "conv2d_in_loops")


# ---- issue 11: lessons 05, 08-12 -- one grading run per lesson, many learners -----------------------
# Graded by the course's grader (fork-server kernels, as `convcourse grade`): what is under test is each
# submission's score and message; plain nbgrader's own kernel start is what the corpus above exercises.

from adversarial.lessons import LESSONS, build  # noqa: E402


@pytest.fixture(scope="module", params=sorted(LESSONS))
def lesson_graded(request, tmp_path_factory, grading_pool):
    lesson = request.param
    submissions = LESSONS[lesson]
    tmp = tmp_path_factory.mktemp(f"adversarial-{lesson}")
    course = make_course(tmp, [lesson], students=[s.student for s in submissions])
    run_in(course, ["generate_assignment", lesson, "--force"])
    for submission in submissions:
        course.submit(lesson, submission.student, build(submission))
    course.grade(lesson, grading_pool)
    return lesson, course, submissions


def _cell(nb, grade_id):
    return next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def test_lesson_submissions_get_their_expected_scores_and_messages(lesson_graded):
    lesson, course, submissions = lesson_graded
    problems = []
    for submission in submissions:
        scores = course.scores(lesson, submission.student)
        got = {k: scores.get(k) for k in submission.expected}
        if got != submission.expected:
            problems.append((submission.student, submission.what, got, submission.expected))
        if submission.message:
            first = next(iter(submission.expected))
            text = _outputs_text(_cell(course.autograded(lesson, submission.student), first))
            if submission.message not in text:
                problems.append((submission.student, "message", submission.message, text[-1500:]))
    assert not problems, problems
