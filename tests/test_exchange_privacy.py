"""Learners can't see each other's work: the course's private exchange (convcourse.exchange) against nbgrader's
default one, with real Unix accounts (an instructor in an instructors' group, learners A and B; created here and
removed afterwards, so only as root, skipped otherwise) running the real nbgrader commands of a hub:
release_assignment, fetch, submit, collect --update, release_feedback, fetch_feedback, list. Learner B then
tries, with every path told, to list, read, overwrite, rename and delete A's submission and feedback, and to
plant submissions that collect would take.

The assignment is a one-cell notebook and its feedback HTML is written where ``nbgrader generate_feedback`` puts
it (with the submission's timestamp and secret): grading is not what this file is about, the exchange is.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from nbgrader.exchange import ExchangeError, ExchangeFactory
from nbgrader.utils import notebook_hash
from traitlets.config import PyFileConfigLoader
from traitlets.utils.importstring import import_item

from convcourse import exchange

from unix_accounts import ATTEMPT, course_environment, runnable_python, unix_accounts, why_not_root

REPO = Path(__file__).resolve().parent.parent
LESSON = "ps"

#: Run as learner B with the paths (JSON) and the attempts to make (comma-separated): prints each attempt's
#: result, "allowed" or the error that stopped it.
ATTEMPTS = (
    ATTEMPT
    + r"""
import json, os, sys
paths = json.loads(sys.argv[1])
def replace(path):
    with open(path + ".b", "w") as fh:
        fh.write("B's version")
    os.replace(path + ".b", path)
def rename_and_back(path):
    os.rename(path, path + ".moved")
    os.rename(path + ".moved", path)
def plant(folder, notebook=None, link_to=None, pipe=False, closed=False):
    os.mkdir(folder)
    target = os.path.join(folder, "ps.ipynb")
    if link_to:
        os.symlink(link_to, target)
    elif pipe:
        os.mkfifo(target)
    elif notebook:
        with open(target, "w") as fh:
            fh.write(open(notebook).read())
        if closed:
            os.chmod(target, 0o600)
steps = {
    "list inbound": lambda: os.listdir(paths["inbound"]),
    "list feedback": lambda: os.listdir(paths["feedback_folder"]),
    "read submission": lambda: open(paths["submission"] + "/ps.ipynb").read(),
    "read secret": lambda: open(paths["submission"] + "/submission_secret.txt").read(),
    "read feedback": lambda: open(paths["feedback"]).read(),
    "read solution": lambda: open(paths["solution"]).read(),
    "overwrite feedback": lambda: open(paths["feedback"], "a").close(),
    "delete feedback": lambda: os.unlink(paths["feedback"]),
    "replace submitted notebook": lambda: replace(paths["submission"] + "/ps.ipynb"),
    "rename submission": lambda: rename_and_back(paths["submission"]),
    "delete submitted file": lambda: os.unlink(paths["submission"] + "/timestamp.txt"),
    "plant a submission as A": lambda: plant(paths["plant_as_a"], notebook=paths["own_notebook"]),
    "submit a link to the solution": lambda: plant(paths["plant_link"], link_to=paths["solution"]),
    "plant a name without a time": lambda: plant(paths["plant_no_time"]),
    "submit a pipe": lambda: plant(paths["plant_pipe"], pipe=True),
    "submit a file closed to the instructors": lambda: plant(paths["plant_closed"], paths["own_notebook"], closed=True),
}
print(json.dumps({name: attempt(steps[name]) for name in sys.argv[2].split(",")}))
"""
)
#: What B tries before the second collect; after it, B plants what would stop nbgrader's collect for everyone
#: (:data:`BLOCKERS`) before a third collect.
ATTACKS = [
    "list inbound",
    "list feedback",
    "read submission",
    "read secret",
    "read feedback",
    "read solution",
    "overwrite feedback",
    "delete feedback",
    "replace submitted notebook",
    "rename submission",
    "delete submitted file",
    "plant a submission as A",
    "submit a link to the solution",
]
BLOCKERS = ["plant a name without a time", "submit a pipe", "submit a file closed to the instructors"]
SOLUTION = "answer = 'the solution'"
#: The course folders the private exchange makes.
FOLDERS = (".", "outbound", "inbound", "feedback")


@dataclass
class Account:
    name: str
    groups: list[str]

    @property
    def home(self) -> Path:
        return Path("/home") / self.name


@dataclass
class Accounts:
    instructor: Account
    a: Account
    b: Account
    instructors_group: str
    python: str
    env: dict[str, str]

    def run(self, who: Account, args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``python args`` as ``who`` (their own uid, primary and supplementary groups, HOME); ``stdout``
        holds stderr too."""
        env = {**self.env, "HOME": str(who.home), "USER": who.name, "LOGNAME": who.name}
        result = subprocess.run(
            [self.python, *args],
            cwd=cwd,
            env=env,
            user=who.name,
            group=who.name,
            extra_groups=who.groups,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{args} as {who.name} exited {result.returncode}:\n{result.stdout[-4000:]}")
        return result

    def nbgrader(self, who: Account, *args: str, cwd: Path) -> str:
        return self.run(who, ["-m", "nbgrader", *args], cwd).stdout

    def each_learner(self, step: Callable[[Account], None]) -> None:
        """``step`` for A and B at once, as on a hub."""
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(step, (self.a, self.b)))


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def accounts():
    if why_not_root():
        pytest.skip(f"{why_not_root()} to run nbgrader as separate users")
    prefix = f"ccpriv_{secrets.token_hex(3)}"
    group = f"{prefix}_staff"
    people = {
        role: Account(f"{prefix}_{role}", [f"{prefix}_{role}", *groups])
        for role, groups in (("i", [group]), ("a", []), ("b", []))
    }
    with unix_accounts({who.name: who.groups[1:] for who in people.values()}, [group]):
        env = course_environment()
        python = runnable_python(env, people["b"].name)
        if python is None:
            pytest.skip(f"no Python {sys.version_info[:2]} that an unprivileged user may run (tried {sys.executable})")
        yield Accounts(people["i"], people["a"], people["b"], group, python, env)


@dataclass
class Outcome:
    """What happened in one exchange: B's attempts, what collect made of them, what is left of A's work."""

    attempts: dict[str, str]
    listing: str
    collected_after_attacks: dict[str, str]
    collect_log: str
    blocked_collect: subprocess.CompletedProcess
    collected_at_last: dict[str, str]
    feedback_fetched: dict[str, str]
    a_submission_before: str
    a_submission_after: str
    a_feedback_before: str
    a_feedback_after: str
    a_cache_mode: int


def _digest(folder: Path) -> str:
    if not folder.is_dir():
        return "missing"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()


def _notebook(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(text))
    return nb


def _exchange_flow(accounts: Accounts, private: bool) -> Outcome:
    """Release, fetch, submit, collect, release and fetch feedback in a fresh exchange; then B's attempts, a second
    collect --update (what ``convcourse collect LESSON --exchange`` runs) and what is left of A's work."""
    base = Path(tempfile.mkdtemp(prefix="ccpriv-"))
    try:
        return _flow_in(accounts, private, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _flow_in(accounts: Accounts, private: bool, base: Path) -> Outcome:
    teacher, a, b = accounts.instructor, accounts.a, accounts.b
    course_id = f"c{secrets.token_hex(3)}"
    os.chmod(base, 0o755)
    root = base / "exchange"
    root.mkdir()
    if private:  # README's setup: install -d -m 2755 -o INSTRUCTOR -g instructors ROOT
        shutil.chown(root, teacher.name, accounts.instructors_group)
        os.chmod(root, 0o2755)
    else:  # nbgrader's documented default: an exchange writable by everyone
        os.chmod(root, 0o777)
    config = f"c = get_config()\nc.CourseDirectory.course_id = {course_id!r}\nc.Exchange.root = {str(root)!r}\n"
    if private:
        config += "".join(f"c.ExchangeFactory.{step} = {cls!r}\n" for step, cls in exchange.FACTORY.items())

    course = base / "course"
    (course / "release" / LESSON).mkdir(parents=True)
    nbformat.write(_notebook("answer = None"), course / "release" / LESSON / f"{LESSON}.ipynb")
    db = course / "gradebook.db"
    with Gradebook(f"sqlite:///{db}", course_id) as gb:
        gb.update_or_create_assignment(LESSON)
    (course / "nbgrader_config.py").write_text(config + f"c.CourseDirectory.db_url = 'sqlite:///{db}'\n")

    work = {}
    for learner in (a, b):
        work[learner.name] = learner.home / course_id
        work[learner.name].mkdir()
        (work[learner.name] / "nbgrader_config.py").write_text(config)
        _sh("chown", "-R", f"{learner.name}:{learner.name}", str(work[learner.name]))

    solution = course / "source" / LESSON / f"{LESSON}.ipynb"  # the instructor's own, closed to learners
    solution.parent.mkdir(parents=True)
    nbformat.write(_notebook(SOLUTION), solution)
    _sh("chown", "-R", f"{teacher.name}:{teacher.name}", str(course))
    solution.chmod(0o600)

    accounts.nbgrader(teacher, "release_assignment", LESSON, "--force", cwd=course)
    if private:  # every course folder has the instructors' group (the README's table), whoever's primary group
        groups = {name: grp.getgrgid((root / course_id / name).stat().st_gid).gr_name for name in FOLDERS}
        assert groups == dict.fromkeys(FOLDERS, accounts.instructors_group), groups
    answers = {a.name: "answer = 'A, and only A'", b.name: "answer = 'B'"}

    def fetch_and_submit(learner: Account) -> None:
        accounts.nbgrader(learner, "fetch_assignment", LESSON, cwd=work[learner.name])
        notebook = work[learner.name] / LESSON / f"{LESSON}.ipynb"
        nbformat.write(_notebook(answers[learner.name]), notebook)
        shutil.chown(notebook, learner.name, learner.name)
        accounts.nbgrader(learner, "submit", LESSON, cwd=work[learner.name])

    accounts.each_learner(fetch_and_submit)
    accounts.nbgrader(teacher, "collect", LESSON, "--update", cwd=course)
    assert _collected(course, a, b) == answers, "the submissions were not collected intact"

    # nbgrader generate_feedback's output: feedback/<learner>/<lesson>/<notebook>.html with the stamps beside it.
    for learner in (a, b):
        feedback = course / "feedback" / learner.name / LESSON
        feedback.mkdir(parents=True)
        (feedback / f"{LESSON}.html").write_text(f"<p>feedback for {learner.name}</p>")
        for stamp in ("timestamp.txt", "submission_secret.txt"):
            shutil.copy(course / "submitted" / learner.name / LESSON / stamp, feedback / stamp)
    _sh("chown", "-R", f"{teacher.name}:{teacher.name}", str(course / "feedback"))
    accounts.nbgrader(teacher, "release_feedback", LESSON, cwd=course)
    fetched = {}

    def fetch_feedback(learner: Account) -> None:
        accounts.nbgrader(learner, "fetch_feedback", LESSON, cwd=work[learner.name])
        pages = (work[learner.name] / LESSON / "feedback").glob(f"*/{LESSON}.html")
        fetched[learner.name] = "".join(page.read_text() for page in pages)

    accounts.each_learner(fetch_feedback)

    inbound = root / course_id / "inbound"
    a_submission = next(inbound.glob(f"{a.name}+{LESSON}+*"))
    secret = (a_submission / "submission_secret.txt").read_text()
    a_feedback = root / course_id / "feedback" / f"{notebook_hash(secret=secret, notebook_id=LESSON)}.html"
    a_submission_before, a_feedback_before = _digest(a_submission), a_feedback.read_text()
    listing = accounts.nbgrader(b, "list", "--inbound", cwd=work[b.name])
    paths = {
        "inbound": str(inbound),
        "feedback_folder": str(a_feedback.parent),
        "submission": str(a_submission),
        "feedback": str(a_feedback),
        "solution": str(solution),
        "plant_as_a": str(inbound / f"{a.name}+{LESSON}+2099-01-01 00:00:00.000000 UTC+planted"),
        "plant_link": str(inbound / f"{b.name}+{LESSON}+2099-01-01 00:00:00.000000 UTC+linked"),
        "plant_no_time": str(inbound / f"{b.name}+{LESSON}+no time"),
        "plant_pipe": str(inbound / f"{b.name}+{LESSON}+2100-01-01 00:00:00.000000 UTC+pipe"),
        "plant_closed": str(inbound / f"{b.name}+{LESSON}+2101-01-01 00:00:00.000000 UTC+closed"),
        "own_notebook": str(work[b.name] / LESSON / f"{LESSON}.ipynb"),
    }

    def attempts(names: list[str]) -> dict[str, str]:
        return json.loads(accounts.run(b, ["-c", ATTEMPTS, json.dumps(paths), ",".join(names)], work[b.name]).stdout)

    made = attempts(ATTACKS)
    collect_log = accounts.nbgrader(teacher, "collect", LESSON, "--update", cwd=course)
    collected = _collected(course, a, b)
    assert attempts(BLOCKERS) == dict.fromkeys(BLOCKERS, "allowed")
    blocked_collect = accounts.run(teacher, ["-m", "nbgrader", "collect", LESSON, "--update"], course, check=False)
    collected_at_last = _collected(course, a, b)
    return Outcome(
        attempts=made,
        listing=listing,
        collected_after_attacks=collected,
        collect_log=collect_log,
        blocked_collect=blocked_collect,
        collected_at_last=collected_at_last,
        feedback_fetched=fetched,
        a_submission_before=a_submission_before,
        a_submission_after=_digest(a_submission),
        a_feedback_before=a_feedback_before,
        a_feedback_after=a_feedback.read_text() if os.path.exists(a_feedback) else "missing",
        a_cache_mode=os.stat(a.home / ".local/share/jupyter/nbgrader_cache").st_mode & 0o777,
    )


def _collected(course: Path, *learners: Account) -> dict[str, str]:
    """Each learner's answer as collected into submitted/ (the notebook's one cell), or "missing": nbgrader's
    collect --update removes the collected copy before copying the newer one, which can fail."""
    notebooks = {who.name: course / "submitted" / who.name / LESSON / f"{LESSON}.ipynb" for who in learners}
    return {
        name: nbformat.read(path, as_version=4).cells[0].source if path.exists() else "missing"
        for name, path in notebooks.items()
    }


@pytest.mark.slow
def test_default_exchange_lets_a_learner_read_alter_and_impersonate_another(accounts):
    """Negative control, and the upstream problem on record: with nbgrader's own exchange the same attempts
    succeed (only listing is refused: names are hidden, not protected); collect takes B's plant as A's work,
    grades the instructor's solution as B's, and B's next plants stop it for everyone."""
    outcome = _exchange_flow(accounts, private=False)
    a, b = accounts.a.name, accounts.b.name
    assert outcome.feedback_fetched == {a: f"<p>feedback for {a}</p>", b: f"<p>feedback for {b}</p>"}
    assert a not in outcome.listing
    assert outcome.attempts == {
        "list inbound": "PermissionError",
        "list feedback": "PermissionError",
        "read submission": "allowed",
        "read secret": "allowed",
        "read feedback": "allowed",
        "read solution": "PermissionError",
        "overwrite feedback": "PermissionError",
        "delete feedback": "PermissionError",
        "replace submitted notebook": "allowed",
        "rename submission": "allowed",
        "delete submitted file": "allowed",
        "plant a submission as A": "allowed",
        "submit a link to the solution": "allowed",
    }
    assert outcome.a_submission_after != outcome.a_submission_before
    assert outcome.collected_after_attacks == {a: "answer = 'B'", b: SOLUTION}
    assert outcome.blocked_collect.returncode != 0, outcome.blocked_collect.stdout


@pytest.mark.slow
def test_private_exchange_keeps_each_learners_submission_and_feedback_to_themselves(accounts):
    outcome = _exchange_flow(accounts, private=True)
    a, b = accounts.a.name, accounts.b.name
    assert outcome.feedback_fetched == {a: f"<p>feedback for {a}</p>", b: f"<p>feedback for {b}</p>"}
    assert a not in outcome.listing
    # B may drop folders into the drop box (that is how submitting works), but collect refuses those that are not
    # B's own plain work, and keeps A's and B's real submissions.
    plants = ["plant a submission as A", "submit a link to the solution"]
    assert {name: outcome.attempts.pop(name) for name in plants} == dict.fromkeys(plants, "allowed")
    assert outcome.attempts == dict.fromkeys(outcome.attempts, "PermissionError")
    assert f"claims to be {a}'s submission but it belongs to {b}" in outcome.collect_log
    assert f"claims to be {b}'s submission but it contains a symbolic link (ps.ipynb)" in outcome.collect_log
    assert outcome.collected_after_attacks == {a: "answer = 'A, and only A'", b: "answer = 'B'"}
    assert outcome.a_submission_after == outcome.a_submission_before
    assert outcome.a_feedback_after == outcome.a_feedback_before == f"<p>feedback for {a}</p>"
    assert outcome.a_cache_mode == 0o700
    assert outcome.blocked_collect.returncode == 0, outcome.blocked_collect.stdout
    for refusal in (
        "its name does not end in a submission time",
        "it contains something that is neither a file nor a folder (ps.ipynb)",
        "the instructors cannot read ps.ipynb",
    ):
        assert f"claims to be {b}'s submission but {refusal}" in outcome.blocked_collect.stdout
    assert outcome.collected_at_last == outcome.collected_after_attacks


def test_example_config_plugs_every_exchange_step_into_nbgrader():
    config = PyFileConfigLoader("exchange_config.py.example", path=str(REPO / "autograder")).load_config()
    assert dict(config.ExchangeFactory) == exchange.FACTORY
    configured, nbgrader_own = ExchangeFactory(config=config), ExchangeFactory()
    for step, name in exchange.FACTORY.items():
        assert getattr(configured, step) is import_item(name), step
        assert issubclass(import_item(name), getattr(nbgrader_own, step)), step


def test_an_exchange_root_writable_by_everyone_is_refused(tmp_path):
    root = tmp_path / "exchange"
    root.mkdir()
    root.chmod(0o777)
    fetch = exchange.FetchAssignment(coursedir=CourseDirectory(course_id="c"), authenticator=None, root=str(root))
    with pytest.raises(ExchangeError, match="writable by everyone"):
        fetch.ensure_root()
    root.chmod(0o2755)
    fetch.ensure_root()
