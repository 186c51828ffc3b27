"""Fork kernels: grading workers fork each learner's kernel from a pre-warmed fork server.

First the kernel manager and provisioner against a real fork server and real IPython kernels (a forked
kernel looks like one started from scratch; interrupt, kill, exit status, reaping), then
``convcourse grade`` on real lesson notebooks in temporary courses: no state leaks from one learner to
the next graded by the same worker, the memory cap and the cell timeout cost only their own test (the
adversarial corpus, graded by both, is in test_adversarial.py), a worker killed mid-run loses
only its learner (its kernel dies with it) and a rerun gives the same grades, and
``CONVCOURSE_FORK_KERNELS=0`` grades with ordinary kernels.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from convcourse.grading import forkserver

from course import REPO, make_course, points, run_in

pytestmark = pytest.mark.slow  # every test starts kernels

KERNEL_ARGS = ["--HistoryManager.hist_file=:memory:", "--IPKernelApp.exec_lines=import convcourse.grading.kernel"]
#: What a kernel reports about itself (one JSON line).
OBSERVE = textwrap.dedent("""\
    import json as _j, os as _o, sys as _s, resource as _r, threading as _t
    import torch as _torch, matplotlib as _mpl, psutil as _ps
    from convcourse.checks import _guard as _g
    from convcourse.grading import probe as _p
    print("OBSERVED" + _j.dumps({
        "pid": _o.getpid(), "pgid": _o.getpgid(0), "sid": _o.getsid(0), "cwd": _o.getcwd(),
        "parent": " ".join(_ps.Process(_o.getppid()).cmdline()),
        "jpy_parent": _o.environ.get("JPY_PARENT_PID"), "env": _o.environ.get("CONVCOURSE_KERNEL_TEST_ENV"),
        "environ": {k: v for k, v in _o.environ.items() if k != "JPY_PARENT_PID"},
        "path": _s.path, "argv": [a for a in _s.argv[1:] if not a.endswith(".json")],
        "limits": [_r.getrlimit(_r.RLIMIT_AS), _r.getrlimit(_r.RLIMIT_CPU)],
        "threads": sorted(t.name.split("-")[0] for t in _t.enumerate()),
        "torch_threads": _torch.get_num_threads(), "seed": _torch.initial_seed(), "backend": _mpl.get_backend(),
        "sealed": _g._SEALED is not None, "snapshot": sorted(_p._SNAPSHOT), "problems": _p.problems(),
        "dynamo": "torch._dynamo" in _s.modules,
        "leaks": [n for n in ("LEAKED_BUILTIN", "LEAKED_GLOBAL") if n in dir(__import__("builtins")) or n in globals()]
                 + [m for m in ("leaked_module",) if m in _s.modules]
                 + (["torch.zeros"] if _torch.zeros is not _g.ORIGINALS["torch.zeros"] else [])
                 + (["env"] if "CONVCOURSE_LEAKED" in _o.environ else []),
    }))
""")


def observed(text: str) -> dict:
    line = next(t for t in text.splitlines() if t.startswith("OBSERVED"))
    return json.loads(line[len("OBSERVED") :])


# ------------------------------------------------------------------- kernel manager and provisioner

#: The environment of `convcourse grade` runs that use fork kernels (the default).
FORK_ENV = {k: v for k, v in os.environ.items() if k != forkserver.ENV_SWITCH}


async def _kernel(
    manager_class, tmp_path: Path, code: str, timeout: float = 60, **env_extra: str
) -> tuple[str, object]:
    km = manager_class(kernel_name="python3")
    # PYTEST_CURRENT_TEST would turn ipykernel's fd capture off in the plain kernel only (the allow-list of
    # grading kernels drops it), so it is left out as in a real grading run
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(CONVCOURSE_KERNEL_TEST_ENV="per-kernel", CONVCOURSE_KERNEL_MEMORY_MB="3000", **env_extra)
    await km.start_kernel(extra_arguments=KERNEL_ARGS, cwd=str(tmp_path), env=env)
    kc = km.client()
    kc.start_channels()
    out: list[str] = []
    try:
        await kc.wait_for_ready(timeout=120)

        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append(f"ERROR {msg['content']['ename']}: {msg['content']['evalue']}\n")

        await kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    finally:
        kc.stop_channels()
    return "".join(out), km


def test_a_forked_kernel_looks_like_a_kernel_started_from_scratch(fork_server, tmp_path):
    from jupyter_client.manager import AsyncKernelManager

    from convcourse.grading.forkkernel import ForkKernelManager, ForkProvisioner

    async def both():
        results = {}
        for cls in (ForkKernelManager, AsyncKernelManager):
            text, km = await _kernel(cls, tmp_path, OBSERVE)
            results[cls.__name__] = (observed(text), type(km.provisioner))
            await km.shutdown_kernel(now=False)
            assert not await km.is_alive()
        return results

    results = asyncio.run(both())
    forked, forked_provisioner = results["ForkKernelManager"]
    plain, plain_provisioner = results["AsyncKernelManager"]
    assert forked_provisioner is ForkProvisioner and plain_provisioner is not ForkProvisioner
    assert "convcourse.grading.forkserver" in forked["parent"]
    assert "convcourse.grading.forkserver" not in plain["parent"]
    assert forked["pid"] == forked["pgid"] == forked["sid"]  # own session, like the launcher's kernels
    assert forked["jpy_parent"] == str(fork_server.ready["pid"])
    # torch._dynamo (1.3-1.6 CPU-s) waits until learner code needs it, in both (the server imports it on demand:
    # test_the_server_imports_torch_dynamo_once_a_graded_kernel_has), and so does the variable its import sets:
    # each kernel has it only as given (this test process has it once an earlier test here imported torch._dynamo)
    assert not forked["dynamo"] and not plain["dynamo"]
    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    assert forked["environ"].get("TORCHINDUCTOR_CACHE_DIR") == given == plain["environ"].get("TORCHINDUCTOR_CACHE_DIR")
    from convcourse.grading.sandbox import kernel_environment

    # a grading kernel's environment is allow-listed (no secrets); plain jupyter_client passes everything.
    # Compared through the allow-list (ipykernel adds PAGER, CLICOLOR... in both after start).
    assert forked["environ"].items() >= kernel_environment(plain["environ"], sandboxed=False).items()
    plain["environ"] = kernel_environment(plain["environ"], sandboxed=False)
    forked["environ"] = kernel_environment(forked["environ"], sandboxed=False)
    for key in (
        "cwd",
        "env",
        "environ",
        "path",
        "argv",
        "limits",
        "threads",
        "torch_threads",
        "backend",
        "sealed",
        "snapshot",
        "problems",
        "leaks",
    ):
        assert forked[key] == plain[key], (key, forked[key], plain[key])
    assert forked["limits"][0][0] == 3000 * 2**20 and forked["sealed"] and forked["problems"] == []
    assert forked["seed"] != plain["seed"]  # each process seeds torch from the OS


def test_the_server_imports_torch_dynamo_once_a_graded_kernel_has(fork_server, tmp_path, monkeypatch):
    """A server grading a lesson whose kernels never import torch._dynamo never pays for it. Once the integrity
    probe of a graded kernel reports it imported, the grader has its server import it, and the kernels forked
    after that start with it and with the variable its import sets. The request names come from a learner's
    kernel, so the server imports nothing outside ON_DEMAND."""
    from convcourse.grading.execute import GuardedExecute
    from convcourse.grading.forkkernel import ForkKernelManager
    from convcourse.selfcheck import grader_config

    monkeypatch.setenv("CONVCOURSE_SANDBOX", "0")  # a kernel forked from this unsandboxed server
    assert "torch._dynamo" not in fork_server.preloaded
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch._dynamo")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    GuardedExecute(config=grader_config()).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    assert nb.cells[0].outputs == [] and fork_server.preloaded == {"torch._dynamo"}

    async def observe():
        text, km = await _kernel(ForkKernelManager, tmp_path, OBSERVE)
        await km.shutdown_kernel(now=True)
        return observed(text)

    later = asyncio.run(observe())
    assert later["dynamo"] and later["environ"].get("TORCHINDUCTOR_CACHE_DIR")
    answer, _ = fork_server._request({"op": "preload", "modules": ["os", "antigravity", "torch._dynamo"]})
    assert answer == {"imported": [], "threads": 1}
    assert fork_server.preload(["antigravity"]) == []


def test_forked_kernels_are_separate_fresh_processes(fork_server, tmp_path):
    from convcourse.grading.forkkernel import ForkKernelManager

    leak = (
        "import builtins, os, sys, types, torch\nbuiltins.LEAKED_BUILTIN = 1\nLEAKED_GLOBAL = 1\n"
        "os.environ['CONVCOURSE_LEAKED'] = '1'\nsys.modules['leaked_module'] = types.ModuleType('leaked_module')\n"
        "torch.zeros = lambda *a, **k: None\n"
    )

    async def two():
        first, km1 = await _kernel(ForkKernelManager, tmp_path, leak + OBSERVE)
        await km1.shutdown_kernel(now=True)
        second, km2 = await _kernel(ForkKernelManager, tmp_path, OBSERVE)
        await km2.shutdown_kernel(now=True)
        return observed(first), observed(second)

    first, second = asyncio.run(two())
    assert sorted(first["leaks"]) == ["LEAKED_BUILTIN", "LEAKED_GLOBAL", "env", "leaked_module", "torch.zeros"]
    assert "replaced torch.zeros" in first["problems"]
    assert second["leaks"] == [] and second["problems"] == []
    assert first["pid"] != second["pid"] and first["seed"] != second["seed"]


def test_a_kernel_whose_startup_environment_differs_is_started_anew(fork_server, tmp_path):
    """OMP_NUM_THREADS and the like act when a library loads, i.e. in the server: such a kernel is not forked."""
    from convcourse.grading.forkkernel import ForkKernelManager

    async def run():
        code = OBSERVE + "import torch; print('THREADS', torch.get_num_threads())"
        differs = str(int(os.environ.get("OMP_NUM_THREADS", "1")) + 1)  # from the server's (conftest sets one)
        text, km = await _kernel(ForkKernelManager, tmp_path, code, OMP_NUM_THREADS=differs)
        forked = km.provisioner.forked
        await km.shutdown_kernel(now=True)
        return text, forked

    text, forked = asyncio.run(run())
    assert not forked  # the worker log says why (the fork server's log function)
    assert "convcourse.grading.forkserver" not in observed(text)["parent"]
    assert "THREADS 1" in text
    assert observed(text)["sealed"] and observed(text)["problems"] == []


def test_interrupt_kill_exit_status_and_reaping(fork_server, tmp_path):
    from convcourse.grading.forkkernel import ForkKernelManager

    async def run():
        # An interrupt (SIGINT to the kernel's process group) stops a running cell; the kernel lives on.
        text, km = await _kernel(ForkKernelManager, tmp_path, "print('ready', flush=True)")
        kc = km.client()
        kc.start_channels()
        # stop_on_error=False, as nbclient sends it when errors are allowed: the next request is not aborted.
        msg_id = kc.execute("import time\nwhile True: time.sleep(0.01)", stop_on_error=False)
        await asyncio.sleep(2)
        await km.interrupt_kernel()
        reply = await kc.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = await kc.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        assert await km.is_alive()
        # A kernel that exits by itself: its exit status comes from the server, which reaped it.
        pid = km.provisioner.pid
        kc.execute("import os; os._exit(3)")
        for _ in range(300):
            if not await km.is_alive():
                break
            await asyncio.sleep(0.1)
        assert not await km.is_alive()
        assert km.provisioner.process.returncode == 3
        assert not psutil.pid_exists(pid)  # reaped, not a zombie
        kc.stop_channels()
        await km.cleanup_resources()
        # kill: SIGKILL to a kernel busy in a loop that ignores SIGINT.
        text, km = await _kernel(ForkKernelManager, tmp_path, "print('ready', flush=True)")
        kc = km.client()
        kc.start_channels()
        kc.execute("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass")
        await asyncio.sleep(1)
        pid = km.provisioner.pid
        await km.shutdown_kernel(now=True)
        assert not await km.is_alive()
        assert km.provisioner is None or km.provisioner.process is None
        kc.stop_channels()
        return pid

    pid = asyncio.run(run())
    assert not psutil.pid_exists(pid)
    assert fork_server.sweep() == []  # nothing left running


# --------------------------------------------------------------------------------- convcourse grade

LESSON = "07_groups"
KEY = REPO / "solutions" / LESSON / f"{LESSON}.ipynb"
FULL = points(LESSON)  # the exercises' tests and the questions, all answered by the answer key


def submission(solution_suffix: str = "", extra: str = "") -> nbformat.NotebookNode:
    """The answer key without its demo cells, ``solution_suffix`` appended to the conv2d_grouped solution
    cell and ``extra`` as a learner's own cell after the last test."""
    nb = nbformat.read(KEY, as_version=4)
    nb.cells = [
        c
        for c in nb.cells
        if c.cell_type == "markdown" or "nbgrader" in c.metadata or c.metadata.get("convcourse", {}).get("quiz")
    ]  # the questions' answers stay
    solution = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "conv2d_grouped")
    solution.source += solution_suffix
    if extra:
        nb.cells.append(nbformat.v4.new_code_cell(extra))
    return nb


def cli(root: Path, *args: str, env: dict | None = None, check: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "convcourse.cli", "--course", str(root), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=env or FORK_ENV,
    )
    if check is not None:
        assert result.returncode == check, result.stdout + result.stderr
    return result


def all_scores(course, lesson: str = LESSON) -> dict[str, dict[str, float | None]]:
    with course.gradebook() as gb:
        return {
            s.student.id: {g.name: g.auto_score for n in s.notebooks for g in n.grades}
            for s in gb.find_assignment(lesson).submissions
        }


def outputs(course, student: str, lesson: str = LESSON) -> str:
    nb = course.autograded(lesson, student)
    return "\n".join(
        str(o.get(k, "")) for c in nb.cells for o in c.get("outputs", []) for k in ("text", "ename", "evalue")
    )


def worker_logs(course) -> str:
    logs = sorted((course.root / ".convcourse" / "logs").glob("*.log"))
    return "\n".join(p.read_text(errors="replace") for p in logs)


LEAKER = (
    "import builtins, os, sys, types, torch\nbuiltins.LEAKED_BUILTIN = 1\nLEAKED_GLOBAL = 1\n"
    "os.environ['CONVCOURSE_LEAKED'] = '1'\nsys.modules['leaked_module'] = types.ModuleType('leaked_module')\n"
    "import convcourse.checks.core as _core\n_core.run_case = lambda *a, **k: None\n"
    "torch.zeros = lambda *a, **k: None\n"
)
#: conv2d_grouped replaced by a memory bomb / an infinite loop: only its test cell calls it.
MEMORY_BOMB = (
    "\n\ndef conv2d_grouped(x, weight, groups):\n    hog = []\n    while True:\n        hog.append(bytearray(2**30))\n"
)
LOOP = "\n\ndef conv2d_grouped(x, weight, groups):\n    while True:\n        pass\n"


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    """Learners graded one after another by ONE worker (so by one fork server), in name order."""
    tmp = tmp_path_factory.mktemp("forked")
    course = make_course(tmp, [LESSON])
    with open(course.root / "nbgrader_config.py", "a") as config:
        config.write("c.Execute.timeout = 8\n")
    run_in(course, ["generate_assignment", LESSON, "--force"])
    subs = {
        "a_leaker": submission(extra=LEAKER + OBSERVE),
        "b_clean": submission(extra=OBSERVE),
        "c_bomb": submission(MEMORY_BOMB),
        "d_loop": submission(LOOP),
        "e_clean": submission(extra=OBSERVE),
    }
    for student, nb in subs.items():
        course.submit(LESSON, student, nb)
    result = cli(course.root, "grade", LESSON, "--workers", "1", "--json", str(tmp / "out.json"))
    return dict(course=course, result=result, out=json.loads((tmp / "out.json").read_text()))


def test_grading_workers_fork_kernels_and_nothing_leaks_to_the_next_learner(one_worker):
    course = one_worker["course"]
    assert "fork server: ready" in worker_logs(course)
    assert "starting an ordinary kernel" not in worker_logs(course)
    scores = all_scores(course)
    assert scores["a_leaker"] == dict.fromkeys(FULL, 0.0)  # tampering flagged: every test zeroed
    assert "Grading integrity check failed" in outputs(course, "a_leaker")
    assert scores["b_clean"] == scores["e_clean"] == FULL
    leaker = observed(outputs(course, "a_leaker"))
    seen = [observed(outputs(course, s)) for s in ("b_clean", "e_clean")]
    assert sorted(leaker["leaks"]) == ["LEAKED_BUILTIN", "LEAKED_GLOBAL", "env", "leaked_module", "torch.zeros"]
    for clean in seen:
        assert clean["leaks"] == [] and clean["problems"] == []
        assert "convcourse.grading.forkserver" in clean["parent"]
    assert len({leaker["pid"], *(s["pid"] for s in seen)}) == 3
    assert leaker["jpy_parent"] == seen[0]["jpy_parent"] == seen[1]["jpy_parent"]  # one worker, one server


def test_memory_cap_and_timeout_cost_only_their_own_test(one_worker):
    course = one_worker["course"]
    scores = all_scores(course)
    assert scores["c_bomb"] == {**FULL, "test_conv2d_grouped": 0.0}
    assert "MemoryError" in outputs(course, "c_bomb")
    assert scores["d_loop"] == {**FULL, "test_conv2d_grouped": 0.0}
    assert "CellTimeoutError" in outputs(course, "d_loop")
    statuses = {o["student"]: o["status"] for o in one_worker["out"]["graded"]}
    assert statuses == dict.fromkeys(("a_leaker", "b_clean", "c_bomb", "d_loop", "e_clean"), "ok")


def test_fallback_to_ordinary_kernels_when_turned_off(course_factory):
    course = course_factory([LESSON])
    run_in(course, ["generate_assignment", LESSON, "--force"])
    course.submit(LESSON, "full", submission(extra=OBSERVE))
    course.submit(LESSON, "zero", REPO / "notebooks" / LESSON / f"{LESSON}.ipynb")
    cli(course.root, "grade", LESSON, "--workers", "1", env=dict(os.environ, CONVCOURSE_FORK_KERNELS="0"))
    assert all_scores(course) == {"full": FULL, "zero": dict.fromkeys(FULL, 0.0)}
    logs = worker_logs(course)
    assert (
        logs.count("fork server: turned off (CONVCOURSE_FORK_KERNELS=0); grading kernels start as ordinary processes")
        == 1
    ), logs[-3000:]
    assert "fork server: ready" not in logs
    seen = observed(outputs(course, "full"))
    from convcourse.grading import sandbox

    # An ordinary kernel's parent is the worker, or bubblewrap (started by the worker) when sandboxed.
    parent = "bwrap" if sandbox.unavailable() is None else "convcourse.instructor.worker"
    assert parent in seen["parent"] and seen["sealed"] and seen["problems"] == [], seen["parent"]


# ------------------------------------------------------------------------------ killing a worker


def test_killing_a_worker_mid_run_loses_only_its_learner_and_a_rerun_gives_the_same_grades(course_factory):
    course = course_factory([LESSON])
    run_in(course, ["generate_assignment", LESSON, "--force"])
    slow = submission(extra="import time\ntime.sleep(20)\n")  # an ungraded cell, well inside the cell timeout
    subs = {"a_slow": slow, "b_full": submission(), "c_zero": REPO / "notebooks" / LESSON / f"{LESSON}.ipynb"}
    for student, nb in subs.items():
        course.submit(LESSON, student, nb)
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
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=FORK_ENV,
    )
    worker = server_proc = kernel = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and kernel is None:  # wait for a_slow's forked kernel
        time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read()
        try:
            worker = next(
                p
                for p in psutil.Process(proc.pid).children()
                if "convcourse.instructor.worker" in " ".join(p.cmdline())
            )
            server_proc = next(p for p in worker.children() if "convcourse.grading.forkserver" in " ".join(p.cmdline()))
            kernel = next(iter(server_proc.children()), None)
        except (StopIteration, psutil.NoSuchProcess):
            continue
    time.sleep(3)  # a_slow's kernel runs its tests, then sleeps 20 s
    assert kernel is not None and worker is not None, "no forked kernel seen"
    os.kill(worker.pid, signal.SIGKILL)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, output
    assert "a_slow: NOT graded: the grading worker process died" in output, output
    gone = psutil.wait_procs([server_proc, kernel], timeout=60)[1]
    assert not gone, f"left running after their worker died: {gone}"
    assert all_scores(course) == {"b_full": FULL, "c_zero": dict.fromkeys(FULL, 0.0)}

    rerun = cli(course.root, "grade", LESSON, "--workers", "1", "--json", str(course.root.parent / "rerun.json"))
    graded = [o["student"] for o in json.loads((course.root.parent / "rerun.json").read_text())["graded"]]
    assert graded == ["a_slow"], rerun.stdout
    assert all_scores(course) == {"a_slow": FULL, "b_full": FULL, "c_zero": dict.fromkeys(FULL, 0.0)}


def test_a_cells_cpu_counts_what_the_processes_it_starts_use():
    """A cell's CPU limit counts its kernel's own CPU from the cell's start and that of the processes the kernel
    started, found at the first poll (a learner cannot dodge the limit by spinning in a child process)."""
    from convcourse.grading.execute import _CellCPU

    spin = "while True: pass"
    kernel = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {spin!r}]); time.sleep(120)",
        ]
    )
    try:
        process = psutil.Process(kernel.pid)
        cpu = _CellCPU(process)
        deadline = time.monotonic() + 60
        while not process.children() and time.monotonic() < deadline:
            time.sleep(0.05)
        (child,) = process.children()
        first = cpu.used()  # the first poll: the child's CPU from here on counts
        at_first = child.cpu_times().user
        while child.cpu_times().user < at_first + 1.0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cpu.used() - first >= 0.9
    finally:
        for member in psutil.Process(kernel.pid).children(recursive=True) + [psutil.Process(kernel.pid)]:
            member.kill()
        kernel.wait()


def test_a_grading_worker_does_not_import_torch():
    """Workers and `convcourse grade` only drive kernels: torch (2-4 CPU-s to import) belongs in the kernels and
    the fork server. (The grader once reached it through the probe module's import of the checks.)"""
    probe = (
        "import sys; import convcourse.cli, convcourse.instructor.autograde, convcourse.instructor.worker, "
        "convcourse.grading.execute; "
        "print(sorted(m for m in ('torch', 'numpy', 'convcourse.checks') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout == "[]\n", done.stdout + done.stderr
