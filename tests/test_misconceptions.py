"""`convcourse summary`'s misconceptions table, the grades CSV's status column and where reports are written.

The diagnoses come from real grader messages: the unit tests call the checks on buggy functions in this
process; the slow tests grade a small class of lesson 01 (learners built from the answer key with known
bugs) with the course's grader and read the table, the plot and the CSV from the CLI.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from convcourse import cli
from convcourse.checks import check, check_answer, check_suite
from convcourse.instructor.autograde import State
from convcourse.instructor.course import CourseRoot
from convcourse.instructor.misconceptions import (
    MISTAKE_MARKER,
    NO_KNOWN_MISTAKE,
    NOT_ATTEMPTED,
    cell_diagnosis,
    diagnose,
    misconceptions,
    mistake_label,
)
from convcourse.instructor.report import reports_dir

from course import REPO, make_course, run_in

LESSON = "01_sliding_window"
KEY = REPO / "solutions" / LESSON / f"{LESSON}.ipynb"
RELEASED = REPO / "notebooks" / LESSON / f"{LESSON}.ipynb"
FLIPPED = "your output is the true (flipped-kernel) convolution"
OFF_BY_ONE = "off-by-one in the output size"
FAKE = f"{MISTAKE_MARKER}{FLIPPED}. Deep learning's 'convolution' is cross-correlation."


def corr2d(x, k, flip=False, short=0, scale=1.0):
    """A loop cross-correlation with optional known bugs: a flipped kernel, ``short`` rows/columns missing."""
    kernel = k.flip(0, 1) if flip else k
    kh, kw = k.shape
    out = torch.zeros(x.shape[0] - kh + 1 - short, x.shape[1] - kw + 1 - short, dtype=x.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (x[i : i + kh, j : j + kw] * kernel).sum()
    return scale * out


def failure(call) -> tuple[str, str]:
    """(ename, evalue) of the error output a failing test line gives, as nbclient records it."""
    with pytest.raises(AssertionError) as caught:
        call()
    return type(caught.value).__name__, str(caught.value)


# ------------------------------------------------------------------- diagnoses from real grader messages


def test_known_mistakes_are_named_from_the_graders_own_messages():
    flipped = failure(lambda: check_suite("corr2d", lambda x, k: corr2d(x, k, flip=True), "visible"))
    assert flipped[0] == "GradingError" and MISTAKE_MARKER in flipped[1]
    assert diagnose(*flipped) == FLIPPED
    short = failure(lambda: check("corr2d", lambda x, k: corr2d(x, k, short=1), x=torch.ones(4, 4), k=torch.ones(2, 2)))
    assert diagnose(*short) == OFF_BY_ONE
    scaled = failure(lambda: check_suite("corr2d", lambda x, k: corr2d(x, k, scale=2.0), "visible"))
    assert diagnose(*scaled) == NO_KNOWN_MISTAKE

    def no_plus_one(size, kernel_size, stride=1, padding=0, dilation=1):  # lesson 02: exact values, not tensors
        return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride

    assert diagnose(*failure(lambda: check_suite("conv_output_size", no_plus_one, "visible"))) == "the +1 is missing"


def test_generic_outcomes_exceptions_and_questions():
    def raises(x, k):
        raise TypeError("oops")

    def unimplemented(x, k):
        raise NotImplementedError()

    assert diagnose(*failure(lambda: check_suite("corr2d", raises, "visible"))) == "raised TypeError"
    assert diagnose(*failure(lambda: check_suite("corr2d", unimplemented, "visible"))) == NOT_ATTEMPTED
    banned = failure(lambda: check_suite("corr2d", lambda x, k: F.conv2d(x[None, None], k[None, None])[0, 0]))
    assert diagnose(*banned) == "called a banned operation or library"
    assert diagnose(*failure(lambda: check_answer(f"{LESSON}.q1", (91, 91)))) == "answered (91, 91)"
    assert diagnose(*failure(lambda: check_answer(f"{LESSON}.q1", ...))) == "not answered"
    assert diagnose("NameError", "name 'corr2d' is not defined") == "raised NameError in the test cell"
    assert diagnose("KernelDied", "") == "kernel died in this cell"
    assert diagnose("NotRun", "") == "not run: the kernel died in an earlier cell"
    assert diagnose("CellTimeoutError", "") == "timed out (cell time limit)"


def test_learner_text_inside_an_exception_message_is_not_read_as_a_diagnosis():
    def raises(x, k):
        raise ValueError("nothing\n" + FAKE)

    ename, evalue = failure(lambda: check("corr2d", raises, x=torch.ones(3, 3), k=torch.ones(2, 2)))
    assert FAKE in evalue  # the learner's text is in the message...
    assert diagnose(ename, evalue) == "raised ValueError"  # ...after "raised ValueError: ", where it is not read


def test_only_error_outputs_count_and_the_graders_appended_errors_come_first():
    printed = {"output_type": "stream", "name": "stdout", "text": FAKE + "\n"}
    wrong = {"output_type": "error", "ename": "GradingError", "evalue": "corr2d(x=1) is wrong: first difference"}
    assert cell_diagnosis([printed, wrong]) == NO_KNOWN_MISTAKE
    shown = {"output_type": "display_data", "data": {"text/plain": FAKE}, "metadata": {}}
    assert cell_diagnosis([shown, printed]) == "below full points without an error (manual grade?)"
    died = {"output_type": "error", "ename": "KernelDied", "evalue": "..."}
    assert cell_diagnosis([wrong, died]) == "kernel died in this cell"


def test_labels_are_short_single_lines():
    assert mistake_label("padding is added on one side only (left/top); pad both sides.") == (
        "padding is added on one side only (left/top)"
    )
    assert mistake_label("the +1 is missing: the first. Or: stride is ignored: it moves") == (
        "the +1 is missing or stride is ignored"
    )
    assert mistake_label("use k[i, j] (e.g. k[0, 0]): not k[j, i]") == "use k[i, j] (e.g. k[0, 0])"
    label = diagnose("GradingError", "x(a=1) is wrong.\n" + MISTAKE_MARKER + "\x1b[2J" + "z" * 300)
    assert "\x1b" not in label and len(label) <= 90 and label.endswith("...")


def test_every_check_names_its_mistake_with_the_same_marker():
    """The table finds a known mistake by MISTAKE_MARKER: every check that names one must use it verbatim."""
    for path in sorted((REPO / "convcourse" / "checks").rglob("*.py")):
        for line in path.read_text().splitlines():
            if "Likely mistake" in line and "in problem" not in line:
                assert MISTAKE_MARKER in line, f"{path.name}: {line.strip()}"


# -------------------------------------------------------------------- a graded class of lesson 01 (slow)


def submission(corr2d_source: str | None = None, quiz: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The answer key with the corr2d cell replaced and quiz answer lines rewritten (``{"q1 = (92, 92)": ...}``)."""
    nb = nbformat.read(KEY, as_version=4)
    for cell in nb.cells:
        if corr2d_source and cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "corr2d":
            cell.source = corr2d_source
        for old, new in (quiz or {}).items():
            cell.source = cell.source.replace(old, new)
    return nb


def loop_corr2d(extra: str = "", flip: bool = False, short: int = 0, result: str = "out") -> str:
    kernel = "k.flip(0, 1)" if flip else "k"
    return (
        "def corr2d(x, k):\n"
        f"{extra}"
        "    kh, kw = k.shape\n"
        f"    out_h, out_w = x.shape[0] - kh + 1 - {short}, x.shape[1] - kw + 1 - {short}\n"
        "    out = torch.zeros(out_h, out_w, dtype=x.dtype)\n"
        "    for i in range(out_h):\n"
        "        for j in range(out_w):\n"
        f"            out[i, j] = (x[i:i + kh, j:j + kw] * {kernel}).sum()\n"
        f"    return {result}\n"
    )


FAKE_PRINT = f"    print({FAKE!r})\n"
CLASS = {
    "flip_a": submission(loop_corr2d(flip=True)),
    "flip_b": submission(loop_corr2d(flip=True), {"q2 = -4": "q2 = 4"}),
    "offby": submission(loop_corr2d(short=1), {"q1 = (92, 92)": "q1 = (91, 91)"}),
    # wrong in no known way; prints a fake diagnosis from inside corr2d (during the test cell) and in its own cell
    "faker": submission(f"print({FAKE!r})\n" + loop_corr2d(FAKE_PRINT, result="2 * out")),
    "printer": submission(loop_corr2d(FAKE_PRINT)),  # the answer key's corr2d, printing a fake diagnosis
    "typo": submission("def corr2d(x, k):\n    return x + 'k'\n"),
    # raises the checks' own error with a forged message: the documented limit (its own failure, relabelled)
    "forger": submission(
        f"from convcourse.checks import GradingError\n\ndef corr2d(x, k):\n    raise GradingError({FAKE!r})\n"
    ),
    "blank": nbformat.read(RELEASED, as_version=4),
}


@pytest.fixture(scope="module")
def klass(tmp_path_factory, grading_pool):
    """Lesson 01 graded for CLASS, an unreadable submission ("broken"), one learner who timed out
    ("sleepy": the grading run's outcome, as the grader records it) and one who never submitted ("absent")."""
    course = make_course(tmp_path_factory.mktemp("misconceptions"), [LESSON], [*CLASS, "broken", "sleepy", "absent"])
    run_in(course, ["generate_assignment", LESSON, "--force"])
    for learner, nb in CLASS.items():
        course.submit(LESSON, learner, nb)
    course.grade(LESSON, grading_pool)
    course.submit(LESSON, "broken", b'{"cells": [ not json')
    course.submit(LESSON, "sleepy", nbformat.writes(CLASS["printer"]))
    state = State(CourseRoot(course.root).state_dir / "state.json")
    state.put(LESSON, "sleepy", {"status": "timeout", "reason": "grading took longer than 10 s"})
    return course


def table(rows) -> dict[str, dict[str, list[str]]]:
    return {row.cell: row.learners for row in rows}


@pytest.mark.slow
def test_the_table_counts_each_diagnosis_and_lists_its_learners(klass):
    found = table(misconceptions(CourseRoot(klass.root), LESSON))
    not_graded = {"not graded: grading timed out": ["sleepy"], "not graded yet": ["broken"]}
    assert found["test_corr2d"] == {
        FLIPPED: ["flip_a", "flip_b", "forger"],
        OFF_BY_ONE: ["offby"],
        NO_KNOWN_MISTAKE: ["faker"],  # its printed diagnosis is not read
        "raised TypeError": ["typo"],
        NOT_ATTEMPTED: ["blank"],
        **not_graded,
    }
    assert found["quiz_q1"] == {"answered (91, 91)": ["offby"], "not answered": ["blank"], **not_graded}
    assert found["quiz_q2"] == {"answered 4": ["flip_b"], "not answered": ["blank"], **not_graded}
    listed = {learner for learners in found.values() for names in learners.values() for learner in names}
    assert not {"printer", "absent"} & listed  # passed (never read), or no submission


@pytest.mark.slow
def test_summary_prints_the_table_by_learner_and_draws_it_next_to_the_course(klass, capsys):
    assert cli.main(["--course", str(klass.root), "summary", LESSON, "--by-learner"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("what the failing submissions got wrong") :]
    assert "test_corr2d: 7 of 8 graded submissions below full points, 2 not graded" in block
    assert re.search(rf"^  {re.escape(FLIPPED)} +3  flip_a, flip_b, forger$", block, re.M), block
    assert re.search(rf"^  {re.escape(NO_KNOWN_MISTAKE)} +1  faker$", block, re.M), block
    assert re.search(r"^  answered \(91, 91\) +1  offby$", block, re.M), block
    plot = reports_dir(CourseRoot(klass.root)) / f"summary_{LESSON}.png"
    assert f"plot written to {plot}" in out
    import matplotlib.image

    height, width = matplotlib.image.imread(plot).shape[:2]
    assert height > width * 0.8  # the second panel (diagnoses) under the first
    assert cli.main(["--course", str(klass.root), "summary", LESSON]) == 0
    plain = capsys.readouterr().out
    assert re.search(rf"^  {re.escape(FLIPPED)} +3$", plain, re.M) and "flip_a, flip_b" not in plain


def test_make_summary_and_grades_take_output_paths():
    if not shutil.which("make"):
        pytest.skip("GNU make is not installed, so the Makefile's targets cannot be read")

    def command(*args: str) -> str:
        out = subprocess.run(["make", "-s", "-n", *args], cwd=REPO, text=True, capture_output=True, check=True).stdout
        return next(line for line in out.splitlines() if "convcourse.cli" in line)

    summary = command("summary", f"LESSON={LESSON}", "OUT=out/s.png", "BY_LEARNER=1", "COURSE=/srv/course")
    assert summary.split("convcourse.cli", 1)[1].split() == [
        "--course",
        "/srv/course",
        "summary",
        LESSON,
        "--plot",
        "out/s.png",
        "--by-learner",
    ]
    assert command("summary", f"LESSON={LESSON}").split("convcourse.cli", 1)[1].split() == ["summary", LESSON]
    assert command("grades", "OUT=g.csv").split("convcourse.cli", 1)[1].split() == ["grades", "--out", "g.csv"]


@pytest.mark.slow
def test_grades_csv_tells_no_submission_from_zero_and_lands_next_to_the_course(klass, capsys):
    assert cli.main(["--course", str(klass.root), "grades"]) == 0
    path = klass.root / "reports" / "grades.csv"
    assert f"grades written to {path}" in capsys.readouterr().out
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames[-1] == "status" and "score" in reader.fieldnames
        rows = {row["student_id"]: row for row in reader}
    assert float(rows["blank"]["score"]) == float(rows["absent"]["score"]) == 0.0
    assert (rows["blank"]["status"], rows["absent"]["status"]) == ("graded", "no submission")
    assert rows["broken"]["status"] == rows["sleepy"]["status"] == "submitted, not graded"
    assert rows["printer"]["status"] == "graded"
    assert float(rows["printer"]["score"]) == float(rows["printer"]["max_score"]) > 0
    assert not list(Path(klass.root).glob("reports/.*"))  # no temporary export left behind
