"""Autograding throughput: plain sequential ``nbgrader autograde`` vs ``convcourse grade`` (parallel).

Builds N synthetic learner submissions of one lesson (a mix of full marks, partial credit, failing and
crashing code), grades the same submissions in identical temporary course directories, once with
plain ``nbgrader autograde <lesson>`` (one process, one learner after another, ordinary kernels) and
once with ``convcourse grade <lesson> --workers W`` (kernels forked from each worker's fork server),
checks that every learner's per-cell scores are identical in the gradebooks, and prints notebooks/minute
for each and the ratio, plus the CPU seconds each spent per notebook (all processes, kernels included:
less sensitive than wall time to other work on the machine). ``--ordinary`` adds a third run of
``convcourse grade`` with ``CONVCOURSE_FORK_KERNELS=0`` (parallel workers, ordinary kernels).

Sandbox: plain nbgrader runs with ``CONVCOURSE_SANDBOX=0`` (kernels as upstream nbgrader starts them, the
baseline to beat); ``convcourse grade`` runs twice, with sandboxed kernels (the default where bubblewrap
works) and with the sandbox off, and the script prints the sandbox's cost per notebook (CPU seconds and
wall time, on minus off) and what the speed-up would need to reach 4x. The load average before and after
is printed: the figures are only comparable on an otherwise idle machine.

    .venv/bin/python benchmarks/autograde_throughput.py                 # 8 learners, workers = CPU cores
    .venv/bin/python benchmarks/autograde_throughput.py -n 24 --workers 2 --lesson 01_sliding_window

Submissions: ``full`` = the answer key; ``failing`` = the released notebook (NotImplementedError);
``partial`` = the answer key with its last solution cell replaced by the released one (partial credit in
lessons with several exercises, zero in single-exercise lessons); ``crash`` = the answer key with a
``ValueError`` raised at the top of its first solution cell.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from convcourse.grading import ensure_tools_on_path  # noqa: E402
from convcourse.instructor.autograde import default_workers  # noqa: E402

CONFIG = """\
from convcourse.grading.config import apply
c = get_config()
apply(c, root={root!r})
c.CourseDirectory.db_url = {db_url!r}
"""
KINDS = ("full", "partial", "failing", "crash")


def _solution_cells(nb) -> list[int]:
    return [
        i
        for i, c in enumerate(nb.cells)
        if c.get("metadata", {}).get("nbgrader", {}).get("solution") and c.cell_type == "code"
    ]


def synthetic(lesson: str, kind: str) -> nbformat.NotebookNode:
    key = nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    released = nbformat.read(REPO / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
    if kind == "full":
        return key
    if kind == "failing":
        return released
    cells = _solution_cells(key)
    if kind == "partial" and cells:
        key.cells[cells[-1]].source = released.cells[cells[-1]].source
    elif kind == "crash" and cells:
        key.cells[cells[0]].source = "raise ValueError('synthetic crash')\n" + key.cells[cells[0]].source
    return key


def make_course(root: Path, lesson: str, learners: dict[str, nbformat.NotebookNode]) -> Path:
    (root / "source").mkdir(parents=True)
    shutil.copytree(REPO / "autograder" / "source" / lesson, root / "source" / lesson)
    (root / "nbgrader_config.py").write_text(CONFIG.format(root=str(root), db_url=f"sqlite:///{root / 'gradebook.db'}"))
    nbgrader(root, "generate_assignment", lesson, "--force")
    for student, nb in learners.items():
        target = root / "submitted" / student / lesson / f"{lesson}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    return root


def nbgrader(root: Path, *args: str) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return time.perf_counter() - start


def children_cpu() -> float:
    """CPU seconds of every finished descendant (each process is waited for by its parent, kernels too)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(run) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``run()``."""
    cpu, start = children_cpu(), time.perf_counter()
    run()
    return time.perf_counter() - start, children_cpu() - cpu


def convcourse_grade(root: Path, lesson: str, workers: int, fork: bool, sandboxed: bool = True) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("CONVCOURSE_FORK_KERNELS", "CONVCOURSE_SANDBOX")}
    if not fork:
        env["CONVCOURSE_FORK_KERNELS"] = "0"
    if not sandboxed:
        env["CONVCOURSE_SANDBOX"] = "0"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "convcourse.cli",
            "--course",
            str(root),
            "grade",
            lesson,
            "--workers",
            str(workers),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        raise SystemExit(f"convcourse grade failed:\n{(result.stdout + result.stderr)[-3000:]}")
    logs = "".join(p.read_text(errors="replace") for p in (root / ".convcourse" / "logs").glob("worker-*.log"))
    if fork != ("fork server: ready" in logs) or "starting an ordinary kernel" in logs:
        raise SystemExit(f"expected {'fork' if fork else 'ordinary'} kernels; worker logs:\n{logs[-3000:]}")
    if sandboxed and "grading kernels: sandboxed" not in logs:
        raise SystemExit(f"expected sandboxed kernels; worker logs:\n{logs[-3000:]}")


def scores(root: Path, lesson: str) -> dict[str, dict[str, float | None]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {
            s.student.id: {f"{n.name}/{g.name}": g.auto_score for n in s.notebooks for g in n.grades}
            for s in gb.find_assignment(lesson).submissions
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--learners", type=int, default=8)
    parser.add_argument("--workers", type=int, default=default_workers())
    default_lesson = "11_backward" if (REPO / "solutions" / "11_backward").exists() else "01_sliding_window"
    parser.add_argument("--lesson", default=default_lesson)
    parser.add_argument(
        "--ordinary",
        action="store_true",
        help="also time convcourse grade with CONVCOURSE_FORK_KERNELS=0 (ordinary kernels)",
    )
    args = parser.parse_args(argv)
    ensure_tools_on_path()
    lesson = args.lesson
    learners = {f"learner{i:03d}": synthetic(lesson, KINDS[i % len(KINDS)]) for i in range(args.learners)}
    from convcourse.grading import sandbox

    reason = sandbox.unavailable()
    if reason is not None:
        print(f"NOTE: grading kernels cannot be sandboxed here ({reason}); both convcourse runs are unsandboxed")
    runs = [
        ("plain nbgrader autograde (sequential)", None, False),
        (f"convcourse grade --workers {args.workers}, sandboxed", True, reason is None),
        ("  same, CONVCOURSE_SANDBOX=0", True, False),
    ]
    if args.ordinary:
        runs.append(("  same, sandboxed, CONVCOURSE_FORK_KERNELS=0", False, reason is None))
    with tempfile.TemporaryDirectory(prefix="autograde-bench-") as tmp:
        courses = [make_course(Path(tmp) / f"course{i}", lesson, learners) for i in range(len(runs))]
        print(
            f"{args.learners} learners of {lesson} ({', '.join(KINDS)} in turn); {os.cpu_count()} CPU cores; "
            f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        n = args.learners
        figures, identical = [], True
        expected = None
        for (label, fork, boxed), root in zip(runs, courses):
            if fork is None:
                os.environ["CONVCOURSE_SANDBOX"] = "0"  # upstream nbgrader's kernels: the baseline
                try:
                    wall, cpu = measured(lambda: nbgrader(root, "autograde", lesson))
                finally:
                    os.environ.pop("CONVCOURSE_SANDBOX")
                expected = scores(root, lesson)
            else:
                wall, cpu = measured(lambda: convcourse_grade(root, lesson, args.workers, fork, boxed))
                got = scores(root, lesson)
                if got != expected:
                    identical = False
                    for student in sorted(set(expected) | set(got)):
                        if expected.get(student) != got.get(student):
                            print(f"  {label}: {student}: nbgrader {expected.get(student)} vs {got.get(student)}")
            figures.append((wall, cpu))
            print(
                f"{label:40s} {wall:7.1f} s  {60 * n / wall:6.1f} notebooks/minute  {cpu / n:5.2f} CPU s/notebook",
                flush=True,
            )
        totals = sorted({round(sum(v or 0 for v in cells.values()), 3) for cells in expected.values()})
        (plain_wall, plain_cpu), (ours_wall, ours_cpu), (off_wall, off_cpu) = figures[:3]
        ratio = plain_wall / ours_wall
        print(
            f"speed-up (sandboxed vs plain nbgrader): {ratio:.2f}x (notebooks/minute); CPU per notebook: "
            f"{plain_cpu / ours_cpu:.2f}x less; sandbox off: {plain_wall / off_wall:.2f}x"
        )
        print(
            f"sandbox cost per notebook: {(ours_cpu - off_cpu) / n:+.2f} CPU s ({ours_cpu / n:.2f} on vs "
            f"{off_cpu / n:.2f} off), {(ours_wall - off_wall) / n:+.2f} s wall per notebook"
        )
        if ours_cpu < off_cpu:
            print(
                "  (CPU on < off: CPU of processes ended inside bubblewrap's PID namespace is not all reported "
                "to RUSAGE_CHILDREN; trust the wall figures)"
            )
        if ratio < 4:
            # Workers are CPU-bound, so at the same parallelism wall time scales with CPU per notebook.
            need = ours_cpu / n * ratio / 4
            print(
                f"4x would need {plain_wall / 4:.1f} s instead of {ours_wall:.1f} s "
                f"({100 * (1 - ratio / 4):.0f}% less): "
                f"about {need:.2f} CPU s per notebook instead of {ours_cpu / n:.2f} at {args.workers} workers, "
                f"or more workers (cores)"
            )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"grades identical: {identical} (distinct totals: {totals})")
        if not identical:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
