"""Sandboxed grading kernels, tested through the course's parallel grader (``convcourse grade``).

Adversarial learners try to read other learners' work, the answer key and the gradebook, write outside
their folder, find the course through /proc, reach a TCP listener this test starts on 127.0.0.1, install
packages with shell escapes, fill /tmp and the disk and fork hundreds of processes; each attempt must
fail or be contained while correct learners keep full marks. The same answer key grades identically
with the sandbox off (``CONVCOURSE_SANDBOX=0``), which the report, the worker log and the summary say;
and answer keys keep full marks with a CPU hog running on every core.

Tests that need bubblewrap are skipped, with the reason, where it cannot run (``make test`` installs it
when run as root on Debian).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from convcourse.grading import sandbox

from course import KERNEL_TRANSPORT, REPO, make_course, run_in

pytestmark = pytest.mark.slow  # every test grades with real kernels

LESSON = "07_groups"
KEY = REPO / "solutions" / LESSON / f"{LESSON}.ipynb"
#: Secrets an instructor's environment may hold: none may reach a kernel.
SECRETS = {
    "DATABASE_URL": "postgresql://grader:hunter2@db.example/course",
    "JUPYTERHUB_API_TOKEN": "hunter2-token",
    "CONVCOURSE_TEST_SECRET": "hunter2",
    "AWS_SECRET_ACCESS_KEY": "hunter2-aws",
}
NEEDS_SANDBOX = pytest.mark.skipif(
    sandbox.unavailable() is not None, reason=f"grading kernels cannot be sandboxed here: {sandbox.unavailable()}"
)

#: Helpers of every attack cell: each attempt is recorded as "blocked: <exception>" or "LEAKED: <result>".
ATTACK_HEAD = """\
import glob, json, os, socket, subprocess, sys
R = {{}}
def attempt(name, fn):
    try:
        R[name] = "LEAKED: " + repr(fn())[:300]
    except BaseException as error:
        R[name] = "blocked: " + type(error).__name__ + ": " + str(error)[:200]
def found(things):
    if not things:
        raise LookupError("nothing found")
    return things
COURSE, REPO, OTHER, LESSON, PORT = {course!r}, {repo!r}, {other!r}, {lesson!r}, {port}
SITE = next(p for p in sys.path if p.endswith("site-packages"))
"""

SNOOP = """\
attempt("read_other_submission", lambda: open(f"{COURSE}/submitted/{OTHER}/{LESSON}/{LESSON}.ipynb").read(80))
attempt("read_other_autograded", lambda: found(glob.glob(f"{COURSE}/autograded/*/{LESSON}/*.ipynb")))
attempt("read_lesson_source", lambda: open(f"{COURSE}/source/{LESSON}/{LESSON}.ipynb").read(80))
attempt("read_repo_answer_key", lambda: open(f"{REPO}/autograder/source/{LESSON}/{LESSON}.ipynb").read(80))
attempt("read_solutions", lambda: open(f"{REPO}/solutions/{LESSON}/{LESSON}.ipynb").read(80))
attempt("read_gradebook", lambda: open(f"{COURSE}/gradebook.db", "rb").read(80))
attempt("write_gradebook", lambda: open(f"{COURSE}/gradebook.db", "ab").write(b"x"))
attempt("write_other_folder", lambda: open(f"{COURSE}/submitted/{OTHER}/{LESSON}/evil.txt", "w").write("x"))
attempt("walk_up_for_notebooks", lambda: found([p for k in range(1, 9) for depth in ("*/", "*/*/", "*/*/*/")
                                                 for p in glob.glob("../" * k + depth + "*.ipynb") if LESSON in p]))
def ancestors():
    hits = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        for what in ("cwd", "root"):
            try:
                target = os.readlink(f"/proc/{pid}/{what}")
            except OSError:
                continue
            if COURSE in target or "/.convcourse/" in target:
                hits.append(f"{pid}/{what}: {target}")
        for what in ("cmdline", "environ"):
            try:
                text = open(f"/proc/{pid}/{what}", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if COURSE in text or "--course" in text or "/.convcourse/" in text:
                hits.append(f"{pid}/{what}")
    return found(hits)
attempt("proc_ancestors", ancestors)
attempt("secrets_in_environment", lambda: found([k for k, v in os.environ.items() if "hunter2" in v]))
attempt("write_site_packages", lambda: open(os.path.join(SITE, "zz_evil.pth"), "w").write("import os"))
attempt("write_convcourse", lambda: open(os.path.join(os.path.dirname(__import__("convcourse").__file__),
                                                        "evil.py"), "w").write("x"))
open("/tmp/marker", "w").write("from the previous learner")
open(os.path.expanduser("~/marker"), "w").write("from the previous learner")
print("ATTACK" + json.dumps(R))
"""

NETWORK = """\
attempt("tcp_to_test_listener", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=5))
attempt("dns", lambda: socket.getaddrinfo("pypi.org", 443))
def via_subprocess():
    code = f"import socket; socket.create_connection(('127.0.0.1', {PORT}), timeout=5)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise ConnectionError(done.stderr.strip().splitlines()[-1])
    return "connected"
attempt("tcp_from_subprocess", via_subprocess)
attempt("pip_install_took_effect", lambda: __import__("tinydb"))
attempt("bash_wrote_site_packages", lambda: open(os.path.join(SITE, "zz_bash.pth")).read())
attempt("previous_learner_tmp", lambda: open("/tmp/marker").read())
attempt("previous_learner_home", lambda: open(os.path.expanduser("~/marker")).read())
print("ATTACK" + json.dumps(R))
"""
#: Shell escapes that run before NETWORK checks what they achieved.
SHELL_CELLS = [
    "!pip install --no-cache-dir --disable-pip-version-check --timeout 5 --retries 0 tinydb 2>&1 | tail -n 3",
    "%pip install --no-cache-dir --disable-pip-version-check --timeout 5 --retries 0 tinydb",
    f"%%bash\nsite=$({sys.executable} -c 'import site; print(site.getsitepackages()[0])')\n"
    "{ echo 'import os' > \"$site/zz_bash.pth\"; } 2>&1 | tail -n 1\necho bash ran",
]

RESOURCES = """\
def fill(path):
    written = 0
    try:
        with open(path, "wb") as out:
            for _ in range(1024):
                out.write(b"\\0" * 2**20)
                written += 1
        return f"{written} MiB written"
    finally:
        try:
            os.remove(path)
        except OSError:
            pass
attempt("fill_tmp", lambda: fill("/tmp/fill.bin"))
attempt("gib_file_in_work_folder", lambda: fill("big.bin"))
def fork_many():
    children = []
    try:
        for _ in range(400):
            children.append(subprocess.Popen(["sleep", "60"]))
    finally:
        for child in children:
            child.kill()
            child.wait()
    return f"{len(children)} processes"
attempt("fork_400_processes", fork_many)
print("ATTACK" + json.dumps(R))
"""


#: Lesson 07's graded exercise computed by torch's own convolution away from the watched thread: in a thread
#: of the ``_thread`` module imported afresh (whose functions are not the grader's counting wrapper), or in a
#: child process that switches the dispatcher tripwire off. Neither is seen by the call's own monitors (the
#: profiler, the tripwire and the thread count watch this thread only); only the PID namespace check refuses them.
OFFLOADED = {
    "p_thread": """\
import sys, time
import torch.nn.functional as F
del sys.modules["_thread"]
import _thread as fresh_thread
def conv2d_grouped(x, weight, groups):
    box = []
    fresh_thread.start_new_thread(lambda: box.append(F.conv2d(x, weight, groups=groups)), ())
    while not box:
        time.sleep(0.001)
    return box[0]
""",
    "q_fork": """\
import os, pickle
import torch.nn.functional as F
from torch.utils._python_dispatch import _disable_current_modes
def conv2d_grouped(x, weight, groups):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        with _disable_current_modes():
            os.write(write, pickle.dumps(F.conv2d(x, weight, groups=groups)))
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.waitpid(pid, 0)
    return pickle.loads(data)
""",
}
OFFLOADED_TEST = "test_conv2d_grouped"


def submission(extra_cells: list[str] = (), solution: str | None = None) -> nbformat.NotebookNode:
    """The answer key, with ``extra_cells`` (a learner's own code) after its last cell and, if given, ``solution``
    as its conv2d_grouped cell."""
    nb = nbformat.read(KEY, as_version=4)
    if solution is not None:
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "conv2d_grouped")
        cell.source = solution
    nb.cells += [nbformat.v4.new_code_cell(source) for source in extra_cells]
    return nb


def cli(root: Path, *args: str, env: dict | None = None, check: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "convcourse.cli", "--course", str(root), *args],
        capture_output=True,
        text=True,
        timeout=1500,
        env=env or dict(os.environ),
    )
    if check is not None:
        assert result.returncode == check, result.stdout + result.stderr
    return result


def scores(course, lesson: str = LESSON) -> dict[str, dict[str, float | None]]:
    with course.gradebook() as gb:
        return {
            s.student.id: {g.name: g.auto_score for n in s.notebooks for g in n.grades}
            for s in gb.find_assignment(lesson).submissions
        }


def attack_results(course, student: str) -> dict[str, str]:
    nb = course.autograded(LESSON, student)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    line = next(line for line in text.splitlines() if line.startswith("ATTACK"))
    return json.loads(line[len("ATTACK") :])


def error_outputs(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def worker_logs(course) -> str:
    return "\n".join(
        p.read_text(errors="replace") for p in sorted((course.root / ".convcourse" / "logs").glob("*.log"))
    )


def tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


class Listener:
    """A TCP listener on 127.0.0.1 that records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.connections: list[tuple] = []
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while self.running:
            try:
                conn, address = self.sock.accept()
            except OSError:
                continue
            self.connections.append(address)
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


# ----------------------------------------------------------------------------------------- attacks


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """One worker grades, in this order: a correct learner, five attackers, another correct learner."""
    if sandbox.unavailable() is not None:
        pytest.skip(f"grading kernels cannot be sandboxed here: {sandbox.unavailable()}")
    tmp = tmp_path_factory.mktemp("sandbox")
    course = make_course(tmp, [LESSON])
    run_in(course, ["generate_assignment", LESSON, "--force"])
    listener = Listener()
    head = ATTACK_HEAD.format(
        course=str(course.root), repo=str(REPO), other="a_correct", lesson=LESSON, port=listener.port
    )
    subs = {
        "a_correct": submission(),
        "m_snoop": submission([head + SNOOP]),
        "n_network": submission(SHELL_CELLS + [head + NETWORK]),
        "o_resources": submission([head + RESOURCES]),
        **{student: submission(solution=code) for student, code in OFFLOADED.items()},
        "z_correct": submission(),
    }
    for student, nb in subs.items():
        course.submit(LESSON, student, nb)
    # A file in the submission that links to the gradebook must not be followed when copied.
    os.symlink(course.root / "gradebook.db", course.root / "submitted" / "o_resources" / LESSON / "notes.txt")
    before = {s: tree(course.root / "submitted" / s) for s in subs}
    site = next(p for p in sys.path if p.endswith("site-packages"))
    site_before = sorted(os.listdir(site))
    try:
        result = cli(
            course.root,
            "grade",
            LESSON,
            "--workers",
            "1",
            "--json",
            str(tmp / "out.json"),
            env=dict(os.environ, **SECRETS),
        )
    finally:
        listener.close()
    return dict(
        course=course,
        result=result,
        out=json.loads((tmp / "out.json").read_text()),
        before=before,
        listener=listener,
        site=(site, site_before),
        tmp=tmp,
    )


def _assert_blocked(results: dict[str, str], names: list[str]) -> None:
    assert sorted(results) == sorted(names)
    leaked = {k: v for k, v in results.items() if not v.startswith("blocked")}
    assert not leaked, leaked


def test_a_kernel_cannot_read_or_write_anything_outside_its_own_folder(attacked):
    results = attack_results(attacked["course"], "m_snoop")
    _assert_blocked(
        results,
        [
            "read_other_submission",
            "read_other_autograded",
            "read_lesson_source",
            "read_repo_answer_key",
            "read_solutions",
            "read_gradebook",
            "write_gradebook",
            "write_other_folder",
            "walk_up_for_notebooks",
            "proc_ancestors",
            "secrets_in_environment",
            "write_site_packages",
            "write_convcourse",
        ],
    )
    assert "Read-only file system" in results["write_site_packages"]


def test_no_network_and_shell_escapes_change_nothing(attacked):
    results = attack_results(attacked["course"], "n_network")
    _assert_blocked(
        results,
        [
            "tcp_to_test_listener",
            "dns",
            "tcp_from_subprocess",
            "pip_install_took_effect",
            "bash_wrote_site_packages",
            "previous_learner_tmp",
            "previous_learner_home",
        ],
    )
    assert attacked["listener"].connections == []  # nothing reached the listener on the host's 127.0.0.1
    site, site_before = attacked["site"]
    assert sorted(os.listdir(site)) == site_before  # pip, %pip and %%bash installed and wrote nothing
    nb = attacked["course"].autograded(LESSON, "n_network")
    shell_text = "".join(o.get("text", "") for c in nb.cells[-4:-1] for o in c.get("outputs", []))
    assert "bash ran" in shell_text and "Read-only file system" in shell_text


def test_resource_attacks_are_contained(attacked):
    results = attack_results(attacked["course"], "o_resources")
    _assert_blocked(results, ["fill_tmp", "gib_file_in_work_folder", "fork_400_processes"])
    assert "No space left on device" in results["fill_tmp"]
    assert "No space left on device" in results["gib_file_in_work_folder"]
    assert "Resource temporarily unavailable" in results["fork_400_processes"]
    autograded = attacked["course"].root / "autograded" / "o_resources" / LESSON
    assert sorted(p.name for p in autograded.iterdir()) == [f"{LESSON}.ipynb"]  # no big file, no linked gradebook
    out = {o["student"]: o for o in attacked["out"]["graded"]}
    assert "notes.txt (a link or special file)" in out["o_resources"]["reason"]  # the report says what was left out


def test_work_done_in_another_thread_or_process_fails_its_exercise(attacked):
    """Every thread or process a watched call starts is seen through the sandbox's PID namespace, however it
    was started; the learner is told why, and keeps the marks of everything else."""
    course = attacked["course"]
    full = scores(course)["a_correct"]
    for student in OFFLOADED:
        got = scores(course)[student]
        assert got[OFFLOADED_TEST] == 0, student
        assert {k: v for k, v in got.items() if k != OFFLOADED_TEST} == {
            k: v for k, v in full.items() if k != OFFLOADED_TEST
        }, student
        assert any("started a thread or a process" in e for e in error_outputs(course.autograded(LESSON, student))), (
            student
        )


def test_every_other_learner_keeps_full_marks_and_intact_files(attacked):
    course, out = attacked["course"], attacked["out"]
    full = {name: value for name, value in scores(course)["a_correct"].items()}
    assert sum(full.values()) == pytest.approx(course.max_score(LESSON))
    for student in ("m_snoop", "n_network", "o_resources", "z_correct"):
        assert scores(course)[student] == full, student  # the attack cells come after the tests
    for student, files in attacked["before"].items():
        assert tree(course.root / "submitted" / student) == files, student
    assert not (course.root / "submitted" / "a_correct" / LESSON / "evil.txt").exists()
    assert {o["status"] for o in out["graded"]} == {"ok"} and all(o["sandboxed"] for o in out["graded"])
    assert "grading kernels: sandboxed (bubblewrap)" in attacked["result"].stdout
    assert out["sandbox"].startswith("sandboxed")
    assert "grading kernels: sandboxed" in worker_logs(course)
    assert "fork server: ready" in worker_logs(course)
    summary = cli(course.root, "summary", LESSON, "--plot", str(attacked["tmp"] / "s.png"))
    assert "grading kernels (last run" in summary.stdout and "sandboxed (bubblewrap)" in summary.stdout
    for student in ("a_correct", "z_correct"):
        assert error_outputs(course.autograded(LESSON, student)) == []


# ------------------------------------------------------------------------- sandbox off: same grades


def test_unsandboxed_grading_works_gives_the_same_grades_and_says_so(attacked, course_factory):
    course = course_factory([LESSON])
    run_in(course, ["generate_assignment", LESSON, "--force"])
    course.submit(LESSON, "a_correct", submission())
    result = cli(
        course.root,
        "grade",
        LESSON,
        "--workers",
        "1",
        "--json",
        str(course.root.parent / "o.json"),
        env=dict(os.environ, CONVCOURSE_SANDBOX="0"),
    )
    assert scores(course)["a_correct"] == scores(attacked["course"])["a_correct"]
    assert "grading kernels: UNSANDBOXED: turned off (CONVCOURSE_SANDBOX=0)" in result.stdout
    assert "UNSANDBOXED: turned off" in worker_logs(course)
    out = json.loads((course.root.parent / "o.json").read_text())
    assert out["graded"][0]["sandboxed"] is False
    summary = cli(
        course.root,
        "summary",
        LESSON,
        "--plot",
        str(course.root.parent / "s.png"),
        env=dict(os.environ, CONVCOURSE_SANDBOX="0"),
    )
    assert "UNSANDBOXED: turned off" in summary.stdout


@pytest.mark.parametrize("sandboxed", ["1", "0"])
def test_grading_kernels_talk_over_unix_sockets_sandboxed_or_not(sandboxed, tmp_path, monkeypatch):
    """No TCP port for a grading kernel, so parallel workers starting kernels at once cannot race for one (a
    kernel that loses the race never starts). Without the sandbox the sockets are in a folder of their own,
    removed afterwards."""
    from convcourse.grading.execute import GuardedExecute
    from convcourse.selfcheck import grader_config

    if sandboxed == "1" and sandbox.unavailable():
        pytest.skip(f"no sandbox here: {sandbox.unavailable()}")
    monkeypatch.setenv(sandbox.ENV_SWITCH, sandboxed)
    monkeypatch.setenv("CONVCOURSE_FORK_KERNELS", "0")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(KERNEL_TRANSPORT)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    GuardedExecute(config=grader_config()).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    (output,) = nb.cells[0].outputs
    seen = json.loads(output["text"])
    assert seen["transport"] == "ipc", seen
    if sandboxed == "0":
        folder = Path(seen["ip"]).parent
        assert folder.name.startswith("convcourse-ipc-") and not folder.exists()


def test_without_bubblewrap_grading_says_why(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv(sandbox.ENV_SWITCH, raising=False)
    assert sandbox.unavailable().startswith("bubblewrap is not installed")
    assert sandbox.describe().startswith("UNSANDBOXED: bubblewrap is not installed")


# --------------------------------------------------------------------------- untrusted files, env


def test_safe_copy_never_follows_links_and_bounds_what_it_copies(tmp_path, monkeypatch):
    source, target = tmp_path / "src", tmp_path / "dst"
    (source / "sub").mkdir(parents=True)
    (source / "ok.txt").write_text("fine")
    (source / "sub" / "data.csv").write_text("1,2")
    (source / "secret-link").symlink_to("/etc/passwd")
    (source / "dir-link").symlink_to(tmp_path)
    (source / ".hidden").write_text("x")
    (source / "big.bin").write_bytes(b"\0" * 2048)
    monkeypatch.setattr(sandbox, "MAX_FILE_BYTES", 1024)
    skipped = sandbox.safe_copy(source, target)
    assert tree(target) == {"ok.txt": b"fine", "sub/data.csv": b"1,2"}
    assert sorted(skipped) == [
        ".hidden (unsafe name)",
        "big.bin (2048 bytes, over the limit of 1024 bytes)",
        "dir-link (a link or special file)",
        "secret-link (a link or special file)",
    ]


def test_kernel_environment_keeps_what_kernels_need_and_drops_secrets():
    env = dict(
        SECRETS,
        PATH="/usr/bin",
        PYTHONPATH="/repo",
        LANG="C.UTF-8",
        OMP_NUM_THREADS="1",
        GITHUB_TOKEN="x",
        PIP_INDEX_URL="https://user:pw@pypi.example/simple",
        MPLBACKEND="Agg",
        HOME="/root",
        CONVCOURSE_COURSE="/srv/course",
        PGPASSWORD="x",
        SSH_AUTH_SOCK="/tmp/ssh",
    )
    assert sandbox.kernel_environment(env, sandboxed=False) == {
        "PATH": "/usr/bin",
        "PYTHONPATH": "/repo",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "HOME": "/root",
    }
    inside = sandbox.kernel_environment(env, sandboxed=True)
    assert inside["HOME"] == sandbox.WORK and inside[sandbox.INPUT_ENV] == sandbox.INPUT
    assert not any("hunter2" in v or "pw@" in v for v in inside.values())


# ------------------------------------------------------------------------------- a busy machine

BUSY_LESSONS = ("01_sliding_window", "07_groups")
HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@NEEDS_SANDBOX
def test_answer_keys_keep_full_marks_with_every_core_busy(tmp_path):
    """One CPU hog per core (bounded in time, stopped by the test): per-cell limits count the kernel's CPU
    time, so no cell of the answer keys times out and every test passes. The lessons are graded at the same
    time (a course each), which loads the machine further and keeps the hogs' running time short."""
    courses = {lesson: make_course(tmp_path / lesson, [lesson]) for lesson in BUSY_LESSONS}
    for lesson, course in courses.items():
        run_in(course, ["generate_assignment", lesson, "--force"])
        course.submit(lesson, "key", REPO / "solutions" / lesson / f"{lesson}.ipynb")
        with open(course.root / "nbgrader_config.py", "a") as config:
            config.write("c.Execute.timeout = 30\n")
    cores = os.cpu_count() or 1
    hogs = [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=1200)]) for _ in range(cores)]
    try:
        time.sleep(1)
        assert all(h.poll() is None for h in hogs)
        with ThreadPoolExecutor(len(courses)) as pool:
            list(pool.map(lambda item: cli(item[1].root, "grade", item[0], "--workers", "1"), courses.items()))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    for lesson, course in courses.items():
        with course.gradebook() as gb:
            assert gb.find_submission(lesson, "key").score == pytest.approx(course.max_score(lesson)), lesson
        assert error_outputs(course.autograded(lesson, "key")) == [], lesson


@NEEDS_SANDBOX
def test_a_course_checked_out_under_tmp_is_visible_through_the_private_tmp(tmp_path, monkeypatch):
    """CI may clone the course into a temporary folder: the environment, package and data bound into the
    sandbox must show through its private /tmp, and the rest of that folder must not."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "digits.txt").write_text("shipped data")
    (tmp_path / "answer_key.ipynb").write_text("secret")
    assert str(tmp_path).startswith("/tmp/")
    monkeypatch.setenv("CONVCOURSE_DATA", str(data))
    box = sandbox.Sandbox("tmp-checkout")
    try:
        script = (
            f"import convcourse, os; print(open({str(data / 'digits.txt')!r}).read()); "
            f"print(os.path.exists({str(tmp_path / 'answer_key.ipynb')!r}))"
        )
        done = subprocess.run(
            box.command([sys.executable, "-c", script]),
            capture_output=True,
            text=True,
            timeout=120,
            env=box.environment(dict(os.environ)),
            pass_fds=(),
        )
    finally:
        box.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["shipped", "data", "False"]
