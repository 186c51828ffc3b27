"""Shared fixtures. Tests that start Jupyter kernels or nbgrader are marked ``slow``.

Grading in tests (see tests/course.py):

- ``graded_lessons`` (session): every lesson's answer key (learner ``key``) and learner copy (``blank``)
  graded once, by the course's grader, in one course; assert on ``graded_lessons.course.scores(lesson,
  student)``, ``.total``, ``.autograded`` and ``graded_lessons.outcomes(lesson)``.
- ``grading_pool`` (session): two grading workers with fork-server kernels. For your own submissions:
  ``course = course_factory([lesson], students=[...])``, ``run_in(course, ["generate_assignment", lesson,
  "--force"])``, ``course.submit(...)``, then ``course.grade(lesson, grading_pool)`` instead of a plain
  ``nbgrader autograde`` subprocess (which starts every kernel from scratch). Use plain nbgrader
  (``run_in(course, ["autograde", ...])``) only where plain nbgrader itself is what the test is about.

Tests that use ``graded_lessons``, and slow tests that share a module fixture, stay on one pytest-xdist
worker (see :func:`xdist_groups`), so that a shared result is built once.
"""

from __future__ import annotations

import os
import resource
import time

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")
#: One torch/OpenMP thread in the test processes and everything they start (kernels, servers, fork servers), as
#: grading kernels already have (convcourse.grading.limits.threads): make test runs more processes than cores,
#: and a second OpenMP thread per process only waits for its turn, spinning (a capstone training test took 17x
#: its CPU time in wall time on a loaded machine). Tests assert behaviour, never speed, so nothing else changes.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from convcourse.grading import ensure_tools_on_path, stamp_gradebooks_in_process

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
ensure_tools_on_path()
stamp_gradebooks_in_process()  # the gradebooks tests create, without an `alembic heads` subprocess each


@pytest.fixture
def course_factory(tmp_path):
    """make_course bound to this test's temporary folder."""
    from course import make_course

    return lambda lessons=None, students=(): make_course(tmp_path, lessons, list(students))


@pytest.fixture(scope="module")
def fork_server():
    """An unsandboxed fork server in this test process (convcourse.grading.forkserver): kernels started with
    ``ForkKernelManager`` are forked from it, already past importing torch and the course. For tests that
    compare forked kernels with ordinary ones, and for lessons run where the kernel's start is not what
    is tested (the sandboxed server is tested through `convcourse grade`, in test_fork_kernels.py and
    test_sandbox.py)."""
    from convcourse.grading import forkserver, sandbox

    reason = forkserver.unsupported()
    assert reason is None, reason
    assert forkserver.active() is None, "a fork server is already running in this test process"
    saved = os.environ.get(sandbox.ENV_SWITCH)
    os.environ[sandbox.ENV_SWITCH] = "0"  # read when the server starts: it and its kernels run unsandboxed
    try:
        started = forkserver.start()
    finally:
        if saved is None:
            os.environ.pop(sandbox.ENV_SWITCH)
        else:
            os.environ[sandbox.ENV_SWITCH] = saved
    try:
        assert forkserver.active() is started and started.sandbox is None
        yield started
    finally:
        forkserver.stop()
    assert forkserver.active() is None


@pytest.fixture(scope="session")
def grading_pool(tmp_path_factory):
    """Grading workers shared by the session (each starts its fork server on first use)."""
    from course import GradingPool

    pool = GradingPool(tmp_path_factory.mktemp("grading-logs"))
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def graded_lessons(tmp_path_factory, grading_pool):
    """Every lesson's answer key and learner copy, graded once by the course's grader (see the docstring)."""
    from course import grade_every_lesson

    return grade_every_lesson(tmp_path_factory.mktemp("every-lesson"), grading_pool)


#: pytest-timeout's limit (s) for a test using ``graded_lessons``: the first one builds it, on a busy machine too.
GRADED_LESSONS_TIMEOUT = 3600
#: The session fixture whose users share one xdist worker: building it grades every lesson.
SHARED = "graded_lessons"
#: Fixture scopes whose instances tests share (built once per xdist worker that runs a user).
_SHARED_SCOPES = ("module", "package", "class")


def _shared_instances(item: pytest.Item) -> set[str]:
    """The module-scoped (or wider, short of the session) fixture instances a slow test uses: each fixture's
    name, with its parameter where it is parametrized ("lesson_graded[05_padding]")."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None or not item.get_closest_marker("slow"):
        return set()
    params = getattr(getattr(item, "callspec", None), "params", {})
    scoped = [name for name, defs in info.name2fixturedefs.items() if defs and defs[-1].scope in _SHARED_SCOPES]
    return {f"{name}[{params[name]}]" if name in params else name for name in scoped}


def xdist_groups(items: list[pytest.Item]) -> dict[str, str | None]:
    """The xdist group of each test (by node id), or None to let xdist place it anywhere.

    Users of ``graded_lessons`` form one group. Slow tests of one module that use a module-scoped fixture
    instance in common (the same fixture with the same parameter) form one group, so each such result (a
    server, a graded class) is built once: a test using fixtures A and B joins the tests using A and those
    using B. A parametrized module fixture (one course per lesson, say) gives one group per parameter, which
    can run on different workers. A module that sets ``XDIST_COPIES = n`` (a cheap fixture such as one
    JupyterLab server) is split round-robin into n groups, each building its own copy.
    """
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(key: tuple[str, str]) -> tuple[str, str]:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    uses = {item.nodeid: [(item.module.__name__, name) for name in sorted(_shared_instances(item))] for item in items}
    for keys in uses.values():
        for other in keys[1:]:
            parent[root(other)] = root(keys[0])
    members: dict[tuple[str, str], set[str]] = {}
    for keys in uses.values():
        for key in keys:
            members.setdefault(root(key), set()).add(key[1])
    groups: dict[str, str | None] = {}
    copies: dict[str, int] = {}
    for item in items:
        if SHARED in item.fixturenames:
            groups[item.nodeid] = SHARED
            continue
        keys = uses[item.nodeid]
        if not keys:
            groups[item.nodeid] = None
            continue
        group = f"{item.module.__name__}:{'+'.join(sorted(members[root(keys[0])]))}"
        split = getattr(item.module, "XDIST_COPIES", 1)
        if split > 1:
            index = copies[group] = copies.get(group, -1) + 1
            group += f"#{index % split}"
        groups[item.nodeid] = group
    return groups


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks (it names groups in the node ids)
def pytest_collection_modifyitems(config, items):
    """Put tests that share an expensive fixture on one pytest-xdist worker (``--dist loadgroup``), and
    order the run longest first: the tests that use ``graded_lessons``, then the other slow tests, then
    the short ones. pytest-xdist hands out tests and groups in this order, so the run does not end with
    one worker on a long group while the others wait; the many short tests fill the gaps at the end."""
    groups = xdist_groups(items)
    rank: dict[str, int] = {}
    for item in items:
        group = groups[item.nodeid]
        rank[item.nodeid] = 0 if group == SHARED else 1 if item.get_closest_marker("slow") else 2
        if group is None:
            continue
        item.add_marker(pytest.mark.xdist_group(group))
        if group == SHARED and not item.get_closest_marker("timeout"):
            # pytest-timeout counts fixture setup: the first user grades every lesson (26 notebooks)
            item.add_marker(pytest.mark.timeout(GRADED_LESSONS_TIMEOUT))
    items.sort(key=lambda item: rank[item.nodeid])  # stable: the collection order within each rank


# ---- run report: wall time and CPU seconds per test (this process and its reaped children) ---------------
# Measured where the test runs (an xdist worker too) and sent to the terminal with the test's report.


def _cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


_CPU: dict[str, float] = {}
_START = {"wall": time.monotonic(), "cpu": _cpu_seconds()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item.stash[_CPU_START] = _cpu_seconds()
    yield


_CPU_START = pytest.StashKey[float]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "teardown" and _CPU_START in item.stash:
        outcome.get_result().user_properties.append(("cpu_seconds", _cpu_seconds() - item.stash[_CPU_START]))


def pytest_runtest_logreport(report):
    for key, value in report.user_properties:
        if key == "cpu_seconds" and report.when == "teardown":
            _CPU[report.nodeid] = value


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """CPU seconds of the 15 costliest tests (a shared fixture counts for the first test using it), the
    run's wall time, and the load average (the machine may be shared)."""
    write = terminalreporter.write_line
    if _CPU:
        terminalreporter.section("CPU seconds per test (process + children), top 15")
        for nodeid, seconds in sorted(_CPU.items(), key=lambda kv: -kv[1])[:15]:
            write(f"{seconds:8.2f}s cpu  {nodeid}")
    load = os.getloadavg()
    write(
        f"pytest run: {time.monotonic() - _START['wall']:.1f} s wall; {sum(_CPU.values()):.1f} s CPU in tests "
        f"(sum over tests, workers included); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
