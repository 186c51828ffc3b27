"""Adversarial corpus: every learner submission in tests/adversarial goes through ONE real
``nbgrader autograde`` run in ONE course, then feedback is generated for all of them.

What is asserted: each learner's score (and the message the learner sees), the controls exactly,
that submitted files are byte-identical afterwards, one gradebook submission per gradable learner
with totals equal to the sum of its grades, that nbgrader exits (with status 1, because the
corrupted notebook fails) naming the corrupted learner and the reason, and that feedback HTML shows
failure messages but never hidden-test source.
"""

from __future__ import annotations

import html
import re
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


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adversarial")
    course = make_course(tmp, [LESSON], students=[s.student for s in SUBMISSIONS])
    with open(course.root / "nbgrader_config.py", "a") as config:
        config.write(f"c.Execute.timeout = {CELL_TIMEOUT}\n")
        config.write(f"c.GuardedExecute.wall_extra_seconds = {WALL_EXTRA}\n")
    run_in(course, ["generate_assignment", LESSON, "--force"])
    submitted = {s.student: course.submit(LESSON, s.student, s.build()) for s in SUBMISSIONS}
    before = {student: path.read_bytes() for student, path in submitted.items()}
    start = time.monotonic()
    # Exit status 1: nbgrader finishes every other submission, then fails because of the corrupted one.
    autograde_log = run_in(course, ["autograde", LESSON, "--force"], retcode=1)
    seconds = time.monotonic() - start
    feedback_log = run_in(course, ["generate_feedback", LESSON, "--force"], retcode=None)
    return dict(
        course=course, submitted=submitted, before=before, log=autograde_log, seconds=seconds, feedback_log=feedback_log
    )


def _outputs_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts += [output.get("ename", ""), output.get("evalue", ""), output.get("text", "")]
        parts += output.get("traceback", [])
    return "\n".join(str(p) for p in parts)


def _test_cell(nb):
    return next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == TEST_ID)


@pytest.mark.parametrize("submission", GRADED, ids=[s.student for s in GRADED])
def test_each_submission_gets_its_expected_score(graded, submission):
    course = graded["course"]
    scores = course.scores(LESSON, submission.student)
    assert scores[TEST_ID] == submission.expected, (submission.what, scores)
    assert set(scores) == {TEST_ID, *QUIZ_IDS}, scores
    assert sum(scores[q] for q in QUIZ_IDS) == submission.quiz, (submission.what, scores)
    assert course.total(LESSON, submission.student) == submission.expected + submission.quiz
    if submission.message:
        text = _outputs_text(_test_cell(course.autograded(LESSON, submission.student)))
        assert submission.message in text, (submission.student, text[-2000:])


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
        for submission in GRADED:
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


def test_nbgrader_finishes_and_names_the_corrupted_submission(graded):
    log = graded["log"]
    for submission in CORRUPTED:
        assert submission.student in log
        assert re.search(r"NotJSONError|not appear to be JSON|JSONDecodeError", log), log[-3000:]
    print(f"\nautograde of {len(SUBMISSIONS)} submissions took {graded['seconds']:.0f} s")


def _orphaned_kernels() -> set[str]:
    """Sandboxed kernels whose grader (the pid in their /tmp/ccsb<pid>- folder) is gone."""
    import os

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
    import os

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
    for submission in GRADED:
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
